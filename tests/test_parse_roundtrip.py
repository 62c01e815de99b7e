"""Property: printing a parse tree and parsing the text gives the same tree.

Hypothesis generates random *valid programs* (source text, so every tree is
one the parser really produces): every top-level construct, statement and
expression form of reference §1.3-1.6, with and without parentheses so that
the precedence table is exercised, plus macros and %( %) conditionals that
the preprocessor resolves. For each: parse -> print -> parse must give an
equal tree, and printing again must give the same text.

CI (CI=true) runs 10,000 programs in two classes that xdist's loadscope puts
on separate workers; a local run does a few hundred.
"""
from __future__ import annotations

import dataclasses
import os

from hypothesis import HealthCheck, given, note, settings
from hypothesis import strategies as st

from codegen.errors import StapErrors
from codegen.parser import parse_file
from codegen.preprocess import PPContext
from codegen.printer import print_file

CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")
EXAMPLES = 5_000 if CI else 150           # per class; two classes
SETTINGS = settings(max_examples=EXAMPLES, deadline=None, derandomize=CI, database=None,
                    suppress_health_check=list(HealthCheck))
PP = PPContext(config={"CONFIG_SMP": "y", "CONFIG_HZ": "250"})

NAMES = st.sampled_from(["a", "b", "cnt", "x1", "_t", "name", "s", "arr", "Q"])
FIELDS = st.sampled_from(["f", "pid", "next", "return", "comm", "x"])
PP_NAMES = st.sampled_from(["begin", "end", "kernel", "syscall", "vfs", "read", "return",
                            "function", "call", "sys*", "*", "**", "foo_bar", "tp"])
BINOPS = st.sampled_from(["+", "-", "*", "/", "%", ".", "<<", ">>", ">>>", "&", "|", "^",
                          "&&", "||", "<", ">", "<=", ">=", "==", "!="])
ASSIGNOPS = st.sampled_from(["=", "+=", "-=", "*=", "/=", "%=", "<<=", ">>=", "&=", "^=",
                             "|=", ".=", "<<<"])


def _number(n: int, style: int) -> str:
    if style == 1:
        return hex(n)
    if style == 2 and n:
        return "0" + oct(n)[2:]
    return str(n)


NUMBERS = st.builds(_number, st.one_of(st.integers(0, 100), st.integers(0, 2**64 - 1)),
                    st.integers(0, 2))
STRINGS = st.lists(st.one_of(
    st.text(st.characters(min_codepoint=32, max_codepoint=126,
                          blacklist_characters='"\\'), max_size=6),
    st.sampled_from([r"\n", r"\t", r"\\", r"\"", r"\101", r"\x41", r"\q", "%d", "%s"])),
    max_size=4).map(lambda parts: '"' + "".join(parts) + '"')
STRING_CHAIN = st.lists(STRINGS, min_size=1, max_size=3).map(" ".join)


CONDITIONS = ['arch == "x86_64"', 'kernel_v >= "2.6"', 'CONFIG_SMP == "y"',
              'systemtap_v < "4.0"', '1 == 2 || 3 > 1']


def _paren(draw, e: str) -> str:  # type: ignore[no-untyped-def]
    return f"({e})" if draw(st.booleans()) else e


@st.composite
def target(draw, depth: int) -> str:  # type: ignore[no-untyped-def]
    kind = draw(st.integers(0, 3))
    if kind == 0:
        base = "$" + draw(NAMES)
    elif kind == 1:
        base = draw(st.sampled_from(["$$vars", "$$locals", "$$parms", "$$return", "$return"]))
        return base + draw(st.sampled_from(["", "$", "$$"]))
    elif kind == 2:
        mod = draw(st.sampled_from(["", ', "kernel"', ', "kernel<linux/sched.h>"']))
        base = f'@cast({draw(expr(depth - 1))}, "task_struct"{mod})'
    else:
        base = f"({draw(expr(depth - 1))})->{draw(FIELDS)}"
    comps = draw(st.lists(st.one_of(FIELDS.map(lambda f: "->" + f),
                                    expr(depth - 1).map(lambda e: f"[{e}]")), max_size=2))
    text = base + "".join(comps)
    pretty = draw(st.sampled_from(["", "", "$", "$$"]))
    if pretty:
        text += ("" if kind == 0 and not comps else " ") + pretty
    if draw(st.integers(0, 4)) == 0 and not pretty:
        text = "&" + text
    return text


