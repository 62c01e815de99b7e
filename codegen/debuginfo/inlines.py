"""Inlined instances of kernel functions, for kernel.function("P").inline.

An inlined copy of f is a DW_TAG_inlined_subroutine whose
DW_AT_abstract_origin leads to f's abstract DW_TAG_subprogram; its entry
is DW_AT_entry_pc, else DW_AT_low_pc, else the start of its first range.

Finding every copy in the kernel means walking every DIE of vmlinux
(~73 s, see ../shared notes), so the walk is per CU and its result is
cached per CU in the facts cache: the CUs searched are the ones a
pattern can reach cheaply, from the index (the CUs that hold a symbol of
a matching name, such as a static function with an out-of-line copy) or
from `@file` (every CU compiled from a matching .c file).  A header's
inline function is found in the CUs named that way, not in every CU that
includes the header.
"""
from __future__ import annotations

import fnmatch
from typing import Iterator, Optional

from elftools.dwarf.die import DIE

from .dwarf_open import open_dwarf
from .dwarf_types import attr_via_origin, die_name, origin_chain
from .facts_cache import MISSING

_ADDRX_FORMS = ("DW_FORM_addrx", "DW_FORM_addrx1", "DW_FORM_addrx2", "DW_FORM_addrx3",
                "DW_FORM_addrx4", "DW_FORM_GNU_addr_index")

# Bump when the cached per-CU layout changes.
_CACHE_KIND = "inlines/1"

# A first scan of a CU costs ~0.4 s; a pattern that reaches more CUs than
# this is refused rather than left to run for many minutes.
MAX_CUS = 64


class TooWide(Exception):
    """The pattern reaches too many CUs to scan; the message says why."""


def _addr_attr(die: DIE, attr: str) -> Optional[int]:
    a = die.attributes.get(attr)
    if a is None:
        return None
    if a.form in _ADDRX_FORMS:
        return die.cu.dwarfinfo.get_addr(die.cu, a.value)
    return a.value if isinstance(a.value, int) else None


def entry_pc(die: DIE) -> Optional[int]:
    """Where an inlined instance starts executing."""
    from .statements import _ranges
    a = die.attributes.get("DW_AT_entry_pc")
    ranges = _ranges(die)
    if a is not None and isinstance(a.value, int):
        if a.form == "DW_FORM_addr" or a.form in _ADDRX_FORMS:
            return _addr_attr(die, "DW_AT_entry_pc")
        # DWARF 5: a constant is an offset from the instance's base address.
        if ranges:
            return min(lo for lo, _ in ranges) + a.value
    if ranges:
        return ranges[0][0]
    return None


def _abstract(die: DIE) -> Optional[DIE]:
    """The abstract subprogram an inlined instance came from."""
    chain = origin_chain(die)
    return chain[-1] if len(chain) > 1 else None


def _walk_inlines(die: DIE) -> Iterator[DIE]:
    """Every inlined instance below a concrete subprogram (in lexical
    blocks and in other inlined instances too)."""
    for ch in die.iter_children():
        if ch.tag == "DW_TAG_inlined_subroutine":
            yield ch
            yield from _walk_inlines(ch)
        elif ch.tag == "DW_TAG_lexical_block":
            yield from _walk_inlines(ch)


def _has_code(die: DIE) -> bool:
    return "DW_AT_low_pc" in die.attributes or "DW_AT_ranges" in die.attributes


