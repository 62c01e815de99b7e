"""The doit pipeline end to end: `doit build` run as a subprocess, reading
which tasks it executed (".  name") and which were up to date ("-- name").

Every test builds into its own artifacts dir (STAPBUILD_ARTIFACTS) and never
touches ./artifacts; tapset edits happen on a copy (STAPBUILD_TAPSETS).
The kernels must be provisioned (marker `kernel`; CI provisions them first).
"""
from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from stapbuild import kernels
from stapbuild.kbuild import modinfo_vermagic
from stapbuild.store import project_root

ROOT = project_root()
pytestmark = pytest.mark.kernel


@pytest.fixture(scope="module")
def rel61() -> str:
    return kernels.resolve_release("6.1")


@pytest.fixture(scope="module")
def rel612() -> str:
    return kernels.resolve_release("6.12")


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    e = dict(os.environ)
    for var in ("STAPBUILD_TAPSETS", "STAPBUILD_PROBES"):
        e.pop(var, None)
    e["STAPBUILD_ARTIFACTS"] = str(tmp_path / "artifacts")
    e["PYTHONUNBUFFERED"] = "1"
    return e


class Run:
    def __init__(self, proc: subprocess.CompletedProcess):
        self.rc, self.out = proc.returncode, proc.stdout + proc.stderr
        self.executed = set(re.findall(r"^\.  (\S+)$", self.out, re.M))
        self.uptodate = set(re.findall(r"^-- (\S+)$", self.out, re.M))


def doit(env: dict[str, str], *args: str) -> Run:
    proc = subprocess.run([sys.executable, "-m", "doit", *args], cwd=ROOT, env=env,
                          capture_output=True, text=True)
    run = Run(proc)
    assert run.rc == 0, run.out
    return run


def artifacts(env: dict[str, str]) -> Path:
    return Path(env["STAPBUILD_ARTIFACTS"])


def ref(env: dict[str, str], probe: str, release: str, kind: str) -> dict:
    return json.loads((artifacts(env) / "refs" / probe / release / f"{kind}.json").read_text())


def ko_of(env: dict[str, str], probe: str, release: str) -> Path:
    return artifacts(env) / ref(env, probe, release, "compile")["artifact"]


def tasks(probe: str, release: str) -> set[str]:
    return {f"{p}:{probe}@{release}" for p in ("parse", "elaborate", "translate", "compile")}


def store_files(env: dict[str, str]) -> set[Path]:
    return {p for p in (artifacts(env) / "store").rglob("*") if p.is_file()}


# ------------------------------------------------------------------ 1
def test_build_two_kernels_vermagic_then_noop(env, rel61, rel612):
    first = doit(env, "build", "probe=iotop", "kernels=6.1,6.12")
    assert tasks("iotop", rel61) | tasks("iotop", rel612) <= first.executed
    for release in (rel61, rel612):
        ko = ko_of(env, "iotop", release)
        assert ko.suffix == ".ko"
        assert modinfo_vermagic(ko).split()[0] == release

    second = doit(env, "build", "probe=iotop", "kernels=6.1,6.12")
    assert second.executed == set(), second.out
    assert tasks("iotop", rel61) | tasks("iotop", rel612) <= second.uptodate


# ------------------------------------------------------------------ 2
@pytest.fixture
def tapset_copy(env, tmp_path) -> Path:
    copy = tmp_path / "tapsets"
    shutil.copytree(ROOT / "tapsets", copy)
    env["STAPBUILD_TAPSETS"] = str(copy)
    return copy


def test_tapset_comment_edit_stops_at_parse(env, tapset_copy, rel61):
    """hz uses timer/begin (timestamp, logging tapsets), iotop uses vfs.*."""
    doit(env, "build", "probe=iotop,hz", "kernels=6.1")
    before = {k: ref(env, "iotop", rel61, k) for k in ("parse", "compile")}
    vfs = tapset_copy / "vfs.stp"
    # A trailing comment: the file's digest changes, its parse tree does not.
    vfs.write_text(vfs.read_text() + "// a trailing comment changes no tree\n")

    run = doit(env, "build", "probe=iotop,hz", "kernels=6.1")
    assert run.executed == {f"parse:iotop@{rel61}"}, run.out
    assert {ref(env, "iotop", rel61, k)["key"] for k in ("parse", "compile")} == \
        {before[k]["key"] for k in ("parse", "compile")}
    # ... and the parse task is current again (the new digest was recorded).
    assert doit(env, "build", "probe=iotop,hz", "kernels=6.1").executed == set()


def test_tapset_body_edit_reruns_only_its_users(env, tapset_copy, rel61):
    doit(env, "build", "probe=iotop,hz", "kernels=6.1")
    old_ko = ko_of(env, "iotop", rel61)
    hz_ko = ko_of(env, "hz", rel61)
    vfs = tapset_copy / "vfs.stp"
    text = vfs.read_text()
    edited = text.replace("bytes_read = ret > 0 ? ret : 0", "bytes_read = ret > 0 ? ret : -1")
    assert edited != text
    vfs.write_text(edited)

    run = doit(env, "build", "probe=iotop,hz", "kernels=6.1")
    assert run.executed == tasks("iotop", rel61), run.out
    assert tasks("hz", rel61) <= run.uptodate
    new_ko = ko_of(env, "iotop", rel61)
    assert new_ko != old_ko and modinfo_vermagic(new_ko).split()[0] == rel61
    assert ko_of(env, "hz", rel61) == hz_ko
    assert doit(env, "build", "probe=iotop,hz", "kernels=6.1").executed == set()


