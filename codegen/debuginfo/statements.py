"""Statement-level debug info of one kernel (issue 11): line tables,
labels, call sites, variables in scope at a PC and the CFA at a PC.

Everything here reads one CU (found through the per-kernel index's
aranges) and never walks the whole vmlinux.  Each answer is small JSON and
is stored in the kernel's facts cache (facts_cache.FactsCache), keyed by
the CU offset or the function, so that a second build reads no DWARF:

- ``lines``: the decoded .debug_line rows of one CU (about 0.1 s to decode
  the CU of fs/read_write.c; the rows are then reused for every address
  check and every ``fn@file:N`` of that CU);
- ``labels``, ``callees``: per function (symbol@cu);
- ``scope``: the variables visible at one PC with their locations there.
"""
from __future__ import annotations

import bisect
import fnmatch
import struct
from typing import Any, Optional

from elftools.dwarf.die import DIE

from .dwarf_locations import location_at, cu_base_address, expr_at_pc, summarize_expr
from .dwarf_open import open_dwarf
from .dwarf_types import die_name, origin_chain, type_die_via_origin, type_info
from .facts_cache import MISSING

_STMT, _END = 1, 2


# --------------------------------------------------------------------------
# Line tables

def decode_line_table(dw, cu_offset: int) -> dict[str, Any]:  # type: ignore[no-untyped-def]
    """{"files": [path|None], "rows": [[addr, file, line, flags], ...]}, rows
    in the line program's order (sequences sorted by address by the
    assembler); flags: 1 is_stmt, 2 end_sequence."""
    from .functions import _cu_file_table
    cu = dw.get_CU_at(cu_offset)
    lp = dw.line_program_for_CU(cu)
    files = _cu_file_table(cu)
    rows: list[list[int]] = []
    if lp is not None:
        for ent in lp.get_entries():
            st = ent.state
            if st is None:
                continue
            rows.append([st.address, st.file, st.line,
                         (_STMT if st.is_stmt else 0) | (_END if st.end_sequence else 0)])
    return {"files": files, "rows": rows}


class LineTable:
    """Queries over one CU's decoded rows."""

    def __init__(self, d: dict[str, Any]) -> None:
        self.files: list[Optional[str]] = d["files"]
        self.rows: list[list[int]] = d["rows"]
        self._starts: Optional[list[int]] = None

    def row_starts(self) -> list[int]:
        """Sorted addresses at which a (non end-of-sequence) row starts."""
        if self._starts is None:
            self._starts = sorted({r[0] for r in self.rows if not r[3] & _END})
        return self._starts

    def is_row_start(self, addr: int) -> bool:
        s = self.row_starts()
        i = bisect.bisect_left(s, addr)
        return i < len(s) and s[i] == addr

    def nearest(self, addr: int, lo: int, hi: int) -> tuple[Optional[int], Optional[int]]:
        """The row starts just below and just above addr within [lo, hi)."""
        s = self.row_starts()
        i = bisect.bisect_left(s, addr)
        below = s[i - 1] if i > 0 and s[i - 1] >= lo else None
        j = i + 1 if i < len(s) and s[i] == addr else i
        above = s[j] if j < len(s) and s[j] < hi else None
        return below, above

    def file_of(self, index: int) -> Optional[str]:
        return self.files[index] if 0 <= index < len(self.files) else None

    def line_at(self, addr: int) -> tuple[Optional[str], Optional[int]]:
        """(file, line) of the row that covers addr (the last row at or below
        it in its sequence)."""
        best = None
        for r in self.rows:
            if r[3] & _END:
                if best is not None and best[0] <= addr < r[0]:
                    return self.file_of(best[1]), best[2]
                best = None
                continue
            if r[0] <= addr:
                if best is None or r[0] >= best[0]:
                    best = r
            elif best is not None and best[0] <= addr:
                return self.file_of(best[1]), best[2]
        return None, None

    def function_lines(self, lo: int, hi: int, file: Optional[str]) -> dict[int, int]:
        """line -> lowest address of an is_stmt row of that line inside
        [lo, hi), counting only rows of `file` (the function's own source
        file, not the headers inlined into it)."""
        want = {i for i, f in enumerate(self.files) if f is not None and f == file}
        out: dict[int, int] = {}
        for a, fi, ln, fl in self.rows:
            if fl & _END or not (fl & _STMT) or not lo <= a < hi or fi not in want or ln <= 0:
                continue
            if ln not in out or a < out[ln]:
                out[ln] = a
        return out


