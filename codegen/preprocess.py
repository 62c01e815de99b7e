"""Pass 1, stage 2: the token-stream preprocessor (reference §1.2).

Two layers, as in stap: ``@define`` macros are recorded and expanded, and
the expanded stream feeds ``%( COND %? ... %: ... %)`` conditionals. The
preprocessor is a lazy stream (``next()``) so that an error raised here
surfaces as a parse error at the parser's current position and the parser
can recover and keep going.

Tokens of a skipped branch are only counted for ``%(``/``%)`` nesting:
they are never parsed, so lexical junk there is harmless, and ``@define``s
there are ignored (PR18462 behaviour).
"""
from __future__ import annotations

import fnmatch
import re
from dataclasses import dataclass, field
from typing import Optional

from codegen.errors import StapError
from codegen.lexer import Token, parse_c_number

ALLOWED_LEFT = ("expected 'arch', 'kernel_v', 'kernel_vr', 'systemtap_v', 'runtime', "
                "'systemtap_privilege', 'CONFIG_...', or comparison between strings or integers")
COMPARISONS = ("<", "<=", "==", "!=", ">", ">=")


@dataclass
class PPContext:
    """What %( %) conditions may test. The caller reads CONFIG_* from .config."""
    kernel_release: str = "6.1.0-56-amd64"
    arch: str = "x86_64"
    config: dict[str, str] = field(default_factory=dict)
    systemtap_v: str = "5.6"
    privilege: str = "stapdev"
    guru: bool = False
    runtime: str = "kernel"


@dataclass
class Macro:
    name: str
    params: list[str]
    body: list[Token]
    library: bool = False


def normalize_arch(machine: str) -> str:
    """uname -m spelling -> the names kernel builds (and %( arch %)) use."""
    rules = [(r"i[3-6]86", "i386"), (r"(aarch64|arm64).*", "arm64"), (r"arm.*", "arm"),
             (r"(ppc|powerpc).*", "powerpc"), (r"s390.*", "s390"), (r"mips.*", "mips"),
             (r"riscv.*", "riscv"), (r"sh[0-9].*", "sh"), (r"sparc64", "sparc64")]
    for pattern, name in rules:
        if re.fullmatch(pattern, machine):
            return name
    return machine


def strverscmp(a: str, b: str) -> int:
    """glibc-like version compare: digit runs numerically, the rest bytewise.

    Runs with leading zeros compare as fractions ("01" < "1"), like glibc.
    """
    ra = re.findall(r"\d+|\D+", a)
    rb = re.findall(r"\d+|\D+", b)
    for x, y in zip(ra, rb):
        if x == y:
            continue
        if x.isdigit() and y.isdigit():
            xz, yz = x.startswith("0"), y.startswith("0")
            if xz or yz:
                if xz != yz:
                    return -1 if xz else 1
                return -1 if x < y else 1          # fractional: lexical
            return -1 if int(x) < int(y) else 1
        return -1 if x < y else 1
    return (len(ra) > len(rb)) - (len(ra) < len(rb))


def _compare(op: str, c: int) -> bool:
    return {"<": c < 0, "<=": c <= 0, "==": c == 0, "!=": c != 0,
            ">": c > 0, ">=": c >= 0}[op]


def _cmp(a, b) -> int:  # type: ignore[no-untyped-def]
    return (a > b) - (a < b)


def _has_glob(s: str) -> bool:
    return any(ch in s for ch in "*?[")


