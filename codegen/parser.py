"""Pass 1, stage 3: recursive-descent parser, preprocessed tokens -> ast.File.

The grammar, the precedence table, every error message and the token an
error points at follow stap's ``parse.cxx`` (reference §1.3-1.6). stap
distinguishes errors raised *at* a token (``at: TOKEN``) from "expected ..."
errors, which show the token last looked at (``saw: TOKEN``, or ``saw: FILE
EOF`` when there is none); both are kept. After an error the parser skips to
the next ``probe``/``global``/``private``/``function``/``%{`` and goes on;
all errors are raised together as ``ParseErrors`` (a ``StapErrors``).

Speed: tokens are tuples in a list with a parallel list of dispatch keys
(see codegen.lexer), the pure left-associative binary levels are parsed by
precedence climbing (same trees as the level-per-function grammar), and a
lone operand followed by something that cannot continue an expression is
returned without descending through the levels.
"""
from __future__ import annotations

import gc
import sys
from typing import Optional, Union

from codegen import ast as A
from codegen.ast import Loc
from codegen.errors import StapError, StapErrors, register_source
from codegen.lexer import (CH, EMBED, EOF, G, IDENT, JUNK, K, NUMBER, P, SRC, STRING, T,
                           Source, decode_string, describe, parse_c_number, scan,
                           token_loc)
from codegen.preprocess import PPERR, Macro, PPContext, PPError, Preprocessor, strverscmp

DEFAULT_COMPATIBLE = "5.6"

ASSIGN_OPS = frozenset("= <<< += -= *= /= %= <<= >>= &= ^= |= .=".split())
COMPARE_OPS = frozenset("> < == != <= >=".split())
# Precedence climbing tables: higher binds tighter.
LOGICAL = {"||": 1, "&&": 2, "|": 3, "^": 4, "&": 5}
ARITH = {"<<": 1, ">>": 1, ">>>": 1, ".": 2, "+": 3, "-": 3, "*": 4, "/": 4, "%": 4}
LOGICAL_NODE = {"||", "&&"}
STAT_OPS = {"@avg": "avg", "@variance": "variance", "@count": "count", "@sum": "sum",
            "@min": "min", "@max": "max"}
PRINT_FAMILY = frozenset("print println printd printdln printf sprint sprintln sprintd "
                         "sprintdln sprintf print_char".split())
TOPLEVEL = frozenset(("probe", "private", "global", "function", EMBED))
# Keys after an operand that may continue an expression; anything else ends it.
CONTINUES = (frozenset(ASSIGN_OPS) | COMPARE_OPS | frozenset(LOGICAL) | frozenset(ARITH)
             | {"?", "in", "[", "(", "->", "++", "--", "=~", "!~"})
STATEMENT_START = frozenset((IDENT, NUMBER, STRING, EMBED))

# Blocks, parentheses, calls, indexes and unary chains; deeper is an error
# (stap itself would overflow its stack). Each level costs ~10 Python frames.
MAX_NESTING = 1000 if sys.version_info >= (3, 11) else 150
RECURSION_LIMIT = MAX_NESTING * 12 + 2000
MAX_PROBE_POINTS = 100000    # brace expansion products

EMBED_STMT_DENIED = "embedded code in unprivileged script; need stap -g"
EMBED_EXPR_DENIED = "embedded expression code in unprivileged script; need stap -g"


# ---------------------------------------------------------------- diagnostics
def _token_text(tok: tuple) -> str:
    return f"{describe(tok)} at {token_loc(tok)}"


def _source_lines(tok: tuple, align: str = "     ") -> list[str]:
    """stap's print_error_source: the line, a caret under the column (tabs
    kept), then the macro invocations the token came from."""
    out: list[str] = []
    seen = 0
    while tok is not None and seen < 50:
        src: Source = tok[SRC]
        line, col = src.line_col(tok[P])
        text = src.line_text(line)
        if text is not None:
            out.append(f"{align}source: {text}")
            pad = "".join(c if c in " \t\n\r\f\v" else " " for c in text[:col - 1])
            out.append(f"{align}        {pad}^")
        tok = tok[CH]
        if tok is not None:
            out.append(f"\tin expansion of macro: {_token_text(tok)}")
        seen += 1
    return out


class ParseError(StapError):
    """One parse error, rendered exactly as stap's build_error_msg does.

    ``tok`` is the token shown; ``at`` says whether the error was raised at
    it (``at:``) or it is just what the parser saw last (``saw:``); a None
    token prints ``saw: FILE EOF``. ``skip`` is stap's skip_some: whether the
    parser skips to the next top-level construct afterwards.
    """

    def __init__(self, msg: str, tok: Optional[tuple], at: bool, file: str,
                 skip: bool = True, first: Optional[tuple] = None) -> None:
        if tok is not None and tok[K] == EOF:
            tok = None
        junk = tok is not None and tok[K] == JUNK and tok[6]
        if junk:
            # A lexical error replaces the parser's message, shown 'at' the junk.
            msg, at = tok[6], True
        loc = token_loc(tok) if tok is not None else None
        super().__init__("parse", msg, loc, token=describe(tok) if tok is not None else "EOF")
        self.tok = tok
        self.at = at
        self.file = file
        self.skip = skip
        self.first = first

    def render(self) -> str:
        out = [f"parse error: {self.msg}"]
        out.extend(self._body(self.tok, self.at))
        if self.first is not None:
            name = self.msg.split("'")[1] if "'" in self.msg else ""
            out.append("")
            out.append(f"parse error: macro '{name}' first defined here")
            out.extend(self._body(self.first, True))
        return "\n".join(out) + "\n"

    def _body(self, tok: Optional[tuple], at: bool) -> list[str]:
        if tok is None:
            return [f"        saw: {self.file} EOF"]
        head = "         at: " if at else "        saw: "
        return [head + _token_text(tok)] + _source_lines(tok)


class InputEmpty(StapError):
    """stap's 'Input file 'X' is empty[ after preprocessing].' (no prefix)."""

    def __init__(self, msg: str) -> None:
        super().__init__("parse", msg)

    def render(self) -> str:
        return self.msg + "\n"


class ParseErrors(StapErrors):
    """All parse errors of one file, then stap's 'N parse error(s).'."""

    def render(self) -> str:
        real = [e for e in self.errors if not isinstance(e, InputEmpty)]
        text = "".join(e.render() + "\n" for e in real)
        empty = [e for e in self.errors if isinstance(e, InputEmpty)]
        if empty:
            return text + empty[0].render()
        n = len(real)
        return text + f"{n} parse error{'s' if n != 1 else ''}.\n"


class _Fail(Exception):
    """Internal: a parse error travelling to the top-level loop."""

    def __init__(self, err: ParseError) -> None:
        super().__init__(err.msg)
        self.err = err