def scan_cu(facts, cu_offset: int) -> list[dict]:  # type: ignore[no-untyped-def]
    """Every inlined instance with code in one CU:
    [{name, entry, die, func, abstract, decl_file, decl_line}] where func is
    the concrete subprogram it was inlined into (its frame base applies)."""
    key = str(cu_offset)
    hit = facts.cache.get(_CACHE_KIND, key)
    if hit is not MISSING and isinstance(hit, list):
        return hit
    from .functions import _cu_file_table
    dw = open_dwarf(facts.vmlinux)
    cu = dw.get_CU_at(cu_offset)
    files: Optional[list] = None
    out: list[dict] = []
    for top in cu.get_top_DIE().iter_children():
        if top.tag != "DW_TAG_subprogram" or not _has_code(top):
            continue
        for inl in _walk_inlines(top):
            origin = _abstract(inl)
            name = die_name(origin) if origin is not None else None
            pc = entry_pc(inl)
            if not name or pc is None:
                continue
            df = attr_via_origin(origin, "DW_AT_decl_file")
            dl = attr_via_origin(origin, "DW_AT_decl_line")
            if isinstance(df, int) and files is None:
                files = _cu_file_table(cu)
            out.append({"name": name, "entry": pc, "die": inl.offset, "func": top.offset,
                        "abstract": origin.offset,
                        "decl_file": files[df] if isinstance(df, int) and files is not None
                        and 0 <= df < len(files) else None,
                        "decl_line": dl if isinstance(dl, int) else None})
    facts.cache.put(_CACHE_KIND, key, out)
    return out


def instance_scope(facts, cu_offset: int, inst: dict) -> list[dict]:  # type: ignore[no-untyped-def]
    """The inlined function's own parameters and locals at its entry pc,
    with their locations there (as statements.scope_at gives them)."""
    from .statements import scope_vars
    key = f"{cu_offset}@{inst['die']}"
    hit = facts.cache.get("inline-scope", key)
    if hit is not MISSING and isinstance(hit, list):
        return hit
    cu = open_dwarf(facts.vmlinux).get_CU_at(cu_offset)
    func = cu.get_DIE_from_refaddr(inst["func"])
    scope = cu.get_DIE_from_refaddr(inst["die"])
    out = scope_vars(facts, func, scope, inst["entry"])
    facts.cache.put("inline-scope", key, out)
    return out


def cu_names(facts) -> dict[int, str]:  # type: ignore[no-untyped-def]
    """CU offset -> source file, shared with KernelFacts.functions_in_files
    through the same cache entry (the first walk over the CU headers
    takes a minute)."""
    hit = facts.cache.get("cu_names", "all")
    if hit is MISSING or not isinstance(hit, dict):
        from .addresses import cu_names as walk_cu_names
        hit = {str(k): v for k, v in walk_cu_names(facts.vmlinux).items()}
        facts.cache.put("cu_names", "all", hit)
    return {int(k): v for k, v in hit.items()}


def candidate_cus(facts, func_pat: str, file_glob: str) -> set[int]:  # type: ignore[no-untyped-def]
    """The CUs to search: those compiled from a .c file matching file_glob,
    or else those holding a symbol (or GCC clone) of a matching name."""
    if file_glob:
        got = {off for off, name in cu_names(facts).items()
               if fnmatch.fnmatchcase(name, file_glob)}
        if got:
            return got
    index = facts.index
    names = set(index.match(func_pat))
    for base, clones in index.clones.items():
        if fnmatch.fnmatchcase(base, func_pat):
            names.update(clones)
    return {e.cu_offset for n in names for e in index.lookup(n)}


def find_instances(facts, func_pat: str, file_pat: str) -> list[tuple[int, dict]]:  # type: ignore[no-untyped-def]
    """(CU, instance) for every inlined instance of a function matching
    func_pat (declared in a file matching file_pat, when given), in entry
    address order, one per entry address and function."""
    cus = candidate_cus(facts, func_pat, file_pat)
    if len(cus) > MAX_CUS:
        raise TooWide(f".inline: \"{func_pat}\" reaches {len(cus)} compilation units "
                      f"(at most {MAX_CUS} are searched); name fewer functions or add "
                      "@file.c")
    seen: set[tuple[int, str]] = set()
    out: list[tuple[int, dict]] = []
    for cu in sorted(cus):
        for inst in scan_cu(facts, cu):
            if not fnmatch.fnmatchcase(inst["name"], func_pat):
                continue
            if file_pat and not fnmatch.fnmatchcase(inst.get("decl_file") or "", file_pat):
                continue
            key = (inst["entry"], inst["name"])
            if key not in seen:
                seen.add(key)
                out.append((cu, inst))
    return sorted(out, key=lambda ci: ci[1]["entry"])
