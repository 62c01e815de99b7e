"""Pass 1, stage 1: SystemTap source text -> tokens.

Behaviour follows stap's lexer (reference §1.1): three comment styles,
C-style numbers (strtoull base 0), escaped strings decoded to Python text,
longest-match operators, ``%{ ... %}`` embedded code, and command-line
argument splicing (``$N`` raw, ``@N`` quoted, ``$#``/``@#`` the count).

Lexical problems never raise here: they become tokens carrying an ``error``
message (junk, bad numbers) so that the parser reports them at the point of
use, and so that tokens inside skipped ``%( %)`` branches cost nothing.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Optional, Union

from codegen.ast import Loc

KEYWORDS = frozenset(
    "probe global function if else for foreach in limit return delete while "
    "break continue next string long try catch private".split())

# Longest match first; ">>>" lexes (and later parses) as a shift operator.
OPERATORS3 = frozenset(("<<<", ">>>", "<<=", ">>="))
OPERATORS2 = frozenset(
    "== != <= >= =~ !~ += -= *= /= %= &= ^= |= .= && || ++ -- -> << >> "
    "%( %? %: %)".split())

# C isspace(): no Unicode whitespace.
_WS_CHARS = " \t\n\r\f\v"
_WS = re.compile(r"[ \t\n\r\f\v]+")
_IDENT = re.compile(r"[A-Za-z_$@][A-Za-z0-9_$]*")
_NUMBER = re.compile(r"[0-9][A-Za-z0-9]*")        # alnum run, no '_'
_DIGITS = re.compile(r"[0-9]+")

_SIMPLE_ESCAPES = {"a": "\a", "b": "\b", "t": "\t", "n": "\n", "v": "\v",
                   "f": "\f", "r": "\r", "\\": "\\", '"': '"'}

BAD_NUMBER = "number invalid or out of range"
NO_CLOSING_QUOTE = "Could not find matching closing quote"
NO_CLOSING_EMBED = "Could not find matching '%}' to close embedded function block"
NESTED_ARGS = "invalid nested substitution of command line arguments"

INT64_MAX = 2**63 - 1
UINT64_MAX = 2**64 - 1


@dataclass(slots=True)
class Token:
    kind: str          # identifier operator string number embedded keyword junk eof
    text: str          # spelling; for strings the raw (escaped) body, for embedded the C code
    loc: Loc
    value: Union[int, str, None] = None   # number value / decoded string
    spaced: bool = True   # whitespace or a comment precedes it (probe-point names glue otherwise)
    error: Optional[str] = None           # lexical problem, reported when the parser meets it

    def is_op(self, text: str) -> bool:
        return self.kind == "operator" and self.text == text

    def is_kw(self, text: str) -> bool:
        return self.kind == "keyword" and self.text == text

    def describe(self) -> str:
        """The token as stap names it in 'at:' lines of parse errors."""
        if self.kind == "string":
            return f'string "{self.text}"'
        if self.kind == "embedded":
            return "embedded-code"
        if self.kind == "junk":
            return "junk"
        if self.kind == "eof":
            return "EOF"
        return f"{self.kind} '{self.text}'"


def parse_c_number(text: str) -> Optional[int]:
    """strtoull(text, 0) that must consume all of text; int64-wrapped, None if bad."""
    low = text.lower()
    if low.startswith("0x"):
        digits, base = text[2:], 16
    elif low.startswith("0") and len(text) > 1:
        digits, base = text[1:], 8
    else:
        digits, base = text, 10
    if not digits or not all(c.isalnum() for c in digits):
        return None
    try:
        value = int(digits, base)
    except ValueError:
        return None
    if value > UINT64_MAX:
        return None
    # stap keeps the 64-bit pattern: 0xffffffffffffffff is -1.
    return value - 2**64 if value > INT64_MAX else value


def decode_string(raw: str) -> str:
    """Resolve C escapes of a string body; unknown '\\c' yields plain 'c'."""
    if "\\" not in raw:
        return raw
    out: list[str] = []
    i, n = 0, len(raw)
    while i < n:
        ch = raw[i]
        if ch != "\\" or i + 1 >= n:
            out.append(ch)
            i += 1
            continue
        esc = raw[i + 1]
        if esc in _SIMPLE_ESCAPES:
            out.append(_SIMPLE_ESCAPES[esc])
            i += 2
        elif esc in "01234567":
            j = i + 1
            while j < n and j < i + 4 and raw[j] in "01234567":
                j += 1
            out.append(chr(int(raw[i + 1:j], 8) & 0xFF))
            i = j
        elif esc == "x":
            j = i + 2
            while j < n and j < i + 4 and raw[j] in "0123456789abcdefABCDEF":
                j += 1
            out.append(chr(int(raw[i + 2:j], 16)) if j > i + 2 else "x")
            i = j
        else:
            out.append(esc)
            i += 2
    return "".join(out)


def quote_string(value: str) -> str:
    """Inverse of decode_string: the body of a literal that decodes to value."""
    out: list[str] = []
    rev = {v: k for k, v in _SIMPLE_ESCAPES.items()}
    for ch in value:
        if ch in rev:
            out.append("\\" + rev[ch])
        elif ord(ch) < 0x20 or ord(ch) == 0x7F:
            out.append(f"\\{ord(ch):03o}")
        else:
            out.append(ch)
    return "".join(out)


class Lexer:
    """Scans one source text. ``nested`` marks text pasted from a $N argument."""

    def __init__(self, text: str, file: str, args: Optional[list[str]] = None,
                 nested_loc: Optional[Loc] = None) -> None:
        self.src = text
        self.file = file
        self.args = list(args or [])
        self.pos = 0
        self.line = 1
        self.line_start = 0
        # Tokens re-lexed from a $N splice all sit at the $N location, as in stap.
        self.nested_loc = nested_loc

    # ------------------------------------------------------------ helpers
    def _advance_to(self, end: int) -> None:
        """Move to end, keeping line/column bookkeeping across newlines."""
        nl = self.src.count("\n", self.pos, end)
        if nl:
            self.line += nl
            self.line_start = self.src.rfind("\n", self.pos, end) + 1
        self.pos = end

    def _loc(self) -> Loc:
        if self.nested_loc is not None:
            return self.nested_loc
        return Loc(self.file, self.line, self.pos - self.line_start + 1)

    def _skip_space_and_comments(self) -> bool:
        src, n = self.src, len(self.src)
        skipped = False
        while self.pos < n:
            c = src[self.pos]
            if c in _WS_CHARS:
                m = _WS.match(src, self.pos)
                assert m is not None
                self._advance_to(m.end())
            elif c == "#" or src.startswith("//", self.pos):
                end = src.find("\n", self.pos)
                self._advance_to(n if end < 0 else end)
            elif src.startswith("/*", self.pos):
                end = src.find("*/", self.pos + 2)
                self._advance_to(n if end < 0 else end + 2)
            else:
                break
            skipped = True
        return skipped

    # ------------------------------------------------------------ scanning
    def tokens(self) -> list[Token]:
        out: list[Token] = []
        src, n = self.src, len(self.src)
        while True:
            spaced = self._skip_space_and_comments() or not out
            if self.pos >= n:
                out.append(Token("eof", "", self._loc(), spaced=True))
                return out
            loc = self._loc()
            start = self.pos
            c = src[start]
            c2 = src[start + 1] if start + 1 < n else ""
            if c in "$@" and (c2 == "#" or "0" <= c2 <= "9"):
                out.extend(self._splice(c, c2, loc, spaced))
                continue
            if (c.isascii() and c.isalpha()) or c in "_$@":
                m = _IDENT.match(src, start)
                assert m is not None
                text = m.group()
                self._advance_to(m.end())
                if c == "@":
                    kind = "operator"       # @cast, @define, macro invocations
                elif text in KEYWORDS:
                    kind = "keyword"
                else:
                    kind = "identifier"
                out.append(Token(kind, text, loc, spaced=spaced))
            elif "0" <= c <= "9":
                m = _NUMBER.match(src, start)
                assert m is not None
                text = m.group()
                self._advance_to(m.end())
                value = parse_c_number(text)
                out.append(Token("number", text, loc, value, spaced,
                                 None if value is not None else BAD_NUMBER))
            elif c == '"':
                out.append(self._string(loc, spaced))
            elif c == "%" and c2 == "{":
                out.append(self._embedded(loc, spaced))
            else:
                three, two = src[start:start + 3], src[start:start + 2]
                if three in OPERATORS3:
                    text = three
                elif two in OPERATORS2:
                    text = two
                elif c.isascii() and c.isprintable() and not c.isalnum():
                    text = c
                else:
                    self._advance_to(start + 1)
                    byte = c.encode("utf-8", "replace")[0]
                    out.append(Token("junk", f"\\x{byte:02x}", loc, spaced=spaced))
                    continue
                self._advance_to(start + len(text))
                out.append(Token("operator", text, loc, spaced=spaced))

    def _string(self, loc: Loc, spaced: bool) -> Token:
        src, n = self.src, len(self.src)
        i = self.pos + 1
        while i < n and src[i] not in '"\n':
            i += 2 if src[i] == "\\" and i + 1 < n and src[i + 1] != "\n" else 1
        if i >= n or src[i] == "\n":
            text = src[self.pos:i]
            self._advance_to(i)
            return Token("junk", text, loc, spaced=spaced, error=NO_CLOSING_QUOTE)
        raw = src[self.pos + 1:i]
        self._advance_to(i + 1)
        return Token("string", raw, loc, decode_string(raw), spaced)

    def _embedded(self, loc: Loc, spaced: bool) -> Token:
        end = self.src.find("%}", self.pos + 2)
        if end < 0:
            self._advance_to(len(self.src))
            return Token("junk", "%{", loc, spaced=spaced, error=NO_CLOSING_EMBED)
        code = self.src[self.pos + 2:end]
        self._advance_to(end + 2)
        return Token("embedded", code, loc, code, spaced)

    def _splice(self, c: str, c2: str, loc: Loc, spaced: bool) -> list[Token]:
        """Paste a command-line argument (or the count) at a $N/@N/$#/@#."""
        start = self.pos
        if c2 == "#":
            end = start + 2
        else:
            m = _DIGITS.match(self.src, start + 1)
            assert m is not None
            end = m.end()
        text = self.src[start:end]
        self._advance_to(end)
        if self.nested_loc is not None:
            return [Token("junk", text, loc, spaced=spaced, error=NESTED_ARGS)]
        if c2 == "#":
            value = str(len(self.args))
        else:
            idx = int(text[1:])
            if idx == 0 or idx > len(self.args):
                return [Token("junk", text, loc, spaced=spaced,
                              error=f"command line argument index {idx} out of range "
                                    f"[1-{len(self.args)}]")]
            value = self.args[idx - 1]
        if c == "@":
            # @N is always a string literal holding the argument verbatim.
            return [Token("string", quote_string(value), loc, value, spaced)]
        pasted = Lexer(value, self.file, self.args, nested_loc=loc).tokens()[:-1]
        if pasted:
            pasted[0].spaced = spaced
        return pasted


def concat_strings(tokens: list[Token]) -> list[Token]:
    """Merge adjacent string literals ("a" "b" -> "ab"), also across comments."""
    out: list[Token] = []
    for tok in tokens:
        prev = out[-1] if out else None
        if tok.kind == "string" and prev is not None and prev.kind == "string":
            out[-1] = Token("string", prev.text + tok.text, prev.loc,
                            str(prev.value) + str(tok.value), prev.spaced)
        else:
            out.append(tok)
    return out


def tokenize(text: str, file: str, args: Optional[list[str]] = None) -> list[Token]:
    """All tokens of text, ending with one 'eof' token."""
    return concat_strings(Lexer(text, file, args).tokens())
