"""Parser tests: precedence, every construct, error texts, corpus round trips.

Trees are compared with ==, which ignores locs (Node.loc has compare=False);
the round trip parse -> print -> parse over tests/data/parse_ok is the main
check that the parser and printer agree.
"""
from __future__ import annotations

import dataclasses
import re
from pathlib import Path

import pytest

from codegen import ast as A
from codegen.errors import StapErrors
from codegen.parser import parse_file, parse_stpm
from codegen.preprocess import PPContext
from codegen.printer import expr as print_expr
from codegen.printer import print_file

DATA = Path(__file__).parent / "data"
PP = PPContext(config={"CONFIG_SMP": "y", "CONFIG_HZ": "250"})


def parse(text: str, **kw) -> A.File:
    return parse_file("t.stp", text, pp=PP, **kw)


def body_expr(src: str) -> A.Expr:
    f = parse("probe begin { " + src + " }")
    stmt = f.probes[0].body.stmts[0]
    assert isinstance(stmt, A.ExprStmt)
    return stmt.expr


def errors_of(text: str, path: str = "t.stp", **kw) -> list:
    with pytest.raises(StapErrors) as info:
        parse_file(path, text, pp=PP, **kw)
    return info.value.errors


def S(n: str) -> A.Symbol:
    return A.Symbol(n)


def N(v: int) -> A.Number:
    return A.Number(v)


# ---------------------------------------------------------------- precedence
PRECEDENCE = [
    ("x = a . b + c", "(x) = ((a) . ((b) + (c)))"),
    ("x = y ? 1 : z ? 2 : 3", "(x) = ((y) ? (1) : ((z) ? (2) : (3)))"),
    ("x = a ? b = 1 : c", "(x) = ((a) ? ((b) = (1)) : (c))"),
    ("x = !a in b", "(x) = ([!(a)] in b)"),
    ("x = a < b in c", "(x) = ([(a) < (b)] in c)"),
    ("x = a in b && c", "(x) = (([a] in b) && (c))"),
    ("x = a & b in c", "(x) = ((a) & ([b] in c))"),
    ("x = a || b && c | d ^ e & f", "(x) = ((a) || ((b) && ((c) | ((d) ^ ((e) & (f))))))"),
    ("x = a == b < c", "(x) = (((a) == (b)) < (c))"),
    ("x = a << b . c", "(x) = ((a) << ((b) . (c)))"),
    ("x = a + b * c - d", "(x) = (((a) + ((b) * (c))) - (d))"),
    ("x = -a * b", "(x) = ((-(a)) * (b))"),
    ("x = - - a", "(x) = (-(-(a)))"),
    ("x = a++ + ++b", "(x) = (((a)++) + (++(b)))"),
    ("a = b = c", "(a) = ((b) = (c))"),
    ("s <<< a + 1", "(s) <<< ((a) + (1))"),
    ("x = a =~ \"r\" && b", "(x) = (((a) =~ \"r\") && (b))"),
    ("x = a >>> 2", "(x) = ((a) >>> (2))"),
    ("x = [a, *] in b", "(x) = ([a, *] in b)"),
    ("x = &$p->a[1]$", "(x) = (&$p->a[1]$)"),
    ("x = f()->a", "(x) = ((f())->a)"),
    ("x = @cast(p, \"t\")->a->b", "(x) = (@cast(p, \"t\")->a->b)"),
]


@pytest.mark.parametrize("src,printed", PRECEDENCE)
def test_precedence(src: str, printed: str) -> None:
    assert print_expr(body_expr(src)) == printed


def test_tree_shapes() -> None:
    assert body_expr("a . b + c") == A.Binary(".", S("a"), A.Binary("+", S("b"), S("c")))
    assert body_expr("!a in b") == A.InArray([A.Unary("!", S("a"))], S("b"))
    t = body_expr("x = y ? 1 : z ? 2 : 3")
    assert t == A.Assign("=", S("x"), A.Ternary(S("y"), N(1), A.Ternary(S("z"), N(2), N(3))))
    assert body_expr("[k1, k2] in A") == A.InArray([S("k1"), S("k2")], S("A"))
    assert body_expr("-5") == A.Unary("-", N(5))          # no negative literal token
    assert body_expr("18446744073709551615") == N(-1)     # wraps like stap


