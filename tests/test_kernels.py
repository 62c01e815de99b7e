"""Kernel provisioning: pure release logic, plus real provisioning (marker `kernel`)."""

from __future__ import annotations

import json
import re
import time
from pathlib import Path

import pytest

from stapbuild import kernels
from stapbuild.kernels import KernelNotFound, pick_release, nearest_releases, sort_releases

FAKE = [
    "6.12.9+deb12-amd64", "6.1.0-9-amd64", "6.1.0-56-amd64", "6.12.117+deb12-amd64",
    "6.1.0-10-amd64", "6.12.113+deb12-amd64", "6.1.0-55-amd64",
]


def test_sort_is_numeric_not_lexical():
    assert sort_releases(FAKE) == [
        "6.1.0-9-amd64", "6.1.0-10-amd64", "6.1.0-55-amd64", "6.1.0-56-amd64",
        "6.12.9+deb12-amd64", "6.12.113+deb12-amd64", "6.12.117+deb12-amd64",
    ]


@pytest.mark.parametrize("name,ok", [
    ("6.1.0-56-amd64", True), ("6.12.117+deb12-amd64", True),
    ("6.1.0-56-rt-amd64", True), ("6.1.0-56-cloud-amd64", True),
    ("6.12.117+deb12-rt-amd64", True), ("6.1.0-56-arm64", False),
    ("6.12-amd64", False), ("6.1.0-56-common", False), ("amd64", False),
])
def test_amd64_flavours_are_releases(name, ok):
    assert kernels.is_release(name) is ok


def test_flavoured_series():
    fake = FAKE + ["6.12.117+deb12-rt-amd64", "6.12.113+deb12-rt-amd64",
                   "6.1.0-56-cloud-amd64"]
    assert pick_release("6.12-rt", fake) == "6.12.117+deb12-rt-amd64"
    assert pick_release("6.1-cloud", fake) == "6.1.0-56-cloud-amd64"
    assert pick_release("6.12", fake) == "6.12.117+deb12-amd64"
    assert kernels.series_of("6.12.117+deb12-rt-amd64") == "6.12-rt"
    assert kernels.flavour_of("6.1.0-56-cloud-amd64") == "cloud-amd64"
    assert kernels.version_key("6.12.117+deb12-rt-amd64") == (6, 12, 117, 12)


def test_series_resolves_to_newest():
    assert pick_release("6.1", FAKE) == "6.1.0-56-amd64"
    assert pick_release("6.12", FAKE) == "6.12.117+deb12-amd64"
    assert kernels.series_of("6.12.117+deb12-amd64") == "6.12"


def test_full_release_must_exist():
    assert pick_release("6.1.0-10-amd64", FAKE) == "6.1.0-10-amd64"
    with pytest.raises(KernelNotFound):
        pick_release("6.1.0-11-amd64", FAKE)


def test_not_found_message_names_release_and_nearest_same_series_first():
    with pytest.raises(KernelNotFound) as ei:
        pick_release("6.1.0-54-amd64", FAKE)
    msg = str(ei.value)
    assert "\n" not in msg and "6.1.0-54-amd64" in msg
    sugg = ei.value.suggestions
    assert sugg[:2] == ["6.1.0-55-amd64", "6.1.0-56-amd64"]   # nearest first, tie -> newer
    assert "6.12.117+deb12-amd64" in sugg                      # other series: newest only
    assert "6.12.9+deb12-amd64" not in sugg


def test_unknown_series_suggests_newest_per_series():
    with pytest.raises(KernelNotFound) as ei:
        pick_release("5.10", FAKE)
    assert ei.value.suggestions == ["6.12.117+deb12-amd64", "6.1.0-56-amd64"]
    assert nearest_releases("garbage", []) == []


def test_releases_cache_is_reused(tmp_path, monkeypatch):
    monkeypatch.setenv("STAPBUILD_CACHE", str(tmp_path))
    calls = []
    monkeypatch.setattr(kernels, "_query_apt_releases", lambda: calls.append(1) or ["6.1.0-56-amd64"])
    assert kernels.available_releases() == ["6.1.0-56-amd64"]
    assert kernels.available_releases("6.1") == ["6.1.0-56-amd64"]
    assert calls == [1]
    # expired -> asked again
    data = json.loads((tmp_path / "releases.json").read_text())
    data["time"] -= kernels.RELEASES_TTL + 1
    (tmp_path / "releases.json").write_text(json.dumps(data))
    kernels.available_releases()
    assert calls == [1, 1]