@st.composite
def atom(draw, depth: int) -> str:  # type: ignore[no-untyped-def]
    kind = draw(st.integers(0, 8 if depth > 0 else 2))
    if kind == 0:
        return draw(NAMES)
    if kind == 1:
        return draw(NUMBERS)
    if kind == 2:
        return draw(STRING_CHAIN)
    if kind == 3:
        return draw(target(depth))
    if kind == 4:
        args = draw(st.lists(expr(depth - 1), max_size=3))
        return f"{draw(NAMES)}({', '.join(args)})"
    if kind == 5:
        idx = draw(st.lists(st.one_of(expr(depth - 1), st.just("*")), min_size=1, max_size=3))
        return f"{draw(NAMES)}[{', '.join(idx)}]"
    if kind == 6:
        op = draw(st.sampled_from(["count", "sum", "min", "max", "avg", "variance"]))
        extra = f", {draw(st.integers(0, 9))}" if op == "variance" and draw(st.booleans()) else ""
        return f"@{op}({draw(expr(depth - 1))}{extra})"
    if kind == 7:
        which = draw(st.integers(0, 6))
        e = draw(expr(depth - 1))
        return ['@defined(' + e + ')', '@entry(' + e + ')', f"@probewrite({draw(NAMES)})",
                '@perf("cycles")', f'@var("{draw(NAMES)}@f.c")', f"@uregister({draw(st.integers(0, 9))})",
                f"@uderef(4, {e})"][which]
    # the print family, with its argument rules
    which = draw(st.integers(0, 5))
    args = draw(st.lists(expr(depth - 1), min_size=2, max_size=3))
    if which == 0:
        return f'printf({draw(STRINGS)}{"".join(", " + a for a in args[:draw(st.integers(0, 2))])})'
    if which == 1:
        return f'printd({draw(STRINGS)}, {", ".join(args)})'
    if which == 2:
        return f"print({', '.join(args[:draw(st.integers(1, 2))])})"
    if which == 3:
        return f"println({', '.join(args[:draw(st.integers(0, 2))])})"
    if which == 4:
        hist = draw(st.sampled_from(["@hist_log(s)", "@hist_linear(s, 0, 100, 10)"]))
        return f"print({hist})" if draw(st.booleans()) else f"print({hist}[{args[0]}])"
    return f"sprintf({draw(STRINGS)}, {args[0]})"


@st.composite
def expr(draw, depth: int = 2) -> str:  # type: ignore[no-untyped-def]
    if depth <= 0:
        return draw(atom(0))
    kind = draw(st.integers(0, 9))
    if kind <= 2:
        return draw(atom(depth))
    sub = expr(depth - 1)
    if kind == 3:
        return f"{draw(sub)} {draw(BINOPS)} {draw(sub)}"
    if kind == 4:
        return f"({draw(sub)}) {draw(BINOPS)} ({draw(sub)})"
    if kind == 5:
        op = draw(st.sampled_from(["-", "!", "~", "+", "++", "--"]))
        operand = draw(atom(depth - 1)) if op in ("++", "--") else _paren(draw, draw(sub))
        if op in ("++", "--") and draw(st.booleans()):
            return f"{operand}{op}"
        return f"{op}{operand}" if op in ("++", "--") else f"{op} {operand}"
    if kind == 6:
        return f"{draw(sub)} ? {draw(sub)} : {draw(sub)}"
    if kind == 7:
        return f"{draw(atom(depth - 1))} {draw(ASSIGNOPS)} {draw(sub)}"
    if kind == 8:
        keys = draw(st.lists(st.one_of(atom(depth - 1), sub.map(lambda e: f"({e})"),
                                       st.just("*")), min_size=1, max_size=3))
        arr = draw(st.one_of(NAMES, st.just("@hist_log(s)")))
        if len(keys) == 1 and keys[0] != "*" and draw(st.booleans()):
            text = f"({keys[0]}) in {arr}"
        else:
            text = f"[{', '.join(keys)}] in {arr}"
    else:
        text = f"({draw(sub)}) {draw(st.sampled_from(['=~', '!~']))} {draw(STRINGS)}"
    # Nothing tighter than '||' may follow these: bracket them inside others.
    return text if depth == 2 else f"({text})"


