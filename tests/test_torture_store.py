"""Faults outside the kernel: concurrent builds of one tree, a permissive
umask, and a kernel package cut off mid-download. Nothing may be lost or
corrupted, and nothing stapbuild writes may be writable by others."""
from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from stapbuild import kernels, torture

ROOT = Path(__file__).resolve().parent.parent


def _env(artifacts: Path, **extra: str) -> dict:
    return dict(os.environ, STAPBUILD_ARTIFACTS=str(artifacts), **extra)


def _executed(out: str) -> list[str]:
    return [line[3:] for line in out.splitlines() if line.startswith(".  ")]


@pytest.mark.kernel
def test_concurrent_builds_of_one_tree_corrupt_nothing(tmp_path):
    """Two `doit build` runs and a `stapbuild -p4` at once, on one store and
    one doit state file: all succeed, every artifact matches its digest, no
    temporary file is left, and a later build has nothing to do."""
    art = tmp_path / "artifacts"
    doit = [sys.executable, "-m", "doit", "build", "probe=hz", "kernels=6.1,6.12"]
    cli = [sys.executable, "-m", "stapbuild.cli", "-p4", "-r", "6.12", "probes/hz.stp"]
    procs = [subprocess.Popen(cmd, cwd=ROOT, env=_env(art), stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, text=True)
             for cmd in (doit, doit, cli)]
    outs = [p.communicate(timeout=1200)[0] for p in procs]
    for p, out in zip(procs, outs):
        assert p.returncode == 0, out
    report = torture.store_integrity(art)
    assert report["lost"] == 0 and not report["litter"], report
    assert report["refs"] >= 8, report          # 4 passes x 2 kernels
    r = subprocess.run(doit, cwd=ROOT, env=_env(art), capture_output=True, text=True,
                       timeout=600)
    assert r.returncode == 0 and _executed(r.stdout) == [], r.stdout + r.stderr


@pytest.mark.kernel
def test_build_under_umask_000_leaves_nothing_world_writable(tmp_path):
    art = tmp_path / "artifacts"
    r = subprocess.run(["/bin/sh", "-c", f"umask 000 && exec {sys.executable} -m doit build "
                        "probe=hz kernels=6.1"], cwd=ROOT, env=_env(art),
                       capture_output=True, text=True, timeout=900)
    assert r.returncode == 0, r.stdout + r.stderr
    assert torture.world_writable(art) == []
    # and the caches this machine has built up so far
    assert torture.world_writable(kernels.cache_root() / "kbuild") == []


@pytest.mark.kernel
def test_cut_off_package_download_is_detected_and_redone(tmp_path):
    """A .deb cut off half-way (a killed download, a truncated copy of the
    cache) is not trusted: it is checked against apt's size and sha256,
    removed, downloaded again, and the part is provisioned whole."""
    release = kernels.resolve_release("6.1")
    cache = tmp_path / "cache"
    mine = cache / "downloads" / release
    mine.mkdir(parents=True)
    have = kernels.downloads_dir(release)
    for pkg in (f"linux-headers-{release}", f"linux-headers-{release.rsplit('-', 1)[0]}-common",
                "linux-kbuild-"):
        for deb in have.glob(f"{pkg}*.deb"):
            shutil.copyfile(deb, mine / deb.name)
    kbuild_deb = next(mine.glob("linux-kbuild-*.deb"))
    whole = kbuild_deb.read_bytes()
    kbuild_deb.write_bytes(whole[: len(whole) // 2])
    code = ("import sys\nfrom stapbuild import kernels\n"
            f"k = kernels.provision({release!r}, {{'headers'}})\n"
            "print(k.build_dir)\n")
    r = subprocess.run(["/bin/sh", "-c", f"umask 000 && exec {sys.executable} -c \"$0\"", code],
                       cwd=ROOT, env=dict(os.environ, STAPBUILD_CACHE=str(cache)),
                       capture_output=True, text=True, timeout=900)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "state=redownload" in r.stderr, r.stderr
    assert hashlib.sha256(kbuild_deb.read_bytes()).hexdigest() == hashlib.sha256(whole).hexdigest()
    build_dir = Path(r.stdout.strip().splitlines()[-1])
    assert (build_dir / "scripts" / "Makefile.build").exists()
    assert (cache / "kernels" / release / "headers" / ".stapbuild-complete").exists()
    assert torture.world_writable(cache) == []


def test_a_truncated_deb_fails_the_archive_check(tmp_path):
    """Without apt's digest (offline), the ar members' sizes still tell."""
    release = kernels.resolve_release("6.1")
    deb = next(kernels.downloads_dir(release).glob("linux-kbuild-*.deb"))
    data = deb.read_bytes()
    assert kernels._ar_complete(deb)
    for cut in (7, 100, len(data) // 2, len(data) - 1):
        t = tmp_path / deb.name
        t.write_bytes(data[:cut])
        assert not kernels._ar_complete(t), cut
        assert not kernels._deb_ok(t, None), cut
