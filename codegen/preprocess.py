"""Pass 1, stage 2: the token-stream preprocessor (reference §1.2).

Two layers, as in stap (``parse.cxx scan_pp1``/``scan_pp``):

1. ``@define`` macros are recorded and invocations expanded. Arguments are
   collected unexpanded and expanded where the body uses them, in the
   context of the invocation (closures), so ``@a`` inside an argument means
   the *caller's* parameter. File-local macros win over library (``.stpm``)
   macros; inside a library macro's body only library macros are visible.
2. ``%( COND %? ... %: ... %)`` conditionals on the expanded stream. While a
   branch is skipped, macro invocations are still expanded (a macro may
   expand to ``%:`` or ``%)``) but ``@define`` is ignored and any error
   there is dropped (PR18462, ``testsuite/parseok/macros09.stp``).

The whole file is preprocessed eagerly into the parser's ``keys``/``toks``
lists. An error becomes a token with key ``PPERR`` at the point where stap's
lazy preprocessor would have thrown it, so the parser reports it at the
same moment and recovers the same way. Runs of ordinary tokens (no ``%``
conditional and no ``@word``) are copied in bulk.
"""
from __future__ import annotations

import fnmatch
import re
from dataclasses import dataclass, field
from typing import Optional

from codegen.lexer import (EOF, IDENT, K, NUMBER, STRING, T, Source, decode_string,
                           parse_c_number, scan, stap_content)

PPERR = "\0pp"

ALLOWED_LEFT = ("expected 'arch', 'kernel_v', 'kernel_vr', 'systemtap_v',\n"
                "             'runtime', 'systemtap_privilege', 'CONFIG_...', or\n"
                "             comparison between strings or integers")
COND_OPS = ("%(", "%?", "%:", "%)")
# stap has no limit and would expand a recursive macro until memory runs
# out; we stop with an error instead.
MAX_MACRO_DEPTH = 1000
MAX_EXPANDED = 500_000

# @-words the language itself uses; defining a macro of that name only warns.
ATWORDS = {"cast": "0", "defined": "0", "probewrite": "0", "entry": "0", "perf": "0",
           "var": "0", "avg": "0", "count": "0", "sum": "0", "min": "0", "max": "0",
           "hist_linear": "0", "hist_log": "0", "const": "3.1", "variance": "3.1",
           "kregister": "4.0", "uregister": "4.0", "kderef": "4.0", "uderef": "4.0",
           "enum": "5.5", "enumname": "5.6"}


@dataclass
class PPContext:
    """What %( %) conditions may test. The caller reads CONFIG_* from .config."""
    kernel_release: str = "6.1.0-56-amd64"
    arch: str = "x86_64"
    config: dict[str, str] = field(default_factory=dict)
    systemtap_v: str = "5.6"        # the --compatible version
    privilege: str = "stapdev"
    guru: bool = False
    runtime: str = "kernel"


@dataclass
class Macro:
    name: str
    params: list[str]
    body: list[tuple]
    library: bool = False
    tok: Optional[tuple] = None            # the name token of the definition
    parent: Optional["_Act"] = None        # a parameter closure: the activation it belongs to
    plain: Optional[bool] = None           # body has no @word or conditional: copy in bulk

    def is_plain(self) -> bool:
        if self.plain is None:
            self.plain = not any(t[K][0] == "@" or t[K] in COND_OPS for t in self.body)
        return self.plain


class PPError(Exception):
    """A preprocessor error at a token; the parser renders it."""

    def __init__(self, msg: str, tok: Optional[tuple], first: Optional[tuple] = None) -> None:
        super().__init__(msg)
        self.msg = msg
        self.tok = tok
        self.first = first          # "macro '@x' first defined here" token


class _Act:
    """A macro (or macro parameter) being expanded."""

    __slots__ = ("tok", "body", "cursor", "params", "macro")

    def __init__(self, tok: tuple, macro: Macro) -> None:
        self.tok = tok
        self.macro = macro
        self.body = macro.body
        self.cursor = 0
        self.params: dict[str, Macro] = {}


