"""Pass 1, stage 1: SystemTap source text -> tokens (reference §1.1).

Behaviour follows stap's ``lexer::scan``: three comment styles, C-style
numbers (``strtoull`` base 0, checked where the parser uses them), strings
that may not span a line (an escaped newline is allowed), longest-match
operators, ``%{ ... %}`` embedded code, and command-line argument splicing
(``$N`` pastes raw text that is lexed again and may join the characters
after it, ``@N`` pastes a quoted string, ``$#``/``@#`` the count).

Speed matters (the whole tapset library goes through here), so one compiled
master regex finds every token and a token is a plain tuple::

    (key, text, pos, gap, src, chain, junk)

``key`` is what the parser dispatches on: the operator or keyword text
itself, or one of the kind markers below for identifiers, numbers, strings,
embedded code and junk. ``pos`` is the offset of the token in ``src.text``
(line and column are computed only when a location is needed); ``gap`` is
the offset where the whitespace/comments before it began (``gap != pos``
means the token is preceded by whitespace). ``chain`` is the macro
invocation token a token was expanded from (for "in expansion of macro:"
notes), and ``junk`` the lexical error message of a junk token.

Lexical problems never raise here: they become junk tokens that the parser
reports where it meets them, so tokens inside skipped ``%( %)`` branches
cost nothing.
"""
from __future__ import annotations

import re
from bisect import bisect_right
from itertools import accumulate, repeat
from operator import add
from typing import Any, Optional

from codegen.ast import Loc

# Token tuple fields.
K, T, P, G, SRC, CH, J = range(7)

# Kind markers used as keys: they start with NUL, never an operator's or
# keyword's spelling (keywords start with a letter, operators with punctuation).
IDENT, NUMBER, STRING, EMBED, JUNK, EOF = "\0i", "\0n", "\0s", "\0e", "\0j", "\0eof"

KIND_NAMES = {IDENT: "identifier", NUMBER: "number", STRING: "string", EMBED: "embedded-code",
              JUNK: "junk"}

BASE_KEYWORDS = frozenset(
    "probe global function if else for foreach in limit return delete while "
    "break continue next string long try catch".split())
KEYWORDS = BASE_KEYWORDS | {"private"}          # "private" needs --compatible >= 3.0

OPERATORS3 = frozenset(("<<<", ">>>", "<<=", ">>="))
OPERATORS2 = frozenset(
    "== != <= >= =~ !~ += -= *= /= %= &= ^= |= .= && || ++ -- -> << >> "
    "%( %? %: %)".split())

BAD_NUMBER = "number invalid or out of range"
NO_CLOSING_QUOTE = "Could not find matching closing quote"
NO_CLOSING_EMBED = "Could not find matching '%}' to close embedded function block"
NESTED_ARGS = "invalid nested substitution of command line arguments"
EMBED_TYPO = "possible erroneous closing '}%', use '%}'?"

INT64_MAX = 2**63 - 1
UINT64_MAX = 2**64 - 1

_SIMPLE_ESCAPES = {"a": "\a", "b": "\b", "t": "\t", "n": "\n", "v": "\v",
                   "f": "\f", "r": "\r", "\\": "\\"}

# Whitespace is C isspace(); comments are '#' and '//' to end of line and
# non-nesting '/* */' (an unclosed one runs to the end of the file). The
# alternatives after the skip always match (a junk byte or the end), so the
# regex never backtracks into the skip.
_SKIP = r"(?:[ \t\n\r\f\v]+|#[^\n]*|//[^\n]*|/\*[\s\S]*?(?:\*/|\Z))*"
_OPS = (r"<<[<=]?|>>[>=]?|[=!<>]=|[=!]~|[-+*/%&^|.]=|&&|\|\||\+\+|--|->|%[(?:)]"
        r"|[!%&'()*+,\-./:;<=>?\[\\\]^`{|}~]")
