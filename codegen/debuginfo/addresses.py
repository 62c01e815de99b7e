"""Address and source-file questions about one kernel image (issue 11).

- ``containing_function``: address -> (symbol, start, size) of the function
  symbol that holds it, from the index's symtab columns (no DWARF read).
- ``cu_names``: .debug_info CU offset -> the CU's source file (relative to
  the kernel tree), so that ``*@fs/read_write.c`` only looks at the
  functions of matching CUs instead of all ~150k.
"""
from __future__ import annotations

import bisect
from pathlib import Path

from .kernel_index import _CLONE_RE, KernelIndex


class AddressMap:
    """Sorted symtab spans of one index; built once per facts object."""

    def __init__(self, index: KernelIndex) -> None:
        cols = index.functions.columns() if hasattr(index.functions, "columns") else None
        if cols is None:
            names, addrs, sizes = [], [], []
            for n, entries in index.functions.items():
                for e in entries:
                    names.append(n)
                    addrs.append(e.address)
                    sizes.append(e.size)
        else:
            names, addrs, sizes, _cus = cols
        spans = sorted(zip(addrs, sizes, names))
        self._starts = [s[0] for s in spans]
        self._sizes = [s[1] for s in spans]
        self._names = [s[2] for s in spans]

    def containing(self, addr: int) -> tuple[str, int, int] | None:
        """(name, start, size) of the function symbol whose [start, start+size)
        holds addr.  Of aliases at one start, a non-clone name is preferred."""
        i = bisect.bisect_right(self._starts, addr) - 1
        if i < 0:
            return None
        start = self._starts[i]
        cands = []
        j = i
        while j >= 0 and self._starts[j] == start:
            if addr < start + self._sizes[j] or addr == start:
                cands.append(j)
            j -= 1
        if not cands:
            return None
        cands.sort(key=lambda k: (bool(_CLONE_RE.match(self._names[k])), self._names[k]))
        k = cands[0]
        return self._names[k], start, self._sizes[k]


def cu_names(vmlinux: Path) -> dict[int, str]:
    """Every CU's offset -> its DW_AT_name, made source-relative."""
    from .dwarf_open import open_dwarf
    from .functions import _norm_path
    dw = open_dwarf(Path(vmlinux))
    out: dict[int, str] = {}
    for cu in dw.iter_CUs():
        top = cu.get_top_DIE()
        name = top.attributes.get("DW_AT_name")
        if name is None:
            continue
        comp = top.attributes.get("DW_AT_comp_dir")
        comp_dir = comp.value.decode("utf-8", "replace") if comp is not None else ""
        out[cu.cu_offset] = _norm_path(name.value.decode("utf-8", "replace"), comp_dir)
        top.cu._dielist.clear()   # type: ignore[attr-defined]
        top.cu._diemap.clear()    # type: ignore[attr-defined]
    return out
