"""Pass 1, stage 3: recursive-descent parser, preprocessed tokens -> ast.File.

Grammar and precedence follow stap (reference §1.3-1.6). Methods are named
after the grammar rule they parse, lowest precedence first. Errors are
collected: after one, the parser skips to the next top-level keyword
(probe/global/private/function/%{) like stap, and all errors are raised
together as StapErrors.
"""
from __future__ import annotations

import re
from typing import Callable, Optional, Union

from codegen import ast as A
from codegen.ast import Loc
from codegen.errors import StapError, StapErrors, register_source
from codegen.lexer import Token, tokenize
from codegen.preprocess import Macro, PPContext, Preprocessor

ASSIGN_OPS = frozenset("= += -= *= /= %= <<= >>= &= ^= |= .= <<<".split())
COMPARE_OPS = frozenset("< > <= >= == !=".split())
STAT_OPS = {"@count": "count", "@sum": "sum", "@min": "min", "@max": "max",
            "@avg": "avg", "@variance": "variance"}
# @-operators whose operands are all string literals.
STRING_AT_OPS = frozenset(("@var", "@perf", "@const", "@enum"))
# @-operators with an expression first, then optional string literals.
EXPR_STRING_AT_OPS = frozenset(("@cast", "@enumname"))
EXPR_AT_OPS = frozenset(("@defined", "@entry", "@probewrite", "@kregister", "@uregister",
                         "@kderef", "@uderef"))
TOPLEVEL_KEYWORDS = frozenset(("probe", "global", "private", "function"))
EMBED_DENIED = "embedded code in unprivileged script; need stap -g"
INT_MAX = 2**31 - 1
_TARGET_NAME = re.compile(r"(\$+[^$]*)(\$*)")


