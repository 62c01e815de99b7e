"""Kernel facts for pass 2, answered from the per-kernel DWARF index.

The index (codegen.debuginfo.kernel_index) is built once per kernel and
cached; afterwards a function lookup touches one CU of the vmlinux. Each
answer is memoised for the life of the process, since one script often
names the same function from several probes, and stored in the kernel's
facts cache (codegen.debuginfo.facts_cache), so that later runs read no
DWARF for it at all.
"""
from __future__ import annotations

from pathlib import Path
from typing import Optional

from codegen.debuginfo.facts_cache import MISSING, FactsCache
from codegen.debuginfo.functions import lookup_function
from codegen.debuginfo.kernel_index import KernelIndex, load_or_build_index
from codegen.debuginfo.types import TypeNav


class DwarfKernelFacts:
    def __init__(self, release: str, vmlinux: Path, index_file: Path) -> None:
        self.release = release
        self.vmlinux = Path(vmlinux)
        self.index: KernelIndex = load_or_build_index(self.vmlinux, Path(index_file))
        self._functions: dict[str, Optional[dict]] = {}
        self.types = TypeNav(self.vmlinux, index=self.index)
        self.cache = FactsCache(Path(index_file).with_name("dwarf-facts.sqlite"),
                                self.index.build_id)

    def match_functions(self, pattern: str) -> list[str]:
        names = self.index.match(pattern)
        if not names and pattern in self.index.clones:
            # Only out-of-line copies exist; function() explains why.
            return [pattern]
        return sorted(set(names))

    def prefetch(self, names: list[str]) -> None:
        """Load many cached answers with one query (wildcard probes)."""
        todo = [n for n in names if n not in self._functions]
        for n, v in self.cache.get_many("function", todo).items():
            self._functions[n] = v  # type: ignore[assignment]

    def function(self, name: str) -> Optional[dict]:
        if name not in self._functions:
            hit = self.cache.get("function", name)
            if hit is MISSING:
                info = lookup_function(self.vmlinux, self.index, name)
                hit = info.to_json() if info is not None and info.probeable else None
                self.cache.put("function", name, hit)
            self._functions[name] = hit  # type: ignore[assignment]
        return self._functions[name]


def make_kernel_facts(release: str, kernel, index_file: Path):  # type: ignore[no-untyped-def]
    """Facts for one provisioned kernel (stapbuild.kernels.Kernel): from its
    DWARF vmlinux when the dbg part is there, else None."""
    if getattr(kernel, "vmlinux", None) is not None:
        return DwarfKernelFacts(release, kernel.vmlinux, index_file)
    return None
