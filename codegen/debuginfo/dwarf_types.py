"""DWARF type DIE -> TypeInfo (C spelling kept, qualifiers/typedefs stripped)."""

from __future__ import annotations

from elftools.dwarf.die import DIE

from .model import VOID, TypeInfo

_QUALIFIERS = {"DW_TAG_const_type", "DW_TAG_volatile_type", "DW_TAG_restrict_type",
               "DW_TAG_atomic_type", "DW_TAG_immutable_type"}
# DW_ATE_* encodings
_SIGNED_ENC = {5, 6, 0xD}          # signed, signed_char, signed_fixed
_FLOAT_ENC = {3, 4, 9}             # complex_float, float, decimal_float
_BOOL_ENC = {2}

# Pointer targets are described only this deep: enough for `char**`,
# and it bounds work for self-referential function-pointer types.
_MAX_DEPTH = 6


def die_name(die: DIE) -> str | None:
    a = die.attributes.get("DW_AT_name")
    if a is None:
        return None
    v = a.value
    return v.decode("utf-8", "replace") if isinstance(v, bytes) else str(v)


def ref(die: DIE, attr: str) -> DIE | None:
    if attr not in die.attributes:
        return None
    return die.get_DIE_from_attribute(attr)


def origin_chain(die: DIE) -> list[DIE]:
    """die, then its abstract_origin/specification ancestors (names/types live there)."""
    out = [die]
    seen = {die.offset}
    cur = die
    while True:
        nxt = ref(cur, "DW_AT_abstract_origin") or ref(cur, "DW_AT_specification")
        if nxt is None or nxt.offset in seen:
            return out
        out.append(nxt)
        seen.add(nxt.offset)
        cur = nxt


def attr_via_origin(die: DIE, attr: str) -> object | None:
    for d in origin_chain(die):
        a = d.attributes.get(attr)
        if a is not None:
            return a.value
    return None


def type_die_via_origin(die: DIE) -> DIE | None:
    for d in origin_chain(die):
        if "DW_AT_type" in d.attributes:
            return d.get_DIE_from_attribute("DW_AT_type")
    return None


def _array_count(die: DIE) -> int | None:
    for ch in die.iter_children():
        if ch.tag == "DW_TAG_subrange_type":
            if "DW_AT_count" in ch.attributes:
                v = ch.attributes["DW_AT_count"].value
                return v if isinstance(v, int) else None
            if "DW_AT_upper_bound" in ch.attributes:
                v = ch.attributes["DW_AT_upper_bound"].value
                return v + 1 if isinstance(v, int) else None
            return None  # flexible array member: `char name[]`
    return None


def _strip(die: DIE | None) -> DIE | None:
    while die is not None and (die.tag in _QUALIFIERS or die.tag == "DW_TAG_typedef"):
        die = ref(die, "DW_AT_type")
    return die


def _spelling(die: DIE | None, depth: int = 0) -> str:
    """C spelling with cv-qualifiers dropped: "struct file*", "loff_t*", "char[16]"."""
    if die is None:
        return "void"
    if depth > _MAX_DEPTH:
        return "..."
    tag = die.tag
    if tag in _QUALIFIERS:
        return _spelling(ref(die, "DW_AT_type"), depth + 1)
    if tag in ("DW_TAG_typedef", "DW_TAG_base_type"):
        return die_name(die) or "?"
    if tag in ("DW_TAG_structure_type", "DW_TAG_union_type", "DW_TAG_enumeration_type",
               "DW_TAG_class_type"):
        kw = {"DW_TAG_structure_type": "struct", "DW_TAG_union_type": "union",
              "DW_TAG_enumeration_type": "enum", "DW_TAG_class_type": "class"}[tag]
        return f"{kw} {die_name(die) or '{...}'}"
    if tag == "DW_TAG_pointer_type":
        tgt = _strip_cv(ref(die, "DW_AT_type"))
        if tgt is not None and tgt.tag == "DW_TAG_subroutine_type":
            return _func_spelling(tgt, "(*)", depth + 1)
        if tgt is not None and tgt.tag == "DW_TAG_array_type":
            return _spelling(ref(tgt, "DW_AT_type"), depth + 1) + f"(*)[{_array_count(tgt) or ''}]"
        return _spelling(tgt, depth + 1) + "*"
    if tag == "DW_TAG_array_type":
        n = _array_count(die)
        return _spelling(ref(die, "DW_AT_type"), depth + 1) + f"[{'' if n is None else n}]"
    if tag == "DW_TAG_subroutine_type":
        return _func_spelling(die, "", depth + 1)
    if tag == "DW_TAG_unspecified_type":
        return die_name(die) or "void"
    return die_name(die) or tag.replace("DW_TAG_", "")


def _strip_cv(die: DIE | None) -> DIE | None:
    while die is not None and die.tag in _QUALIFIERS:
        die = ref(die, "DW_AT_type")
    return die


def _func_spelling(die: DIE, mid: str, depth: int) -> str:
    args = []
    for ch in die.iter_children():
        if ch.tag == "DW_TAG_formal_parameter":
            args.append(_spelling(ref(ch, "DW_AT_type"), depth))
        elif ch.tag == "DW_TAG_unspecified_parameters":
            args.append("...")
    return f"{_spelling(ref(die, 'DW_AT_type'), depth)} {mid}({', '.join(args)})".replace(" (", "(")


def type_info(die: DIE | None, depth: int = 0) -> TypeInfo:
    """TypeInfo for a type DIE (None = void)."""
    if die is None:
        return VOID
    name = _spelling(die)
    base = _strip(die)
    if base is None:
        return TypeInfo("void", name, 0)
    t = _type_info(base, name, depth)
    t.ref = f"d:{base.cu.cu_offset}:{base.offset}"
    return t


def _type_info(base: DIE, name: str, depth: int) -> TypeInfo:
    tag = base.tag
    size = base.attributes["DW_AT_byte_size"].value if "DW_AT_byte_size" in base.attributes else None
    if tag == "DW_TAG_base_type":
        enc = base.attributes["DW_AT_encoding"].value if "DW_AT_encoding" in base.attributes else 0
        kind = "float" if enc in _FLOAT_ENC else "bool" if enc in _BOOL_ENC else "int"
        signed = enc in _SIGNED_ENC if kind == "int" else None
        return TypeInfo(kind, name, size, signed)
    if tag == "DW_TAG_pointer_type":
        tgt = ref(base, "DW_AT_type")
        target = type_info(tgt, depth + 1) if depth < _MAX_DEPTH else None
        return TypeInfo("pointer", name, size or 8, False, target)
    if tag in ("DW_TAG_structure_type", "DW_TAG_class_type"):
        return TypeInfo("struct", name, size)
    if tag == "DW_TAG_union_type":
        return TypeInfo("union", name, size)
    if tag == "DW_TAG_enumeration_type":
        under = _strip(ref(base, "DW_AT_type"))
        signed = None
        if under is not None and "DW_AT_encoding" in under.attributes:
            signed = under.attributes["DW_AT_encoding"].value in _SIGNED_ENC
        return TypeInfo("enum", name, size, signed)
    if tag == "DW_TAG_array_type":
        elem = type_info(ref(base, "DW_AT_type"), depth + 1) if depth < _MAX_DEPTH else None
        n = _array_count(base)
        total = elem.size * n if (elem is not None and elem.size is not None and n is not None) else None
        return TypeInfo("array", name, total, None, elem, n)
    if tag == "DW_TAG_subroutine_type":
        return TypeInfo("func", name, None)
    return TypeInfo("void", name, size)
