"""SystemTap printf formats: argument types (pass 2) and C formats (pass 3).

A SystemTap directive is ``%[flags][width|*][.prec|.*][l|ll|h|hh]conv``.
Integer conversions take a 64-bit long, so for the kernel's vsnprintf we
rewrite them with an ``ll`` length; ``%p`` prints ``0x`` and hex digits like
stap does (the kernel's own %p would hash the value).
"""
from __future__ import annotations

import re
from dataclasses import dataclass

_DIRECTIVE = re.compile(
    r"%(?P<flags>[-+ #0]*)(?P<width>\*|\d+)?(?:\.(?P<prec>\*|\d+))?"
    r"(?P<len>hh|h|ll|l|z|j|t)?(?P<conv>.)", re.S)

LONG_CONVS = set("diouxXcp")
STRING_CONVS = set("s")


@dataclass
class Piece:
    text: str           # literal text (conv == "") or the directive text
    conv: str = ""
    flags: str = ""
    width: str = ""
    prec: str = ""


def split_format(fmt: str) -> list[Piece]:
    pieces: list[Piece] = []
    pos = 0
    while True:
        i = fmt.find("%", pos)
        if i < 0:
            if pos < len(fmt):
                pieces.append(Piece(fmt[pos:]))
            return pieces
        if i > pos:
            pieces.append(Piece(fmt[pos:i]))
        m = _DIRECTIVE.match(fmt, i)
        if m is None:
            raise ValueError("incomplete format directive at end of string")
        conv = m.group("conv")
        if conv == "%":
            pieces.append(Piece("%"))
        elif conv in LONG_CONVS or conv in STRING_CONVS:
            pieces.append(Piece(m.group(0), conv, m.group("flags"),
                                m.group("width") or "", m.group("prec") or ""))
        else:
            raise ValueError(f"unsupported conversion '%{conv}'")
        pos = m.end()


def parse_format(fmt: str) -> list[str]:
    """The types ("long"/"string") of the arguments a format consumes."""
    types: list[str] = []
    for p in split_format(fmt):
        if not p.conv:
            continue
        if p.width == "*":
            types.append("long")
        if p.prec == "*":
            types.append("long")
        types.append("string" if p.conv in STRING_CONVS else "long")
    return types


def c_escape(text: str) -> str:
    """A C string literal body for text."""
    out = []
    for ch in text:
        o = ord(ch)
        if ch == "\\":
            out.append("\\\\")
        elif ch == '"':
            out.append('\\"')
        elif ch == "\n":
            out.append("\\n")
        elif ch == "\t":
            out.append("\\t")
        elif ch == "\r":
            out.append("\\r")
        elif 32 <= o < 127:
            out.append(ch)
        else:
            for b in ch.encode("utf-8", "surrogateescape") if o > 255 else bytes([o]):
                out.append(f"\\{b:03o}")
    return "".join(out)


def to_kernel_format(fmt: str) -> tuple[str, list[str]]:
    """(kernel vsnprintf format as a C literal body, how each arg is passed).

    The second list says, per argument: "int" (a * width/precision or %c),
    "ll" (a 64-bit integer) or "str".
    """
    out: list[str] = []
    kinds: list[str] = []
    for p in split_format(fmt):
        if not p.conv:
            out.append(c_escape(p.text).replace("%", "%%"))
            continue
        if p.width == "*":
            kinds.append("int")
        if p.prec == "*":
            kinds.append("int")
        spec = "%" + p.flags + p.width + ("." + p.prec if p.prec else "")
        if p.conv in "di":
            out.append(spec + "lld")
            kinds.append("ll")
        elif p.conv in "ouxX":
            out.append(spec + "ll" + p.conv)
            kinds.append("ll")
        elif p.conv == "p":
            out.append("0x" + "%" + p.flags.replace("#", "") + p.width + "llx")
            kinds.append("ll")
        elif p.conv == "c":
            out.append(spec + "c")
            kinds.append("int")
        else:
            out.append(spec + "s")
            kinds.append("str")
    return "".join(out), kinds
