"""Facts about one kernel module, for module("NAME").function probes.

The same questions pass 2 asks of vmlinux (codegen.kernel_facts), answered
from the module's debug .ko (relocated by codegen.debuginfo.module_dwarf):
its function index is built once and cached beside the .ko, keyed by the
file's build-id and size like the kernel's dwarf-index, and each resolved
function is kept in a facts SQLite keyed by that build-id.  Types that the
module only declares (struct block_device, ...) are completed from the
kernel's BTF, which has every kernel struct once.

The module's .ko comes from the same -dbg package as vmlinux, so the
vmlinux build-id in pass 2's key covers it too.
"""
from __future__ import annotations

from pathlib import Path
from typing import Callable, Optional

from codegen.debuginfo.facts_cache import FactsCache
from codegen.debuginfo.kernel_index import load_or_build_index
from codegen.debuginfo.module_dwarf import build_module_index
from codegen.debuginfo.types import TypeNav
from codegen.kernel_facts import DwarfKernelFacts


class ModuleFacts(DwarfKernelFacts):
    """DwarfKernelFacts over a module's .ko: `vmlinux` is the .ko, so the
    function, type and location readers work on it unchanged."""

    def __init__(self, release: str, module: str, ko: Path,
                 kernel_btf: Optional[Path]) -> None:
        self.release = release
        self.module = module
        self.vmlinux = Path(ko)
        self.index = load_or_build_index(self.vmlinux, self.vmlinux.with_suffix(".index.json.gz"),
                                         build_module_index)
        self._functions: dict[str, Optional[dict]] = {}
        self.types = TypeNav(self.vmlinux, btf_source=kernel_btf, index=self.index)
        self.cache = FactsCache(self.vmlinux.with_suffix(".facts.sqlite"), self.index.build_id)
        self.symvers = None

    INIT_FREED = "once the module has loaded"

    def _section_starts(self, img) -> dict[int, int]:  # type: ignore[no-untyped-def]
        """The synthetic layout the index and the relocated DWARF use
        (module_dwarf.section_bases): a module address such as
        module("m").statement(0x233) is relative to its .text there."""
        from codegen.debuginfo.module_dwarf import section_bases
        return section_bases(img)


class ModuleNotFound(LookupError):
    """The kernel has no module of that name (message says so)."""


class ModuleDebugUnavailable(RuntimeError):
    """The module exists but its debug .ko cannot be had (no -dbg package
    for a local kernel, a failed download...); the message says why."""


class ModuleSource:
    """Module facts of one kernel, opened on first use per module name.

    `locate(name)` returns the module's debug .ko (stapbuild.kernels
    extracts it from the -dbg package) or raises ModuleNotFound."""

    def __init__(self, release: str, locate: Callable[[str], Path],
                 kernel_btf: Optional[Path]) -> None:
        self.release = release
        self._locate = locate
        self._kernel_btf = kernel_btf
        self._open: dict[str, ModuleFacts] = {}

    def facts(self, name: str) -> ModuleFacts:
        key = name.replace("-", "_")
        if key not in self._open:
            self._open[key] = ModuleFacts(self.release, name, self._locate(name),
                                          self._kernel_btf)
        return self._open[key]


def provisioned_locator(release: str) -> Callable[[str], Path]:
    """locate() for a kernel provisioned by stapbuild.kernels."""
    def locate(name: str) -> Path:
        from stapbuild import kernels
        try:
            return kernels.module_debug_file(release, name)
        except kernels.NoSuchModule as e:
            raise ModuleNotFound(str(e)) from None
        except kernels.ProvisionError as e:
            raise ModuleDebugUnavailable(str(e)) from None
    return locate
