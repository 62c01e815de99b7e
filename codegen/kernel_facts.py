"""Kernel facts for pass 2, answered from the per-kernel DWARF index.

The index (codegen.debuginfo.kernel_index) is built once per kernel and
cached; afterwards a function lookup touches one CU of the vmlinux. Each
answer is memoised for the life of the process, since one script often
names the same function from several probes.
"""
from __future__ import annotations

from pathlib import Path
from typing import Optional

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

    def match_functions(self, pattern: str) -> list[str]:
        names = self.index.match(pattern)
        if not names and pattern in self.index.clones:
            # Only out-of-line copies exist; function() explains why.
            return [pattern]
        return sorted(set(names))

    def function(self, name: str) -> Optional[dict]:
        if name not in self._functions:
            info = lookup_function(self.vmlinux, self.index, name)
            self._functions[name] = info.to_json() if info is not None and info.probeable \
                else None
        return self._functions[name]