def _is_target(e: A.Expr) -> bool:
    return isinstance(e, A.TargetSymbol) or (
        isinstance(e, A.AtOp) and e.op in ("cast", "var", "autocast"))


def _all_dollars(text: str) -> bool:
    return text[:1] == "$" and not text.strip("$")


# ---------------------------------------------------------------- the parser
class Parser:
    def __init__(self, path: str, keys: list[str], toks: list[tuple], *, privileged: bool,
                 user_file: bool, compatible: str = DEFAULT_COMPATIBLE,
                 check_compatible: bool = True) -> None:
        self.path = path
        self.ks = keys
        self.toks = toks
        self.i = 0
        self.privileged = privileged
        self.user_file = user_file
        self.compatible = compatible
        self.check_compatible = check_compatible
        self.v20 = self.has_version("2.0")
        self.v26 = self.has_version("2.6")
        self.v40 = self.has_version("4.0")
        self.v55 = self.has_version("5.5")
        self.v56 = self.has_version("5.6")
        self.hex_escapes = self.has_version("2.3")
        self.context = ""            # "probe", "function", "global", ...
        self.errors: list[StapError] = []
        self.depth = 0
        self.last: Optional[tuple] = None     # stap's last_t, where it matters
        self.pp_at = -1                       # index of a reported preprocessor error
        self.comp_tok: dict[int, tuple] = {}  # probe-point component -> its token

    def has_version(self, v: str) -> bool:
        return not self.check_compatible or strverscmp(self.compatible, v) >= 0

    # ------------------------------------------------------------ errors
    def fail(self, msg: str, tok: Optional[tuple] = None, *, at: bool = False,
             skip: bool = True) -> _Fail:
        """An error to raise. Without ``tok`` it 'saw' the current token. A
        preprocessor error pending at the current token takes precedence, as
        stap's lazy preprocessor would have thrown it first."""
        cur = self.toks[self.i]
        if cur[K] == PPERR:
            return self._pp_fail(cur)
        if tok is not None and tok[K] == PPERR:
            return self._pp_fail(tok)
        if tok is None and not at:
            tok = cur
        return _Fail(ParseError(msg, tok, at, self.path, skip))

    def _pp_fail(self, tok: tuple) -> _Fail:
        if self.toks[self.i] is tok:
            self.pp_at = self.i
        e: PPError = tok[T]
        return _Fail(ParseError(e.msg, e.tok, e.tok is not None, self.path, first=e.first))

    def eof_fail(self) -> _Fail:
        """stap's next() at the end of the file."""
        cur = self.toks[self.i]
        if cur[K] == PPERR:
            return self._pp_fail(cur)
        return _Fail(ParseError("unexpected end-of-file", self.last, False, self.path))

    def loc(self, tok: tuple) -> Loc:
        return tok[SRC].loc(tok[P])

    # ------------------------------------------------------------ token access
    def next(self) -> tuple:
        """stap's next(): consume the current token (EOF is an error)."""
        tok = self.toks[self.i]
        if tok[K] == EOF or tok[K] == PPERR:
            raise self.eof_fail()
        self.i += 1
        self.last = tok
        return tok

    def expect_op(self, op: str) -> tuple:
        tok = self.toks[self.i]
        if tok[K] != op:
            if tok[K] == EOF:
                raise self.eof_fail()
            raise self.fail(f"expected '{op}'", tok)
        self.i += 1
        self.last = None
        return tok

    def expect_op_any(self, *ops: str) -> str:
        tok = self.toks[self.i]
        if tok[K] in ops:
            self.i += 1
            self.last = None
            return tok[K]
        if tok[K] == EOF:
            raise self.eof_fail()
        raise self.fail(f"expected one of '{' '.join(ops)}'", tok)

    def expect_ident(self, msg: str = "expected identifier") -> tuple:
        tok = self.toks[self.i]
        if tok[K] != IDENT:
            if tok[K] == EOF:
                raise self.eof_fail()
            raise self.fail(msg, tok)
        self.i += 1
        self.last = tok
        return tok

    def expect_number(self) -> tuple[int, tuple]:
        tok = self.next()
        neg = False
        if tok[K] == "-":
            neg = True
            tok = self.next()
        if tok[K] != NUMBER:
            raise self.fail("expected number", tok)
        value = self._number(tok, neg)
        self.last = None
        return value, tok

    def _number(self, tok: tuple, neg: bool = False) -> int:
        value = parse_c_number(tok[T])
        if value is None or (neg and value & (2**64 - 1) > 2**63):
            raise self.fail("number invalid or out of range", tok)
        if neg:
            value = -value
            if value == 2**63:
                value = -2**63
        return value

    def string_literals(self, tok: tuple) -> str:
        """consume_string_literals: adjacent strings concatenate (across
        comments since 2.0). Escapes are resolved over the joined text."""
        raw = tok[T]
        ks = self.ks
        if ks[self.i] == STRING:
            parts = [raw]
            toks = self.toks
            while ks[self.i] == STRING:
                nxt = toks[self.i]
                if not self.v20 and nxt[G] != nxt[P] and self._comment_before(nxt):
                    break
                parts.append(nxt[T])
                self.i += 1
            raw = "".join(parts)
        return decode_string(raw, self.hex_escapes) if "\\" in raw else raw

    @staticmethod
    def _comment_before(tok: tuple) -> bool:
        gap = tok[SRC].text[tok[G]:tok[P]]
        return "#" in gap or "/" in gap

    def enter(self) -> None:
        self.depth += 1
        if self.depth > MAX_NESTING:
            raise self.fail(f"too many nested levels (more than {MAX_NESTING})",
                            self.toks[self.i], at=True)

    # ------------------------------------------------------------ top level
    def parse(self) -> tuple[A.File, bool]:
        f = A.File(self.path, loc=Loc(self.path, 1, 1))
        empty = True
        ks = self.ks
        while True:
            self.depth = 0
            try:
                k = ks[self.i]
                if k == PPERR:
                    raise self._pp_fail(self.toks[self.i])
                if k == EOF:
                    break
                empty = False
                self.last = self.toks[self.i]
                if k == "probe":
                    self.context = "probe"
                    self.parse_probe(f)
                elif k == "private":
                    self.context = ""
                    self.parse_private(f)
                elif k == "global":
                    self.context = "global"
                    self.i += 1
                    self.last = None        # stap swallows the keyword
                    self.parse_global(f, None, False)
                elif k == "function":
                    self.context = "function"
                    self.i += 1
                    self.last = None
                    self.parse_function(f, False)
                elif k == EMBED:
                    self.context = "embedded"
                    f.embeds.append(self.parse_embeddedcode())
                else:
                    self.context = ""
                    raise self.fail("expected 'probe', 'global', 'private', 'function', "
                                    "or '%{'")
            except _Fail as fail:
                err = fail.err
                self.errors.append(err)
                if self.pp_at == self.i:
                    self.i += 1          # the preprocessor error has been reported
                self.pp_at = -1
                if err.skip:
                    self.recover()
            except RecursionError:
                self.errors.append(ParseError(
                    f"too many nested levels (more than {MAX_NESTING})",
                    self.toks[self.i], True, self.path))
                self.recover()
        return f, empty

    def recover(self) -> None:
        """Swallow tokens up to one a top-level construct can start with."""
        ks = self.ks
        while True:
            k = ks[self.i]
            if k == EOF or k in TOPLEVEL:
                return
            if k == PPERR:
                self.errors.append(self._pp_fail(self.toks[self.i]).err)
            self.i += 1

    def parse_embeddedcode(self) -> A.Embed:
        tok = self.next()
        if not self.privileged:
            raise self.fail(EMBED_STMT_DENIED, tok, skip=False)
        return A.Embed(tok[T], loc=tok[SRC].loc(tok[P]))

    def parse_private(self, f: A.File) -> None:
        self.i += 1                     # 'private'
        self.last = None
        tok = self.next()
        if tok[K] == "function":
            self.context = "function"
            self.parse_function(f, True)
        elif tok[K] == "global":
            self.context = "global"
            t = self.next()
            if t[K] != IDENT:
                raise self.fail("expected identifier", t)
            self.parse_global(f, t, True)
        elif tok[K] == IDENT:
            self.context = "global"
            self.parse_global(f, tok, True)
        else:
            raise self.fail("expected 'function' or identifier", tok)

    # global a, b[1000], c%, d%[50], e = 5, f = "x" [;]
    def parse_global(self, f: A.File, first: Optional[tuple], private: bool) -> None:
        ks = self.ks
        t = first
        while True:
            if t is None:
                t = self.next()
                if t[K] != IDENT:
                    raise self.fail("expected identifier", t)
            name = t[T]
            for g in f.globals:
                if g.name == name:
                    if g.private == private:
                        raise self.fail("duplicate global name", t)
                    raise self.fail("global versus private variable declaration conflict", t)
            g = A.Global(name, private=private, loc=t[SRC].loc(t[P]))
            f.globals.append(g)
            t = None
            if ks[self.i] == "%":
                g.wrap = True
                self.i += 1
            if ks[self.i] == "[":
                self.i += 1
                size, _ = self.expect_number()
                if size <= 0 or size > 2**31 - 1:
                    # stap's expect_number swallowed the number: it 'saw' nothing.
                    raise _Fail(ParseError("array size out of range", None, False, self.path))
                g.size = size
                self.expect_op("]")
            if ks[self.i] == "=":
                eq = self.toks[self.i]
                if g.size is not None:
                    raise self.fail("only scalar globals can be initialized", eq)
                self.i += 1
                g.init = self.parse_literal()
            if ks[self.i] == ";":
                self.i += 1
                return
            if ks[self.i] == ",":
                self.i += 1
                continue
            return

    # function NAME[:type] (a[:type], ...) [:priority] { ... } | %{ C %}
    def parse_function(self, f: A.File, private: bool) -> None:
        t = self.next()
        if t[K] != IDENT and t[K] not in ("string", "long"):
            raise self.fail("expected identifier", t)
        fn = A.Function(t[T], [], A.Block(), private=private, loc=t[SRC].loc(t[P]))
        fn.priority = 0 if self.user_file else 1
        t = self.next()
        if t[K] == ":":
            t = self.next()
            if t[K] not in ("string", "long"):
                raise self.fail("expected 'string' or 'long'", t)
            fn.return_type = t[K]
            t = self.next()
        if t[K] != "(":
            raise self.fail("expected '('", t)
        while True:
            t = self.next()
            if t[K] == ")":
                break
            if t[K] != IDENT:
                raise self.fail("expected identifier", t)
            if any(p.name == t[T] for p in fn.params):
                raise self.fail("duplicate parameter names", t)
            param = A.Param(t[T], loc=t[SRC].loc(t[P]))
            fn.params.append(param)
            t = self.next()
            if t[K] == ":":
                t = self.next()
                if t[K] not in ("string", "long"):
                    raise self.fail("expected 'string' or 'long'", t)
                param.type = t[K]
                t = self.next()
            if t[K] == ")":
                break
            if t[K] != ",":
                raise self.fail("expected ',' or ')'", t)
        k = self.ks[self.i]
        if k == EOF:
            raise _Fail(ParseError("expected '{'", None, False, self.path))
        if k == ":":
            self.i += 1
            lit = self.parse_literal()
            if not isinstance(lit, A.Number):
                raise self.fail("expected literal number", self.last)
            if lit.value < 1:
                raise self.fail("specified priority must be > 0", self.last)
            fn.priority = lit.value
        if self.ks[self.i] == EMBED:
            e = self.parse_embeddedcode()
            fn.body = A.EmbeddedExpr(e.code, loc=e.loc)
        else:
            fn.body = self.parse_block()
        f.functions.append(fn)

    # probe PP[, PP]* { body }  |  probe NAME (= | +=) PP[, PP]* { body } [, { body }]
    def parse_probe(self, f: A.File) -> None:
        t0 = self.next()
        aliases: list[A.ProbePoint] = []
        epilogue = False
        while True:
            pps = self.parse_probe_points()
            k = self.ks[self.i]
            if len(pps) == 1 and (k == "=" or k == "+="):
                pp = pps[0]
                if pp.optional or pp.sufficient:
                    raise self.fail("probe point alias name cannot be optional nor sufficient",
                                    self.comp_tok[id(pp.components[0])], at=True)
                aliases.append(pp)
                if k == "+=":
                    epilogue = True
                self.i += 1
                continue
            if k == "{":
                locations = pps
                break
            raise self.fail("expected probe point specifier")
        loc = t0[SRC].loc(t0[P])
        if not aliases:
            f.probes.append(A.Probe(locations, self.parse_block(), loc=loc))
            return
        body = self.parse_block()
        f.aliases.append(A.ProbeAlias(aliases, locations, body, epilogue=epilogue, loc=loc))
        t = self.toks[self.i]
        if t[T] == "," and t[K] not in (EOF, PPERR):
            if epilogue:
                raise self.fail("Combined prologue and epilogue cannot be defined with '+='")
            self.i += 1
            body2 = self.parse_block()
            f.aliases.append(A.ProbeAlias(aliases, locations, body2, epilogue=True, loc=loc))

    def parse_probe_points(self) -> list[A.ProbePoint]:
        pps: list[A.ProbePoint] = []
        ks = self.ks
        while True:
            pps.extend(self.parse_components())
            k = ks[self.i]
            if k == ",":
                self.i += 1
                continue
            if k in ("{", "=", "+=", "}"):
                return pps
            raise self.fail("expected one of ', { } = +='")

    def parse_components(self) -> list[A.ProbePoint]:
        pps: list[A.ProbePoint] = []
        ks = self.ks
        while True:
            suffix = self.parse_component()
            if not pps:
                pps = suffix
            else:
                if len(pps) * len(suffix) > MAX_PROBE_POINTS:
                    raise self.fail("too many probe points from brace expansion",
                                    self.comp_tok[id(suffix[0].components[0])], at=True)
                product = []
                for pp in pps:
                    if pp.optional or pp.sufficient or pp.condition is not None:
                        raise self.fail("'?', '!' or condition must only be specified in "
                                        "suffix", self.comp_tok[id(pp.components[0])], at=True)
                    for s in suffix:
                        product.append(A.ProbePoint(pp.components + s.components,
                                                    s.optional, s.sufficient, s.condition,
                                                    loc=pp.loc))
                pps = product
            k = ks[self.i]
            if k == ".":
                self.i += 1
                continue
            if k == "?" or k == "!":
                t = self.toks[self.i]
                for pp in pps:
                    if pp.optional or pp.sufficient:
                        raise self.fail("'?' or '!' respecified", t)
                    pp.optional = True
                    if k == "!":
                        pp.sufficient = True
                self.i += 1
                k = ks[self.i]
            if k == "if":
                self.i += 1
                if ks[self.i] != "(":
                    raise self.fail("expected '('")
                self.i += 1
                cond = self.parse_expression()
                for pp in pps:
                    if pp.condition is not None:
                        raise self.fail("condition respecified")
                    pp.condition = cond
                if ks[self.i] != ")":
                    raise self.fail("expected ')'")
                self.i += 1
            return pps

    def parse_component(self) -> list[A.ProbePoint]:
        t = self.next()
        k = t[K]
        if k == "{":
            pps = self.parse_probe_points()
            if self.ks[self.i] != "}":
                raise self.fail("expected '}'")
            self.i += 1
            return pps
        if not (k == IDENT or k == "*" or k[0].isalpha()):
            raise self.fail("expected identifier or '*' or '{'", t)
        name = t[T]
        toks = self.toks
        while True:
            u = toks[self.i]
            uk = u[K]
            if u[G] != u[P] or not (uk == IDENT or uk == "*" or uk[0].isalpha()):
                break
            name += u[T]
            self.i += 1
        comp = A.Component(name, loc=t[SRC].loc(t[P]))
        self.comp_tok[id(comp)] = t                 # for errors at the component
        if self.ks[self.i] == "(":
            self.i += 1
            comp.arg = self.parse_literal()
            u = self.next()
            if u[K] != ")":
                raise self.fail("expected ')'", u)
        return [A.ProbePoint([comp], loc=comp.loc)]

    def parse_literal(self) -> Union[A.Number, A.String]:
        t = self.next()
        if t[K] == STRING:
            return A.String(self.string_literals(t), loc=t[SRC].loc(t[P]))
        neg = False
        if t[K] == "-":
            neg = True
            t = self.next()
        if t[K] == NUMBER:
            return A.Number(self._number(t, neg), loc=t[SRC].loc(t[P]))
        raise self.fail("expected literal string or number", t)

    def parse_literal_string(self) -> tuple[str, tuple]:
        t = self.next()
        if t[K] != STRING:
            raise self.fail("expected literal string", t)
        return self.string_literals(t), t

    def expect_string(self) -> str:
        """expect_unknown(tok_string, ...)."""
        t = self.next()
        if t[K] != STRING:
            raise self.fail("expected string", t)
        return self.string_literals(t)

    # ------------------------------------------------------------ statements
    def parse_block(self) -> A.Block:
        t = self.next()
        if t[K] != "{":
            raise self.fail("expected '{'", t)
        self.enter()
        block = A.Block([], loc=t[SRC].loc(t[P]))
        stmts = block.stmts
        ks = self.ks
        parse_statement = self.parse_statement
        while True:
            if ks[self.i] == "}":
                self.i += 1
                break
            stmts.append(parse_statement())
        self.depth -= 1
        return block

    def parse_statement(self) -> A.Stmt:
        ks = self.ks
        t = self.toks[self.i]
        k = t[K]
        if k == ";":
            self.i += 1
            return A.NullStmt(loc=t[SRC].loc(t[P]))
        if k == "{":
            return self.parse_block()
        if k in STATEMENT_START or (k[0] != "\0" and not k[0].isalpha()):
            ret: A.Stmt = A.ExprStmt(self.parse_expression(), loc=t[SRC].loc(t[P]))
        else:
            handler = _STATEMENTS.get(k)
            if handler is None:
                raise self.fail("expected statement", None if k == EOF else t)
            self.i += 1
            self.last = t
            if k in ("if", "for", "foreach", "while", "try"):
                return handler(self, t)
            ret = handler(self, t)
        if ks[self.i] == ";":
            self.i += 1
        return ret

    def parse_try(self, t: tuple) -> A.Stmt:
        self.enter()
        body = self.parse_block()
        u = self.next()
        if u[K] != "catch":
            raise self.fail("expected 'catch'", u)
        var: Optional[str] = None
        if self.ks[self.i] == "(":
            self.i += 1
            u = self.next()
            if u[K] != IDENT:
                raise self.fail("expected identifier", u)
            var = u[T]
            self.expect_op(")")
        handler = self.parse_block()
        self.depth -= 1
        return A.TryCatch(body, handler, var, loc=t[SRC].loc(t[P]))

    def _open_paren(self) -> None:
        u = self.next()
        if u[K] != "(":
            raise self.fail("expected '('", u)

    def _close(self, op: str) -> None:
        u = self.next()
        if u[K] != op:
            raise self.fail(f"expected '{op}'", u)

    def parse_if(self, t: tuple) -> A.Stmt:
        self.enter()
        self._open_paren()
        cond = self.parse_expression()
        self._close(")")
        then = self.parse_statement()
        else_: Optional[A.Stmt] = None
        if self.ks[self.i] == "else":
            self.i += 1
            else_ = self.parse_statement()
        self.depth -= 1
        return A.If(cond, then, else_, loc=t[SRC].loc(t[P]))

    def parse_while(self, t: tuple) -> A.Stmt:
        self.enter()
        self._open_paren()
        cond = self.parse_expression()
        self._close(")")
        body = self.parse_statement()
        self.depth -= 1
        return A.While(cond, body, loc=t[SRC].loc(t[P]))

    def _expr_statement(self) -> A.Expr:
        if self.ks[self.i] == EOF:
            raise self.fail("expression statement expected", None)
        return self.parse_expression()

    def parse_for(self, t: tuple) -> A.Stmt:
        self.enter()
        self._open_paren()
        ks = self.ks
        init = cond = incr = None
        if ks[self.i] == ";":
            self.i += 1
        else:
            init = self._expr_statement()
            self._close(";")
        if ks[self.i] == ";":
            self.i += 1
        else:
            cond = self.parse_expression()
            self._close(";")
        if ks[self.i] == ")":
            self.i += 1
        else:
            incr = self._expr_statement()
            self._close(")")
        body = self.parse_statement()
        self.depth -= 1
        return A.For(init, cond, incr, body, loc=t[SRC].loc(t[P]))

    # foreach ([v[+-] =] (k[+-] | [k1[+-], ...]) in A[slice] [@agg][+-] [limit e]) stmt
    def parse_foreach(self, t: tuple) -> A.Stmt:
        self.enter()
        self._open_paren()
        ks, toks = self.ks, self.toks
        sort_column: Optional[int] = None
        sort_dir = 0
        value: Optional[A.Symbol] = None
        look: Optional[tuple] = None
        look_sort = 0
        if ks[self.i] == IDENT:
            look = self.next()
            if ks[self.i] in ("+", "-"):
                look_sort = 1 if ks[self.i] == "+" else -1
                self.i += 1
            if ks[self.i] == "=":
                self.i += 1
                value = A.Symbol(look[T], loc=look[SRC].loc(look[P]))
                if look_sort:
                    sort_dir, sort_column = look_sort, 0
                look = None
        parenthesized = False
        if look is None and ks[self.i] == "[":
            self.i += 1
            parenthesized = True
        keys: list[A.Symbol] = []
        if look is not None:
            keys.append(A.Symbol(look[T], loc=look[SRC].loc(look[P])))
            if look_sort:
                sort_dir, sort_column = look_sort, 1
        else:
            while True:
                u = self.next()
                if u[K] != IDENT:
                    raise self.fail("expected identifier", u)
                keys.append(A.Symbol(u[T], loc=u[SRC].loc(u[P])))
                if ks[self.i] in ("+", "-"):
                    if sort_dir:
                        raise self.fail("multiple sort directives")
                    sort_dir = 1 if ks[self.i] == "+" else -1
                    sort_column = len(keys)
                    self.i += 1
                if not parenthesized:
                    break
                if ks[self.i] == ",":
                    self.i += 1
                    continue
                if ks[self.i] == "]":
                    self.i += 1
                    break
                raise self.fail("expected ',' or ']'")
        u = self.next()
        if u[K] != "in":
            raise self.fail("expected 'in'", u)
        array = self.parse_indexable()
        slice_: Optional[list[A.Expr]] = None
        if ks[self.i] == "[":
            self.i += 1
            slice_ = []
            while True:
                if ks[self.i] == "*":
                    slice_.append(A.Wildcard(loc=self.loc(toks[self.i])))
                    self.i += 1
                else:
                    slice_.append(self.parse_expression())
                if ks[self.i] == ",":
                    self.i += 1
                    continue
                if ks[self.i] == "]":
                    self.i += 1
                    break
                raise self.fail("expected ',' or ']'")
        agg: Optional[str] = None
        k = ks[self.i]
        if k[0] == "@":
            if k not in STAT_OPS:
                raise self.fail("expected statistical operation")
            agg = STAT_OPS[k]
            self.i += 1
            if ks[self.i] not in ("+", "-"):
                raise self.fail("expected sort directive")
        k = ks[self.i]
        if k == "+" or k == "-":
            if sort_dir:
                raise self.fail("multiple sort directives")
            sort_dir = 1 if k == "+" else -1
            sort_column = 0
            self.i += 1
        limit: Optional[A.Expr] = None
        if ks[self.i] == "limit":
            self.i += 1
            limit = self.parse_expression()
        self._close(")")
        body = self.parse_statement()
        self.depth -= 1
        return A.Foreach(keys, value, array, body, slice_, sort_column, sort_dir, agg, limit,
                         loc=t[SRC].loc(t[P]))

    def parse_return(self, t: tuple) -> A.Stmt:
        if self.context != "function":
            raise self.fail("found 'return' not in function context", t)
        k = self.ks[self.i]
        if k == EOF:
            raise self.fail("expected ';', '}' or an expression statement", None)
        if k == ";" or k == "}":
            return A.Return(None, loc=t[SRC].loc(t[P]))
        return A.Return(self.parse_expression(), loc=t[SRC].loc(t[P]))

    def parse_delete(self, t: tuple) -> A.Stmt:
        return A.Delete(self.parse_expression(), loc=t[SRC].loc(t[P]))

    def parse_break(self, t: tuple) -> A.Stmt:
        return A.Break(loc=t[SRC].loc(t[P]))

    def parse_continue(self, t: tuple) -> A.Stmt:
        return A.Continue(loc=t[SRC].loc(t[P]))

    def parse_next(self, t: tuple) -> A.Stmt:
        return A.Next(loc=t[SRC].loc(t[P]))

    # ------------------------------------------------------------ expressions
    def parse_expression(self) -> A.Expr:
        """assignment (right-assoc): ternary [ASSIGN_OP expression]."""
        i = self.i
        ks = self.ks
        k = ks[i]
        # Fast paths: a lone identifier or number that nothing can continue,
        # and an assignment to a plain name.
        if k == IDENT or k == NUMBER:
            toks = self.toks
            nt = toks[i + 1]
            nk = nt[K]
            if nk not in CONTINUES and not (nk == IDENT and _all_dollars(nt[T])):
                t = toks[i]
                if k == NUMBER:
                    self.i = i + 1
                    return A.Number(self._number(t), loc=t[SRC].loc(t[P]))
                name = t[T]
                if name[0] != "$" and name not in PRINT_FAMILY:
                    self.i = i + 1
                    return A.Symbol(name, loc=t[SRC].loc(t[P]))
            elif nk in ASSIGN_OPS and k == IDENT:
                # "name = ...": the left side is a plain symbol.
                t = toks[i]
                name = t[T]
                if name[0] != "$" and name not in PRINT_FAMILY:
                    self.i = i + 2
                    right = self.parse_expression()
                    return A.Assign(nk, A.Symbol(name, loc=t[SRC].loc(t[P])), right,
                                    loc=nt[SRC].loc(nt[P]))
        left = self.parse_ternary()
        t = self.toks[self.i]
        if t[K] in ASSIGN_OPS:
            self.i += 1
            right = self.parse_expression()
            return A.Assign(t[K], left, right, loc=t[SRC].loc(t[P]))
        return left

    def parse_ternary(self) -> A.Expr:
        cond = self.parse_logical(1)
        t = self.toks[self.i]
        if t[K] != "?":
            return cond
        self.i += 1
        then = self.parse_expression()
        self._close(":")
        else_ = self.parse_ternary() if self.v40 else self.parse_expression()
        return A.Ternary(cond, then, else_, loc=t[SRC].loc(t[P]))

    def parse_logical(self, min_level: int) -> A.Expr:
        """|| && | ^ & by precedence climbing; operands are array_in."""
        left = self.parse_array_in()
        ks = self.ks
        while True:
            k = ks[self.i]
            level = LOGICAL.get(k)
            if level is None or level < min_level:
                return left
            t = self.toks[self.i]
            self.i += 1
            right = self.parse_logical(level + 1)
            loc = t[SRC].loc(t[P])
            if k in LOGICAL_NODE:
                left = A.Logical(k, left, right, loc=loc)
            else:
                left = A.Binary(k, left, right, loc=loc)

    def parse_array_in(self) -> A.Expr:
        """'[' (comparison | '*'), ... ']' 'in' A  |  comparison ['in' A]."""
        ks = self.ks
        if ks[self.i] != "[":
            left = self.parse_comparison()
            t = self.toks[self.i]
            if t[K] != "in":
                return left
            self.i += 1
            return A.InArray([left], self.parse_indexable(), loc=t[SRC].loc(t[P]))
        self.i += 1
        indexes: list[A.Expr] = []
        while True:
            if ks[self.i] == "*":
                indexes.append(A.Wildcard(loc=self.loc(self.toks[self.i])))
                self.i += 1
            else:
                indexes.append(self.parse_comparison())
            k = ks[self.i]
            if k == ",":
                self.i += 1
                continue
            if k == "]":
                self.i += 1
                break
            raise self.fail("expected ',' or ']'")
        t = self.toks[self.i]
        if t[K] == "in":
            self.i += 1
            return A.InArray(indexes, self.parse_indexable(), loc=t[SRC].loc(t[P]))
        if len(indexes) == 1:
            return indexes[0]
        raise self.fail("unexpected comma-separated expression list")

    def parse_comparison(self) -> A.Expr:
        left = self.parse_arith(1)
        ks = self.ks
        k = ks[self.i]
        if k == "=~" or k == "!~":
            t = self.toks[self.i]
            self.i += 1
            value, rx = self.parse_literal_string()
            return A.Binary(k, left, A.String(value, loc=rx[SRC].loc(rx[P])), loc=t[SRC].loc(t[P]))
        while k in COMPARE_OPS:
            t = self.toks[self.i]
            self.i += 1
            left = A.Binary(k, left, self.parse_arith(1), loc=t[SRC].loc(t[P]))
            k = ks[self.i]
        return left

    def parse_arith(self, min_level: int) -> A.Expr:
        """<< >> >>>, then '.', then + -, then * / % (all left-associative)."""
        left = self.parse_unary()
        ks = self.ks
        while True:
            k = ks[self.i]
            level = ARITH.get(k)
            if level is None or level < min_level:
                return left
            t = self.toks[self.i]
            self.i += 1
            right = self.parse_arith(level + 1)
            left = A.Binary(k, left, right, loc=t[SRC].loc(t[P]))

    def parse_unary(self) -> A.Expr:
        t = self.toks[self.i]
        k = t[K]
        if k == "+" or k == "-" or k == "!" or k == "~":
            self.i += 1
            self.enter()
            operand = self.parse_unary()
            self.depth -= 1
            return A.Unary(k, operand, loc=t[SRC].loc(t[P]))
        if k == "++" or k == "--":
            self.i += 1
            return A.IncDec(k, True, self.parse_dwarf_value(), loc=t[SRC].loc(t[P]))
        value = self.parse_dwarf_value()
        t = self.toks[self.i]
        k = t[K]
        if k == "++" or k == "--":
            self.i += 1
            return A.IncDec(k, False, value, loc=t[SRC].loc(t[P]))
        return value

    def parse_dwarf_value(self) -> A.Expr:
        ks, toks = self.ks, self.toks
        addr: Optional[tuple] = None
        if ks[self.i] == "&":
            addr = toks[self.i]
            self.i += 1
        t = toks[self.i]
        k = t[K]
        tsym: Optional[A.Expr] = None
        if k == IDENT and t[T][0] == "$":
            self.i += 1
            expr = tsym = A.TargetSymbol(t[T], loc=t[SRC].loc(t[P]))
        elif k == "@cast":
            expr = tsym = self.parse_cast_op()
        elif k == "@var":
            expr = tsym = self.parse_atvar_op()
        elif addr is not None and not self.v26:
            raise self.fail("expected @cast, @var or $var")
        else:
            expr = self.parse_value()
            if addr is not None and _is_target(expr):
                tsym = expr
                if expr.addressof:  # type: ignore[union-attr]
                    raise self.fail("cannot take address more than once", addr, at=True)
        if tsym is None and self.v26:
            k = ks[self.i]
            if addr is not None or k == "->" or k == "[" or (
                    k == IDENT and _all_dollars(toks[self.i][T])):
                at = addr if addr is not None else toks[self.i]
                expr = tsym = A.AtOp("autocast", [expr], loc=at[SRC].loc(at[P]))
        if tsym is not None:
            tsym.addressof = addr is not None  # type: ignore[union-attr]
            self.parse_target_components(tsym)
        return expr

    def parse_target_components(self, e: A.Expr) -> None:
        ks, toks = self.ks, self.toks
        pprint = False
        comps: list[A.TargetComponent] = e.components  # type: ignore[union-attr]
        if isinstance(e, A.TargetSymbol):
            base = e.name.rstrip("$")
            if len(base) > 1 and base != e.name and not _all_dollars(e.name):
                e.pretty = e.name[len(base):]
                e.name = base
                pprint = True
        while not pprint:
            k = ks[self.i]
            if k == "->":
                t = toks[self.i]
                self.i += 1
                m = self.next()
                if m[K] != IDENT and not m[K][0].isalpha():
                    raise self.fail("expected identifier or keyword", m)
                member = m[T]
                stripped = member.rstrip("$")
                if stripped != member:
                    e.pretty = member[len(stripped):]  # type: ignore[union-attr]
                    member = stripped
                    pprint = True
                if member:
                    comps.append(A.TargetComponent("member", member, loc=t[SRC].loc(t[P])))
            elif k == "[":
                t = toks[self.i]
                self.i += 1
                index = self.parse_expression()
                comps.append(A.TargetComponent("index", index=index, loc=t[SRC].loc(t[P])))
                self.expect_op("]")
            else:
                break
        if not pprint:
            t = toks[self.i]
            if t[K] == IDENT and _all_dollars(t[T]):
                self.i += 1
                e.pretty = t[T]  # type: ignore[union-attr]
                pprint = True
        if pprint and ks[self.i] in ("->", "["):
            raise self.fail("-> and [ are not accepted for a pretty-printing variable")

    def parse_value(self) -> A.Expr:
        t = self.toks[self.i]
        k = t[K]
        if k == IDENT or k[0] == "@":
            return self.parse_symbol()
        if k == NUMBER:
            self.i += 1
            return A.Number(self._number(t), loc=t[SRC].loc(t[P]))
        if k == STRING:
            self.i += 1
            return A.String(self.string_literals(t), loc=t[SRC].loc(t[P]))
        if k == "(":
            self.i += 1
            self.enter()
            e = self.parse_expression()
            self.depth -= 1
            self._close(")")
            return e
        if k == EMBED:
            if not self.privileged:
                raise self.fail(EMBED_EXPR_DENIED, t, skip=False)
            self.i += 1
            return A.EmbeddedExpr(t[T], loc=t[SRC].loc(t[P]))
        if k == EOF:
            raise self.fail("expected value", None)
        return self.parse_literal()

    def parse_indexable(self) -> A.Expr:
        t = self.next()
        k = t[K]
        if k != IDENT and k[0] != "@":
            raise self.fail("expected identifier or statistical operation", t)
        if k == "@hist_linear" or k == "@hist_log":
            return self.parse_hist(t)
        return A.Symbol(t[T], loc=t[SRC].loc(t[P]))

    def parse_hist(self, t: tuple) -> A.HistOp:
        self.expect_op("(")
        stat = self.parse_expression()
        params: list[A.Expr] = []
        if t[K] == "@hist_linear":
            for _ in range(3):
                self.expect_op(",")
                value, nt = self.expect_number()
                params.append(A.Number(value, loc=nt[SRC].loc(nt[P])))
        self.expect_op(")")
        return A.HistOp(t[K][6:], stat, params, loc=t[SRC].loc(t[P]))

    def parse_symbol(self) -> A.Expr:
        """var, array[index], func(args), printf(...), @operators."""
        t = self.toks[self.i]
        self.i += 1
        self.last = t
        k = t[K]
        name = t[T]
        ks = self.ks
        loc = t[SRC].loc(t[P])
        hop: Optional[A.HistOp] = None
        base: A.Expr
        if k == "@hist_linear" or k == "@hist_log":
            base = hop = self.parse_hist(t)
        elif k[0] == "@":
            return self.parse_at_operator(t, loc)
        elif name in PRINT_FAMILY:
            return self.parse_print(t, loc)
        elif ks[self.i] == "(":
            self.i += 1
            args: list[A.Expr] = []
            if ks[self.i] == ")":
                self.i += 1
                return A.Call(name, args, loc=loc)
            while True:
                args.append(self.parse_expression())
                if self.expect_op_any(")", ",") == ")":
                    return A.Call(name, args, loc=loc)
        else:
            base = A.Symbol(name, loc=loc)
        if ks[self.i] == "[":
            self.i += 1
            indexes: list[A.Expr] = []
            while True:
                if ks[self.i] == "*":
                    indexes.append(A.Wildcard(loc=self.loc(self.toks[self.i])))
                    self.i += 1
                else:
                    indexes.append(self.parse_expression())
                if self.expect_op_any("]", ",") == "]":
                    return A.Index(base, indexes, loc=loc)
        if hop is not None:
            raise self.fail("base histogram operator where expression expected", t, at=True)
        return base

    def parse_at_operator(self, t: tuple, loc: Loc) -> A.Expr:
        k = t[K]
        ks = self.ks
        if k == "@defined" or k == "@entry":
            self.expect_op("(")
            operand = self.parse_expression()
            self.expect_op(")")
            return A.AtOp(k[1:], [operand], loc=loc)
        if k == "@probewrite":
            self.expect_op("(")
            v = self.expect_ident()
            self.expect_op(")")
            return A.AtOp("probewrite", [A.Symbol(v[T], loc=v[SRC].loc(v[P]))], loc=loc)
        if k == "@const":
            if not self.privileged:
                raise self.fail("using @const operator not permitted; need stap -g", t,
                                skip=False)
            self.expect_op("(")
            value = self.expect_string()
            if not value:
                raise self.fail("expected non-empty string", self.toks[self.i])
            self.expect_op(")")
            return A.AtOp("const", strings=[value], loc=loc)
        if k == "@perf":
            self.expect_op("(")
            value, _ = self.parse_literal_string()
            if not value:
                raise self.fail("expected non-empty string", self.toks[self.i])
            self.expect_op(")")
            return A.AtOp("perf", strings=[value], loc=loc)
        if self.v40 and k in ("@kregister", "@uregister"):
            if k == "@kregister" and not self.privileged:
                raise self.fail("using @kregister operator not permitted; need stap -g", t,
                                skip=False)
            self.expect_op("(")
            value, nt = self.expect_number()
            self.expect_op(")")
            return A.AtOp(k[1:], [A.Number(value, loc=nt[SRC].loc(nt[P]))], loc=loc)
        if self.v40 and k in ("@kderef", "@uderef"):
            if k == "@kderef" and not self.privileged:
                raise self.fail("using @kderef operator not permitted; need stap -g", t,
                                skip=False)
            self.expect_op("(")
            value, nt = self.expect_number()
            self.expect_op(",")
            addr = self.parse_expression()
            self.expect_op(")")
            return A.AtOp(k[1:], [A.Number(value, loc=nt[SRC].loc(nt[P])), addr], loc=loc)
        if self.v55 and k == "@enum":
            self.expect_op("(")
            value = self.expect_string()
            if not value:
                raise self.fail("expected non-empty string", self.toks[self.i])
            self.expect_op(")")
            return A.AtOp("enum", strings=[value], loc=loc)
        if self.v56 and k == "@enumname":
            self.expect_op("(")
            operand = self.parse_expression()
            strings: list[str] = []
            while ks[self.i] == "," and len(strings) < 2:
                self.i += 1
                strings.append(self.expect_string())
            self.expect_op(")")
            return A.AtOp("enumname", [operand], strings, loc=loc)
        if k in STAT_OPS:
            max_params = 1 if k == "@variance" else 0
            self.expect_op("(")
            stat = self.parse_expression()
            params: list[A.Expr] = []
            while True:
                u = self.next()
                if u[K] == ")":
                    break
                if u[K] == ",":
                    if len(params) >= max_params:
                        n = max_params + 1
                        raise self.fail(f"not more than {n} parameter{'s' if n != 1 else ''} "
                                        "allowed", u, at=True)
                    value, nt = self.expect_number()
                    params.append(A.Number(value, loc=nt[SRC].loc(nt[P])))
            return A.StatOp(STAT_OPS[k], stat, params, loc=loc)
        raise self.fail(f"unknown operator {k}", t)

    def parse_print(self, t: tuple, loc: Loc) -> A.Expr:
        """The print family: printf needs a literal format, printd a literal
        delimiter and two values, print/sprint/print_char one argument."""
        name = t[T]
        ks = self.ks
        self.expect_op("(")
        args: list[A.Expr] = []
        if name in ("print", "println", "sprint", "sprintln") and \
                ks[self.i] in ("@hist_linear", "@hist_log"):
            ht = self.next()
            hop = self.parse_hist(ht)
            if ks[self.i] != "[":
                args.append(hop)
            else:
                self.expect_op("[")
                index = self.parse_expression()
                self.expect_op("]")
                args.append(A.Index(hop, [index], loc=ht[SRC].loc(ht[P])))
                while ks[self.i] != ")":
                    self.expect_op_any(",", ")")
                    args.append(self.parse_expression())
        else:
            min_args = 0
            consumed = False
            if name.endswith("printf"):
                value, st = self.parse_literal_string()
                args.append(A.String(value, loc=st[SRC].loc(st[P])))
                consumed = True
            elif name.startswith(("printd", "sprintd")):
                value, st = self.parse_literal_string()
                args.append(A.String(value, loc=st[SRC].loc(st[P])))
                consumed = True
                min_args = 2
            elif not name.endswith("ln"):
                min_args = 1
            while min_args or ks[self.i] != ")":
                if consumed:
                    self.expect_op_any(",", ")")
                args.append(self.parse_expression())
                consumed = True
                if min_args:
                    min_args -= 1
        self.expect_op(")")
        return A.Call(name, args, loc=loc)

    def parse_cast_op(self) -> A.AtOp:
        t = self.next()
        self.expect_op("(")
        operand = self.parse_expression()
        self.expect_op(",")
        type_name = self.expect_string()
        if not type_name:
            raise self.fail("expected non-empty string", self.toks[self.i])
        strings = [type_name]
        if self.ks[self.i] == ",":
            self.i += 1
            strings.append(self.expect_string())
        self.expect_op(")")
        return A.AtOp("cast", [operand], strings, loc=t[SRC].loc(t[P]))

    def parse_atvar_op(self) -> A.AtOp:
        t = self.next()
        self.expect_op("(")
        strings = [self.expect_string()]
        if self.ks[self.i] == ",":
            self.i += 1
            strings.append(self.expect_string())
        self.expect_op(")")
        return A.AtOp("var", strings=strings, loc=t[SRC].loc(t[P]))