def test_provisioned_release_counts_offline(tmp_path, monkeypatch):
    monkeypatch.setenv("STAPBUILD_CACHE", str(tmp_path))
    monkeypatch.setattr(kernels, "_query_apt_releases", lambda: [])
    headers = tmp_path / "kernels" / "6.1.0-3-amd64" / "headers"
    headers.mkdir(parents=True)
    (headers / ".stapbuild-complete").touch()
    assert kernels.resolve_release("6.1") == "6.1.0-3-amd64"


def test_concurrent_provisioners_extract_a_part_once(tmp_path, monkeypatch):
    """Two provisioners of one part at once (two doit runs, two workers on
    one cache): one extracts, the other waits and finds the part done."""
    import threading
    monkeypatch.setenv("STAPBUILD_CACHE", str(tmp_path))
    monkeypatch.setattr(kernels, "_query_apt_releases", lambda: ["6.1.0-3-amd64"])
    runs: list[int] = []

    def slow_image(release: str, final: Path) -> None:
        runs.append(1)
        time.sleep(0.3)           # long enough for the other thread to arrive
        with kernels._PartDir(final) as tmp:
            (tmp / "boot").mkdir()

    monkeypatch.setitem(kernels._PROVISIONERS, "image", slow_image)
    threads = [threading.Thread(target=kernels.provision, args=("6.1.0-3-amd64", {"image"}))
               for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert runs == [1]
    assert (tmp_path / "kernels" / "6.1.0-3-amd64" / "image" / ".stapbuild-complete").exists()


def test_cache_root_env(monkeypatch, tmp_path):
    monkeypatch.setenv("STAPBUILD_CACHE", str(tmp_path))
    assert kernels.cache_root() == tmp_path
    monkeypatch.delenv("STAPBUILD_CACHE")
    assert kernels.cache_root() == Path.home() / ".cache" / "stapbuild"


# --------------------------------------------------------------------------
# real kernels (download/extract on first run; cheap afterwards)
# --------------------------------------------------------------------------

@pytest.fixture(scope="module")
def k61():
    return kernels.provision(kernels.resolve_release("6.1"))


@pytest.mark.kernel
def test_provision_61(k61):
    assert k61.release.startswith("6.1.0-")
    assert (k61.build_dir / "Makefile").exists()
    assert (k61.build_dir / "scripts" / "Makefile.build").exists()
    assert k61.vmlinux is not None and k61.vmlinux.stat().st_size > 100 << 20
    assert k61.vmlinuz is not None and k61.vmlinuz.exists()
    assert k61.modules_dir is not None and (k61.modules_dir / "modules.dep").exists()
    # idempotent and cheap the second time
    t = time.monotonic()
    assert kernels.provision(k61.release) == k61
    assert time.monotonic() - t < 0.5


@pytest.mark.kernel
def test_identities_61(k61):
    bid = kernels.debuginfo_identity(k61)
    assert re.fullmatch(r"[0-9a-f]{40}", bid)
    assert kernels.debuginfo_identity(k61) == bid
    assert re.fullmatch(r"[0-9a-f]{64}", kernels.build_identity(k61))
    uname_v = kernels.image_build_string(k61)
    assert uname_v.startswith("#1 SMP") and "Debian" in uname_v
    # the image and the headers agree on the build string
    assert uname_v == kernels._headers_uts_version(k61.build_dir)


@pytest.mark.kernel
def test_hello_module_builds_reproducibly(k61, tmp_path):
    from stapbuild import kbuild

    src = tmp_path / "hello.c"
    src.write_text(
        "#include <linux/module.h>\n"
        "static int __init h_init(void) { pr_info(\"hi %s\\n\", __FILE__); return 0; }\n"
        "static void __exit h_exit(void) { }\n"
        "module_init(h_init);\nmodule_exit(h_exit);\nMODULE_LICENSE(\"GPL\");\n")
    runtime = Path(__file__).resolve().parent.parent / "runtime_c"
    a = kbuild.compile_module(src, "stapbuild_test_hello", k61, runtime, tmp_path / "a.ko")
    b = kbuild.compile_module(src, "stapbuild_test_hello", k61, runtime, tmp_path / "b.ko")
    assert a.read_bytes() == b.read_bytes()
    assert kbuild.modinfo_vermagic(a).startswith(k61.release + " ")
    assert b"/root/" not in a.read_bytes() and str(Path.home()).encode() not in a.read_bytes()


@pytest.mark.kernel
def test_build_error_is_reported(k61, tmp_path):
    from stapbuild import kbuild

    src = tmp_path / "bad.c"
    src.write_text("int f(void) { return undeclared_x; }\n")
    with pytest.raises(kbuild.BuildError) as ei:
        kbuild.compile_module(src, "stapbuild_test_bad", k61, tmp_path, tmp_path / "bad.ko")
    assert "undeclared_x" in str(ei.value)
    assert not (tmp_path / "bad.ko").exists()
