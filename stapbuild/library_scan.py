"""A fast, sparse token stream for the library index's scan.

stapbuild.library_index reads a library file's definitions with one walk
over its tokens (``_Scan``). The walk needs every token at the top level
(probe headers, function names, global declarations), but inside a probe
or function body it looks only at braces, ``%( %? %: %)``, ``@define``,
``@macro`` uses and the keywords ``probe``/``function``/``global``/``private``
(which say the walk lost the file's structure). Bodies are most of a
tapset's text, and lexing them token by token in Python was most of the
cost of a cold index build.

``sparse_tokens`` lexes the top level with the real lexer's regex, token by
token, and skips each body with one regex match per token the walk looks at:
identifiers, numbers, strings, comments, embedded C and operators are
consumed in C by a possessive repetition that tokenises exactly as
codegen.lexer does (so a brace in a string or comment, or ``x.function``,
is never mistaken for structure). The walk then runs on this shorter
stream and must reach the same entry as on the full one. That holds
because the stream is sparse only where the walk is certainly inside a
body:

* a top-level ``{`` starts a sparse body only after a token that leaves a
  probe header expecting its body (an identifier, a matched ``)``, ``?``,
  ``!``, ``*``, a keyword); after anything else (``.``, ``,``, ``=``, a
  string, a conditional token ...) it may be a brace expansion, so
  everything up to its ``}`` is lexed in full;
* nothing is sparse inside parentheses or a ``%( ... %?`` condition at the
  top level;
* an ``@define`` body at the top level is sparse with its own ``%( %)``
  nesting and leaves the brace depth alone, as the walk's ``define`` does;
* anything the fast path cannot classify (an ``@define`` inside any block,
  a brace in a body's ``%(`` condition, an unclosed string or ``%{``, an
  argument splice, a junk character at the top level, a stray ``}``)
  returns None, and the caller lexes the file in full.
"""
from __future__ import annotations

import re
from bisect import bisect_left
from typing import Optional

from codegen import lexer
from codegen.lexer import EMBED, EOF, IDENT, KEYWORDS, NUMBER, STRING, Source

_TOPLEVEL_KW = frozenset(("probe", "function", "global", "private"))
_KWMAP = {k: k for k in KEYWORDS}           # private_keyword=True, as _Scan lexes

# Comments and strings as codegen.lexer reads them, with the loops unrolled
# (the lexer's lazy '[\s\S]*?' costs a step per character).
_COMMENT = r"#[^\n]*+|//[^\n]*+|/\*(?:[^*]++|\*(?!/))*+(?:\*/|\Z)"
_STR = r'"[^"\\\n]*+(?:\\[\s\S][^"\\\n]*+)*+"'
_EMBED = r"%\{(?:[^%]++|%(?!\}))*+%\}"
_SKIP_FAST = r"(?:[ \t\n\r\f\v]++|" + _COMMENT + r")*+"

# codegen.lexer's token regex with the unrolled skip: the same tokens and
# groups (its alternatives always match something, so the skip never has to
# give back a comment and may be possessive).
_MASTER = re.compile(lexer._MASTER.pattern.replace(lexer._SKIP, _SKIP_FAST, 1))
assert _MASTER.pattern != lexer._MASTER.pattern and _MASTER.groups == lexer._MASTER.groups

# One token the walk ignores inside a body, lexed as codegen.lexer lexes it
# (exactly: the walk must see a keyword where the lexer sees one). Order
# matters where two alternatives start alike: '.'/'->' member access
# before the plain operators, comments before '/', '%{...%}' before '%'.
_BORING = (
    # whitespace and operators that join no identifier, '.', '-', '/' or '%'
    r"[ \t\n\r\f\v(),;=+*<>!&|\[\]:?^~'`\\]++"
    r"|(?!(?:probe|function|global|private)(?![A-Za-z0-9_$]))[A-Za-z_][A-Za-z0-9_$]*+"
    r"|" + _COMMENT +
    # '.'/'->' and the member name after it (may be a keyword: x->function)
    r"|(?:\.(?!=)|->)" + _SKIP_FAST + r"[A-Za-z_][A-Za-z0-9_$]*+"
    r"|[0-9][A-Za-z0-9]*+"
    r"|" + _STR + r"|" + _EMBED +
    r"|\$[A-Za-z_$][A-Za-z0-9_$]*+|\$(?![0-9#])"
    r"|[$@][0-9]"                           # $N/@N with no arguments: a junk token
    r"|--|-=|[-./]=?"                       # ('->' is taken above)
    r"|%(?![(?:){])"
    r"|[^\x21-\x7e \t\n\r\f\v]"             # a junk character (non-ASCII, control)
)
# Skip ignored tokens, then one token the walk sees (or the end, or a bail-out).
_TAIL = (r"(?:([{}])"                       # 1 brace
         r"|(%[(?:)])"                      # 2 preprocessor conditional
         r"|(@[A-Za-z_$][A-Za-z0-9_$]*)"    # 3 @define or a macro use
         r"|(probe|function|global|private)"  # 4 a top-level keyword
         r"|(\Z)"                           # 5 end of text
         r"|[\s\S])")                       # anything else: cannot classify
