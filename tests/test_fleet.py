"""Fleets: bundles chosen and verified on booted kernels, and a matrix of
three probes by three kernels with one deliberately broken cell per 6.12."""
from __future__ import annotations

import hashlib
import json
import os
import shlex
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path
from xml.etree import ElementTree

import pytest

from stapbuild import bundle, guest, kernels

ROOT = Path(__file__).resolve().parent.parent
SERIES = ["6.1", "6.12", "6.12-rt"]


def doit(args: list[str], artifacts: Path, cwd: Path = ROOT) -> subprocess.CompletedProcess:
    env = dict(os.environ, STAPBUILD_ARTIFACTS=str(artifacts), PYTHONPATH=str(cwd))
    return subprocess.run([sys.executable, "-m", "doit", "-f", str(cwd / "dodo.py"), *args],
                          cwd=cwd, env=env, capture_output=True, text=True, timeout=1800)


@pytest.fixture(scope="module")
def fleet(tmp_path_factory):
    artifacts = tmp_path_factory.mktemp("fleet-artifacts")
    kernels_arg = "kernels=" + ",".join(SERIES)
    r = doit(["bundle", "probe=iotop,hz", kernels_arg], artifacts)
    assert r.returncode == 0, r.stdout + r.stderr
    return artifacts, artifacts / "bundles" / "iotop+hz.stpbundle"


def tampered_copy(src: Path, dst: Path, victim_release: str) -> None:
    """The same bundle with one byte of one module flipped."""
    files, manifest = {}, None
    with tarfile.open(src, "r:gz") as tar:
        for m in tar.getmembers():
            data = tar.extractfile(m).read()
            if m.name == "manifest.json":
                manifest = json.loads(data)
            else:
                files[m.name] = data
    for name in files:
        if f"/{victim_release}/" in name and "/hz/" in name:
            data = bytearray(files[name])
            data[len(data) // 2] ^= 0xFF
            files[name] = bytes(data)
    dst.write_bytes(bundle.pack(manifest, files))


@pytest.mark.boot
@pytest.mark.parametrize("series", SERIES)
def test_bundle_picks_the_running_kernels_module(fleet, series, tmp_path):
    _, path = fleet
    release = kernels.resolve_release(series)
    k = kernels.provision(release, {"image"})
    bad = Path("/tmp") / f"stapbuild-tampered-{release}.stpbundle"
    tampered_copy(path, bad, release)
    run = [sys.executable, "-S", "-m", "stapbuild.bundle", "run"]
    cmd = (f"{shlex.join(run + [str(path), '--probe', 'hz'])}; echo RC=$?; "
           f"{shlex.join(run + [str(bad), '--probe', 'hz'])}; echo RC=$?")
    try:
        res = guest.run_in_guest(k, cmd, timeout=600)
    finally:
        bad.unlink()
    manifest = json.loads(subprocess.run(
        [sys.executable, "-m", "stapbuild.bundle", "show", str(path)],
        capture_output=True, text=True, check=True).stdout)
    mine = [m for m in manifest["modules"] if m["probe"] == "hz" and m["release"] == release]
    assert len(mine) == 1
    assert f"bundle: running {mine[0]['module']} (hz) built for {release}" in res.stderr
    assert "HZ ~" in res.stdout
    assert res.stdout.count("RC=") == 2
    first, second = [line for line in res.stdout.splitlines() if line.startswith("RC=")]
    assert first == "RC=0" and second == "RC=1", res.stdout + res.stderr
    assert "sha256 mismatch (the bundle was altered); refusing to load it" in res.stderr


@pytest.mark.boot
def test_matrix_three_by_three_with_a_broken_cell(fleet):
    artifacts, _ = fleet
    r = doit(["-n", "2", "matrix", f"probes=iotop,hz,{ROOT / 'tests/fleet/broken612.stp'}",
              "kernels=" + ",".join(SERIES)], artifacts)
    assert r.returncode != 0                     # a failed cell fails the run...
    assert "7 of 9 cells passed" in r.stdout, r.stdout + r.stderr
    out = artifacts / "matrix"
    root = ElementTree.fromstring((out / "junit.xml").read_text())
    assert root.get("tests") == "9" and root.get("failures") == "2"
    failed = sorted(tc.get("classname").split("matrix.", 1)[1]
                    for tc in root.iter("testcase") if tc.find("failure") is not None)
    assert failed == sorted(kernels.resolve_release(s) for s in ("6.12", "6.12-rt"))
    md = (out / "report.md").read_text()
    assert md.count("✅ passed") == 7                # ...but not the other cells
    assert "stapbuild_no_such_function" in md and "in kernel 6.12.117" in md
    assert "<table>" in (out / "report.html").read_text()


def copy_checkout(dst: Path) -> Path:
    for name in ("codegen", "runtime_c", "tapsets", "probes", "stapbuild"):
        shutil.copytree(ROOT / name, dst / name,
                        ignore=shutil.ignore_patterns("__pycache__"))
    for name in ("dodo.py", "pyproject.toml"):
        shutil.copy(ROOT / name, dst / name)
    return dst


@pytest.mark.kernel
def test_bundle_is_reproducible_across_checkouts(tmp_path):
    digests = []
    for n in (1, 2):
        checkout = copy_checkout(tmp_path / f"checkout{n}")
        artifacts = tmp_path / f"artifacts{n}"
        r = doit(["bundle", "probe=iotop", "kernels=6.1,6.12"], artifacts, cwd=checkout)
        assert r.returncode == 0, r.stdout + r.stderr
        digests.append(hashlib.sha256(
            (artifacts / "bundles" / "iotop.stpbundle").read_bytes()).hexdigest())
    assert digests[0] == digests[1]


@pytest.mark.kernel
def test_signed_bundle(tmp_path):
    key, cert = tmp_path / "key.pem", tmp_path / "cert.pem"
    subprocess.run(["openssl", "req", "-new", "-nodes", "-utf8", "-sha256", "-days", "30",
                    "-batch", "-x509", "-subj", "/CN=stapbuild test signer/",
                    "-outform", "PEM", "-out", str(cert), "-keyout", str(key)],
                   check=True, capture_output=True)
    out = tmp_path / "hz.stpbundle"
    r = doit(["bundle", "probe=hz", "kernels=6.1,6.12", f"sign={key},{cert}", f"out={out}"],
             tmp_path / "artifacts")
    assert r.returncode == 0, r.stdout + r.stderr
    with tarfile.open(out, "r:gz") as tar:
        manifest = bundle.read_manifest(tar)
        for m in manifest["modules"]:
            data = tar.extractfile(m["path"]).read()
            assert data.endswith(b"~Module signature appended~\n")
            assert hashlib.sha256(data).hexdigest() == m["sha256"]
            assert m["signature"]["cert_sha256"] == bundle.cert_fingerprint(cert)