# ---------------------------------------------------------------- target symbols and @ops
AT_CASES = [
    ("$x", A.TargetSymbol("$x")),
    ("$x->a->b", A.TargetSymbol("$x", [A.TargetComponent("member", "a"),
                                       A.TargetComponent("member", "b")])),
    ("$x[i]", A.TargetSymbol("$x", [A.TargetComponent("index", index=S("i"))])),
    ("&$x", A.TargetSymbol("$x", addressof=True)),
    ("$x$", A.TargetSymbol("$x", pretty="$")),
    ("$x$$", A.TargetSymbol("$x", pretty="$$")),
    ("$x->y$", A.TargetSymbol("$x", [A.TargetComponent("member", "y")], pretty="$")),
    ("$$parms", A.TargetSymbol("$$parms")),
    ("$$vars", A.TargetSymbol("$$vars")),
    ("$$return", A.TargetSymbol("$$return")),
    ("$$vars$", A.TargetSymbol("$$vars", pretty="$")),
    ('@cast(p, "task_struct")->pid',
     A.AtOp("cast", [S("p")], ["task_struct"], [A.TargetComponent("member", "pid")])),
    ('@cast(p, "t", "kernel<linux/sched.h>")',
     A.AtOp("cast", [S("p")], ["t", "kernel<linux/sched.h>"])),
    ('@var("jiffies")', A.AtOp("var", strings=["jiffies"])),
    ('@var("x", "/bin/ls")', A.AtOp("var", strings=["x", "/bin/ls"])),
    ("@defined($x)", A.AtOp("defined", [A.TargetSymbol("$x")])),
    ("@entry($x)", A.AtOp("entry", [A.TargetSymbol("$x")])),
    ("@probewrite(x)", A.AtOp("probewrite", [S("x")])),
    ("@count(s)", A.StatOp("count", S("s"))),
    ("@sum(s)", A.StatOp("sum", S("s"))),
    ("@min(s)", A.StatOp("min", S("s"))),
    ("@max(s)", A.StatOp("max", S("s"))),
    ("@avg(a[1])", A.StatOp("avg", A.Index(S("a"), [N(1)]))),
    ("@variance(s, 2)", A.StatOp("variance", S("s"), [N(2)])),
    ("@hist_log(s)", A.HistOp("log", S("s"))),
    ("@hist_linear(s, 0, 10, 1)", A.HistOp("linear", S("s"), [N(0), N(10), N(1)])),
    ("@hist_log(s)[3]", A.Index(A.HistOp("log", S("s")), [N(3)])),
    ("f()->a", A.AtOp("autocast", [A.Call("f", [])],
                      components=[A.TargetComponent("member", "a")])),
]


@pytest.mark.parametrize("src,tree", AT_CASES)
def test_target_and_at_ops(src: str, tree: A.Expr) -> None:
    assert body_expr(src) == tree


# ---------------------------------------------------------------- statements
def stmts(src: str, **kw) -> list[A.Stmt]:
    return parse("probe begin { " + src + " }", **kw).probes[0].body.stmts


def test_foreach_forms() -> None:
    (f,) = stmts("foreach (k in A) ;")
    assert f.keys == [S("k")] and f.value is None and f.sort_column is None
    (f,) = stmts("foreach ([a, b-] in A limit 3) ;")
    assert (f.sort_column, f.sort_dir, f.limit) == (2, -1, N(3))
    (f,) = stmts("foreach (v = [a, b] in A+) ;")
    assert f.value == S("v") and (f.sort_column, f.sort_dir) == (0, 1)
    (f,) = stmts("foreach (v- = k in A) ;")
    assert (f.sort_column, f.sort_dir) == (0, -1)
    (f,) = stmts("foreach ([k] in S @sum-) ;")
    assert (f.agg, f.sort_column, f.sort_dir) == ("sum", 0, -1)
    (f,) = stmts("foreach ([a, b] in A[*, 3]) ;")
    assert f.slice == [A.Wildcard(), N(3)]