_EXACT = re.compile(r"(?:" + _BORING + r")*+" + _TAIL)
# The same, blind to keywords: identifiers, numbers and operators go by in
# runs. Only for text that holds no keyword's spelling at all (checked with
# str.find after the body is read; else it is read again with _EXACT). '$'
# stays apart: '$#' pastes text and '#' is then no comment.
_QUICK = re.compile(
    r"(?:[^{}%@\"#/$]++|" + _COMMENT + r"|/|" + _STR + r"|\$(?!#)|" + _EMBED
    + r"|%(?![(?:){]))*+" + _TAIL)
_KEYWORD_TEXT = ("probe", "function", "global", "private")

# Top-level runs the walk reads token by token but that cannot change what
# it records, matched whole and replaced (see _Sparse.shortcut):
_NAME = r"(?!(?:probe|function|global|private)(?![A-Za-z0-9_$]))[A-Za-z_][A-Za-z0-9_$]*"
_MACRO = r"@(?!define(?![A-Za-z0-9_$]))[A-Za-z_$][A-Za-z0-9_$]*"
_ARGS = (r"\((?:" + _SKIP_FAST + r"(?:" + _STR + r"|[0-9][A-Za-z0-9]*|" + _MACRO
         + r"))*" + _SKIP_FAST + r"\)")
# An alias's probe points after '=' up to its body: components (any name
# after a '.', as the walk allows 'kernel.function'), '*', '?', '!',
# arguments of strings, numbers and macros, and ','. Each repetition ends on
# a component, ')', '?' or '!', after which the walk no longer expects a
# component and takes the '{' as the body. Anything else (an '=', braces,
# a conditional, a top-level keyword, 'if (...)') leaves the run to
# token-by-token lexing.
_TARGETS = re.compile(
    r"(?:(?:" + _SKIP_FAST + r",)*" + _SKIP_FAST + r"(?:\." + _SKIP_FAST + r"(?:[A-Za-z_][A-Za-z0-9_$]*|\*(?!=))|"
    + _NAME + r"|\*(?!=)|[?]|!(?![=~])|" + _ARGS + r"))++(?=" + _SKIP_FAST + r"\{)")
# A whole alias header, 'probe' to its body: 'probe NAME(.NAME)* =' (or
# '+=') and plain points. Read as one ALIAS token that carries the names.
_ALIAS_HEAD = re.compile(
    r"probe(?![A-Za-z0-9_$])" + _SKIP_FAST + r"(" + _NAME
    + r"(?:\.[A-Za-z_][A-Za-z0-9_$]*+)*+)" + _SKIP_FAST + r"\+?=")
ALIAS = "\0alias"

# A function's header after its name, up to its body ('{' or '%{'): types,
# parameters, a priority. The walk skips these tokens one by one.
_FN_HEADER = re.compile(
    r"(?:" + _SKIP_FAST + r"(?:" + _NAME + r"|[0-9][A-Za-z0-9]*|[():,]))*+(?=" + _SKIP_FAST + r"(?:\{|%\{))")

# A top-level '{' right after one of these is a body, never a brace expansion.
_BODY_AFTER = frozenset((IDENT, "?", "!", "*", ")"))
_STRAY = "\0stray"                          # a ')' that closed no '('
_PP = frozenset(("%(", "%?", "%:", "%)"))


def _opens_body(prev: str) -> bool:
    return prev in _BODY_AFTER or (prev[0].isalpha() and prev not in _TOPLEVEL_KW)