@st.composite
def statement(draw, depth: int, in_function: bool) -> str:  # type: ignore[no-untyped-def]
    kind = draw(st.integers(0, 12 if depth > 0 else 2))
    if kind <= 1:
        # ';' always: "x" then "[a] in b" on the next line would be x[a] ...
        return draw(expr()) + draw(st.sampled_from([";", " ;"]))
    if kind == 2:
        return draw(st.sampled_from([";", "break;", "continue;", "next;"]))
    body = statement(depth - 1, in_function)
    if kind == 3:
        return "{ " + " ".join(draw(st.lists(body, max_size=3))) + " }"
    if kind == 4:
        text = f"if ({draw(expr())}) {{ {draw(body)} }}"
        if draw(st.booleans()):
            text += f" else {draw(body)}"
        return text
    if kind == 5:
        return f"while ({draw(expr())}) {draw(body)}"
    if kind == 6:
        parts = [draw(st.one_of(st.just(""), expr())) for _ in range(3)]
        return f"for ({parts[0]}; {parts[1]}; {parts[2]}) {draw(body)}"
    if kind == 7:
        keys = draw(st.lists(NAMES, min_size=1, max_size=3, unique=True))
        sort = draw(st.integers(-1, len(keys) + 1))       # -1 none, 0 value, i key
        marks = [draw(st.sampled_from(["+", "-"])) if sort == i + 1 else "" for i in range(len(keys))]
        keytext = ", ".join(k + m for k, m in zip(keys, marks))
        if len(keys) > 1 or draw(st.booleans()):
            keytext = f"[{keytext}]"
        value = f"{draw(NAMES)}{'' if sort else draw(st.sampled_from(['+', '-']))} = " \
            if draw(st.booleans()) and not (sort == 0) and len(keys) else ""
        if value and value.rstrip(" =")[-1] in "+-":
            sort = -2          # the value carries the sort mark
        arr = draw(st.one_of(NAMES, st.just("@hist_linear(s, 0, 10, 2)")))
        slice_ = ""
        if draw(st.booleans()):
            slice_ = "[" + ", ".join(draw(st.lists(st.one_of(st.just("*"), expr(1)),
                                                   min_size=len(keys), max_size=len(keys)))) + "]"
        agg = ""
        if sort == 0:
            agg = draw(st.sampled_from(["", " @sum", " @count", " @max"]))
            agg += draw(st.sampled_from(["+", "-"]))
        limit = f" limit {draw(expr(1))}" if draw(st.booleans()) else ""
        return f"foreach ({value}{keytext} in {arr}{slice_}{agg}{limit}) {draw(body)}"
    if kind == 8:
        return f"delete {draw(atom(1))};"
    if kind == 9:
        var = f" ({draw(NAMES)})" if draw(st.booleans()) else ""
        return f"try {{ {draw(body)} }} catch{var} {{ {draw(body)} }}"
    if kind == 10 and in_function:
        return "return" + (" " + draw(expr()) if draw(st.booleans()) else "") + ";"
    if kind == 11:
        # a macro used as an expression, and a conditional
        return "@twice(" + draw(expr(1)) + ");"
    cond = draw(st.sampled_from(CONDITIONS))
    return f"%( {cond} %? {draw(body)} %: {draw(body)} %)"


def _block(draw, in_function: bool) -> str:  # type: ignore[no-untyped-def]
    return "{\n  " + "\n  ".join(draw(st.lists(statement(2, in_function), max_size=3))) + "\n}"