class Parser:
    def __init__(self, path: str, pp: Preprocessor, *, tapset: bool, guru: bool) -> None:
        self.path = path
        self.pp = pp
        self.tapset = tapset
        self.privileged = guru or tapset
        self.buf: list[Token] = []
        self.last: Optional[Token] = None
        self.in_function = False
        self.errors: list[StapError] = []
        self.global_names: set[str] = set()     # duplicate check without a rescan

    # ------------------------------------------------------------ token access
    def _fill(self, n: int) -> None:
        while len(self.buf) <= n:
            if self.buf and self.buf[-1].kind == "eof":
                self.buf.append(self.buf[-1])
                continue
            tok = self.pp.next()
            # Macro expansion can make string literals adjacent: concatenate.
            if tok.kind == "string" and self.buf and self.buf[-1].kind == "string":
                prev = self.buf[-1]
                self.buf[-1] = Token("string", prev.text + tok.text, prev.loc,
                                     str(prev.value) + str(tok.value), prev.spaced)
                continue
            self.buf.append(tok)

    def peek(self, n: int = 0) -> Token:
        # One extra token is kept so that a following string can merge first.
        if len(self.buf) <= n + 1:
            self._fill(n + 1)
        return self.buf[n]

    def next(self) -> Token:
        tok = self.peek()
        self.buf.pop(0)
        self.last = tok
        return tok

    def error(self, msg: str, tok: Optional[Token] = None) -> StapError:
        tok = tok or self.peek()
        if tok.kind == "eof":
            return StapError("parse", msg, tok.loc, token="EOF")
        return StapError("parse", msg, tok.loc, token=tok.describe())

    def check(self, tok: Token) -> Token:
        """Lexical errors (junk, bad numbers) surface where the token is used."""
        if tok.error:
            raise self.error(tok.error, tok)
        return tok

    def is_op(self, text: str, n: int = 0) -> bool:
        tok = self.buf[n] if len(self.buf) > n + 1 else self.peek(n)
        return tok.kind == "operator" and tok.text == text

    def is_kw(self, text: str, n: int = 0) -> bool:
        tok = self.peek(n)
        return tok.kind == "keyword" and tok.text == text

    def expect_op(self, text: str) -> Token:
        tok = self.peek()
        if not (tok.kind == "operator" and tok.text == text):
            self.check(tok)
            raise self.error(f"expected '{text}'")
        return self.next()

    def expect_kw(self, text: str) -> Token:
        tok = self.peek()
        if not (tok.kind == "keyword" and tok.text == text):
            self.check(tok)
            raise self.error(f"expected '{text}'")
        return self.next()

    def expect_ident(self) -> Token:
        tok = self.peek()
        if tok.kind != "identifier":
            self.check(tok)
            raise self.error("expected identifier")
        return self.next()

    # ------------------------------------------------------------ top level
    def parse(self) -> A.File:
        f = A.File(self.path, is_tapset=self.tapset, loc=Loc(self.path, 1, 1))
        while True:
            start: Optional[Token] = None
            try:
                start = self.peek()
                if start.kind == "eof":
                    break
                self.parse_toplevel(f)
            except StapError as e:
                self.errors.append(e)
                self.recover(start)
        if self.errors:
            raise StapErrors(self.errors)
        return f

    def recover(self, start: Optional[Token]) -> None:
        """Skip to the next probe/global/private/function/%{ (stap's recovery)."""
        while True:
            try:
                tok = self.peek()
            except StapError as e:
                # A preprocessor error while skipping is still an error to report.
                self.errors.append(e)
                continue
            if tok.kind == "eof":
                return
            # Resume at a starter, unless nothing was consumed since the failure began.
            if tok is not start and (tok.kind == "embedded" or
                                     (tok.kind == "keyword" and tok.text in TOPLEVEL_KEYWORDS)):
                return
            start = None
            self.next()

    def parse_toplevel(self, f: A.File) -> None:
        tok = self.peek()
        if tok.is_kw("probe"):
            self.next()
            self.parse_probe(f, tok)
        elif tok.is_kw("global"):
            self.next()
            self.parse_global(f, private=False)
        elif tok.is_kw("private"):
            self.next()
            if self.is_kw("global"):
                self.next()
                self.parse_global(f, private=True)
            elif self.is_kw("function"):
                start = self.next()
                f.functions.append(self.parse_function(start, private=True))
            else:
                self.parse_global(f, private=True)
        elif tok.is_kw("function"):
            self.next()
            f.functions.append(self.parse_function(tok, private=False))
        elif tok.kind == "embedded":
            self.next()
            self.check_embedded(tok)
            f.embeds.append(A.Embed(tok.text, loc=tok.loc))
        else:
            self.check(tok)
            raise self.error("expected 'probe', 'global', 'private', 'function', or '%{'")

    def check_embedded(self, tok: Token) -> None:
        if not self.privileged:
            raise self.error(EMBED_DENIED, tok)

    # probe PP[, PP]* { body }  |  probe NAME[, NAME]* (= | +=) PP[, PP]* { body } [, { body }]
    def parse_probe(self, f: A.File, start: Token) -> None:
        points = self.parse_probe_points()
        if self.is_op("=") or self.is_op("+="):
            op = self.next().text
            for name in points:
                if name.optional or name.sufficient or name.condition is not None:
                    raise self.error("probe point alias name cannot be optional nor "
                                     "sufficient nor conditional", start)
            targets = self.parse_probe_points()
            body = self.parse_block()
            f.aliases.append(A.ProbeAlias(points, targets, body, epilogue=(op == "+="),
                                          loc=start.loc))
            if op == "=" and self.is_op(",") and self.is_op("{", 1):
                self.next()
                epi = self.parse_block()
                f.aliases.append(A.ProbeAlias(points, targets, epi, epilogue=True,
                                              loc=start.loc))
            return
        body = self.parse_block()
        f.probes.append(A.Probe(points, body, loc=start.loc))

    def parse_probe_points(self) -> list[A.ProbePoint]:
        points: list[A.ProbePoint] = []
        while True:
            loc = self.peek().loc
            for comps in self.parse_pp_sequence(in_braces=False):
                points.append(A.ProbePoint(comps, loc=loc))
            # Suffixes apply to every expansion of this (possibly braced) point.
            optional = sufficient = False
            cond: Optional[A.Expr] = None
            if self.is_op("?"):
                self.next()
                optional = True
            elif self.is_op("!"):
                self.next()
                optional = sufficient = True
            if self.is_kw("if"):
                self.next()
                self.expect_op("(")
                cond = self.parse_expression()
                self.expect_op(")")
            if optional or cond is not None:
                for p in points:
                    if p.loc == loc:
                        p.optional, p.sufficient, p.condition = optional, sufficient, cond
            if not self.is_op(","):
                return points
            # '{' after ',' starts an alias epilogue, not a probe point.
            if self.is_op("{", 1):
                return points
            self.next()

    # seq := part ('.' part)* ; part := '{' seq (',' seq)* '}' | component
    def parse_pp_sequence(self, in_braces: bool) -> list[list[A.Component]]:
        alternatives: list[list[A.Component]] = [[]]
        while True:
            if self.is_op("{"):
                self.next()
                options: list[list[A.Component]] = []
                while True:
                    options.extend(self.parse_pp_sequence(in_braces=True))
                    if self.is_op(","):
                        self.next()
                        continue
                    self.expect_op("}")
                    break
                alternatives = [a + o for a in alternatives for o in options]
            else:
                comp = self.parse_component()
                alternatives = [a + [comp] for a in alternatives]
            if self.is_op("."):
                self.next()
                continue
            if in_braces and (self.is_op("?") or self.is_op("!") or self.is_kw("if")):
                raise self.error("'?', '!' or condition must only be specified in suffix")
            return alternatives

    def parse_component(self) -> A.Component:
        tok = self.peek()
        if not self._pp_name_piece(tok):
            self.check(tok)
            raise self.error("expected identifier or '*'")
        self.next()
        name = tok.text
        # Glue adjacent pieces written without whitespace: sys*call, **, foo*.
        while self._pp_name_piece(self.peek()) and not self.peek().spaced:
            name += self.next().text
        arg: Optional[Union[A.Number, A.String]] = None
        if self.is_op("("):
            self.next()
            arg = self.parse_literal(allow_negative=True)
            self.expect_op(")")
        return A.Component(name, arg, loc=tok.loc)

    @staticmethod
    def _pp_name_piece(tok: Token) -> bool:
        return tok.kind in ("identifier", "keyword") or tok.is_op("*")

    def parse_literal(self, allow_negative: bool) -> Union[A.Number, A.String]:
        tok = self.peek()
        neg = False
        if allow_negative and tok.is_op("-") and self.peek(1).kind == "number":
            neg = True
            self.next()
            tok = self.peek()
        self.check(tok)
        if tok.kind == "number":
            self.next()
            value = int(tok.value or 0)
            if neg:
                value = -value
                # -(2^63) fits, anything that wrapped past it does not.
                if value > 2**63 - 1 or value < -2**63:
                    raise self.error("number invalid or out of range", tok)
            return A.Number(value, loc=tok.loc)
        if tok.kind == "string" and not neg:
            self.next()
            return A.String(str(tok.value), loc=tok.loc)
        raise self.error("expected literal string or number")

    # global a, b[1000], c%, d%[50], e = 5, f = "x" [;]
    def parse_global(self, f: A.File, private: bool) -> None:
        while True:
            name = self.expect_ident()
            if name.text in self.global_names:
                raise self.error("duplicate global name", name)
            g = A.Global(name.text, private=private, loc=name.loc)
            if self.is_op("%"):
                self.next()
                g.wrap = True
            if self.is_op("["):
                self.next()
                size = self.peek()
                self.check(size)
                if size.kind != "number":
                    raise self.error("expected number")
                self.next()
                if not 1 <= int(size.value or 0) <= INT_MAX:
                    raise self.error("array size out of range", size)
                g.size = int(size.value or 0)
                self.expect_op("]")
                if self.is_op("%"):
                    self.next()
                    g.wrap = True
            if self.is_op("="):
                eq = self.next()
                if g.size is not None or g.wrap:
                    raise self.error("only scalar globals can be initialized", eq)
                g.init = self.parse_literal(allow_negative=True)
            f.globals.append(g)
            self.global_names.add(g.name)
            if not self.is_op(","):
                break
            self.next()
        if self.is_op(";"):
            self.next()

    # function NAME[:type] (a[:type], ...) [:priority] { ... } | %{ C %}
    def parse_function(self, start: Token, private: bool) -> A.Function:
        name = self.expect_ident()
        ret = self.parse_opt_type()
        self.expect_op("(")
        params: list[A.Param] = []
        if not self.is_op(")"):
            while True:
                p = self.expect_ident()
                if any(q.name == p.text for q in params):
                    raise self.error("duplicate argument name", p)
                params.append(A.Param(p.text, self.parse_opt_type(), loc=p.loc))
                if self.is_op(")"):
                    break
                self.expect_op(",")
        self.expect_op(")")
        priority = 1 if self.tapset else 0
        if self.is_op(":"):
            self.next()
            lit = self.peek()
            prio = self.parse_literal(allow_negative=True)
            if not isinstance(prio, A.Number):
                raise self.error("expected number", lit)
            if prio.value <= 0:
                raise self.error("specified priority must be > 0", lit)
            priority = prio.value
        body: Union[A.Block, A.EmbeddedExpr]
        tok = self.peek()
        if tok.kind == "embedded":
            self.check_embedded(tok)
            self.next()
            body = A.EmbeddedExpr(tok.text, loc=tok.loc)
        else:
            self.in_function = True
            try:
                body = self.parse_block()
            finally:
                self.in_function = False
        return A.Function(name.text, params, body, ret, priority, private, loc=start.loc)

    def parse_opt_type(self) -> Optional[str]:
        if not self.is_op(":") or not (self.is_kw("long", 1) or self.is_kw("string", 1)):
            return None
        self.next()
        return self.next().text

    # ------------------------------------------------------------ statements
    def parse_block(self) -> A.Block:
        start = self.expect_op("{")
        stmts: list[A.Stmt] = []
        while not self.is_op("}"):
            if self.peek().kind == "eof":
                raise self.error("expected '}'")
            stmts.append(self.parse_statement())
        self.next()
        return A.Block(stmts, loc=start.loc)

    def parse_statement(self) -> A.Stmt:
        tok = self.peek()
        if tok.is_op("{"):
            return self.parse_block()
        if tok.is_op(";"):
            self.next()
            return A.NullStmt(loc=tok.loc)
        handler: Optional[Callable[[Token], A.Stmt]] = None
        if tok.kind == "keyword":
            handler = self._STATEMENTS.get(tok.text)
        if handler is not None:
            self.next()
            stmt = handler(self, tok)
        else:
            stmt = A.ExprStmt(self.parse_expression(), loc=tok.loc)
        if not isinstance(stmt, (A.Block, A.If, A.While, A.For, A.Foreach, A.TryCatch)) \
                and self.is_op(";"):
            self.next()       # a trailing ';' belongs to the statement
        return stmt

    def parse_if(self, tok: Token) -> A.Stmt:
        self.expect_op("(")
        cond = self.parse_expression()
        self.expect_op(")")
        then = self.parse_statement()
        else_: Optional[A.Stmt] = None
        if self.is_kw("else"):
            self.next()
            else_ = self.parse_statement()
        return A.If(cond, then, else_, loc=tok.loc)

    def parse_while(self, tok: Token) -> A.Stmt:
        self.expect_op("(")
        cond = self.parse_expression()
        self.expect_op(")")
        return A.While(cond, self.parse_statement(), loc=tok.loc)

    def parse_for(self, tok: Token) -> A.Stmt:
        self.expect_op("(")
        init = None if self.is_op(";") else self.parse_expression()
        self.expect_op(";")
        cond = None if self.is_op(";") else self.parse_expression()
        self.expect_op(";")
        incr = None if self.is_op(")") else self.parse_expression()
        self.expect_op(")")
        return A.For(init, cond, incr, self.parse_statement(), loc=tok.loc)

    def _sort_mark(self) -> int:
        if self.is_op("+"):
            self.next()
            return 1
        if self.is_op("-"):
            self.next()
            return -1
        return 0

    # foreach ([v[+-] =] (k[+-] | [k1[+-], ...]) in A[slice] [@agg][+-] [limit e]) stmt
    def parse_foreach(self, tok: Token) -> A.Stmt:
        self.expect_op("(")
        sort_column: Optional[int] = None
        sort_dir = 0

        def set_sort(column: int, direction: int, at: Token) -> None:
            nonlocal sort_column, sort_dir
            if direction == 0:
                return
            if sort_column is not None:
                raise self.error("multiple sort directives", at)
            sort_column, sort_dir = column, direction

        value: Optional[A.Symbol] = None
        if self.peek().kind == "identifier" and (
                self.is_op("=", 1) or
                ((self.is_op("+", 1) or self.is_op("-", 1)) and self.is_op("=", 2))):
            v = self.next()
            value = A.Symbol(v.text, loc=v.loc)
            set_sort(0, self._sort_mark(), v)
            self.next()           # '='
        keys: list[A.Symbol] = []
        if self.is_op("["):
            self.next()
            while True:
                k = self.expect_ident()
                keys.append(A.Symbol(k.text, loc=k.loc))
                mark_tok = self.peek()
                set_sort(len(keys), self._sort_mark(), mark_tok)
                if self.is_op("]"):
                    break
                self.expect_op(",")
            self.next()
        else:
            k = self.expect_ident()
            keys.append(A.Symbol(k.text, loc=k.loc))
            mark_tok = self.peek()
            set_sort(1, self._sort_mark(), mark_tok)
        self.expect_kw("in")
        arr_tok = self.peek()
        array: A.Expr
        if arr_tok.kind == "operator" and arr_tok.text in ("@hist_linear", "@hist_log"):
            array = self.parse_value()
        else:
            a = self.expect_ident()
            array = A.Symbol(a.text, loc=a.loc)
        slice_: Optional[list[A.Expr]] = None
        if self.is_op("["):
            self.next()
            slice_ = self.parse_index_list()
        agg: Optional[str] = None
        at = self.peek()
        if at.kind == "operator" and at.text.startswith("@"):
            if at.text not in STAT_OPS:
                raise self.error("expected statistical operation")
            self.next()
            agg = STAT_OPS[at.text]
            mark = self.peek()
            direction = self._sort_mark()
            if direction == 0:
                raise self.error("expected sort directive")
            set_sort(0, direction, mark)
        else:
            set_sort(0, self._sort_mark(), at)
        limit: Optional[A.Expr] = None
        if self.is_kw("limit"):
            self.next()
            limit = self.parse_expression()
        self.expect_op(")")
        body = self.parse_statement()
        return A.Foreach(keys, value, array, body, slice_, sort_column, sort_dir, agg, limit,
                         loc=tok.loc)

    def parse_return(self, tok: Token) -> A.Stmt:
        if not self.in_function:
            raise self.error("found 'return' not in function context", tok)
        if self.is_op(";") or self.is_op("}"):
            return A.Return(None, loc=tok.loc)
        return A.Return(self.parse_expression(), loc=tok.loc)

    def parse_delete(self, tok: Token) -> A.Stmt:
        return A.Delete(self.parse_dwarf_value(), loc=tok.loc)

    def parse_try(self, tok: Token) -> A.Stmt:
        body = self.parse_block()
        self.expect_kw("catch")
        var: Optional[str] = None
        if self.is_op("("):
            self.next()
            var = self.expect_ident().text
            self.expect_op(")")
        return A.TryCatch(body, self.parse_block(), var, loc=tok.loc)

    def parse_simple(self, tok: Token) -> A.Stmt:
        cls = {"break": A.Break, "continue": A.Continue, "next": A.Next}[tok.text]
        return cls(loc=tok.loc)

    _STATEMENTS: dict[str, Callable[["Parser", Token], A.Stmt]] = {
        "if": parse_if, "while": parse_while, "for": parse_for, "foreach": parse_foreach,
        "return": parse_return, "delete": parse_delete, "try": parse_try,
        "break": parse_simple, "continue": parse_simple, "next": parse_simple,
    }

    # ------------------------------------------------------------ expressions
    def parse_expression(self) -> A.Expr:
        return self.parse_assignment()

    # assignment (right-assoc): ternary [ASSIGN_OP assignment]
    def parse_assignment(self) -> A.Expr:
        left = self.parse_ternary()
        tok = self.peek()
        if tok.kind == "operator" and tok.text in ASSIGN_OPS:
            self.next()
            right = self.parse_assignment()
            return A.Assign(tok.text, left, right, loc=tok.loc)
        return left

    # ternary: or ['?' expression ':' ternary]
    def parse_ternary(self) -> A.Expr:
        cond = self.parse_logical_or()
        if self.is_op("?"):
            tok = self.next()
            then = self.parse_expression()
            self.expect_op(":")
            return A.Ternary(cond, then, self.parse_ternary(), loc=tok.loc)
        return cond

    def parse_logical_or(self) -> A.Expr:
        left = self.parse_logical_and()
        while self.is_op("||"):
            tok = self.next()
            left = A.Logical("||", left, self.parse_logical_and(), loc=tok.loc)
        return left

    def parse_logical_and(self) -> A.Expr:
        left = self.parse_bit_or()
        while self.is_op("&&"):
            tok = self.next()
            left = A.Logical("&&", left, self.parse_bit_or(), loc=tok.loc)
        return left

    def parse_bit_or(self) -> A.Expr:
        left = self.parse_bit_xor()
        while self.is_op("|"):
            tok = self.next()
            left = A.Binary("|", left, self.parse_bit_xor(), loc=tok.loc)
        return left

    def parse_bit_xor(self) -> A.Expr:
        left = self.parse_bit_and()
        while self.is_op("^"):
            tok = self.next()
            left = A.Binary("^", left, self.parse_bit_and(), loc=tok.loc)
        return left

    def parse_bit_and(self) -> A.Expr:
        left = self.parse_array_in()
        while self.is_op("&"):
            tok = self.next()
            left = A.Binary("&", left, self.parse_array_in(), loc=tok.loc)
        return left

    # array_in: '[' index_list 'in' array | comparison ['in' array]
    def parse_array_in(self) -> A.Expr:
        if self.is_op("["):
            start = self.next()
            keys = self.parse_index_list()
            self.expect_kw("in")
            return A.InArray(keys, self.parse_array_name(), loc=start.loc)
        left = self.parse_comparison()
        if self.is_kw("in"):
            self.next()
            return A.InArray([left], self.parse_array_name(), loc=left.loc)
        return left

    def parse_array_name(self) -> A.Expr:
        tok = self.peek()
        if tok.kind == "operator" and tok.text in ("@hist_linear", "@hist_log"):
            return self.parse_value()
        name = self.expect_ident()
        return A.Symbol(name.text, loc=name.loc)

    def parse_index_list(self) -> list[A.Expr]:
        """After '[': expressions or '*', comma separated, through ']'."""
        out: list[A.Expr] = []
        while True:
            if self.is_op("*") and (self.is_op(",", 1) or self.is_op("]", 1)):
                star = self.next()
                out.append(A.Wildcard(loc=star.loc))
            else:
                out.append(self.parse_expression())
            if self.is_op("]"):
                self.next()
                return out
            self.expect_op(",")

    # comparison: shift ((< > <= >= == !=) shift)* | shift (=~ | !~) STRING
    def parse_comparison(self) -> A.Expr:
        left = self.parse_shift()
        if self.is_op("=~") or self.is_op("!~"):
            tok = self.next()
            rx = self.peek()
            self.check(rx)
            if rx.kind != "string":
                raise self.error("expected string literal")
            self.next()
            return A.Binary(tok.text, left, A.String(str(rx.value), loc=rx.loc), loc=tok.loc)
        while self.peek().kind == "operator" and self.peek().text in COMPARE_OPS:
            tok = self.next()
            left = A.Binary(tok.text, left, self.parse_shift(), loc=tok.loc)
        return left

    def parse_shift(self) -> A.Expr:
        left = self.parse_concatenation()
        while self.is_op("<<") or self.is_op(">>") or self.is_op(">>>"):
            tok = self.next()
            left = A.Binary(tok.text, left, self.parse_concatenation(), loc=tok.loc)
        return left

    # '.' binds looser than '+'/'-': a . b + c == a . (b + c)
    def parse_concatenation(self) -> A.Expr:
        left = self.parse_additive()
        while self.is_op("."):
            tok = self.next()
            left = A.Binary(".", left, self.parse_additive(), loc=tok.loc)
        return left

    def parse_additive(self) -> A.Expr:
        left = self.parse_multiplicative()
        while self.is_op("+") or self.is_op("-"):
            tok = self.next()
            left = A.Binary(tok.text, left, self.parse_multiplicative(), loc=tok.loc)
        return left

    def parse_multiplicative(self) -> A.Expr:
        left = self.parse_unary()
        while self.is_op("*") or self.is_op("/") or self.is_op("%"):
            tok = self.next()
            left = A.Binary(tok.text, left, self.parse_unary(), loc=tok.loc)
        return left

    def parse_unary(self) -> A.Expr:
        tok = self.peek()
        if tok.kind == "operator" and tok.text in ("+", "-", "!", "~"):
            self.next()
            return A.Unary(tok.text, self.parse_unary(), loc=tok.loc)
        return self.parse_crement()

    def parse_crement(self) -> A.Expr:
        tok = self.peek()
        if tok.is_op("++") or tok.is_op("--"):
            self.next()
            return A.IncDec(tok.text, True, self.parse_dwarf_value(), loc=tok.loc)
        value = self.parse_dwarf_value()
        tok = self.peek()
        if tok.is_op("++") or tok.is_op("--"):
            self.next()
            return A.IncDec(tok.text, False, value, loc=tok.loc)
        return value

    # dwarf_value: ['&'] value { '->' member | '[' index ']' } ['$' | '$$']
    def parse_dwarf_value(self) -> A.Expr:
        amp: Optional[Token] = None
        if self.is_op("&"):
            amp = self.next()
        value = self.parse_value()
        while self.is_op("->") or self.is_op("["):
            tok = self.next()
            if isinstance(value, A.HistOp) and tok.text == "[":
                value = A.Index(value, self.parse_index_list(), loc=tok.loc)
                continue
            comps = self._components_of(value, tok)
            if tok.text == "->":
                member = self.peek()
                if member.kind not in ("identifier", "keyword"):
                    raise self.error("expected field name")
                self.next()
                name = member.text.rstrip("$")
                if name != member.text:
                    self._set_pretty(value, member.text[len(name):])
                comps.append(A.TargetComponent("member", name, loc=member.loc))
            else:
                index = self.parse_expression()
                self.expect_op("]")
                comps.append(A.TargetComponent("index", index=index, loc=tok.loc))
            if not isinstance(value, (A.TargetSymbol, A.AtOp)):
                value = A.AtOp("autocast", [value], components=comps, loc=tok.loc)
        # A lone '$'/'$$' glued after ')' or ']' asks for pretty-printing.
        nxt = self.peek()
        if isinstance(value, (A.AtOp, A.TargetSymbol)) and nxt.kind == "identifier" \
                and not nxt.spaced \
                and nxt.text.strip("$") == "":
            self.next()
            self._set_pretty(value, nxt.text)
        if amp is not None:
            if isinstance(value, (A.TargetSymbol, A.AtOp)):
                value.addressof = True
            else:
                value = A.AtOp("autocast", [value], addressof=True, loc=amp.loc)
        return value

    def _components_of(self, value: A.Expr, tok: Token) -> list[A.TargetComponent]:
        if isinstance(value, A.TargetSymbol):
            return value.components
        if isinstance(value, A.AtOp) and value.op in ("cast", "var", "autocast"):
            return value.components
        return []          # a fresh autocast will take these

    @staticmethod
    def _set_pretty(value: A.Expr, pretty: str) -> None:
        if isinstance(value, (A.TargetSymbol, A.AtOp)):
            value.pretty = pretty

    def parse_value(self) -> A.Expr:
        tok = self.peek()
        self.check(tok)
        kind = tok.kind
        if kind == "operator":
            if tok.text == "(":
                self.next()
                e = self.parse_expression()
                self.expect_op(")")
                return e
            if tok.text.startswith("@"):
                return self.parse_at_operator()
        elif kind == "number":
            self.next()
            return A.Number(int(tok.value or 0), loc=tok.loc)
        elif kind == "string":
            self.next()
            return A.String(str(tok.value), loc=tok.loc)
        elif kind == "embedded":
            self.next()      # consumed first, so recovery resumes after it
            self.check_embedded(tok)
            return A.EmbeddedExpr(tok.text, loc=tok.loc)
        elif kind == "identifier":
            self.next()
            if tok.text.startswith("$"):
                # "$$vars" keeps its leading $s; a trailing $ or $$ asks for pretty-printing.
                m = _TARGET_NAME.match(tok.text)
                assert m is not None
                name = m.group(1)
                return A.TargetSymbol(name, pretty=tok.text[len(name):], loc=tok.loc)
            if self.is_op("("):
                self.next()
                args: list[A.Expr] = []
                if not self.is_op(")"):
                    while True:
                        args.append(self.parse_expression())
                        if self.is_op(")"):
                            break
                        self.expect_op(",")
                self.next()
                return A.Call(tok.text, args, loc=tok.loc)
            sym = A.Symbol(tok.text, loc=tok.loc)
            if self.is_op("["):
                self.next()
                return A.Index(sym, self.parse_index_list(), loc=tok.loc)
            return sym
        raise self.error("expected value")

    def _paren_args(self) -> list[Union[A.Expr, Token]]:
        """'(' arg, ... ')' where string literals stay tokens (some ops want raw strings)."""
        self.expect_op("(")
        out: list[Union[A.Expr, Token]] = []
        if self.is_op(")"):
            self.next()
            return out
        while True:
            out.append(self.parse_expression())
            if self.is_op(")"):
                self.next()
                return out
            self.expect_op(",")

    def _string_arg(self) -> str:
        tok = self.peek()
        self.check(tok)
        if tok.kind != "string":
            raise self.error("expected string")
        self.next()
        return str(tok.value)

    def parse_at_operator(self) -> A.Expr:
        tok = self.next()
        op = tok.text
        if op in STAT_OPS:
            self.expect_op("(")
            operand = self.parse_expression()
            extra: list[A.Expr] = []
            if op == "@variance" and self.is_op(","):
                self.next()
                extra.append(self.parse_expression())
            self.expect_op(")")
            return A.StatOp(STAT_OPS[op], operand, extra, loc=tok.loc)
        if op in ("@hist_linear", "@hist_log"):
            self.expect_op("(")
            operand = self.parse_expression()
            params: list[A.Expr] = []
            if op == "@hist_linear":
                for _ in range(3):
                    self.expect_op(",")
                    params.append(self.parse_expression())
            self.expect_op(")")
            return A.HistOp(op[6:], operand, params, loc=tok.loc)
        if op in STRING_AT_OPS:
            self.expect_op("(")
            strings = [self._string_arg()]
            while self.is_op(","):
                self.next()
                strings.append(self._string_arg())
            self.expect_op(")")
            return A.AtOp(op[1:], strings=strings, loc=tok.loc)
        if op in EXPR_STRING_AT_OPS:
            self.expect_op("(")
            expr = self.parse_expression()
            strings = []
            while self.is_op(","):
                self.next()
                strings.append(self._string_arg())
            self.expect_op(")")
            return A.AtOp(op[1:], [expr], strings, loc=tok.loc)
        if op in EXPR_AT_OPS:
            self.expect_op("(")
            args = [self.parse_expression()]
            while self.is_op(","):
                self.next()
                args.append(self.parse_expression())
            self.expect_op(")")
            return A.AtOp(op[1:], args, loc=tok.loc)
        raise self.error(f"unknown operator {op}", tok)