class _Sparse:
    """The tokenizer's state; ``run`` returns None to ask for a full lex."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.src = Source("<library-index>", text)
        self.keys: list[str] = []
        self.toks: list[tuple] = []
        self.stack: list[bool] = []     # open braces: True = a sparse body
        self.conds: list[int] = []      # brace depth at each open '%('
        self.parens = 0                 # open '(' at the top level
        self.in_cond = False            # between '%(' and '%?'
        self.define = 0                 # 1: after @define, before its '%('; 2: at it
        self.prev = EOF                 # the last top-level token's key
        self.header = False             # in a probe header (after 'probe', before '{')
        self.fn_name = False            # the next token names a function
        self.seen: set[str] = set()     # macros used in bodies since the last @define
        self.keyword_at: Optional[list[int]] = None   # where keywords' letters are

    def emit(self, k: str, t: str, start: int, gap: int) -> None:
        self.keys.append(k)
        self.toks.append((k, t, start, gap, self.src, None, None))

    def run(self) -> Optional[tuple[list[str], list[tuple]]]:
        pos: Optional[int] = 0
        end = len(self.text)
        while pos is not None and pos < end:
            pos = self.body(pos) if self.stack and self.stack[-1] else self.full(pos)
        if pos is None:
            return None
        self.emit(EOF, "", end, end)
        return self.keys, self.toks

    def conditional(self, t: str, depth: int) -> bool:
        """Follow '%( %: %)' as the walk's conditional() does, at this brace
        depth; False where the walk would find the braces differ between
        branches (it then calls the file opaque: let the full walk say so)."""
        if t == "%(":
            self.conds.append(depth)
        elif t != "%?":
            if not self.conds or self.conds[-1] != depth:
                return False
            if t == "%)":
                self.conds.pop()
        return True

    # ------------------------------------------------------------ full lexing
    def full(self, pos: int) -> Optional[int]:
        """Lex top-level tokens exactly as codegen.lexer until a sparse body
        or @define body starts; None to bail out."""
        text, master = self.text, _MASTER.match
        while True:
            m = master(text, pos)
            li = m.lastindex
            if li == 12:
                return len(text)
            if li not in (1, 2, 4, 5, 6, 7, 8):
                return None             # splice, unclosed string or %{, junk
            start = m.start(li) - (1 if li == 6 else 2 if li == 2 else 0)
            gap, pos = pos, m.end()
            t = m.group(li)
            k = (_KWMAP.get(t, IDENT) if li == 1 else NUMBER if li == 5 else
                 STRING if li == 6 else IDENT if li == 7 else EMBED if li == 2 else t)
            if k == "{" or k == "}":
                if not self.brace(k):
                    return None
                self.emit(k, t, start, gap)
                self.prev = k
                if self.stack and self.stack[-1]:
                    return pos          # a sparse body starts
                continue
            if k == "probe" and not self.stack:
                after = self.alias_header(start, gap)
                if after is not None:
                    pos = after
                    continue
            self.emit(k, t, start, gap)
            if k in _PP and not (self.define == 1 and not self.stack) and \
                    not self.conditional(k, len(self.stack)):
                return None
            if k == "@define":
                if self.stack:
                    # The walk reads the macro body in a block it may take
                    # for a body; braces in it would then count differently
                    # here and there.
                    return None
                self.seen.clear()
            if self.stack:              # a brace expansion or an odd block: all in full
                continue
            if self.track_top(k) is False:
                return None
            if self.define == 2:
                return self.define_body(pos)
            pos = self.shortcut(k, pos)

    def shortcut(self, k: str, pos: int) -> int:
        """After a top-level token k at pos: skip what the walk would read
        without effect. An alias's plain points after '=' become one
        identifier (the walk then expects the body, as after the real
        points); a function's header after its name is left out (the walk
        skips to the body)."""
        if k == "=" or k == "+=":
            if self.header and not (self.parens or self.in_cond or self.define):
                m = _TARGETS.match(self.text, pos)
                if m is not None:
                    self.emit(IDENT, self.text[pos:m.end()].strip(), pos, pos)
                    self.prev = IDENT
                    return m.end()
        elif self.fn_name:
            self.fn_name = False
            if k in (IDENT, "string", "long") and not (self.parens or self.in_cond
                                                       or self.define):
                m = _FN_HEADER.match(self.text, pos)
                if m is not None:
                    return m.end()
        elif k == "function":
            self.fn_name = True
        return pos

    def alias_header(self, start: int, gap: int) -> Optional[int]:
        """A plain alias header from the 'probe' at start to its body, as
        one ALIAS token; None if it is not one (or not at the top level)."""
        if self.parens or self.in_cond or self.define or self.prev in (".", "->"):
            return None
        head = _ALIAS_HEAD.match(self.text, start)
        points = head and _TARGETS.match(self.text, head.end())
        if not points:
            return None
        self.emit(ALIAS, tuple(head.group(1).split(".")), start, gap)
        self.prev, self.header = IDENT, False
        return points.end()

    def brace(self, k: str) -> bool:
        """A brace met while lexing in full; False to bail out."""
        if self.define == 1 and not self.stack:
            return False                # '{' between @define and its '%('
        if k == "}":
            if not self.stack:
                return False            # the walk says "unbalanced" here; let it
            self.stack.pop()
            return True
        sparse = (not self.stack and not self.parens and not self.in_cond
                  and _opens_body(self.prev))
        if not self.stack:
            self.header = self.fn_name = False
        self.stack.append(sparse)
        return True

    def track_top(self, k: str) -> Optional[bool]:
        """Top-level bookkeeping after token k; False to bail out."""
        if k == "(":
            self.parens += 1
        elif k == ")":
            if self.parens:
                self.parens -= 1
            else:
                k = _STRAY
        elif k == "%(":
            self.in_cond = True
            if self.define == 1:
                self.define, self.in_cond = 2, False
        elif k == "%?":
            self.in_cond = False
        elif k == "probe":
            self.header = True
        elif k in _TOPLEVEL_KW:
            self.header = False
        elif k == "@define":
            if self.parens or self.in_cond or self.define:
                return False
            self.define, self.header = 1, False
        self.prev = k
        return None

    # ------------------------------------------------------------ sparse lexing
    def body(self, pos: int) -> Optional[int]:
        """Skip through the sparse body whose '{' ends at pos, to the end of
        its '}'. Read with _QUICK, and again with _EXACT if the body spells
        a keyword anywhere (in a string or comment, most likely)."""
        saved = (len(self.keys), len(self.stack), list(self.conds), self.in_cond,
                 set(self.seen))
        end = self._body(pos, _QUICK)
        if end is not None and self.spells_keyword(pos, end):
            n, depth, conds, self.in_cond, self.seen = saved
            del self.keys[n:], self.toks[n:]
            self.stack[depth - 1:] = [True]
            self.conds[:] = conds
            end = self._body(pos, _EXACT)
        return end

    def spells_keyword(self, start: int, end: int) -> bool:
        """Does text[start:end] hold a keyword's letters (anywhere)?"""
        if self.keyword_at is None:
            found: list[int] = []
            for kw in _KEYWORD_TEXT:
                i = self.text.find(kw)
                while i >= 0:
                    found.append(i)
                    i = self.text.find(kw, i + 1)
            self.keyword_at = sorted(found)
        i = bisect_left(self.keyword_at, start)
        return i < len(self.keyword_at) and self.keyword_at[i] < end

    def _body(self, pos: int, rx: re.Pattern) -> Optional[int]:
        """Emit what the walk looks at in a body: its closing '}', keywords,
        '%( %? %: %)' and macro uses. Braces nested in it are counted here
        and left out: the walk's depth only serves to check that each
        conditional's branches agree on braces, which conditional() checks
        here with the real depth."""
        text, match, seen = self.text, rx.match, self.seen
        outer = len(self.stack)
        inner = 0                       # braces open inside this body
        while True:
            m = match(text, pos)
            li = m.lastindex
            if li is None:
                return None
            start, pos = m.start(li), m.end()
            t = m.group(li)
            if li == 1:
                if self.in_cond:
                    return None         # braces in a condition: the walk skips them
                if t == "{":
                    inner += 1
                elif inner:
                    inner -= 1
                else:
                    self.emit(t, t, start, start)
                    self.stack.pop()
                    self.prev = "}"
                    return pos
                continue
            if li == 5:
                return len(text)
            if li == 2:
                if not self.conditional(t, outer + inner):
                    return None
                self.in_cond = t == "%(" or (self.in_cond and t != "%?")
            elif li == 3:
                if t == "@define":
                    return None         # the walk would read a macro body here
                # The walk records a use (and checks the macro) the same way
                # each time until an @define; in a condition it records none.
                if not self.in_cond:
                    if t in seen:
                        continue
                    seen.add(t)
            self.emit(t, t, start, start)

    def define_body(self, pos: int) -> Optional[int]:
        """After '@define NAME(...) %(': skip to the matching '%)' emitting
        what the walk's define() looks at; braces do not nest bodies here."""
        text, match = self.text, _EXACT.match
        nest = 1
        while True:
            m = match(text, pos)
            li = m.lastindex
            if li is None:
                return None
            start, pos = m.start(li), m.end()
            if li == 5:
                return len(text)
            t = m.group(li)
            self.emit(t, t, start, start)
            if t == "%(":
                nest += 1
            elif t == "%)":
                nest -= 1
                if nest == 0:
                    self.define, self.prev = 0, t
                    return pos


def sparse_tokens(text: str) -> Optional[tuple[list[str], list[tuple]]]:
    """(keys, toks) for library_index's walk, bodies left out; None when the
    file needs the full lexer."""
    return _Sparse(text).run()