# ------------------------------------------------------------------ 3
def test_adding_a_kernel_builds_only_that_kernel(env, rel61, rel612):
    first = doit(env, "build", "probe=iotop", "kernels=6.1")
    assert first.executed == tasks("iotop", rel61) | {f"kernel:{rel61}"}, first.out

    second = doit(env, "build", "probe=iotop", "kernels=6.1,6.12")
    assert second.executed == tasks("iotop", rel612) | {f"kernel:{rel612}"}, second.out
    assert tasks("iotop", rel61) <= second.uptodate
    assert modinfo_vermagic(ko_of(env, "iotop", rel612)).split()[0] == rel612


def test_kernels_without_the_default_kernel_load(env, rel612):
    """pass5 used to depend on the default kernel's compile task, which does
    not exist with kernels=6.12: doit refused to load any task."""
    listing = doit(env, "list", "--all", "probe=iotop", "kernels=6.12").out
    assert f"compile:iotop@{rel612}" in listing
    assert "@6.1.0" not in listing


# ------------------------------------------------------------------ 4
def _children(pid: int) -> list[int]:
    kids: list[int] = []
    for task in Path(f"/proc/{pid}/task").glob("*"):
        try:
            kids += [int(c) for c in (task / "children").read_text().split()]
        except OSError:
            pass
    return kids


def _assert_store_sound(env: dict[str, str]) -> None:
    """Every file a later run could trust is whole."""
    for p in store_files(env):
        if p.name.startswith("."):
            continue                    # a temporary file: never read by name
        if p.suffix == ".json":
            json.loads(p.read_text())
        elif p.suffix == ".ko":
            assert modinfo_vermagic(p)
        elif p.suffix == ".c":
            assert p.stat().st_size > 0 and p.read_text().endswith("\n")
        else:                           # parse memo: an output key
            assert re.fullmatch(r"[0-9a-f]{64}\n", p.read_text()), p
    for p in (artifacts(env) / "refs").rglob("*.json"):
        json.loads(p.read_text())


def test_sigkill_during_compile_leaves_no_corrupt_state(env, rel61):
    proc = subprocess.Popen([sys.executable, "-m", "doit", "build", "probe=iotop", "kernels=6.1"],
                            cwd=ROOT, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, start_new_session=True)
    try:
        for line in proc.stdout:
            if line.startswith(f".  compile:iotop@{rel61}"):
                break
        else:
            pytest.fail("doit finished without starting compile")
        # Wait until make runs under doit: then the kill lands inside pass 4.
        deadline = time.monotonic() + 120
        while not _children(proc.pid):
            assert proc.poll() is None, "compile finished before it could be killed"
            assert time.monotonic() < deadline, "compile never started make"
            time.sleep(0.01)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        assert proc.returncode == -signal.SIGKILL

        assert not (artifacts(env) / "refs" / "iotop" / rel61 / "compile.json").exists()
        assert not list((artifacts(env) / "store").glob("compile/*/*.ko"))
        _assert_store_sound(env)

        # The next run completes (while the orphaned make may still run).
        run = doit(env, "build", "probe=iotop", "kernels=6.1")
        assert f"compile:iotop@{rel61}" in run.executed
        assert modinfo_vermagic(ko_of(env, "iotop", rel61)).split()[0] == rel61
        _assert_store_sound(env)
        assert not [p for p in store_files(env) if p.name.startswith(".")]
        assert doit(env, "build", "probe=iotop", "kernels=6.1").executed == set()
    finally:
        proc.stdout.close()
        try:
            os.killpg(proc.pid, signal.SIGKILL)   # the orphaned make, if still there
        except ProcessLookupError:
            pass


# ------------------------------------------------------------------ 5
def stapbuild(env: dict[str, str], *args: str, cwd: Path = ROOT) -> str:
    proc = subprocess.run([sys.executable, "-m", "stapbuild.cli", *args], cwd=cwd, env=env,
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout.strip()


def test_cli_and_doit_share_the_cache(env, rel61, tmp_path):
    # CLI first (cold): doit then finds every pass in the store.
    ko_cli = stapbuild(env, "-p4", "-r", "6.1", "probes/iotop.stp")
    files = store_files(env)
    doit(env, "build", "probe=iotop", "kernels=6.1")
    assert str(ko_of(env, "iotop", rel61)) == ko_cli
    assert {p for p in store_files(env) if p.suffix == ".ko"} == \
        {p for p in files if p.suffix == ".ko"}
    assert ref(env, "iotop", rel61, "compile")["module"] == \
        modinfo_name(Path(ko_cli))

    # And the CLI hits doit's cache however the script is named.
    files = store_files(env)
    assert stapbuild(env, "-p4", "-r", "6.1", "probes/iotop.stp") == ko_cli
    assert stapbuild(env, "-p4", "-r", "6.1", str(ROOT / "probes" / "iotop.stp"),
                     cwd=tmp_path) == ko_cli
    assert store_files(env) == files


def modinfo_name(ko: Path) -> str:
    from stapbuild.kbuild import modinfo
    return modinfo(ko).get("name", "")