_STATEMENTS = {
    "if": Parser.parse_if, "while": Parser.parse_while, "for": Parser.parse_for,
    "foreach": Parser.parse_foreach, "return": Parser.parse_return,
    "delete": Parser.parse_delete, "try": Parser.parse_try, "break": Parser.parse_break,
    "continue": Parser.parse_continue, "next": Parser.parse_next,
}


# ---------------------------------------------------------------- public API
def _compat(pp: Optional[PPContext], compatible: Optional[str]) -> tuple[PPContext, str]:
    ctx = pp or PPContext()
    if compatible is None:
        compatible = ctx.systemtap_v or DEFAULT_COMPATIBLE
    elif ctx.systemtap_v != compatible:
        ctx = PPContext(**{**ctx.__dict__, "systemtap_v": compatible})
    return ctx, compatible


def tokens_of(path: str, text: str, *, args: Optional[list[str]] = None,
              pp: Optional[PPContext] = None, library_macros: Optional[dict] = None,
              compatible: Optional[str] = None, check_compatible: bool = True,
              warnings: Optional[list[str]] = None) -> tuple[list, list, bool, Preprocessor]:
    """Lex and preprocess: (keys, toks, saw_tokens, preprocessor)."""
    ctx, compatible = _compat(pp, compatible)
    private_kw = not check_compatible or strverscmp(compatible, "3.0") >= 0
    src = Source(path, text)
    keys, toks, saw = scan(src, args, private_keyword=private_kw, warnings=warnings)
    pre = Preprocessor(keys, toks, ctx, library_macros, warnings, compatible, check_compatible)
    if "%" in text or "@" in text:
        keys, toks = pre.run()
    return keys, toks, saw, pre