# ---------------------------------------------------------------- public API
def _preprocess(path: str, text: str, args: Optional[list[str]], pp: Optional[PPContext],
                library_macros: Optional[dict]) -> tuple[list[Token], Preprocessor]:
    register_source(path, text)
    tokens = tokenize(text, path, args)
    return tokens, Preprocessor(tokens, pp, library_macros)


def parse_file(path: str, text: str, *, tapset: bool = False, guru: bool = False,
               args: Optional[list[str]] = None, pp: Optional[PPContext] = None,
               library_macros: Optional[dict] = None) -> A.File:
    """Parse one script or tapset file; raises StapErrors on any parse error."""
    tokens, pre = _preprocess(path, text, args, pp, library_macros)
    if len(tokens) == 1 and not tapset:
        raise StapErrors([StapError("parse", f"Input file '{path}' is empty.")])
    parser = Parser(path, pre, tapset=tapset, guru=guru)
    try:
        first = parser.peek()
    except StapError as e:
        first = None
        parser.errors.append(e)
        parser.recover(None)
    if first is not None and first.kind == "eof" and not tapset:
        raise StapErrors([StapError("parse", f"Input file '{path}' is empty after "
                                    "preprocessing.")])
    return parser.parse()


def parse_stpm(path: str, text: str, *, args: Optional[list[str]] = None,
               pp: Optional[PPContext] = None,
               library_macros: Optional[dict] = None) -> dict[str, Macro]:
    """A library macro file (.stpm): only @defines; returns its macros, marked global.

    library_macros are those already loaded; redefining one is an error.
    """
    tokens, pre = _preprocess(path, text, args, pp, None)
    errors: list[StapError] = []
    while True:
        try:
            tok = pre.next()
        except StapError as e:
            errors.append(e)
            continue
        if tok.kind == "eof":
            break
        errors.append(StapError("parse", "unexpected token in library macro file",
                                tok.loc, token=tok.describe()))
    known = library_macros or {}
    for name, macro in pre.macros.items():
        if name in known:
            errors.append(StapError("parse", f"attempt to redefine library macro '@{name}'",
                                    Loc(path, macro.body[0].loc.line if macro.body else 1, 1)))
        macro.library = True
    if errors:
        raise StapErrors(errors)
    return dict(pre.macros)