_MASTER = re.compile(
    _SKIP + r"(?:"
    r"([A-Za-z_][A-Za-z0-9_$]*)"                  # 1 identifier or keyword
    r"|%\{([\s\S]*?)%\}"                           # 2 embedded C (before the '%' operator)
    r"|(%\{[\s\S]*)"                               # 3 unclosed embedded C
    r"|(" + _OPS + r")"                            # 4 operator, longest match
    r"|([0-9][A-Za-z0-9]*)"                        # 5 number (checked by the parser)
    r"|\"((?:[^\"\\\n]|\\[\s\S])*)\""              # 6 string body
    r"|(\$[A-Za-z_$][A-Za-z0-9_$]*|\$(?![0-9#]))"  # 7 $target identifier
    r"|(@[A-Za-z_$][A-Za-z0-9_$]*|@(?![0-9#]))"    # 8 @operator
    r"|([$@](?:#|[0-9]))"                          # 9 argument splice
    r"|(\"(?:[^\"\\\n]|\\[\s\S])*\\?)"            # 10 unclosed string
    r"|([\s\S])"                                   # 11 junk character
    r"|(\Z)"                                       # 12 end of text
    r")")
_SPLICE = 9


_new = object.__new__


class Source:
    """One scanned text: its display name, the text, and line lookup."""

    __slots__ = ("name", "text", "_lines", "_last")

    def __init__(self, name: str, text: str) -> None:
        self.name = name
        self.text = text
        self._lines: Optional[list[int]] = None
        self._last: tuple = (-1, None)

    def line_col(self, pos: int) -> tuple[int, int]:
        lines = self._lines
        if lines is None:
            # Offsets where lines 2, 3, ... start, computed without a Python loop.
            lines = self._lines = list(accumulate(map(add, map(len, self.text.split("\n")),
                                                      repeat(1))))
        n = bisect_right(lines, pos)
        return n + 1, pos - (lines[n - 1] if n else 0) + 1

    def loc(self, pos: int) -> Loc:
        """The Loc of offset pos (built without the dataclass __init__, which
        is the slow part of making a tree)."""
        last = self._last
        if last[0] == pos:
            return last[1]
        lines = self._lines
        if lines is None:
            lines = self._lines = list(accumulate(map(add, map(len, self.text.split("\n")),
                                                      repeat(1))))
        n = bisect_right(lines, pos)
        loc = _new(Loc)
        d = loc.__dict__
        d["file"] = self.name
        d["line"] = n + 1
        d["col"] = pos - (lines[n - 1] if n else 0) + 1
        self._last = (pos, loc)
        return loc

    def line_text(self, line: int) -> Optional[str]:
        """Line number ``line`` without its newline, as stap quotes it."""
        parts = self.text.split("\n")
        return parts[line - 1] if 1 <= line <= len(parts) else None


def parse_c_number(text: str) -> Optional[int]:
    """strtoull(text, 0) that must consume all of text; int64-wrapped, None if bad."""
    if text.isdigit() and text[0] != "0" and len(text) < 19:
        return int(text)
    low = text.lower()
    if low.startswith("0x"):
        digits, base = text[2:], 16
        if digits[:1] in ("+", "-") or not digits.isalnum():
            return None
    elif text.startswith("0") and len(text) > 1:
        digits, base = text[1:], 8
    else:
        digits, base = text, 10
    if not digits or not digits.isascii() or not digits.isalnum():
        return None
    try:
        value = int(digits, base)
    except ValueError:
        return None
    if value > UINT64_MAX:
        return None
    # stap keeps the 64-bit pattern: 0xffffffffffffffff is -1.
    return value - 2**64 if value > INT64_MAX else value


def decode_string(raw: str, hex_escapes: bool = True) -> str:
    """Resolve C escapes of a string body; unknown '\\c' yields plain 'c'.

    ``\\x`` is an escape since SystemTap 2.3 (``hex_escapes``); before, it is
    a plain 'x'.
    """
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
        elif "0" <= esc <= "7":
            j = i + 1
            while j < n and j < i + 4 and "0" <= raw[j] <= "7":
                j += 1
            out.append(chr(int(raw[i + 1:j], 8) & 0xFF))
            i = j
        elif esc == "x" and hex_escapes:
            j = i + 2
            while j < n and j < i + 4 and raw[j] in "0123456789abcdefABCDEF":
                j += 1
            out.append(chr(int(raw[i + 2:j], 16)) if j > i + 2 else "x")
            i = j
        else:
            out.append(esc)
            i += 2
    return "".join(out)


def stap_content(raw: str) -> str:
    """A string token's content as stap keeps (and prints) it: the escapes C
    understands stay escaped, any other backslash is dropped."""
    if "\\" not in raw:
        return raw
    return re.sub(r"\\([\s\S])", lambda m: m.group(0) if m.group(1) in "abtnvfr01234567\\x"
                  else m.group(1), raw)


