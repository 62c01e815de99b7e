"""The store under damage: corrupt artifacts are detected by their digest
and rebuilt; gc shrinks the store and drops the refs it orphaned."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from stapbuild import cache, kernels, store

ROOT = Path(__file__).resolve().parent.parent


def doit(args: list[str], artifacts: Path) -> subprocess.CompletedProcess:
    env = dict(os.environ, STAPBUILD_ARTIFACTS=str(artifacts))
    return subprocess.run([sys.executable, "-m", "doit", *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=900)


def executed(out: str) -> list[str]:
    return [line[3:] for line in out.splitlines() if line.startswith(".  ")]


@pytest.mark.kernel
def test_corrupt_ko_is_detected_and_rebuilt(tmp_path, monkeypatch):
    r = doit(["build", "probe=hz", "kernels=6.1"], tmp_path)
    assert r.returncode == 0, r.stdout + r.stderr
    monkeypatch.setenv("STAPBUILD_ARTIFACTS", str(tmp_path))
    release = kernels.resolve_release("6.1")   # the newest 6.1 in the registry
    ko = store.read_ref(store.ref_path("hz", release, "compile")).path
    good = ko.read_bytes()
    ko.write_bytes(good[:100] + b"\0" * 16 + good[116:])    # same size, bad bytes
    r = doit(["build", "probe=hz", "kernels=6.1"], tmp_path)
    assert r.returncode == 0, r.stdout + r.stderr
    assert executed(r.stdout) == [f"compile:hz@{release}"]
    assert ko.read_bytes() == good                           # rebuilt, identical


def test_gc_removes_oldest_and_orphaned_refs(tmp_path, monkeypatch):
    monkeypatch.setenv("STAPBUILD_ARTIFACTS", str(tmp_path))
    old = store.put_bytes("compile", "a" * 64, "ko", b"x" * 4000)
    new = store.put_bytes("compile", "b" * 64, "ko", b"y" * 4000)
    os.utime(old.path, (1, 1))
    store.write_ref("p", "k", old, {})
    assert cache.stats()["count"] == 2
    result = cache.gc(6000)
    assert result["removed"] == 1 and result["dropped_refs"] == 1
    assert not old.path.exists() and new.path.exists()
    assert not store.ref_path("p", "k", "compile").exists()
    assert cache.parse_size("2G") == 2 << 30 and cache.parse_size("500M") == 500 << 20


def _corrupt(path: Path) -> None:
    """Same size, different bytes: only a digest notices."""
    data = bytearray(path.read_bytes())
    mid = len(data) // 2
    data[mid:mid + 8] = bytes(b ^ 0x5A for b in data[mid:mid + 8])
    path.write_bytes(bytes(data))


@pytest.mark.kernel
def test_corrupt_artifact_of_every_pass_is_detected_and_rebuilt(tmp_path, monkeypatch):
    """Each pass's artifact in turn: the next build notices the bad digest,
    reruns that pass only (the rebuilt artifact is identical, so nothing
    downstream reruns) and leaves every artifact whole."""
    release = kernels.resolve_release("6.1")
    r = doit(["build", "probe=hz", "kernels=6.1"], tmp_path)
    assert r.returncode == 0, r.stdout + r.stderr
    monkeypatch.setenv("STAPBUILD_ARTIFACTS", str(tmp_path))
    kinds = ["compile", "translate", "elaborate", "parse"]
    arts = {k: store.read_ref(store.ref_path("hz", release, k)).path for k in kinds}
    good = {k: p.read_bytes() for k, p in arts.items()}
    for kind in kinds:
        _corrupt(arts[kind])
        r = doit(["build", "probe=hz", "kernels=6.1"], tmp_path)
        assert r.returncode == 0, r.stdout + r.stderr
        assert executed(r.stdout) == [f"{kind}:hz@{release}"], (kind, r.stdout)
        for k, p in arts.items():
            assert p.read_bytes() == good[k], f"{k} after corrupting {kind}"
            assert store.verify(p), k
    r = doit(["build", "probe=hz", "kernels=6.1"], tmp_path)
    assert executed(r.stdout) == [], r.stdout