class Preprocessor:
    """Lazily turns lexer tokens into the parser's token stream."""

    def __init__(self, tokens: list[Token], ctx: Optional[PPContext] = None,
                 library_macros: Optional[dict[str, Macro]] = None) -> None:
        self.ctx = ctx or PPContext()
        self.library = library_macros or {}
        self.macros: dict[str, Macro] = {}       # file-local
        # A stack of token sources; macro expansions push theirs on top.
        self.sources: list[tuple[list[Token], int]] = [(tokens, 0)]
        self.conds: list[bool] = []              # per open %(: True once in the %: part
        self.eof = tokens[-1]

    # ------------------------------------------------------------ raw input
    def _raw(self) -> Token:
        while self.sources:
            toks, i = self.sources[-1]
            if i < len(toks) and toks[i].kind != "eof":
                self.sources[-1] = (toks, i + 1)
                return toks[i]
            if len(self.sources) == 1:
                return self.eof
            self.sources.pop()
        return self.eof

    def _peek_raw(self) -> Token:
        for toks, i in reversed(self.sources):
            if i < len(toks) and toks[i].kind != "eof":
                return toks[i]
        return self.eof

    def _expanded(self) -> Token:
        """Next token with macros expanded, conditionals untouched."""
        while True:
            tok = self._raw()
            if tok.kind == "operator" and tok.text == "@define":
                self._define(tok)
                continue
            if tok.kind == "operator" and tok.text[1:] in self._all_names():
                self._expand(tok)
                continue
            return tok

    def _all_names(self) -> dict[str, Macro]:
        if not self.library:
            return self.macros
        return {**self.library, **self.macros}

    # ------------------------------------------------------------ macros
    def _define(self, at: Token) -> None:
        name_tok = self._raw()
        if name_tok.kind not in ("identifier", "keyword"):
            raise StapError("parse", "expected identifier", name_tok.loc,
                            token=name_tok.describe())
        name = name_tok.text
        params: list[str] = []
        tok = self._raw()
        if tok.is_op("("):
            while True:
                p = self._raw()
                if p.kind != "identifier":
                    raise StapError("parse", "expected identifier", p.loc, token=p.describe())
                if p.text in params:
                    raise StapError("parse", f"duplicate parameter '{p.text}' in macro", p.loc,
                                    token=p.describe())
                params.append(p.text)
                tok = self._raw()
                if tok.is_op(")"):
                    break
                if not tok.is_op(","):
                    raise StapError("parse", "expected ',' or ')'", tok.loc, token=tok.describe())
            tok = self._raw()
        if not tok.is_op("%("):
            raise StapError("parse", "expected '%('", tok.loc, token=tok.describe())
        body: list[Token] = []
        depth = 0
        while True:
            tok = self._raw()
            if tok.kind == "eof":
                raise StapError("parse", "incomplete macro definition - missing '%)'",
                                tok.loc, token="EOF")
            if tok.is_op("@define"):
                raise StapError("parse", "unexpected @define inside macro body", tok.loc,
                                token=tok.describe())
            if tok.is_op("%("):
                depth += 1
            elif tok.is_op("%)"):
                if depth == 0:
                    break
                depth -= 1
            body.append(tok)
        if name in self.macros:
            raise StapError("parse", f"attempt to redefine macro '@{name}' in the same file",
                            name_tok.loc, token=name_tok.describe())
        self.macros[name] = Macro(name, params, body)

    def _expand(self, call: Token) -> None:
        macro = self._all_names()[call.text[1:]]
        args: list[list[Token]] = []
        if macro.params:
            tok = self._raw()
            if not tok.is_op("("):
                raise StapError("parse", f"expected '(' in invocation of macro '@{macro.name}'",
                                tok.loc, token=tok.describe())
            args = self._macro_args(call)
            if len(args) != len(macro.params):
                few = "few" if len(args) < len(macro.params) else "many"
                raise StapError("parse", f"too {few} parameters for macro '@{macro.name}' "
                                f"(expected {len(macro.params)})", call.loc,
                                token=call.describe())
        bindings = dict(zip(macro.params, args))
        body: list[Token] = []
        for tok in macro.body:
            if tok.kind == "operator" and tok.text[1:] in bindings:
                body.extend(bindings[tok.text[1:]])
            else:
                body.append(tok)
        if body:
            self.sources.append((body, 0))

    def _macro_args(self, call: Token) -> list[list[Token]]:
        """Arguments split on top-level commas; (), [] and {} nest."""
        args: list[list[Token]] = [[]]
        depth = 0
        while True:
            tok = self._expanded()
            if tok.kind == "eof":
                raise StapError("parse", f"unexpected end of file in invocation of macro "
                                f"'{call.text}'", tok.loc, token="EOF")
            if tok.kind == "operator" and tok.text in "([{":
                depth += 1
            elif tok.kind == "operator" and tok.text in ")]}":
                if depth == 0 and tok.text == ")":
                    break
                depth -= 1
            elif tok.is_op(",") and depth == 0:
                args.append([])
                continue
            args[-1].append(tok)
        if args == [[]]:
            return []
        return args

    # ------------------------------------------------------------ conditionals
    def next(self) -> Token:
        """The next token of the fully preprocessed stream (an 'eof' at the end)."""
        while True:
            tok = self._expanded()
            if tok.kind == "eof":
                if self.conds:
                    self.conds.clear()
                    raise StapError("parse", "incomplete conditional at end of file",
                                    tok.loc, token="EOF")
                return tok
            if tok.kind != "operator" or tok.text not in ("%(", "%?", "%:", "%)"):
                return tok
            if tok.text == "%(":
                self._conditional(tok)
            elif not self.conds or tok.text == "%?":
                raise StapError("parse", "incomplete conditional - missing '%('",
                                tok.loc, token=tok.describe())
            elif tok.text == "%)":
                self.conds.pop()
            elif self.conds[-1]:                   # a second %: in this conditional
                self.conds.pop()
                self._discard_to_close()
                raise StapError("parse", "invalid conditional - duplicate '%:'",
                                tok.loc, token=tok.describe())
            else:                                  # end of a taken %? part
                self.conds.pop()
                self._skip(allow_else=False)

    def _conditional(self, start: Token) -> None:
        try:
            result = self._condition(start)
            tok = self._expanded()
            if not tok.is_op("%?"):
                if tok.kind == "eof":
                    raise StapError("parse", "incomplete condition after '%('", tok.loc,
                                    token="EOF")
                raise StapError("parse", "expected '%?' marker for conditional", tok.loc,
                                token=tok.describe())
        except StapError:
            # Drop the whole broken conditional so one mistake is one error.
            self._discard_to_close()
            raise
        if result:
            self.conds.append(False)
        elif self._skip(allow_else=True):
            self.conds.append(True)

    def _skip(self, allow_else: bool) -> bool:
        """Drop tokens to the matching %: (returns True) or %) (returns False)."""
        depth = 0
        while True:
            tok = self._raw()
            if tok.kind == "eof":
                raise StapError("parse", "incomplete conditional at end of file",
                                tok.loc, token="EOF")
            if tok.kind != "operator":
                continue
            if tok.text == "%(":
                depth += 1
            elif tok.text == "%)":
                if depth == 0:
                    return False
                depth -= 1
            elif tok.text == "%:" and depth == 0:
                if not allow_else:
                    self._discard_to_close()
                    raise StapError("parse", "invalid conditional - duplicate '%:'",
                                    tok.loc, token=tok.describe())
                return True

    def _discard_to_close(self) -> None:
        """After an error: drop tokens through the %) closing the current conditional."""
        depth = 0
        while True:
            tok = self._raw()
            if tok.kind == "eof":
                return
            if tok.is_op("%("):
                depth += 1
            elif tok.is_op("%)"):
                if depth == 0:
                    return
                depth -= 1

    def _condition(self, start: Token) -> bool:
        """COND := TRIPLE (('&&'|'||') TRIPLE)*, && binding tighter, no parens."""
        groups: list[list[bool]] = [[]]
        while True:
            groups[-1].append(self._triple(start))
            nxt = self._peek_raw()
            if nxt.is_op("&&"):
                self._raw()
            elif nxt.is_op("||"):
                self._raw()
                groups.append([])
            else:
                return any(all(g) for g in groups)

    def _operand(self) -> Token:
        tok = self._expanded()
        if tok.kind == "eof":
            raise StapError("parse", "incomplete condition after '%('", tok.loc, token="EOF")
        if tok.error:
            raise StapError("parse", tok.error, tok.loc, token=tok.describe())
        return tok

    def _triple(self, start: Token) -> bool:
        left = self._operand()
        op = self._operand()
        if op.kind != "operator" or op.text not in COMPARISONS:
            raise StapError("parse", "expected comparison operator", op.loc, token=op.describe())
        right = self._operand()
        # A leading '-' on a numeric right operand is folded, as for literals.
        if right.is_op("-"):
            num = self._operand()
            if num.kind != "number":
                raise StapError("parse", ALLOWED_LEFT, num.loc, token=num.describe())
            right = Token("number", "-" + num.text, num.loc, -int(num.value or 0))
        return self._evaluate(left, op, right)

    def _evaluate(self, left: Token, op_tok: Token, right: Token) -> bool:
        op = op_tok.text
        ctx = self.ctx
        name = left.text if left.kind == "identifier" else ""

        def need_string() -> str:
            if right.kind != "string":
                raise StapError("parse", "expected string literal", right.loc,
                                token=right.describe())
            return str(right.value)

        def glob_eq(value: str, pattern: str) -> bool:
            if op not in ("==", "!="):
                raise StapError("parse", "expected '==' or '!=' for wildcard comparison",
                                op_tok.loc, token=op_tok.describe())
            return fnmatch.fnmatchcase(value, pattern) == (op == "==")

        if name in ("kernel_v", "kernel_vr", "systemtap_v"):
            target = need_string()
            if name == "kernel_v":
                value = ctx.kernel_release.split("-", 1)[0]
            elif name == "kernel_vr":
                value = ctx.kernel_release
            else:
                value = ctx.systemtap_v
            if _has_glob(target):
                return glob_eq(value, target)
            return _compare(op, strverscmp(value, target))
        if name in ("arch", "runtime", "systemtap_privilege"):
            target = need_string()
            value = {"arch": normalize_arch(ctx.arch), "runtime": ctx.runtime,
                     "systemtap_privilege": ctx.privilege}[name]
            return glob_eq(value, target)
        if name == "guru_mode":
            if right.kind != "number" or right.value not in (0, 1):
                raise StapError("parse", "expected 0 or 1 for guru_mode", right.loc,
                                token=right.describe())
            if op not in ("==", "!="):
                raise StapError("parse", "expected '==' or '!='", op_tok.loc,
                                token=op_tok.describe())
            return (int(ctx.guru) == right.value) == (op == "==")
        if name.startswith("CONFIG_"):
            return self._config(left, op_tok, right, glob_eq)
        if left.kind == "string" and right.kind == "string":
            return _compare(op, _cmp(str(left.value), str(right.value)))
        if left.kind == "number" and right.kind == "number":
            return _compare(op, _cmp(int(left.value or 0), int(right.value or 0)))
        raise StapError("parse", ALLOWED_LEFT, left.loc, token=left.describe())

    def _config(self, left: Token, op_tok: Token, right: Token, glob_eq) -> bool:  # type: ignore[no-untyped-def]
        op = op_tok.text
        value = self._config_value(left.text)
        if right.kind == "string":
            return glob_eq(value, str(right.value))
        if right.kind == "number":
            num = _config_number(value)
            if num is None:
                raise StapError("parse", "Config option value not a number", left.loc,
                                token=left.describe())
            return _compare(op, _cmp(num, int(right.value or 0)))
        if right.kind == "identifier" and right.text.startswith("CONFIG_"):
            other = self._config_value(right.text)
            a, b = _config_number(value), _config_number(other)
            if a is not None and b is not None:
                return _compare(op, _cmp(a, b))
            return _compare(op, _cmp(value, other))
        raise StapError("parse", ALLOWED_LEFT, left.loc, token=left.describe())

    def _config_value(self, name: str) -> str:
        value = self.ctx.config.get(name, "")
        # .config quotes string options; conditions compare the bare text.
        if len(value) >= 2 and value[0] == value[-1] == '"':
            value = value[1:-1]
        return value

    def tokens(self) -> list[Token]:
        """Drain the stream (for tests); ends with the eof token."""
        out = []
        while True:
            tok = self.next()
            out.append(tok)
            if tok.kind == "eof":
                return out


def _config_number(value: str) -> Optional[int]:
    """strtoll(value, 0) over the whole text; None when not a number."""
    text = value.strip()
    neg = text.startswith("-")
    if neg or text.startswith("+"):
        text = text[1:]
    if not text:
        return None
    num = parse_c_number(text)
    if num is None:
        return None
    return -num if neg else num