def test_other_statements() -> None:
    got = stmts("if (a) b; else c; while (x) break; for (;;) continue; next; "
                "delete a[*, 1]; delete a; try { } catch (m) { } ; { }")
    kinds = [type(s).__name__ for s in got]
    assert kinds == ["If", "While", "For", "Next", "Delete", "Delete", "TryCatch",
                     "NullStmt", "Block"]
    assert got[4].target == A.Index(S("a"), [A.Wildcard(), N(1)])
    assert got[6].var == "m"
    assert got[2] == A.For(None, None, None, A.Continue())


def test_semicolon_swallowed_once() -> None:
    assert [type(s).__name__ for s in stmts("x = 1;; y = 2")] == ["ExprStmt", "NullStmt",
                                                                 "ExprStmt"]


# ---------------------------------------------------------------- top level
def test_probe_points() -> None:
    f = parse('probe syscall.{open,close}.return?, kernel.function("f").call! if (x) { } '
              'probe sys*call.**, timer.ms(-5), foo.**.bar* { }')
    p0 = [(pp.text(), pp.optional, pp.sufficient, pp.condition) for pp in f.probes[0].points]
    assert p0 == [("syscall.open.return", True, False, None),
                  ("syscall.close.return", True, False, None),
                  ('kernel.function("f").call', True, True, S("x"))]
    assert [pp.text() for pp in f.probes[1].points] == ["sys*call.**", "timer.ms(-5)",
                                                         "foo.**.bar*"]


def test_brace_expansion_product() -> None:
    f = parse("probe {a,b}.{c,d} { }")
    assert [pp.text() for pp in f.probes[0].points] == ["a.c", "a.d", "b.c", "b.d"]


def test_aliases() -> None:
    f = parse("probe a = b, c { x = 1 } probe d += e { } probe f = g { x = 1 }, { x = 2 }")
    assert [(al.epilogue, [p.text() for p in al.names]) for al in f.aliases] == [
        (False, ["a"]), (True, ["d"]), (False, ["f"]), (True, ["f"])]
    assert f.aliases[3].body.stmts[0].expr == A.Assign("=", S("x"), N(2))


def test_globals() -> None:
    f = parse('global a, b[1000], c%, d%[50], e = 5, f = "x", g = -3; private h '
              "private global i probe begin { }")
    got = [(g.name, g.size, g.wrap, g.init, g.private) for g in f.globals]
    assert got == [("a", None, False, None, False), ("b", 1000, False, None, False),
                   ("c", None, True, None, False), ("d", 50, True, None, False),
                   ("e", None, False, N(5), False), ("f", None, False, A.String("x"), False),
                   ("g", None, False, N(-3), False), ("h", None, False, None, True),
                   ("i", None, False, None, True)]


def test_functions() -> None:
    f = parse("function f:long (a:long, b:string, c) :3 { return a } "
              "private function g() { } function h() %{ /* pure */ STAP_RETURN(1); %}",
              guru=True)
    fa, fb, fc = f.functions
    assert (fa.name, fa.return_type, fa.priority, fa.private) == ("f", "long", 3, False)
    assert [(p.name, p.type) for p in fa.params] == [("a", "long"), ("b", "string"),
                                                     ("c", None)]
    assert fb.private and fb.priority == 0
    assert fc.body == A.EmbeddedExpr(" /* pure */ STAP_RETURN(1); ")


def test_tapset_allows_embedded_and_defaults_priority() -> None:
    f = parse_file("t.stp", "%{ #include <x.h> %} function f() %{ %}", tapset=True)
    assert f.embeds[0].code == " #include <x.h> " and f.functions[0].priority == 1
    assert f.is_tapset


def test_tapset_may_be_empty() -> None:
    assert parse_file("t.stp", "%( arch == \"none\" %? probe begin {} %)", tapset=True,
                      pp=PP).probes == []


