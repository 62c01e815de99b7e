"""Security: what needs guru mode is refused without it, with SystemTap's
message; a module that does not match its recorded digest is never loaded;
nothing stapbuild writes is writable by others; the module's control
channel is root-only (its modes here; an unprivileged open is tried in a
booted guest by the torture suite's 'hot' case)."""
from __future__ import annotations

import hashlib
import io
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from stapbuild import bundle, kernels, runner, store, torture

ROOT = Path(__file__).resolve().parent.parent


def stap(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "stapbuild.cli", *args], cwd=ROOT,
                          capture_output=True, text=True, timeout=600)


EMBEDDED = [
    "%{ #include <linux/sched.h> %}\nprobe begin { exit() }\n",
    "function f:long() %{ STAP_RETVALUE = 1; %}\nprobe begin { println(f()); exit() }\n",
]


@pytest.mark.parametrize("script", EMBEDDED)
def test_embedded_c_is_refused_without_guru_mode(script):
    r = stap("-p2", "-e", script)
    assert r.returncode != 0
    assert "parse error: embedded code in unprivileged script; need stap -g" in r.stderr, r.stderr
    assert "Pass 1: parse failed.  [man error::pass1]" in r.stderr


def test_embedded_c_is_accepted_with_guru_mode():
    r = stap("-p3", "-g", "-e", EMBEDDED[1])
    assert r.returncode == 0, r.stderr
    assert "STAP_RETVALUE = 1;" in r.stdout


@pytest.mark.kernel
def test_target_variable_write_is_refused_without_guru_mode():
    r = stap("-p2", "-r", "6.1", "-e", 'probe kernel.function("vfs_read") { $count = 0 }')
    assert r.returncode != 0
    assert re.search(r"semantic error: .*: identifier '\$count' at <input>:1:37", r.stderr), r.stderr
    assert "Pass 2: analysis failed." in r.stderr


@pytest.mark.kernel
def test_target_variable_write_refusal_uses_systemtaps_message():
    r = stap("-p2", "-r", "6.1", "-e", 'probe kernel.function("vfs_read") { $count = 0 }')
    assert ("semantic error: write to target variable not permitted; need stap -g: "
            "identifier '$count'") in r.stderr


def _bundle_with(tmp_path: Path, data: bytes, recorded: bytes) -> Path:
    u = __import__("os").uname()
    manifest = {"schema": bundle.BUNDLE_SCHEMA, "stapbuild_version": "test",
                "probes": [{"name": "p", "source_sha256": ""}],
                "modules": [{"probe": "p", "release": u.release, "build_string": u.version,
                             "vermagic": "", "module": "stap_p_1", "path": "modules/p/m.ko",
                             "sha256": hashlib.sha256(recorded).hexdigest(), "signature": None,
                             "passes": {}}]}
    out = tmp_path / "p.stpbundle"
    out.write_bytes(bundle.pack(manifest, {"modules/p/m.ko": data}))
    return out


def test_tampered_module_in_a_bundle_is_refused(tmp_path, monkeypatch):
    b = _bundle_with(tmp_path, b"\x7fELF tampered", recorded=b"\x7fELF original")
    with pytest.raises(bundle.BundleError, match="sha256 mismatch .*refusing to load it"):
        bundle.select_module(b, __import__("os").uname().release, __import__("os").uname().version)
    monkeypatch.setattr(runner, "run", lambda *a, **k: pytest.fail("the runner got a tampered module"))
    err = io.StringIO()
    monkeypatch.setattr(sys, "stderr", err)
    assert bundle.run_bundle(b) == 1
    assert "sha256 mismatch" in err.getvalue()


def test_runner_refuses_a_module_that_does_not_match_its_digest(tmp_path):
    """The store's .sha256 sidecar, or --sha256 (tests/test_torture_runner.py
    checks that nothing is loaded; here the command line)."""
    ko = tmp_path / "m.ko"
    ko.write_bytes(b"\x7fELF\x02\x01" + b"\0" * 100)
    r = subprocess.run([sys.executable, "-m", "stapbuild.runner", "--module", str(ko),
                        "--sha256", "0" * 64], capture_output=True, text=True, timeout=60)
    assert r.returncode == 1
    assert re.search(r"ERROR: .*does not match the expected digest .*refusing to load it",
                     r.stderr), r.stderr


def test_store_and_caches_are_not_world_writable():
    assert torture.world_writable(store.artifacts_root()) == []
    assert torture.world_writable(kernels.cache_root() / "kbuild") == []
    for d in (kernels.cache_root() / "kernels").glob("*/*"):
        # provisioned trees: checked at their top (a full walk is 100k files)
        assert not d.stat().st_mode & 0o002, d


def test_umask_is_never_looser_than_022():
    code = "import os; os.umask(0); import stapbuild; print(oct(os.umask(0)))"
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert r.stdout.strip() == "0o22"


def test_control_channel_is_created_root_only():
    """ctl (start/stop) 0600 and data 0400, as created by the runtime."""
    src = (ROOT / "runtime_c" / "stp_module_main.h").read_text()
    assert re.search(r'proc_create\("ctl", 0600,', src)
    assert re.search(r'proc_create\("data", 0400,', src)
    assert re.search(r'proc_mkdir\(STP_PROC_DIR, NULL\)', src)
