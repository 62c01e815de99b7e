"""Suite-wide setup: provision the project's kernels once, before any
worker starts, so that kernel and boot tests never race to download or
unpack the same packages (pytest-xdist runs this in the controller)."""
from __future__ import annotations

import os

from stapbuild import kernels
from stapbuild.config import load_settings


def _is_xdist_worker(config) -> bool:
    return hasattr(config, "workerinput")


def pytest_configure(config) -> None:
    if _is_xdist_worker(config) or os.environ.get("STAPBUILD_SKIP_PROVISION"):
        return
    from codegen.debuginfo.kernel_index import load_or_build_index
    for series in load_settings().kernels:
        release = kernels.resolve_release(series)
        k = kernels.provision(release)
        load_or_build_index(k.vmlinux, k.root / "dwarf-index.json.gz")
        # The DWARF reader's own tests look for these (they also serve a
        # developer pointing the tests at another vmlinux).
        var = "STAPBUILD_TEST_VMLINUX_" + series.replace(".", "")
        os.environ.setdefault(var, str(k.vmlinux))