def parse_file(path: str, text: str, *, tapset: bool = False, guru: bool = False,
               args: Optional[list[str]] = None, pp: Optional[PPContext] = None,
               library_macros: Optional[dict] = None, compatible: Optional[str] = None,
               warnings: Optional[list[str]] = None) -> A.File:
    """Parse one script or tapset file; raises ParseErrors on any parse error.

    ``compatible`` is stap's ``--compatible`` version (default: the
    PPContext's ``systemtap_v``, "5.6"); tapset files ignore its language
    gates, as stap's own library does, but ``%( systemtap_v %)`` tests it.
    """
    register_source(path, text)
    ctx, compatible = _compat(pp, compatible)
    # Building a tree makes no reference cycles; the cyclic collector would
    # only rescan the growing heap (a third of the parse time).
    gc_was_enabled = gc.isenabled()
    gc.disable()
    old_limit = sys.getrecursionlimit()
    if old_limit < RECURSION_LIMIT:
        sys.setrecursionlimit(RECURSION_LIMIT)
    try:
        keys, toks, saw, _ = tokens_of(path, text, args=args, pp=ctx,
                                       library_macros=library_macros, compatible=compatible,
                                       check_compatible=not tapset, warnings=warnings)
        parser = Parser(path, keys, toks, privileged=guru or tapset, user_file=not tapset,
                        compatible=compatible, check_compatible=not tapset)
        tree, empty = parser.parse()
    finally:
        sys.setrecursionlimit(old_limit)
        if gc_was_enabled:
            gc.enable()
    tree.is_tapset = tapset
    errors = parser.errors
    if empty and not tapset:
        msg = (f"Input file '{path}' is empty after preprocessing." if saw
               else f"Input file '{path}' is empty.")
        raise ParseErrors(errors + [InputEmpty(msg)])
    if errors:
        raise ParseErrors(errors)
    return tree