def test_library_macros() -> None:
    lib = parse_stpm("lib.stpm", "@define TWO %( 2 %) @define SQ(x) %( (@x * @x) %)")
    assert set(lib) == {"TWO", "SQ"}
    f = parse_file("t.stp", "probe begin { x = @SQ(@TWO) }", library_macros=lib)
    assert f.probes[0].body.stmts[0].expr.value == A.Binary("*", N(2), N(2))
    with pytest.raises(StapErrors):
        parse_stpm("lib2.stpm", "@define TWO %( 3 %)", library_macros=lib)
    with pytest.raises(StapErrors):
        parse_stpm("lib3.stpm", "probe begin { }")


def test_command_line_args() -> None:
    f = parse_file("t.stp", 'probe process(@1).function("x") { x = $2 + $# ; y = @# }',
                   args=["/bin/ls", "3 * 4"])
    p = f.probes[0]
    assert p.points[0].text() == 'process("/bin/ls").function("x")'
    e = p.body.stmts[0].expr
    assert e == A.Assign("=", S("x"), A.Binary("+", A.Binary("*", N(3), N(4)), N(2)))
    assert p.body.stmts[1].expr.value == A.String("2")


# ---------------------------------------------------------------- errors
def test_error_rendering_exact() -> None:
    errs = errors_of("probe begin {\n  x = 1 +\n}\n", path="render.stp")
    assert StapErrors(errs).render() == (
        "parse error: expected value\n"
        "        at: operator '}' at render.stp:3:1\n"
        "     source: }\n"
        "             ^\n"
        "\n"
        "1 parse error.\n")


def test_error_rendering_eof() -> None:
    errs = errors_of("probe begin {", path="eof.stp")
    assert errs[0].render() == ("parse error: expected '}'\n"
                                "         saw: eof.stp EOF\n"
                                "     source: probe begin {\n"
                                "                          ^\n")


def test_args_out_of_range_rendered() -> None:
    errs = errors_of("probe begin { x = $3 }", path="args.stp", args=["a"])
    assert errs[0].msg == "command line argument index 3 out of range [1-1]"
    assert errs[0].render().splitlines()[1] == "        at: junk at args.stp:1:19"


def test_embedded_allowed_with_guru() -> None:
    f = parse("%{ int x; %} probe begin { x = %{ 1 %} }", guru=True)
    assert f.embeds[0].code == " int x; "
    assert f.probes[0].body.stmts[0].expr.value == A.EmbeddedExpr(" 1 ")


def _expectations(path: Path) -> tuple[str, int]:
    lines = path.read_text().splitlines()
    m = re.match(r"# expect: (.*)$", lines[0])
    assert m, f"{path} lacks an '# expect:' first line"
    count = 1
    if len(lines) > 1 and (c := re.match(r"# count: (\d+)", lines[1])):
        count = int(c.group(1))
    return m.group(1), count


BAD = sorted((DATA / "parse_bad").glob("*.stp"))


@pytest.mark.parametrize("path", BAD, ids=[p.stem for p in BAD])
def test_bad_corpus(path: Path) -> None:
    expected, count = _expectations(path)
    errs = errors_of(path.read_text(), path=str(path))
    assert len(errs) == count, StapErrors(errs).render()
    first = errs[0]
    if first.loc is None:
        got = first.msg.replace(str(path), "EMPTY")
    else:
        got = f"{first.loc.line}:{first.loc.col}: {first.msg}"
    assert got == expected, StapErrors(errs).render()
    StapErrors(errs).render()   # always renderable


GOOD = sorted((DATA / "parse_ok").glob("*.stp"))


@pytest.mark.parametrize("path", GOOD, ids=[p.stem for p in GOOD])
def test_round_trip(path: Path) -> None:
    tree = parse_file(str(path), path.read_text(), pp=PP)
    printed = print_file(tree)
    assert printed.startswith(f"# parse tree dump\n# file {path}\n")
    again = parse_file(str(path) + ".printed", printed, pp=PP)
    assert dataclasses.replace(again, path=tree.path) == tree
    # Printing is a fixed point after one round.
    assert print_file(again).splitlines()[2:] == printed.splitlines()[2:]


def test_ast_json_round_trip() -> None:
    path = DATA / "parse_ok" / "stmts.stp"
    tree = parse_file(str(path), path.read_text(), pp=PP)
    assert A.from_json(A.to_json(tree)) == tree
