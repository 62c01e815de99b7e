"""Pass 2 for pretty-printed target variables: `$var$`, `$var$$`,
`$p->member$`, `@cast(p, "type")$` ...

The type is known when the script is elaborated, so the whole layout is
turned here into a flat list of *print ops* (literal text, and reads at
fixed offsets from the object's address); pass 3 (codegen.target_c)
emits one nofault read and one append per op, with no type interpreter
in the module.  The output follows SystemTap's dwarf_pretty_print:

- a struct or union prints as `{.a=0x1, .b=0xffff8880..., .c={...}}`;
  `$` shows nested structs as `{...}` and nested arrays as `[...]`,
  `$$` expands them; anonymous struct/union members appear in place;
- a pointer at the top is followed when it points to a struct/union (so
  `$file$` shows the struct file) and printed as a string when it is a
  char*; any other pointer is its address in hex;
- a char array prints as a quoted string, at the top and under `$$`;
  under `$$` a char* member prints as a quoted string too;
- other arrays print up to 5 elements, then `, ...`;
- integers, enums and pointers print as `0x...`, as `$$vars` prints them,
  so `$$parms` and `$var$` agree; floating point prints as `?`;
- at most 32 values are read (SystemTap's PR10750 limit), then `...`,
  and the string is cut at MAXSTRINGLEN like every string.

Op kinds (offsets are from the object's address `a`):
    {"op": "lit", "text": "{.f_mode="}
    {"op": "load", "off": 8, "size": 4, "signed": false}   -> 0x%llx
    {"op": "bits", "off": 8, "size": 1, "shift": 3, "bits": 2, "signed": false}
    {"op": "str", "off": 16}            a char* at a+off -> "text" (NULL, or
                                        its hex address if it cannot be read)
    {"op": "chars", "off": 24, "len": 16}   an inline char[16] -> "text"
    {"op": "val"}                       the value itself (a register) -> hex
    {"op": "valstr"}                    the value is a char* -> "text"
"""
from __future__ import annotations

from typing import Optional

MAX_VALUES = 32      # SystemTap stops reading after 32 values (PR10750)
MAX_ELEMENTS = 5     # array elements shown before ", ..."


class PrettyError(Exception):
    """A target that cannot be pretty-printed; the message is stap's style."""


def _is_char(t) -> bool:  # type: ignore[no-untyped-def]
    """char, signed char, unsigned char (and typedefs such as u8), as
    SystemTap's print_chars peels typedefs before looking."""
    return t is not None and t.kind == "int" and t.size == 1


