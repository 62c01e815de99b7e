"""Pick the DWARF location valid at one PC and summarise it as small JSON.

pyelftools parses location lists and expressions but evaluates nothing; the
translator needs "where is $arg at the probe address", which for kernel
functions at entry is nearly always one register.  Anything more complex is
kept as an op list ({"kind": "expr"}) for a later loc2c-style translator.
"""

from __future__ import annotations

from typing import Any

from elftools.dwarf.compileunit import CompileUnit
from elftools.dwarf.die import DIE
from elftools.dwarf.dwarf_expr import DWARFExprParser
from elftools.dwarf.locationlists import BaseAddressEntry, LocationEntry, LocationExpr, LocationParser

from .model import dwarf_reg_name

# Per-DWARFInfo parser objects (cheap, but avoid rebuilding for every param).
_parsers: dict[int, tuple[LocationParser, DWARFExprParser]] = {}


def _parsers_for(cu: CompileUnit) -> tuple[LocationParser, DWARFExprParser]:
    dw = cu.dwarfinfo
    p = _parsers.get(id(dw))
    if p is None:
        p = (LocationParser(dw.location_lists()), DWARFExprParser(cu.structs))
        _parsers[id(dw)] = p
    return p


def cu_base_address(cu: CompileUnit) -> int:
    top = cu.get_top_DIE()
    a = top.attributes.get("DW_AT_low_pc")
    if a is None:
        return 0
    if a.form in ("DW_FORM_addrx", "DW_FORM_addrx1", "DW_FORM_addrx2", "DW_FORM_addrx3",
                  "DW_FORM_addrx4", "DW_FORM_GNU_addr_index"):
        return cu.dwarfinfo.get_addr(cu, a.value)
    return a.value


def expr_at_pc(cu: CompileUnit, die: DIE, attr_name: str, pc: int) -> list[int] | None | str:
    """The expression bytes valid at pc; None if no attribute; "none" if no entry covers pc."""
    attr = die.attributes.get(attr_name)
    if attr is None:
        return None
    locparser, _ = _parsers_for(cu)
    ver = cu.header.version
    if not LocationParser.attribute_has_location(attr, ver):
        return None
    loc = locparser.parse_from_attribute(attr, ver, die)
    if isinstance(loc, LocationExpr):
        return loc.loc_expr
    # A location list: offset_pair entries are relative to the current base,
    # which starts at the CU's DW_AT_low_pc and moves with base entries.
    base = cu_base_address(cu)
    default: list[int] | str = "none"
    for e in loc:
        if isinstance(e, BaseAddressEntry):
            base = e.base_address
        elif isinstance(e, LocationEntry):
            if e.begin_offset == -1 and e.end_offset == -1:  # DW_LLE_default_location
                default = e.loc_expr
                continue
            lo, hi = (e.begin_offset, e.end_offset) if e.is_absolute else \
                (base + e.begin_offset, base + e.end_offset)
            if lo <= pc < hi:
                return e.loc_expr
    return default


def summarize_expr(cu: CompileUnit, expr: list[int], frame_base: str | None = None) -> dict[str, Any]:
    _, exprparser = _parsers_for(cu)
    ops = exprparser.parse_expr(expr)
    names = [op.op_name for op in ops]
    if len(ops) == 1:
        op = ops[0]
        n = op.op_name
        if n.startswith("DW_OP_reg") and n != "DW_OP_regx" and n != "DW_OP_regval_type":
            return {"kind": "reg", "reg": dwarf_reg_name(int(n[len("DW_OP_reg"):]))}
        if n == "DW_OP_regx":
            return {"kind": "reg", "reg": dwarf_reg_name(op.args[0])}
        if n == "DW_OP_fbreg":
            d: dict[str, Any] = {"kind": "fbreg", "offset": op.args[0]}
            if frame_base:
                d["frame_base"] = frame_base
            return d
        if n.startswith("DW_OP_breg") and n != "DW_OP_bregx":
            return {"kind": "breg", "reg": dwarf_reg_name(int(n[len("DW_OP_breg"):])),
                    "offset": op.args[0]}
        if n == "DW_OP_addr":
            return {"kind": "addr", "addr": op.args[0]}
    if names and names[-1] == "DW_OP_stack_value":
        head = ops[:-1]
        if len(head) == 1:
            n = head[0].op_name
            if n.startswith("DW_OP_lit"):
                return {"kind": "const", "value": int(n[len("DW_OP_lit"):])}
            if n.startswith("DW_OP_const"):
                return {"kind": "const", "value": head[0].args[0]}
            if n in ("DW_OP_entry_value", "DW_OP_GNU_entry_value"):
                inner = head[0].args[0]
                # args[0] is the parsed inner op list.
                if isinstance(inner, list) and len(inner) == 1 and \
                        inner[0].op_name.startswith("DW_OP_reg"):
                    iname = inner[0].op_name
                    reg = dwarf_reg_name(inner[0].args[0] if iname == "DW_OP_regx"
                                         else int(iname[len("DW_OP_reg"):]))
                    return {"kind": "entry_value", "reg": reg}
    return {"kind": "expr", "ops": [[op.op_name, *[_jsonable(a) for a in op.args]] for op in ops]}


def _jsonable(a: object) -> object:
    if isinstance(a, (int, str, float)) or a is None:
        return a
    if isinstance(a, list):
        return [_jsonable(x) if not hasattr(x, "op_name") else [x.op_name, *map(_jsonable, x.args)]
                for x in a]
    if isinstance(a, bytes):
        return a.hex()
    return repr(a)


def frame_base_kind(cu: CompileUnit, func_die: DIE, pc: int) -> str | None:
    expr = expr_at_pc(cu, func_die, "DW_AT_frame_base", pc)
    if not isinstance(expr, list):
        return None
    s = summarize_expr(cu, expr)
    if s["kind"] == "expr" and s["ops"] == [["DW_OP_call_frame_cfa"]]:
        return "cfa"  # at a function's entry on x86-64: CFA = sp + 8
    if s["kind"] == "reg":
        return s["reg"]
    if s["kind"] == "breg":
        return f"{s['reg']}{s['offset']:+d}"
    return None


def location_at(cu: CompileUnit, die: DIE, pc: int, frame_base: str | None = None,
                at_entry: bool = False, absent: str = "unknown") -> dict[str, Any]:
    """Summarised DW_AT_location of a variable/parameter DIE at pc.

    at_entry: pc is the function's entry, where DW_OP_entry_value(reg) is
    simply that register.
    absent: the kind for a location list with no entry at pc, or an empty
    expression (DWARF's "optimised out"); statement probes name it so.
    """
    expr = expr_at_pc(cu, die, "DW_AT_location", pc)
    if expr is None:
        # Constant-valued (optimised to a constant) parameters.
        cv = die.attributes.get("DW_AT_const_value")
        if cv is not None and isinstance(cv.value, int):
            return {"kind": "const", "value": cv.value}
        return {"kind": "optimized_out"}
    if expr == "none" or expr == []:
        return {"kind": absent}
    out = summarize_expr(cu, expr, frame_base)  # type: ignore[arg-type]
    if at_entry and out["kind"] == "entry_value":
        out = {"kind": "reg", "reg": out["reg"], "via": "entry_value"}
    return out