_REV_ESCAPES = {v: k for k, v in _SIMPLE_ESCAPES.items()}
_REV_ESCAPES['"'] = '"'
_NEEDS_QUOTING = re.compile(r'[\x00-\x1f\x7f"\\]')


def quote_string(value: str) -> str:
    """Inverse of decode_string: the body of a literal that decodes to value."""
    if not _NEEDS_QUOTING.search(value):
        return value
    out: list[str] = []
    for i, ch in enumerate(value):
        if ch in _REV_ESCAPES:
            out.append("\\" + _REV_ESCAPES[ch])
        elif ord(ch) < 0x20 or ord(ch) == 0x7F:
            out.append(f"\\{ord(ch):03o}")
        else:
            out.append(ch)
    return "".join(out)


def describe(tok: tuple) -> str:
    """The token as stap prints it in 'at:'/'saw:' lines (without location).

    Keywords and embedded code show only their kind; other kinds show their
    content, non-printable characters as '?'.
    """
    key = tok[K]
    if key in KIND_NAMES:
        kind = KIND_NAMES[key]
    elif key[0].isalpha():
        kind = "keyword"
    else:
        kind = "operator"
    if kind in ("keyword", "embedded-code"):
        return kind
    text = tok[T]
    if key == STRING:
        text = stap_content(text)
    text = "".join(c if " " <= c <= "~" else "?" for c in text)
    return f"{kind} '{text}'"


def token_loc(tok: tuple) -> Loc:
    return tok[SRC].loc(tok[P])


class Scanner:
    """Scans one source text into the parser's parallel ``keys``/``toks`` lists."""

    def __init__(self, src: Source, args: Optional[list[str]] = None, *,
                 private_keyword: bool = True, warnings: Optional[list[str]] = None) -> None:
        self.src = src
        self.args = args
        self.kwmap = {k: k for k in (KEYWORDS if private_keyword else BASE_KEYWORDS)}
        self.warnings = warnings
        self.saw_tokens = False

    def scan(self) -> tuple[list[str], list[tuple]]:
        keys: list[str] = []
        toks: list[tuple] = []
        self._scan_into(self.src.text, 0, keys, toks, None)
        src = self.src
        toks.append((EOF, "", len(src.text), len(src.text), src, None, None))
        keys.append(EOF)
        self.saw_tokens = len(toks) > 1
        return keys, toks

    def _scan_into(self, text: str, pos: int, keys: list, toks: list,
                   paste: Optional[tuple]) -> int:
        """Append the tokens of text from pos. ``paste`` = (limit, at_pos):
        text was pasted in front of the rest of the file; tokens starting
        before ``limit`` sit at ``at_pos``; stop at the first token after it
        and return where lexing of the file resumes (relative to text)."""
        src = self.src
        kwget = self.kwmap.get
        kadd = keys.append
        tadd = toks.append
        master = _MASTER.match
        while True:
            m = master(text, pos)
            li = m.lastindex
            start = m.start(li)
            if li == 6:
                start -= 1                 # a string starts at its quote
            elif li == 2:
                start -= 2                 # embedded code starts at its '%{'
            if paste is None:
                gap = pos
            elif start >= paste[0]:
                return pos if pos >= paste[0] else start
            else:
                gap = paste[1] - (start != pos)
                start = paste[1]
            pos = m.end()
            if li == 1:
                t = m.group(1)
                k = kwget(t, IDENT)
            elif li == 4:
                t = k = m.group(4)
            elif li == 5:
                t = m.group(5)
                k = NUMBER
            elif li == 6:
                t = m.group(6)
                k = STRING
            elif li == 7:
                t = m.group(7)
                k = IDENT
            elif li == 8:
                t = k = m.group(8)         # @words are operators
            elif li == 2:
                t = m.group(2)
                if "}%" in t and self.warnings is not None:
                    self.warnings.append(EMBED_TYPO)
                k = EMBED
            elif li == 12:
                return pos
            elif li == _SPLICE:
                pos = self._splice(m, text, start, gap, keys, toks, paste)
                continue
            else:
                if li == 3:
                    t, msg = m.group(3), NO_CLOSING_EMBED
                elif li == 10:
                    t, msg = m.group(10), NO_CLOSING_QUOTE
                else:
                    c = m.group(11)
                    byte = ord(c) if ord(c) < 0x80 else c.encode("utf-8", "surrogatepass")[0]
                    t, msg = f"\\x{byte:02x}", ""
                kadd(JUNK)
                tadd((JUNK, t, start, gap, src, None, msg))
                continue
            kadd(k)
            tadd((k, t, start, gap, src, None, None))

    def _splice(self, m: re.Match, text: str, start: int, gap: int, keys: list, toks: list,
                paste: Optional[tuple]) -> int:
        """$N/@N/$#/@#: paste the argument (or count) in front of the rest of
        the text and lex on; returns where lexing of ``text`` resumes."""
        src = self.src
        spelled = m.group(_SPLICE)
        sigil = spelled[0]
        args = self.args or []
        end = m.start(_SPLICE) + 2
        if spelled[1] == "#":
            value = str(len(args))
        else:
            # stap stops reading digits once the index exceeds the count.
            idx = 0
            j = m.start(_SPLICE) + 1
            while j < len(text) and text[j].isdigit() and idx <= len(args):
                idx = idx * 10 + int(text[j])
                j += 1
            end = j
            spelled = text[m.start(_SPLICE):end]
            if paste is not None:
                keys.append(JUNK)
                toks.append((JUNK, spelled, start, gap, src, None, NESTED_ARGS))
                return end
            if idx == 0 or idx > len(args):
                keys.append(JUNK)
                toks.append((JUNK, spelled, start, gap, src, None,
                             f"command line argument out of range [1-{len(args)}]"))
                return end
            value = args[idx - 1]
        if paste is not None:
            keys.append(JUNK)
            toks.append((JUNK, spelled, start, gap, src, None, NESTED_ARGS))
            return end
        if sigil == "@":
            value = '"' + quote_string(value) + '"'
        # Lex "value + rest of the file"; tokens that start inside the pasted
        # part sit at the $N location, and one may run on into the file.
        combined = value + text[end:]
        before = len(keys)
        resume = self._scan_into(combined, 0, keys, toks, (len(value), start))
        if len(keys) > before:
            first = toks[before]
            toks[before] = first[:G] + (gap,) + first[G + 1:]
        return end + resume - len(value)