class PrettyBuilder:
    """Collects the print ops for one pretty-printed object."""

    def __init__(self, nav, deep: bool) -> None:  # type: ignore[no-untyped-def]
        self.nav = nav
        self.deep = deep
        self.ops: list[dict] = []
        self.values = 0

    # -- ops ----------------------------------------------------------
    def lit(self, text: str) -> None:
        if self.ops and self.ops[-1]["op"] == "lit":
            self.ops[-1]["text"] += text
        else:
            self.ops.append({"op": "lit", "text": text})

    def read(self, op: dict) -> None:
        self.values += 1
        self.ops.append(op)

    def full(self) -> bool:
        return self.values >= MAX_VALUES

    # -- the top-level object -----------------------------------------
    def top_value(self, t) -> None:  # type: ignore[no-untyped-def]
        """The object is a value (held in a register, or a constant) that
        is not followed (anything but a pointer to a struct)."""
        pointee = self._pointee(t) if t.kind == "pointer" else None
        if _is_char(pointee):
            self.read({"op": "valstr"})
        elif t.kind in ("int", "enum", "bool", "pointer"):
            self.read({"op": "val", "fmt": _fmt(t)})
        elif t.kind == "float":
            self.lit("?")
        else:
            raise PrettyError(f"cannot pretty-print a {t.kind} ({t.name}) that is not "
                              "in memory")

    def top_object(self, t, off: int = 0) -> None:  # type: ignore[no-untyped-def]
        """The object of type t is in memory at a+off."""
        t = self.nav.complete(t)
        if t.kind in ("struct", "union"):
            self.aggregate(t, off)
        elif t.kind == "array":
            self.array(t, off)
        elif t.kind == "pointer" and _is_char(self._pointee(t)):
            self.read({"op": "str", "off": off})
        else:
            self.scalar(t, off)

    # -- members ------------------------------------------------------
    def aggregate(self, t, off: int) -> None:  # type: ignore[no-untyped-def]
        members = self.nav.members(t)
        if not members and t.size is None:
            raise PrettyError(f"incomplete type {t.name}: no member layout in the debug info")
        self.lit("{")
        for i, m in enumerate(members):
            sep = ", " if i else ""
            if self.full():
                self.lit(sep + "...")
                break
            self.lit(f"{sep}.{m.name}=")
            if m.bit_size:
                self.bitfield(m, off)
            else:
                self.member(m.type, off + m.offset)
        self.lit("}")

    def member(self, t, off: int) -> None:  # type: ignore[no-untyped-def]
        """A member (or array element) below the top: one level unless deep."""
        t = self.nav.complete(t)
        if t.kind in ("struct", "union"):
            if self.deep:
                self.aggregate(t, off)
            else:
                self.lit("{...}")
        elif t.kind == "array":
            if self.deep:
                self.array(t, off)
            else:
                self.lit("[...]")
        elif t.kind == "pointer" and self.deep and _is_char(self._pointee(t)):
            self.read({"op": "str", "off": off})
        else:
            self.scalar(t, off)

    def array(self, t, off: int) -> None:  # type: ignore[no-untyped-def]
        elem = self._pointee(t)
        count = t.count or 0
        if _is_char(elem) and count:
            self.read({"op": "chars", "off": off, "len": count})
            return
        if elem is None or not elem.size:
            self.lit("[...]")
            return
        self.lit("[")
        shown = 0
        while shown < min(count, MAX_ELEMENTS) and not self.full():
            if shown:
                self.lit(", ")
            self.member(elem, off + shown * elem.size)
            shown += 1
        if shown < count or not count:
            self.lit(", ..." if shown else "...")
        self.lit("]")

    def scalar(self, t, off: int) -> None:  # type: ignore[no-untyped-def]
        if t.kind == "float" or t.kind == "void" or t.kind == "func":
            self.lit("?")
            return
        size = t.size or 8
        if size not in (1, 2, 4, 8):
            self.lit("?")
            return
        signed = bool(t.signed) if t.kind in ("int", "enum") else False
        self.read({"op": "load", "off": off, "size": size, "signed": signed, "fmt": _fmt(t)})

    def bitfield(self, m, off: int) -> None:  # type: ignore[no-untyped-def]
        start = off * 8 + m.bit_offset
        shift = start % 8
        nbytes = (shift + m.bit_size + 7) // 8
        signed = bool(m.type.signed) if m.type.kind in ("int", "enum") else False
        self.read({"op": "bits", "off": start // 8, "size": nbytes, "shift": shift,
                   "bits": m.bit_size, "signed": signed, "fmt": "d" if signed else "u"})

    def _pointee(self, t):  # type: ignore[no-untyped-def]
        got = self.nav.pointee(t)
        return self.nav.complete(got) if got is not None else None


def _fmt(t) -> str:  # type: ignore[no-untyped-def]
    """How a scalar prints, as SystemTap's pretty-printer does
    (`.f_flags=32768, .f_inode=0x0`): integers, enums and bools in decimal,
    pointers (and anything else) in hex."""
    if t.kind in ("int", "enum", "bool"):
        return "d" if t.signed else "u"
    return "x"


def pretty_program(nav, t, state: str, steps: list[dict], bits: Optional[tuple[int, int]],
                   pretty: str) -> dict:  # type: ignore[no-untyped-def]
    """The steps, final read and ops of a pretty-printed target whose chain
    (codegen.targets.walk_steps) reached an object of type t: its address
    when state is "loc", its value when "val"; bits = (shift, width) for a
    bitfield member.

    A pointer to a struct/union at the top is followed first, as in
    SystemTap (`$file$` prints the struct file, not its address)."""
    b = PrettyBuilder(nav, deep=pretty == "$$")
    steps = list(steps)
    if bits is not None and state == "loc":
        shift, width = bits
        b.read({"op": "bits", "off": 0, "size": (shift + width + 7) // 8, "shift": shift,
                "bits": width, "signed": bool(t.signed) if t.kind in ("int", "enum")
                else False})
        return {"steps": steps, "final": {"kind": "addr"}, "ops": b.ops, "type": t.name}
    if t.kind == "pointer":
        pointee = b._pointee(t)
        if pointee is not None and pointee.kind in ("struct", "union"):
            if state == "val":
                state = "loc"
            else:
                steps.append({"op": "deref"})
            t = pointee
    if state == "val":
        b.top_value(t)
        size = t.size if t.size in (1, 2, 4, 8) else 8
        final = {"kind": "value", "size": size,
                 "signed": bool(t.signed) if t.kind in ("int", "enum") else False}
    else:
        b.top_object(t)
        final = {"kind": "addr"}
    return {"steps": steps, "final": final, "ops": b.ops, "type": t.name}