def parse_stpm(path: str, text: str, *, args: Optional[list[str]] = None,
               pp: Optional[PPContext] = None,
               library_macros: Optional[dict] = None,
               compatible: Optional[str] = None) -> dict[str, Macro]:
    """A library macro file (.stpm): only @defines; returns its macros, marked global.

    library_macros are those already loaded; redefining one is an error.
    """
    register_source(path, text)
    ctx, compatible = _compat(pp, compatible)
    keys, toks, _, pre = tokens_of(path, text, args=args, pp=ctx, compatible=compatible,
                                   check_compatible=False)
    errors: list[StapError] = []
    for t in toks:
        if t[K] == PPERR:
            e: PPError = t[T]
            errors.append(ParseError(e.msg, e.tok, e.tok is not None, path, first=e.first))
            break
        if t[K] != EOF:
            errors.append(ParseError(f"unexpected token in library macro file '{path}'",
                                     t, True, path))
            break
    known = library_macros or {}
    if not errors:
        for name, macro in pre.macros.items():
            if name in known:
                errors.append(ParseError(f"duplicate definition of library macro '@{name}'",
                                         macro.tok, True, path, first=known[name].tok))
                break
    if errors:
        raise ParseErrors(errors)
    for macro in pre.macros.values():
        macro.library = True
    return dict(pre.macros)
