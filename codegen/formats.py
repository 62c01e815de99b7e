"""SystemTap printf formats: argument types (pass 2) and C formats (pass 3).

A directive is parsed the way SystemTap's ``print_format::string_to_components``
parses it, quirks included:

    %[flag][width|*][.prec|.*][l]conv

- at most *one* flag character (``-``, ``+``, space, ``#`` or ``0``); digits
  after it are the width, so ``%-05d`` is left-aligned with width 5 and
  ``%-+5d`` is an error;
- at most one ``l`` length modifier, which means nothing;
- conversions ``d i u o x X p c s b m M``; ``%%`` and a lone ``%`` at the
  very end are a literal percent sign.

The runtime's formatter (runtime_c/stp_format.h) prints each directive
exactly as SystemTap's does; pass 3 gives it the canonical form SystemTap's
``components_to_string`` produces (``ll`` on integers, a zero width or
precision dropped) and passes integers as ``long long``.
"""
from __future__ import annotations

from dataclasses import dataclass

LONG_CONVS = set("diouxXpcbmM")
STRING_CONVS = set("s")
_FLAGS = "-+ #0"


@dataclass
class Piece:
    text: str           # literal text (conv == "") or the directive text
    conv: str = ""
    flags: str = ""
    width: str = ""     # "", digits or "*"
    prec: str = ""      # "", digits or "*"


class FormatError(ValueError):
    pass


def split_format(fmt: str) -> list[Piece]:
    pieces: list[Piece] = []
    literal: list[str] = []
    i, n = 0, len(fmt)

    def flush() -> None:
        if literal:
            pieces.append(Piece("".join(literal)))
            literal.clear()

    while i < n:
        ch = fmt[i]
        if ch != "%":
            literal.append(ch)
            i += 1
            continue
        if i + 1 == n or fmt[i + 1] == "%":
            literal.append("%")
            i += 2
            continue
        start = i
        i += 1
        flags = width = prec = ""
        if fmt[i] in _FLAGS:
            flags = fmt[i]
            i += 1
        if i < n and fmt[i] == "*":
            width = "*"
            i += 1
        else:
            while i < n and fmt[i].isdigit():
                width += fmt[i]
                i += 1
        if i < n and fmt[i] == ".":
            i += 1
            if i < n and fmt[i] == "*":
                prec = "*"
                i += 1
            else:
                digits = ""
                while i < n and fmt[i].isdigit():
                    digits += fmt[i]
                    i += 1
                prec = digits
        if i < n and fmt[i] == "l":
            i += 1
        if i >= n:
            raise FormatError("trailing incomplete print format conversion")
        conv = fmt[i]
        if conv not in LONG_CONVS and conv not in STRING_CONVS:
            raise FormatError("invalid or missing conversion specifier")
        i += 1
        flush()
        pieces.append(Piece(fmt[start:i], conv, flags, width, prec))
    flush()
    return pieces


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
    prev_octal = False
    for ch in text:
        o = ord(ch)
        esc = None
        if ch == "\\":
            esc = "\\\\"
        elif ch == '"':
            esc = '\\"'
        elif ch == "\n":
            esc = "\\n"
        elif ch == "\t":
            esc = "\\t"
        elif ch == "\r":
            esc = "\\r"
        elif ch == "?":
            esc = "\\?"           # no trigraphs
        elif 32 <= o < 127:
            # A digit right after an octal escape would extend it.
            esc = ch if not (prev_octal and ch in "01234567") else f"\\{o:03o}"
        if esc is not None:
            out.append(esc)
            prev_octal = esc.startswith("\\") and esc[1:].isdigit()
            continue
        for b in ch.encode("utf-8", "surrogateescape") if o > 255 else bytes([o]):
            out.append(f"\\{b:03o}")
        prev_octal = True
    return "".join(out)


def directive_text(p: Piece) -> str:
    """SystemTap's canonical form of one directive (components_to_string)."""
    spec = "%" + p.flags
    if p.width == "*":
        spec += "*"
    elif p.width and int(p.width) > 0:
        spec += str(int(p.width))
    if p.prec == "*":
        spec += ".*"
    elif p.prec and int(p.prec) > 0:
        spec += "." + str(int(p.prec))
    if p.conv in "diuoxX":
        return spec + "ll" + p.conv
    if p.conv == "c":
        return spec + "llc"
    return spec + p.conv


def to_runtime_format(fmt: str) -> tuple[str, list[str]]:
    """(C literal body for stp_printf/stp_sprintf, how each arg is passed).

    The list says, per argument: "int" (a * width or precision), "ll" (a
    64-bit integer: every integer conversion, %p, %c, %b, and the address
    of %m/%M) or "str".
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
        out.append(directive_text(p))
        kinds.append("str" if p.conv in STRING_CONVS else "ll")
    return "".join(out), kinds


# Kept for callers of the first slice's API.
to_kernel_format = to_runtime_format