def normalize_arch(machine: str) -> str:
    """uname -m spelling -> the names kernel builds (and %( arch %)) use."""
    rules = [(r"i[3-6]86", "i386"), (r"(aarch64|arm64).*", "arm64"), (r"arm.*", "arm"),
             (r"(ppc|powerpc).*", "powerpc"), (r"s390.*", "s390"), (r"mips.*", "mips"),
             (r"riscv.*", "riscv"), (r"sh[0-9].*", "sh"), (r"sparc64", "sparc64"),
             (r"ia64", "ia64")]
    for pattern, name in rules:
        if re.fullmatch(pattern, machine):
            return name
    return machine


_S_N, _S_I, _S_F, _S_Z = 0, 3, 6, 9
_CMP, _LEN = 2, 3
_NEXT_STATE = (
    # x     d     0
    _S_N, _S_I, _S_Z,      # S_N
    _S_N, _S_I, _S_I,      # S_I
    _S_N, _S_F, _S_F,      # S_F
    _S_N, _S_F, _S_Z)      # S_Z
_RESULT = (
    # x/x  x/d  x/0  d/x  d/d  d/0  0/x  0/d  0/0
    _CMP, _CMP, _CMP, _CMP, _LEN, _CMP, _CMP, _CMP, _CMP,    # S_N
    _CMP, -1, -1, +1, _LEN, _LEN, +1, _LEN, _LEN,            # S_I
    _CMP, _CMP, _CMP, _CMP, _CMP, _CMP, _CMP, _CMP, _CMP,    # S_F
    _CMP, +1, +1, -1, _CMP, _CMP, -1, _CMP, _CMP)            # S_Z


def _cls(c: str) -> int:
    return 2 if c == "0" else 1 if "1" <= c <= "9" else 0


def strverscmp(a: str, b: str) -> int:
    """glibc's strverscmp() state machine: digit runs compare as numbers,
    runs with leading zeros as fractions ("000" < "00" < "01" < "010" <
    "09" < "0" < "1" < "9" < "10")."""
    if a == b:
        return 0
    s1, s2 = a.encode() + b"\0", b.encode() + b"\0"
    i = 0
    c1, c2 = chr(s1[0]), chr(s2[0])
    state = _S_N + _cls(c1)
    while c1 == c2:
        if c1 == "\0":
            return 0
        state = _NEXT_STATE[state]
        i += 1
        c1, c2 = chr(s1[i]), chr(s2[i])
        state += _cls(c1)
    diff = ord(c1) - ord(c2)
    res = _RESULT[state * 3 + _cls(c2)]
    if res == _CMP:
        return diff
    if res == _LEN:
        j = i + 1                     # the longer digit run is the larger number
        while s1[j:j + 1].isdigit():
            if not s2[j:j + 1].isdigit():
                return 1
            j += 1
        return -1 if s2[j:j + 1].isdigit() else diff
    return res


def _cmp(a, b) -> int:  # type: ignore[no-untyped-def]
    return (a > b) - (a < b)


def _eval_cmp(lhs, op: tuple, rhs) -> bool:  # type: ignore[no-untyped-def]
    o = op[K]
    if o == "<=":
        return lhs <= rhs
    if o == ">=":
        return lhs >= rhs
    if o == "<":
        return lhs < rhs
    if o == ">":
        return lhs > rhs
    if o == "==":
        return lhs == rhs
    if o == "!=":
        return lhs != rhs
    raise PPError("expected comparison operator", op)


def _c_int64(text: str) -> Optional[int]:
    """lex_cast<int64_t> of a number token (parse errors surface elsewhere)."""
    value = parse_c_number(text)
    return value if value is not None else 0