@st.composite
def probe_point(draw) -> str:  # type: ignore[no-untyped-def]
    comps = []
    for _ in range(draw(st.integers(1, 3))):
        name = draw(PP_NAMES)
        if draw(st.integers(0, 3)) == 0:
            arg = draw(st.one_of(STRINGS, st.integers(-2**63, 2**63 - 1).map(str)))
            name += f"({arg})"
        elif draw(st.integers(0, 5)) == 0:
            name = "{" + name + ", " + draw(PP_NAMES) + "}"
        comps.append(name)
    text = ".".join(comps)
    text += draw(st.sampled_from(["", "", "?", "!"]))
    if draw(st.integers(0, 4)) == 0:
        text += f" if ({draw(expr(1))})"
    return text


@st.composite
def program(draw) -> str:  # type: ignore[no-untyped-def]
    out = ["@define twice(x) %( (@x) * 2 %)"]
    for n_top in range(draw(st.integers(1, 3))):
        kind = draw(st.integers(0, 6))
        if kind == 0:
            decls = []
            for name in draw(st.lists(NAMES, min_size=1, max_size=3, unique=True)):
                name = f"g{n_top}_{name}"              # global names are unique
                d = name + draw(st.sampled_from(["", "%", "[100]", "%[8]"]))
                if d == name and draw(st.booleans()):
                    d += " = " + draw(st.one_of(STRINGS, st.integers(-2**63, 2**63 - 1).map(str)))
                decls.append(d)
            out.append(draw(st.sampled_from(["global ", "private global ", "private "]))
                       + ", ".join(decls) + draw(st.sampled_from(["", ";"])))
        elif kind == 1:
            out.append("probe " + ", ".join(draw(st.lists(probe_point(), min_size=1, max_size=3)))
                       + " " + _block(draw, False))
        elif kind == 2:
            op = draw(st.sampled_from(["=", "+="]))
            text = f"probe {draw(PP_NAMES)}.al{draw(st.integers(0, 9))} {op} " \
                   + ", ".join(draw(st.lists(probe_point(), min_size=1, max_size=2))) \
                   + " " + _block(draw, False)
            if op == "=" and draw(st.booleans()):
                text += ", " + _block(draw, False)
            out.append(text)
        elif kind in (3, 4):
            params = ", ".join(n + draw(st.sampled_from(["", ":long", ":string"]))
                               for n in draw(st.lists(NAMES, max_size=3, unique=True)))
            ret = draw(st.sampled_from(["", ":long", ":string"]))
            prio = draw(st.sampled_from(["", " :1", " :7"]))
            priv = draw(st.sampled_from(["", "private "]))
            name = draw(NAMES)
            if draw(st.integers(0, 4)) == 0:
                out.append(f"{priv}function {name}{ret} ({params}){prio} %{{ /* pure */ %}}")
            else:
                out.append(f"{priv}function {name}{ret} ({params}){prio} " + _block(draw, True))
        elif kind == 5:
            out.append("%{ #include <linux/sched.h> %}")
        else:
            out.append(f"%( arch == \"x86_64\" %? probe begin {_block(draw, False)} %: "
                       f"global g{n_top}_zz %)")
    return "\n".join(out) + "\n"


def _check(src: str) -> None:
    note(src)
    try:
        tree = parse_file("gen.stp", src, guru=True, pp=PP)
    except StapErrors as e:
        raise AssertionError("generated program does not parse:\n" + e.render()) from e
    printed = print_file(tree)
    note(printed)
    again = parse_file("gen.stp", printed, guru=True, pp=PP)
    assert again == tree
    assert dataclasses.replace(again, path=tree.path) == tree
    assert print_file(again) == printed


class TestRoundTripA:
    @SETTINGS
    @given(program())
    def test_print_then_parse_gives_the_same_tree(self, src: str) -> None:
        _check(src)


class TestRoundTripB:
    @SETTINGS
    @given(program())
    def test_print_then_parse_gives_the_same_tree(self, src: str) -> None:
        _check(src)
