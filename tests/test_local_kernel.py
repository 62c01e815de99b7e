"""kernels=DIR: a kernel from a local directory (any distribution's build
tree and debug info), registered without copying and built against."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

from stapbuild import kernels, passes
from stapbuild.kbuild import modinfo_vermagic

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.kernel
def test_local_kernel_directory_builds(tmp_path, monkeypatch):
    debian = kernels.provision(kernels.resolve_release("6.1"))
    # Lay a Debian kernel out the way another distribution would ship it.
    d = tmp_path / "fedora-like"
    (d / "lib" / "modules").mkdir(parents=True)
    os.symlink(debian.build_dir, d / "build")
    os.symlink(debian.vmlinux, d / "vmlinux")
    os.symlink(debian.vmlinuz, d / "vmlinuz")
    os.symlink(debian.modules_dir, d / "lib" / "modules" / debian.release)
    # A private cache: the same release must not shadow the Debian entry.
    monkeypatch.setenv("STAPBUILD_CACHE", str(tmp_path / "cache"))
    release = kernels.resolve_release(str(d))
    assert release == debian.release
    k = kernels.kernel_info(release)
    assert k.build_dir == debian.build_dir.resolve() and k.vmlinux == debian.vmlinux.resolve()
    assert all(k.has(p) for p in ("headers", "image", "dbg"))
    assert kernels.provision(release) == k           # nothing to download
    built = passes.build_script(ROOT / "probes" / "iotop.stp", release)
    assert modinfo_vermagic(built.ko).startswith(release + " ")


def test_local_kernel_without_build_tree(tmp_path):
    with pytest.raises(kernels.ProvisionError, match="no kernel build tree"):
        kernels.resolve_release(str(tmp_path))
