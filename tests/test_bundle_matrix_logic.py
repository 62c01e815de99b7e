"""Bundles and matrix reports: the pure logic (no kernel needed)."""
from __future__ import annotations

import gzip
import hashlib
import io
import json
import tarfile
from pathlib import Path
from xml.etree import ElementTree

import pytest

from stapbuild import bundle, matrix
from stapbuild.matrix import Cell

BUILD_A = "#1 SMP PREEMPT_DYNAMIC Debian 6.1.192-2 (2026-11-16)"
BUILD_B = "#1 SMP PREEMPT_DYNAMIC Debian 6.12.117-1~deb12u1 (2026-11-14)"


def make_bundle(tmp_path: Path, tamper: bool = False) -> Path:
    mods = {"modules/p/6.1.0-56-amd64/stap_p_1.ko": b"\x7fELF one",
            "modules/p/6.12.117+deb12-amd64/stap_p_2.ko": b"\x7fELF two"}
    entries = [
        {"probe": "p", "release": "6.1.0-56-amd64", "build_string": BUILD_A,
         "module": "stap_p_1", "path": "modules/p/6.1.0-56-amd64/stap_p_1.ko",
         "sha256": hashlib.sha256(b"\x7fELF one").hexdigest(), "vermagic": "", "passes": {}},
        {"probe": "p", "release": "6.12.117+deb12-amd64", "build_string": BUILD_B,
         "module": "stap_p_2", "path": "modules/p/6.12.117+deb12-amd64/stap_p_2.ko",
         "sha256": hashlib.sha256(b"\x7fELF two").hexdigest(), "vermagic": "", "passes": {}},
    ]
    manifest = {"schema": bundle.BUNDLE_SCHEMA, "stapbuild_version": "0",
                "probes": [{"name": "p", "source_sha256": "x"}], "modules": entries}
    if tamper:
        mods["modules/p/6.12.117+deb12-amd64/stap_p_2.ko"] = b"\x7fELF evil"
    path = tmp_path / "p.stpbundle"
    path.write_bytes(bundle.pack(manifest, mods))
    return path


def test_pack_is_deterministic(tmp_path):
    a = make_bundle(tmp_path).read_bytes()
    b = make_bundle(tmp_path).read_bytes()
    assert a == b
    with tarfile.open(fileobj=io.BytesIO(a), mode="r:gz") as tar:
        infos = tar.getmembers()
    assert [i.name for i in infos][0] == "manifest.json"
    assert all(i.mtime == 0 and i.uid == 0 and i.uname == "" for i in infos)
    assert gzip.decompress(a)  # plain gzip, mtime 0 in its header
    assert a[4:8] == b"\0\0\0\0"


def test_select_by_release_and_build_string(tmp_path):
    path = make_bundle(tmp_path)
    chosen = bundle.select_module(path, "6.12.117+deb12-amd64", BUILD_B)
    assert chosen.entry["module"] == "stap_p_2" and chosen.data == b"\x7fELF two"
    with pytest.raises(bundle.BundleError, match="rebuilt kernel needs a rebuilt module"):
        bundle.select_module(path, "6.12.117+deb12-amd64", "#2 SMP a rebuild")
    with pytest.raises(bundle.BundleError, match="no module for kernel 6.1.0-55-amd64"):
        bundle.select_module(path, "6.1.0-55-amd64", BUILD_A)
    with pytest.raises(bundle.BundleError, match="no probe 'q'"):
        bundle.select_module(path, "6.1.0-56-amd64", BUILD_A, probe="q")


def test_tampered_module_is_refused(tmp_path):
    path = make_bundle(tmp_path, tamper=True)
    assert bundle.select_module(path, "6.1.0-56-amd64", BUILD_A).data == b"\x7fELF one"
    with pytest.raises(bundle.BundleError, match="sha256 mismatch"):
        bundle.select_module(path, "6.12.117+deb12-amd64", BUILD_B)


def test_not_a_bundle(tmp_path):
    bad = tmp_path / "x.stpbundle"
    bad.write_bytes(b"nonsense")
    with pytest.raises(bundle.BundleError, match="cannot read bundle"):
        bundle.select_module(bad, "r", "b")


def test_smoke_declarations(tmp_path):
    s = tmp_path / "s.stp"
    s.write_text("# smoke: dd if=/dev/zero of=/dev/null count=1\n# smoke-duration: 3\n"
                 "# smoke-expect: dd\\s+1\nprobe begin {}\n")
    smoke = matrix.smoke_of(s)
    assert smoke.workload == "dd if=/dev/zero of=/dev/null count=1"
    assert smoke.duration == 3.0 and smoke.expect == "dd\\s+1"
    s.write_text("probe begin {}\n")
    assert matrix.smoke_of(s).duration == matrix.DEFAULT_SMOKE_SECONDS


def cells() -> list[Cell]:
    return [
        Cell("a", "k1", "a.stp", build="ok", run="passed", output="hello <b>\n", rc=0),
        Cell("a", "k2", "a.stp", build="failed", build_error="semantic error: no match"),
        Cell("b", "k1", "b.stp", build="ok", run="failed", errors="exit status 1", rc=1),
        Cell("b", "k2", "b.stp", build="ok", run="passed", output="x\n" * 40, rc=0),
    ]


def test_reports_show_every_cell():
    cs = cells()
    md = matrix.render_markdown(cs, ["a", "b"], ["k1", "k2"])
    assert "| probe | k1 | k2 |" in md and "2 of 4 cells passed." in md
    assert "## a@k2: build failed" in md and "semantic error: no match" in md
    page = matrix.render_html(cs, ["a", "b"], ["k1", "k2"])
    assert "hello &lt;b&gt;" in page and page.count("<tr>") == 3
    assert "(28 more lines)" in page
    root = ElementTree.fromstring(matrix.render_junit(cs))
    assert root.get("tests") == "4" and root.get("failures") == "2"
    failed = [tc.get("name") + "@" + tc.get("classname").rsplit(".", 1)[1]
              for tc in root.iter("testcase") if tc.find("failure") is not None]
    assert failed == ["a@k2", "b@k1"]


def test_named_kernel_sets(tmp_path):
    from stapbuild.config import load_settings
    (tmp_path / "pyproject.toml").write_text(
        '[tool.stapbuild]\ndefault_kernel = "6.12"\n'
        '[tool.stapbuild.kernels]\ndefault = ["6.1"]\nfleet = ["6.1", "6.12", "6.12-rt"]\n')
    s = load_settings(tmp_path)
    assert s.kernels == ["6.1"] and s.default_kernel == "6.12"
    assert s.expand(["fleet", "6.1-cloud", "6.12"]) == ["6.1", "6.12", "6.12-rt", "6.1-cloud"]
    (tmp_path / "pyproject.toml").write_text('[tool.stapbuild]\nkernels = ["6.12"]\n')
    assert load_settings(tmp_path).kernels == ["6.12"]