def _strtoll(value: str) -> Optional[int]:
    """strtoll(value, &end, 0) that must consume everything; None otherwise."""
    text = value.lstrip(" \t\n\r\f\v")
    neg = text.startswith("-")
    if neg or text.startswith("+"):
        text = text[1:]
    if not text:
        return None
    num = parse_c_number(text)
    if num is None:
        return None
    unsigned = num & (2**64 - 1)
    if (not neg and unsigned > 2**63 - 1) or (neg and unsigned > 2**63):
        return None          # ERANGE
    return -unsigned if neg else unsigned


def _fnmatch(pattern: str, value: str) -> bool:
    """fnmatch(pattern, value, FNM_NOESCAPE)."""
    return fnmatch.fnmatchcase(value, pattern.replace("[!", "[!").replace("\\", "[\\\\]"))


def _str(tok: tuple) -> str:
    return stap_content(tok[T])


class Preprocessor:
    """Expands one file's token stream (see the module docstring)."""

    def __init__(self, keys: list[str], toks: list[tuple], ctx: Optional[PPContext] = None,
                 library_macros: Optional[dict[str, Macro]] = None,
                 warnings: Optional[list[str]] = None, compatible: Optional[str] = None,
                 check_compatible: bool = True) -> None:
        self.ctx = ctx or PPContext()
        self.library = library_macros or {}
        self.macros: dict[str, Macro] = {}       # file-local (pp1_namespace)
        self.keys = keys
        self.toks = toks
        self.i = 0
        self.eof = toks[-1]
        self.acts: list[_Act] = []
        self.conds: list[list] = []               # [token, state]
        self.warnings = warnings
        self.compatible = compatible or self.ctx.systemtap_v
        self.check_compatible = check_compatible
        self.systemtap_v_seen = False
        self.expanded = 0

    # ------------------------------------------------------------ first layer
    def _next_pp1(self) -> Optional[tuple]:
        acts = self.acts
        if not acts:
            tok = self.toks[self.i]
            if tok[K] == EOF:
                return None
            self.i += 1
            return tok
        act = acts[-1]
        if act.cursor < len(act.body):
            a, b, c, d, e, _, g = act.body[act.cursor]
            act.cursor += 1
            return (a, b, c, d, e, act.tok, g)
        return None

    def _has_version(self, v: str) -> bool:
        return not self.check_compatible or strverscmp(self.compatible, v) >= 0

    def _scan_pp1(self, ignore_macros: bool = False) -> Optional[tuple]:
        while True:
            t = self._next_pp1()
            if t is None:
                if not self.acts:
                    return None
                self.acts.pop()
                continue
            key = t[K]
            if key[0] != "@":
                return t
            if key == "@define" and not ignore_macros:
                if self.acts:
                    raise PPError("'@define' forbidden inside macro body", t)
                self._define()
                continue
            name = key[1:]
            act = self.acts[-1] if self.acts else None
            if act is not None and name in act.params:
                decl = act.params[name]
            elif not (act is not None and act.macro.library) and name in self.macros:
                decl = self.macros[name]
            elif name in self.library:
                decl = self.library[name]
            else:
                return t                    # an ordinary @operator
            self._invoke(t, decl, act)

    def _define(self) -> None:
        t = self._next_pp1()
        if t is None or t[K] != IDENT:
            raise PPError("expected identifier", t)
        name = t[T]
        if name in self.macros:
            raise PPError(f"attempt to redefine macro '@{name}' in the same file", t,
                          first=self.macros[name].tok)
        if name == "define":
            raise PPError("attempt to redefine '@define'", t)
        if name in ATWORDS and self._has_version(ATWORDS[name]) and self.warnings is not None:
            self.warnings.append(f"macro redefines built-in operator '@{name}'")
        decl = self.macros[name] = Macro(name, [], [], tok=t)
        saw_params = False
        t = self._next_pp1()
        if t is not None and t[K] == "(":
            saw_params = True
            while True:
                t = self._next_pp1()
                if t is None or t[K] != IDENT:
                    raise PPError("expected identifier", t)
                decl.params.append(t[T])
                t = self._next_pp1()
                if t is not None and t[K] == ",":
                    continue
                if t is not None and t[K] == ")":
                    t = self._next_pp1()
                    break
                raise PPError("expected ',' or ')'", t)
        if t is None or t[K] != "%(":
            raise PPError("expected '%('" if saw_params else "expected '%(' or '('", t)
        body = decl.body
        nesting = 0
        while True:
            t = self._next_pp1()
            if t is None:
                raise PPError("incomplete macro definition - missing '%)'", decl.tok)
            k = t[K]
            if k == "%(":
                nesting += 1
            elif k == "%)":
                if not nesting:
                    return
                nesting -= 1
            body.append(t)

    def _invoke(self, t: tuple, decl: Macro, act: Optional[_Act]) -> None:
        if len(self.acts) >= MAX_MACRO_DEPTH:
            self.acts.clear()
            raise PPError(f"macro expansion nested too deeply (more than {MAX_MACRO_DEPTH} "
                          "levels); is the macro recursive?", t)
        self.expanded += len(decl.body)
        if self.expanded > MAX_EXPANDED:
            self.acts.clear()
            raise PPError(f"macro expansion too large (more than {MAX_EXPANDED} tokens)", t)
        new = _Act(t, decl)
        nparams = len(decl.params)
        if nparams == 0:
            if decl.parent is not None or decl.name.startswith("\0"):
                # A parameter: expanded in the context of the invocation.
                new.params = decl.parent.params if decl.parent is not None else {}
            self.acts.append(new)
            return
        u = self._next_pp1()
        if u is None or u[K] != "(":
            s = "" if nparams == 1 else "s"
            raise PPError(f"expected '(' in invocation of macro '@{decl.name}' taking "
                          f"{nparams} parameter{s}", u)
        for idx, pname in enumerate(decl.params):
            p = Macro("\0" + pname, [], [], tok=t, parent=act)
            new.params[pname] = p
            u = self._slurp_param(p.body)
            if u is None:
                raise PPError("could not find end of macro invocation", t)
            if u[K] == ",":
                if idx + 1 == nparams:
                    raise PPError(f"too many parameters for macro '@{decl.name}' "
                                  f"(expected {nparams})", u)
            elif u[K] == ")":
                if idx + 1 != nparams:
                    raise PPError(f"too few parameters for macro '@{decl.name}' "
                                  f"(expected {nparams})", u)
        self.acts.append(new)

    def _slurp_param(self, param: list) -> Optional[tuple]:
        nesting = 0
        while True:
            t = self._next_pp1()
            if t is None:
                return None
            k = t[K]
            if k == "(" or k == "[":
                nesting += 1
            elif nesting and (k == ")" or k == "]"):
                nesting -= 1
            elif not nesting and (k == ")" or k == ","):
                return t
            param.append(t)

    # ------------------------------------------------------------ second layer
    def run(self) -> tuple[list[str], list[tuple]]:
        """The preprocessed stream: (keys, toks), ending with the EOF token."""
        keys, toks = self.keys, self.toks
        out_k: list[str] = []
        out_t: list[tuple] = []
        special = [j for j, k in enumerate(keys) if k[0] in "%@" and
                   (k[0] == "@" or k in COND_OPS)]
        special.append(len(keys) - 1)
        si = 0
        while True:
            # Bulk-copy ordinary tokens while no branch is being skipped.
            if not self.conds or self.conds[-1][1] in ("keep_then", "keep_else"):
                acts = self.acts
                if not acts:
                    i = self.i
                    while special[si] < i:
                        si += 1
                    j = special[si]
                    if j > i:
                        out_k.extend(keys[i:j])
                        out_t.extend(toks[i:j])
                        self.i = j
                else:
                    act = acts[-1]
                    if act.cursor < len(act.body) and act.macro.is_plain():
                        inv = act.tok
                        rest = act.body[act.cursor:]
                        act.cursor = len(act.body)
                        out_k.extend([t[K] for t in rest])
                        out_t.extend([(a, b, c, d, e, inv, g) for a, b, c, d, e, _, g in rest])
            try:
                t = self._scan_pp()
            except PPError as e:
                out_k.append(PPERR)
                out_t.append((PPERR, e, 0, 0, None, None, None))
                continue
            if t is None:
                break
            out_k.append(t[K])
            out_t.append(t)
        out_k.append(EOF)
        out_t.append(self.eof)
        return out_k, out_t

    def _scan_pp(self) -> Optional[tuple]:
        while True:
            conds = self.conds
            state = conds[-1][1] if conds else None
            if state == "skip_then" or state == "skip_else":
                t = self._skip_pp()
            else:
                t = self._scan_pp1()
            if t is None:
                if state is not None:
                    t = conds.pop()[0]
                    raise PPError("incomplete conditional at end of file", t)
                return None
            k = t[K]
            if k[0] != "%" or k not in COND_OPS:
                return t
            if k == "%?":
                raise PPError("incomplete conditional - missing '%('", t)
            if k == "%:":
                if state is None:
                    raise PPError("incomplete conditional - missing '%('", t)
                if state == "keep_else" or state == "skip_else":
                    raise PPError("invalid conditional - duplicate '%:'", t)
                conds[-1][1] = "skip_else" if state == "keep_then" else "keep_else"
                continue
            if k == "%)":
                if state is None:
                    raise PPError("incomplete conditional - missing '%('", t)
                conds.pop()
                continue
            # '%(': evaluate the condition.
            result = False
            and_result = True
            while True:
                lhs = self._scan_pp1()
                op = self._scan_pp1()
                rhs = self._scan_pp1()
                if lhs is None or op is None or rhs is None:
                    raise PPError("incomplete condition after '%('", t)
                value = self._evaluate(lhs, op, rhs)
                and_result = and_result and value
                if lhs[K] == IDENT and lhs[T] == "systemtap_v":
                    self.systemtap_v_seen = True
                n = self._scan_pp1()
                if n is not None and n[K] == "&&":
                    continue
                result = result or and_result
                and_result = True
                if not (n is not None and n[K] == "||"):
                    break
            if not (n is not None and n[K] == "%?"):
                raise PPError("expected '%?' marker for conditional", t)
            conds.append([t, "keep_then" if result else "skip_then"])

    def _skip_pp(self) -> Optional[tuple]:
        """Drop tokens up to the %: %? or %) that ends the skipped branch."""
        nesting = 0
        keys = self.keys
        while True:
            if not self.acts:
                # Only conditional markers and @words matter: jump to the next.
                i = self.i
                n = len(keys) - 1
                while i < n:
                    k = keys[i]
                    if k[0] == "%" and k in COND_OPS or k[0] == "@":
                        break
                    i += 1
                self.i = i
            try:
                t = self._scan_pp1(ignore_macros=True)
            except PPError:
                continue
            if t is None:
                return None
            k = t[K]
            if k == "%(":
                nesting += 1
            elif nesting and k == "%)":
                nesting -= 1
            elif not nesting and (k == "%:" or k == "%?" or k == "%)"):
                return t

    # ------------------------------------------------------------ conditions
    def _evaluate(self, lhs: tuple, op: tuple, rhs: tuple) -> bool:
        ctx = self.ctx
        lk, rk = lhs[K], rhs[K]
        name = lhs[T] if lk == IDENT else None
        if name in ("kernel_v", "kernel_vr", "systemtap_v"):
            if rk != STRING:
                raise PPError("expected string literal", rhs)
            if name == "kernel_v":
                target = ctx.kernel_release.split("-", 1)[0]
            elif name == "kernel_vr":
                target = ctx.kernel_release
            else:
                target = self.compatible
            query = _str(rhs)
            o = op[K]
            if o not in ("<=", ">=", "<", ">", "==", "!="):
                raise PPError("expected comparison operator", op)
            wildcard = any(c in query for c in "*?[")
            if wildcard:
                if o not in ("==", "!="):
                    raise PPError("wildcard not allowed with order comparison operators", op)
                return _fnmatch(query, target) == (o == "==")
            c = strverscmp(target, query)
            return _eval_cmp(c, op, 0)
        if name == "systemtap_privilege":
            if rk != STRING:
                raise PPError("expected string literal", rhs)
            nomatch = ctx.privilege != _str(rhs)
            if op[K] == "==":
                return not nomatch
            if op[K] == "!=":
                return nomatch
            raise PPError("expected '==' or '!='", op)
        if name == "guru_mode":
            if rk != NUMBER:
                raise PPError("expected number", rhs)
            value = _c_int64(rhs[T])
            if value not in (0, 1):
                raise PPError("expected 0 or 1", op)
            if op[K] not in ("==", "!="):
                raise PPError("expected '==' or '!='", op)
            return _eval_cmp(int(ctx.guru), op, value)
        if name in ("arch", "runtime"):
            if rk != STRING:
                raise PPError("expected string literal", rhs)
            target = normalize_arch(ctx.arch) if name == "arch" else ctx.runtime
            match = _fnmatch(_str(rhs), target)
            if op[K] == "==":
                return match
            if op[K] == "!=":
                return not match
            raise PPError("expected '==' or '!='", op)
        if name is not None and name.startswith("CONFIG_"):
            lhs_s = self._config(name)
            if rk == STRING:
                match = _fnmatch(_str(rhs), lhs_s)
                if op[K] == "==":
                    return match
                if op[K] == "!=":
                    return not match
                raise PPError("expected '==' or '!='", op)
            if rk == NUMBER:
                lv = _strtoll(lhs_s)
                if lv is None:
                    raise PPError("Config option value not a number", lhs)
                return _eval_cmp(lv, op, _c_int64(rhs[T]))
            if rk == IDENT and rhs[T].startswith("CONFIG_"):
                rhs_s = self._config(rhs[T])
                a, b = _strtoll(lhs_s), _strtoll(rhs_s)
                if a is not None and b is not None:
                    return _eval_cmp(a, op, b)
                return _eval_cmp(lhs_s, op, rhs_s)
            raise PPError("expected string, number literal or other CONFIG_... as right "
                          "side operand", rhs)
        if lk == STRING and rk == STRING:
            return _eval_cmp(_str(lhs), op, _str(rhs))
        if lk == NUMBER and rk == NUMBER:
            return _eval_cmp(_c_int64(lhs[T]), op, _c_int64(rhs[T]))
        if lk == STRING and rk == NUMBER and not op[K][0].isalnum():
            raise PPError("expected string literal as right value", rhs)
        if lk == NUMBER and rk == STRING and not op[K][0].isalnum():
            raise PPError("expected number literal as right value", rhs)
        raise PPError(ALLOWED_LEFT, lhs)

    def _config(self, name: str) -> str:
        value = self.ctx.config.get(name, "")
        # .config quotes string options; conditions compare the bare text.
        if len(value) >= 2 and value[0] == value[-1] == '"':
            value = value[1:-1]
        return value

    # ------------------------------------------------------------ tests/tools
    def tokens(self) -> list:
        """The preprocessed stream as Token views (raises the first error)."""
        from codegen.lexer import Token
        _, toks = self.run()
        for t in toks:
            if t[K] == PPERR:
                raise t[T]
        return [Token(t) for t in toks]


def preprocess_text(text: str, name: str = "<input>", ctx: Optional[PPContext] = None,
                    library_macros: Optional[dict[str, Macro]] = None) -> list:
    """Lex and preprocess text (tests and tools)."""
    keys, toks, _ = scan(Source(name, text))
    return Preprocessor(keys, toks, ctx, library_macros).tokens()


__all__ = ["PPContext", "Macro", "Preprocessor", "PPError", "PPERR", "normalize_arch",
           "strverscmp", "preprocess_text", "decode_string"]