def line_table(facts, cu_offset: int) -> LineTable:  # type: ignore[no-untyped-def]
    key = str(cu_offset)
    hit = facts.cache.get("lines", key)
    if hit is MISSING or not isinstance(hit, dict):
        hit = decode_line_table(open_dwarf(facts.vmlinux), cu_offset)
        facts.cache.put("lines", key, hit)
    return LineTable(hit)


def near_lines(lines: dict[int, int], want: int) -> tuple[Optional[int], Optional[int]]:
    """The lines with records just below and above `want` (stap's "try")."""
    ks = sorted(lines)
    i = bisect.bisect_left(ks, want)
    return (ks[i - 1] if i > 0 else None), (ks[i] if i < len(ks) else None)


# --------------------------------------------------------------------------
# The function's DIE subtree: labels, call sites, scopes

def _function_die(facts, info: dict) -> Optional[DIE]:  # type: ignore[no-untyped-def]
    if info.get("cu_offset") is None or info.get("die_offset") is None:
        return None
    dw = open_dwarf(facts.vmlinux)
    cu = dw.get_CU_at(info["cu_offset"])
    return cu.get_DIE_from_refaddr(info["die_offset"])


def _name_via_origin(die: DIE) -> Optional[str]:
    for d in origin_chain(die):
        n = die_name(d)
        if n:
            return n
    return None


def _attr_via_origin_int(die: DIE, attr: str) -> Optional[int]:
    for d in origin_chain(die):
        a = d.attributes.get(attr)
        if a is not None and isinstance(a.value, int):
            return a.value
    return None


def _walk(die: DIE, into_inlines: bool = True):  # type: ignore[no-untyped-def]
    for ch in die.iter_children():
        yield ch
        if ch.tag in ("DW_TAG_lexical_block",) or \
                (into_inlines and ch.tag == "DW_TAG_inlined_subroutine"):
            yield from _walk(ch, into_inlines)


def _low_pc(die: DIE) -> Optional[int]:
    a = die.attributes.get("DW_AT_low_pc")
    if a is None:
        return None
    if a.form in ("DW_FORM_addrx", "DW_FORM_addrx1", "DW_FORM_addrx2", "DW_FORM_addrx3",
                  "DW_FORM_addrx4", "DW_FORM_GNU_addr_index"):
        return die.cu.dwarfinfo.get_addr(die.cu, a.value)
    return a.value


def _ranges(die: DIE) -> list[tuple[int, int]]:
    lo = _low_pc(die)
    if lo is not None:
        hi = die.attributes.get("DW_AT_high_pc")
        if hi is None:
            return [(lo, lo + 1)]
        h = hi.value if hi.form == "DW_FORM_addr" else lo + hi.value
        return [(lo, h)]
    if "DW_AT_ranges" in die.attributes:
        from .functions import _die_ranges
        return _die_ranges(die.cu, die)
    return []


def function_labels(facts, info: dict) -> list[dict]:  # type: ignore[no-untyped-def]
    """The C labels of a function that have code: [{name, addr, line}]
    (labels of functions inlined into it are not its own)."""
    key = f"{info.get('symbol') or info['name']}@{info.get('cu_offset')}"
    hit = facts.cache.get("labels", key)
    if hit is not MISSING and isinstance(hit, list):
        return hit
    out: list[dict] = []
    die = _function_die(facts, info)
    if die is not None:
        for d in _walk(die, into_inlines=False):
            if d.tag != "DW_TAG_label":
                continue
            pc = _low_pc(d)
            name = _name_via_origin(d)
            if pc is None or not name:
                continue
            out.append({"name": name, "addr": pc,
                        "line": _attr_via_origin_int(d, "DW_AT_decl_line")})
    out.sort(key=lambda x: (x["addr"], x["name"]))
    facts.cache.put("labels", key, out)
    return out