def scan(src: Source, args: Optional[list[str]] = None, *, private_keyword: bool = True,
         warnings: Optional[list[str]] = None) -> tuple[list[str], list[tuple], bool]:
    """Tokens of src as (keys, toks, saw_tokens); both lists end with an EOF token."""
    sc = Scanner(src, args, private_keyword=private_keyword, warnings=warnings)
    keys, toks = sc.scan()
    return keys, toks, sc.saw_tokens


# ---------------------------------------------------------------- test/debug view
class Token:
    """A readable view of a token tuple (tests and tools; the parser uses tuples)."""

    __slots__ = ("tup",)

    def __init__(self, tup: tuple) -> None:
        self.tup = tup

    @property
    def kind(self) -> str:
        key = self.tup[K]
        if key == EOF:
            return "eof"
        if key in KIND_NAMES:
            return "embedded" if key == EMBED else KIND_NAMES[key]
        return "keyword" if key[0].isalpha() else "operator"

    @property
    def text(self) -> str:
        return self.tup[T]

    @property
    def value(self) -> Any:
        key = self.tup[K]
        if key == NUMBER:
            return parse_c_number(self.tup[T])
        if key == STRING:
            return decode_string(self.tup[T])
        return None

    @property
    def loc(self) -> Loc:
        return token_loc(self.tup)

    @property
    def spaced(self) -> bool:
        return self.tup[G] != self.tup[P]

    @property
    def error(self) -> Optional[str]:
        if self.tup[K] == NUMBER and parse_c_number(self.tup[T]) is None:
            return BAD_NUMBER
        return self.tup[J] or None

    def describe(self) -> str:
        return "EOF" if self.tup[K] == EOF else describe(self.tup)

    def __repr__(self) -> str:
        return f"Token({self.kind}, {self.text!r})"


def tokenize(text: str, file: str, args: Optional[list[str]] = None) -> list[Token]:
    """All tokens of text as Token views, ending with one 'eof' token."""
    _, toks, _ = scan(Source(file, text), args)
    return [Token(t) for t in toks]