def function_callees(facts, info: dict) -> list[str]:  # type: ignore[no-untyped-def]
    """Names of the functions a function calls directly, from its
    DW_TAG_call_site entries (DW_AT_call_origin), including calls made by
    code inlined into it.  Indirect calls have no origin and are absent."""
    key = f"{info.get('symbol') or info['name']}@{info.get('cu_offset')}"
    hit = facts.cache.get("callees", key)
    if hit is not MISSING and isinstance(hit, list):
        return hit
    names: set[str] = set()
    die = _function_die(facts, info)
    if die is not None:
        for d in _walk(die):
            if d.tag not in ("DW_TAG_call_site", "DW_TAG_GNU_call_site"):
                continue
            for attr in ("DW_AT_call_origin", "DW_AT_abstract_origin"):
                if attr in d.attributes:
                    try:
                        target = d.get_DIE_from_attribute(attr)
                    except Exception:   # noqa: BLE001 - a bad reference: skip the site
                        break
                    n = _name_via_origin(target)
                    if n:
                        names.add(n)
                    break
    out = sorted(names)
    facts.cache.put("callees", key, out)
    return out


# --------------------------------------------------------------------------
# The CFA at a PC, from .debug_frame

def _fde_offsets(dw) -> list[tuple[int, int, int]]:  # type: ignore[no-untyped-def]
    """Sorted (initial_location, range, entry offset) of every FDE, from the
    entry headers alone (struct, no pyelftools parse)."""
    cached = getattr(dw, "_stapbuild_fdes", None)
    if cached is not None:
        return cached
    sec = dw.debug_frame_sec
    out: list[tuple[int, int, int]] = []
    if sec is not None:
        data = sec.stream.getvalue()
        pos, n = 0, len(data)
        while pos + 4 <= n:
            ln, = struct.unpack_from("<I", data, pos)
            if ln == 0:
                pos += 4
                continue
            if ln == 0xFFFFFFFF:
                ln, = struct.unpack_from("<Q", data, pos + 4)
                cie, = struct.unpack_from("<Q", data, pos + 12)
                body, end, is_cie = pos + 20, pos + 12 + ln, cie == 0xFFFFFFFFFFFFFFFF
            else:
                cie, = struct.unpack_from("<I", data, pos + 4)
                body, end, is_cie = pos + 8, pos + 4 + ln, cie == 0xFFFFFFFF
            if not is_cie and body + 16 <= n:
                loc, rng = struct.unpack_from("<QQ", data, body)
                out.append((loc, rng, pos))
            pos = end
    out.sort()
    dw._stapbuild_fdes = out
    return out


def cfa_at(facts, pc: int) -> Optional[tuple[str, int]]:  # type: ignore[no-untyped-def]
    """(register, offset) with CFA = register + offset at pc, or None."""
    from elftools.dwarf.callframe import CallFrameInfo
    from .model import dwarf_reg_name
    dw = open_dwarf(facts.vmlinux)
    fdes = _fde_offsets(dw)
    i = bisect.bisect_right(fdes, (pc, float("inf"), 0)) - 1
    if i < 0 or not fdes[i][0] <= pc < fdes[i][0] + fdes[i][1]:
        return None
    # One function's statements share its FDE: decode it once (~30 ms).
    tables = getattr(dw, "_stapbuild_cfa_tables", None)
    if tables is None:
        tables = dw._stapbuild_cfa_tables = {}
    table = tables.get(fdes[i][2])
    if table is None:
        sec = dw.debug_frame_sec
        cfi = CallFrameInfo(stream=sec.stream, size=sec.size, address=sec.address,
                            base_structs=dw.structs)
        fde = cfi._parse_entry_at(fdes[i][2])   # private, but pinned pyelftools (0.33)
        table = tables[fdes[i][2]] = fde.get_decoded().table
    rule = None
    for row in table:
        if row["pc"] <= pc:
            rule = row.get("cfa")
        else:
            break
    if rule is None or rule.reg is None or rule.expr is not None:
        return None
    return dwarf_reg_name(rule.reg), rule.offset


# --------------------------------------------------------------------------
# Variables in scope at a PC

def _stack_location(loc: dict, frame_base: Optional[dict], cfa) -> dict:  # type: ignore[no-untyped-def]
    """Rewrite fbreg/breg(sp|bp) into the bases the translator knows: "cfa"
    is sp + 8 + offset (the CFA at a function's entry), "bpcfa" is
    bp + 16 + offset."""
    def from_reg(reg: str, off: int) -> Optional[dict]:
        if reg == "sp":
            return {"kind": "fbreg", "frame_base": "cfa", "offset": off - 8}
        if reg == "bp":
            return {"kind": "bpcfa", "offset": off - 16}
        return None
    if loc["kind"] == "breg":
        got = from_reg(loc["reg"], loc["offset"])
        return got or loc
    if loc["kind"] == "fbreg":
        if frame_base is not None and frame_base["kind"] == "cfa" and cfa is not None:
            got = from_reg(cfa[0], cfa[1] + loc["offset"])
            return got or {"kind": "unknown"}
        if frame_base is not None and frame_base["kind"] == "breg":
            got = from_reg(frame_base["reg"], frame_base["offset"] + loc["offset"])
            return got or {"kind": "unknown"}
        return {"kind": "unknown"}      # no frame base (or no CFA rule) at the PC
    return loc


def scope_at(facts, info: dict, pc: int) -> list[dict]:  # type: ignore[no-untyped-def]
    """The parameters and local variables of a function visible at pc, as
    ParamInfo-shaped dicts whose entry_location is the location *at pc*
    (kind optimized_out when the variable has no location there).  Inner
    scopes shadow outer ones; variables of functions inlined at pc are not
    included (stap shows the inlined function's own at an .inline probe)."""
    key = f"{info.get('symbol') or info['name']}@{info.get('cu_offset')}@{pc:#x}"
    hit = facts.cache.get("scope", key)
    if hit is not MISSING and isinstance(hit, list):
        return hit
    die = _function_die(facts, info)
    if die is None:
        return []
    out = scope_vars(facts, die, die, pc)
    facts.cache.put("scope", key, out)
    return out


def scope_vars(facts, func: DIE, scope: DIE, pc: int) -> list[dict]:  # type: ignore[no-untyped-def]
    """The variables declared in `scope` (a subprogram, or an inlined
    instance inside the concrete function `func`, whose frame base applies)
    and its lexical blocks that cover pc, as scope_at returns them."""
    cu = func.cu
    die = scope
    fb_expr = expr_at_pc(cu, func, "DW_AT_frame_base", pc)
    frame_base = None
    if isinstance(fb_expr, list):
        s = summarize_expr(cu, fb_expr)
        if s["kind"] == "expr" and s["ops"] == [["DW_OP_call_frame_cfa"]]:
            frame_base = {"kind": "cfa"}
        elif s["kind"] in ("breg", "reg"):
            frame_base = {"kind": "breg", "reg": s["reg"], "offset": s.get("offset", 0)}
    cfa_rule: list = []

    def cfa():  # type: ignore[no-untyped-def]
        if not cfa_rule:
            cfa_rule.append(cfa_at(facts, pc))
        return cfa_rule[0]

    seen: dict[str, dict] = {}
    index = 0

    def visit(scope: DIE, depth: int) -> None:
        nonlocal index
        for ch in scope.iter_children():
            if ch.tag in ("DW_TAG_formal_parameter", "DW_TAG_variable"):
                name = _name_via_origin(ch)
                if not name:
                    continue
                index += 1
                loc = _location(cu, ch, pc)
                if loc["kind"] in ("fbreg", "breg"):
                    loc = _stack_location(loc, frame_base,
                                          cfa() if frame_base and frame_base["kind"] == "cfa"
                                          else None)
                t = type_die_via_origin(ch)
                seen[name] = {"name": name, "type": type_info(t).to_json() if t is not None
                              else {"kind": "void", "name": "void", "size": 0},
                              "index": index, "entry_location": {**loc, "pc": pc},
                              "depth": depth}
            elif ch.tag == "DW_TAG_lexical_block":
                if any(lo <= pc < hi for lo, hi in _ranges(ch)):
                    visit(ch, depth + 1)
    visit(die, 0)
    out = sorted(seen.values(), key=lambda v: v["index"])
    for v in out:
        v.pop("depth", None)
    return out


def _location(cu, die: DIE, pc: int) -> dict:  # type: ignore[no-untyped-def]
    """A variable's location at pc; none there is optimised out."""
    return location_at(cu, die, pc, absent="optimized_out")


def match_labels(labels: list[dict], pattern: str) -> list[dict]:
    return [lb for lb in labels if fnmatch.fnmatchcase(lb["name"], pattern)]


__all__ = ["LineTable", "cfa_at", "cu_base_address", "function_callees", "function_labels",
           "line_table", "match_labels", "near_lines", "scope_at"]
