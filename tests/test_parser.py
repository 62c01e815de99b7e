"""Parser tests (reference §1.3-1.6): precedence, every construct, stap's
error texts and the token each error shows, corpus round trips.

Trees are compared with ==, which ignores locs (Node.loc has compare=False);
the round trip parse -> print -> parse over tests/data/parse_ok is the main
check that the parser and printer agree (tests/test_parse_roundtrip.py does
it for generated programs).
"""
from __future__ import annotations

import dataclasses
import re
from pathlib import Path

import pytest

from codegen import ast as A
from codegen.errors import StapErrors
from codegen.parser import ParseError, parse_file, parse_stpm
from codegen.preprocess import PPContext
from codegen.printer import expr as print_expr
from codegen.printer import print_file

DATA = Path(__file__).parent / "data"
PP = PPContext(config={"CONFIG_SMP": "y", "CONFIG_HZ": "250"})


def parse(text: str, **kw) -> A.File:
    return parse_file("t.stp", text, pp=PP, **kw)


def body_expr(src: str, **kw) -> A.Expr:
    f = parse("probe begin { " + src + " }", **kw)
    stmt = f.probes[0].body.stmts[0]
    assert isinstance(stmt, A.ExprStmt)
    return stmt.expr


def errors_of(text: str, path: str = "t.stp", **kw) -> list:
    with pytest.raises(StapErrors) as info:
        parse_file(path, text, pp=PP, **kw)
    return info.value.errors


def where(e) -> str:
    """'L:C: message' for the token an error shows, 'EOF: message' at the end."""
    msg = " ".join(e.msg.split())
    if e.loc is None:
        return f"EOF: {msg}"
    return f"{e.loc.line}:{e.loc.col}: {msg}"


def S(n: str) -> A.Symbol:
    return A.Symbol(n)


def N(v: int) -> A.Number:
    return A.Number(v)


# ---------------------------------------------------------------- precedence
PRECEDENCE = [
    ("x = a . b + c", "(x) = ((a) . ((b) + (c)))"),
    ("x = a + b . c * d", "(x) = (((a) + (b)) . ((c) * (d)))"),
    ("x = y ? 1 : z ? 2 : 3", "(x) = ((y) ? (1) : ((z) ? (2) : (3)))"),
    ("x = a ? b = 1 : c", "(x) = ((a) ? ((b) = (1)) : (c))"),
    ("x = !a in b", "(x) = ([!(a)] in b)"),
    ("x = a < b in c", "(x) = ([(a) < (b)] in c)"),
    ("x = a in b && c", "(x) = (([a] in b) && (c))"),
    ("x = a & b in c", "(x) = ((a) & ([b] in c))"),
    ("x = a || b && c | d ^ e & f", "(x) = ((a) || ((b) && ((c) | ((d) ^ ((e) & (f))))))"),
    ("x = a && b || c && d", "(x) = (((a) && (b)) || ((c) && (d)))"),
    ("x = a == b < c", "(x) = (((a) == (b)) < (c))"),
    ("x = a << b . c", "(x) = ((a) << ((b) . (c)))"),
    ("x = a + b * c - d", "(x) = (((a) + ((b) * (c))) - (d))"),
    ("x = a - b - c", "(x) = (((a) - (b)) - (c))"),
    ("x = -a * b", "(x) = ((-(a)) * (b))"),
    ("x = - - a", "(x) = (-(-(a)))"),
    ("x = a++ + ++b", "(x) = (((a)++) + (++(b)))"),
    ("a = b = c", "(a) = ((b) = (c))"),
    ("s <<< a + 1", "(s) <<< ((a) + (1))"),
    ("x = a =~ \"r\" && b", "(x) = (((a) =~ \"r\") && (b))"),
    ("x = a >>> 2", "(x) = ((a) >>> (2))"),
    ("x = [a, *] in b", "(x) = ([a, *] in b)"),
    ("x = [a]", "(x) = (a)"),                       # a lone bracketed operand
    ("x = &$p->a[1]$", "(x) = (&$p->a[1]$)"),
    ("x = f()->a", "(x) = ((f())->a)"),
    ("x = @cast(p, \"t\")->a->b", "(x) = (@cast(p, \"t\")->a->b)"),
]


@pytest.mark.parametrize("src,printed", PRECEDENCE)
def test_precedence(src: str, printed: str) -> None:
    assert print_expr(body_expr(src)) == printed


def test_ternary_before_4_0_takes_a_full_expression() -> None:
    # Since 4.0 the false branch is parsed at ternary level.
    new = body_expr("a ? b : c = d")
    assert new == A.Assign("=", A.Ternary(S("a"), S("b"), S("c")), S("d"))
    old = body_expr("a ? b : c = d", compatible="3.0")
    assert old == A.Ternary(S("a"), S("b"), A.Assign("=", S("c"), S("d")))


def test_tree_shapes() -> None:
    assert body_expr("a . b + c") == A.Binary(".", S("a"), A.Binary("+", S("b"), S("c")))
    assert body_expr("!a in b") == A.InArray([A.Unary("!", S("a"))], S("b"))
    assert body_expr("[k1, k2] in A") == A.InArray([S("k1"), S("k2")], S("A"))
    assert body_expr("-5") == A.Unary("-", N(5))          # no negative literal token
    assert body_expr("18446744073709551615") == N(-1)     # wraps like stap
    assert body_expr('"a" "b" /* c */ "\\x41"') == A.String("abA")
    assert body_expr("a < b < c") == A.Binary("<", A.Binary("<", S("a"), S("b")), S("c"))
    assert body_expr("x ? y : z") == A.Ternary(S("x"), S("y"), S("z"))


# ---------------------------------------------------------------- target symbols and @ops
AT_CASES = [
    ("$x", A.TargetSymbol("$x")),
    ("$x->a->b", A.TargetSymbol("$x", [A.TargetComponent("member", "a"),
                                       A.TargetComponent("member", "b")])),
    ("$x[i]", A.TargetSymbol("$x", [A.TargetComponent("index", index=S("i"))])),
    ("$x->return", A.TargetSymbol("$x", [A.TargetComponent("member", "return")])),
    ("&$x", A.TargetSymbol("$x", addressof=True)),
    ("&$x->a", A.TargetSymbol("$x", [A.TargetComponent("member", "a")], addressof=True)),
    ("$x$", A.TargetSymbol("$x", pretty="$")),
    ("$x$$", A.TargetSymbol("$x", pretty="$$")),
    ("$x->y$", A.TargetSymbol("$x", [A.TargetComponent("member", "y")], pretty="$")),
    ("$x->$", A.TargetSymbol("$x", pretty="$")),
    ("$x[1] $$", A.TargetSymbol("$x", [A.TargetComponent("index", index=N(1))], pretty="$$")),
    ("$$parms", A.TargetSymbol("$$parms")),
    ("$$vars", A.TargetSymbol("$$vars")),
    ("$$locals", A.TargetSymbol("$$locals")),
    ("$$return", A.TargetSymbol("$$return")),
    ("$$vars$", A.TargetSymbol("$$vars", pretty="$")),
    ("$$parms$$", A.TargetSymbol("$$parms", pretty="$$")),
    ("$return", A.TargetSymbol("$return")),
    ("$arg1", A.TargetSymbol("$arg1")),
    ('@cast(p, "task_struct")->pid',
     A.AtOp("cast", [S("p")], ["task_struct"], [A.TargetComponent("member", "pid")])),
    ('@cast(p, "t", "kernel<linux/sched.h>")',
     A.AtOp("cast", [S("p")], ["t", "kernel<linux/sched.h>"])),
    ('&@cast(p, "t")->f', A.AtOp("cast", [S("p")], ["t"], [A.TargetComponent("member", "f")],
                                 addressof=True)),
    ('@cast(p, "t")$', A.AtOp("cast", [S("p")], ["t"], pretty="$")),
    ('@var("jiffies")', A.AtOp("var", strings=["jiffies"])),
    ('@var("x@f.c", "/bin/ls")', A.AtOp("var", strings=["x@f.c", "/bin/ls"])),
    ("@defined($x)", A.AtOp("defined", [A.TargetSymbol("$x")])),
    ("@entry($x)", A.AtOp("entry", [A.TargetSymbol("$x")])),
    ("@probewrite(x)", A.AtOp("probewrite", [S("x")])),
    ('@perf("cycles")', A.AtOp("perf", strings=["cycles"])),
    ("@uregister(3)", A.AtOp("uregister", [N(3)])),
    ("@uderef(4, p + 8)", A.AtOp("uderef", [N(4), A.Binary("+", S("p"), N(8))])),
    ("@count(s)", A.StatOp("count", S("s"))),
    ("@sum(s)", A.StatOp("sum", S("s"))),
    ("@min(s)", A.StatOp("min", S("s"))),
    ("@max(s)", A.StatOp("max", S("s"))),
    ("@avg(a[1])", A.StatOp("avg", A.Index(S("a"), [N(1)]))),
    ("@variance(s, 2)", A.StatOp("variance", S("s"), [N(2)])),
    ("@hist_log(s)[3]", A.Index(A.HistOp("log", S("s")), [N(3)])),
    ("@count(a[i, *])", A.StatOp("count", A.Index(S("a"), [S("i"), A.Wildcard()]))),
    ("f()->a", A.AtOp("autocast", [A.Call("f", [])],
                      components=[A.TargetComponent("member", "a")])),
    ("&x->a", A.AtOp("autocast", [S("x")], components=[A.TargetComponent("member", "a")],
                     addressof=True)),
    ("x $", A.AtOp("autocast", [S("x")], pretty="$")),
    ('@enum("E")', A.AtOp("enum", strings=["E"])),
    ('@enumname(v, "t")', A.AtOp("enumname", [S("v")], ["t"])),
]


@pytest.mark.parametrize("src,tree", AT_CASES, ids=[c[0] for c in AT_CASES])
def test_target_and_at_ops(src: str, tree: A.Expr) -> None:
    assert body_expr(src) == tree


def test_guru_only_operators() -> None:
    assert body_expr('@const("X")', guru=True) == A.AtOp("const", strings=["X"])
    assert body_expr("@kregister(1)", guru=True) == A.AtOp("kregister", [N(1)])
    assert body_expr("@kderef(8, p)", guru=True) == A.AtOp("kderef", [N(8), S("p")])
    assert body_expr("%{ 1 %}", guru=True) == A.EmbeddedExpr(" 1 ")


def test_print_family() -> None:
    assert body_expr('printf("%d", 1)') == A.Call("printf", [A.String("%d"), N(1)])
    assert body_expr('printf("a" "b")') == A.Call("printf", [A.String("ab")])
    assert body_expr('printd(",", a, b)') == A.Call("printd", [A.String(","), S("a"), S("b")])
    assert body_expr("println()") == A.Call("println", [])
    assert body_expr("print(@hist_log(s))") == A.Call("print", [A.HistOp("log", S("s"))])
    assert body_expr("print(@hist_linear(s, 0, 9, -1)[2], 3)") == A.Call(
        "print", [A.Index(A.HistOp("linear", S("s"), [N(0), N(9), N(-1)]), [N(2)]), N(3)])
    assert body_expr("sprint(1)") == A.Call("sprint", [N(1)])
    assert body_expr("print_char(1)") == A.Call("print_char", [N(1)])


# ---------------------------------------------------------------- statements
def stmts(src: str, **kw) -> list[A.Stmt]:
    return parse("probe begin { " + src + " }", **kw).probes[0].body.stmts


def test_foreach_forms() -> None:
    (f,) = stmts("foreach (k in A) ;")
    assert f.keys == [S("k")] and f.value is None and f.sort_column is None
    (f,) = stmts("foreach (k- in A) ;")
    assert (f.sort_column, f.sort_dir) == (1, -1)
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
    (f,) = stmts("foreach (b in @hist_log(s)) ;")
    assert f.array == A.HistOp("log", S("s"))


def test_other_statements() -> None:
    got = stmts("if (a) b; else c; while (x) break; for (;;) continue; next; "
                "delete a[*, 1]; delete a; try { } catch (m) { } ; { }")
    kinds = [type(s).__name__ for s in got]
    assert kinds == ["If", "While", "For", "Next", "Delete", "Delete", "TryCatch",
                     "NullStmt", "Block"]
    assert got[4].target == A.Index(S("a"), [A.Wildcard(), N(1)])
    assert got[6].var == "m"
    assert got[2] == A.For(None, None, None, A.Continue())
    (t,) = stmts("try { } catch { }")
    assert t.var is None
    (d,) = stmts("delete x + 1")                        # any expression, like stap
    assert d.target == A.Binary("+", S("x"), N(1))


def test_semicolon_swallowed_once() -> None:
    assert [type(s).__name__ for s in stmts("x = 1;; y = 2")] == ["ExprStmt", "NullStmt",
                                                                 "ExprStmt"]


def test_dangling_else_binds_inner() -> None:
    (s,) = stmts("if (a) if (b) x; else y")
    assert s.else_ is None and s.then.else_ == A.ExprStmt(S("y"))


# ---------------------------------------------------------------- top level
def test_probe_points() -> None:
    f = parse('probe syscall.{open,close}.return?, kernel.function("f").call! if (x) { } '
              'probe sys*call.**, timer.ms(-5), foo.**.bar*, a.function.return { }')
    p0 = [(pp.text(), pp.optional, pp.sufficient, pp.condition) for pp in f.probes[0].points]
    assert p0 == [("syscall.open.return", True, False, None),
                  ("syscall.close.return", True, False, None),
                  ('kernel.function("f").call', True, True, S("x"))]
    assert [pp.text() for pp in f.probes[1].points] == ["sys*call.**", "timer.ms(-5)",
                                                         "foo.**.bar*", "a.function.return"]


def test_brace_expansion_product() -> None:
    f = parse("probe {a,b}.{c,d} { } probe {x?, y!} { }")
    assert [pp.text() for pp in f.probes[0].points] == ["a.c", "a.d", "b.c", "b.d"]
    assert [(pp.optional, pp.sufficient) for pp in f.probes[1].points] == [
        (True, False), (True, True)]


def test_aliases() -> None:
    f = parse("probe a = b, c { x = 1 } probe d += e { } probe f = g { x = 1 }, { x = 2 } "
              "probe h = i = j { }")
    assert [(al.epilogue, [p.text() for p in al.names]) for al in f.aliases] == [
        (False, ["a"]), (True, ["d"]), (False, ["f"]), (True, ["f"]), (False, ["h", "i"])]
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


def test_private_before_3_0_is_an_identifier() -> None:
    errs = errors_of("private x", compatible="2.9")
    assert where(errs[0]) == "1:1: expected 'probe', 'global', 'private', 'function', or '%{'"


def test_functions() -> None:
    f = parse("function f:long (a:long, b:string, c) :3 { return a } "
              "private function g() { } function h() %{ /* pure */ STAP_RETURN(1); %} "
              "function string:string() { } function f(a) { next }", guru=True)
    fa, fb, fc, fd, fe = f.functions
    assert (fa.name, fa.return_type, fa.priority, fa.private) == ("f", "long", 3, False)
    assert [(p.name, p.type) for p in fa.params] == [("a", "long"), ("b", "string"),
                                                     ("c", None)]
    assert fb.private and fb.priority == 0
    assert fc.body == A.EmbeddedExpr(" /* pure */ STAP_RETURN(1); ")
    assert fd.name == "string" and fd.return_type == "string"
    assert fe.name == "f" and len(fe.params) == 1          # arity overloading


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
    with pytest.raises(StapErrors) as info:
        parse_stpm("lib2.stpm", "@define TWO %( 3 %)", library_macros=lib)
    assert info.value.errors[0].msg == "duplicate definition of library macro '@TWO'"
    with pytest.raises(StapErrors) as info:
        parse_stpm("lib3.stpm", "probe begin { }")
    assert info.value.errors[0].msg == "unexpected token in library macro file 'lib3.stpm'"


def test_macros_are_file_local() -> None:
    parse_file("a.stp", "@define M %( 1 %) probe begin { x = @M }")
    errs = errors_of("probe begin { x = @M }")
    assert where(errs[0]) == "1:19: unknown operator @M"


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
    errs = errors_of("probe begin {\n\tx = 1 +\n}\n", path="render.stp")
    assert StapErrors(errs).render() == (
        "parse error: expected literal string or number\n"
        "        saw: operator '}' at render.stp:3:1\n"
        "     source: }\n"
        "             ^\n"
        "\n"
        "1 parse error.\n")
    from codegen.parser import ParseErrors
    assert ParseErrors(errs).render() == StapErrors(errs).render()


def test_error_rendering_at_and_tabs() -> None:
    errs = errors_of("probe begin {\n\tx = $9\n}\n", path="args.stp", args=["a"])
    assert errs[0].render() == (
        "parse error: command line argument out of range [1-1]\n"
        "         at: junk '$9' at args.stp:2:6\n"
        "     source: \tx = $9\n"
        "             \t    ^\n")


def test_error_rendering_eof() -> None:
    errs = errors_of("probe begin {", path="eof.stp")
    assert errs[0].render() == ("parse error: expected statement\n"
                                "        saw: eof.stp EOF\n")
    errs = errors_of("function f", path="eof.stp")
    assert errs[0].render().splitlines()[:2] == [
        "parse error: unexpected end-of-file", "        saw: identifier 'f' at eof.stp:1:10"]


def test_error_in_macro_expansion_names_the_invocation() -> None:
    text = "@define bad %( 1 + ) %)\nprobe begin {\n  x = @bad\n}\n"
    errs = errors_of(text, path="m.stp")
    assert errs[0].render().splitlines() == [
        "parse error: expected literal string or number",
        "        saw: operator ')' at m.stp:1:20",
        "     source: @define bad %( 1 + ) %)",
        "                                ^",
        "\tin expansion of macro: operator '@bad' at m.stp:3:7",
        "     source:   x = @bad",
        "                   ^"]


def test_redefined_macro_points_at_the_first_definition() -> None:
    errs = errors_of("@define m %( 1 %)\n@define m %( 2 %)\nprobe begin { }")
    text = errs[0].render()
    assert "parse error: attempt to redefine macro '@m' in the same file" in text
    assert "parse error: macro '@m' first defined here" in text
    assert "at: identifier 'm' at t.stp:1:9" in text


def test_embedded_allowed_with_guru() -> None:
    f = parse("%{ int x; %} probe begin { x = %{ 1 %} }", guru=True)
    assert f.embeds[0].code == " int x; "
    assert f.probes[0].body.stmts[0].expr.value == A.EmbeddedExpr(" 1 ")


BAD_INLINE = [
    # One program per message that stap's parser can give, with the token it shows.
    ("probe begin { x = }", "1:19: expected literal string or number"),
    ("probe begin { x = (1 }", "1:22: expected ')'"),
    ("probe begin { x = a ? b }", "1:25: expected ':'"),
    ("probe begin { f(1 2) }", "1:19: expected one of ') ,'"),
    ("probe begin { a[1 2] }", "1:19: expected one of '] ,'"),
    ("probe begin { x = [a, b] }", "1:26: unexpected comma-separated expression list"),
    ("probe begin { x = [a b] in c }", "1:22: expected ',' or ']'"),
    ("probe begin { x = @hist_log(s) }", "1:19: base histogram operator where expression "
     "expected"),
    ("probe begin { x = @hist_linear(s, 1, 2, y) }", "1:41: expected number"),
    ("probe begin { x = @count(s, 1) }", "1:27: not more than 1 parameter allowed"),
    ("probe begin { x = @variance(s, 1, 2) }", "1:33: not more than 2 parameters allowed"),
    ('probe begin { x = @cast(p, "") }', "1:30: expected non-empty string"),
    ("probe begin { x = @cast(p, t) }", "1:28: expected string"),
    ("probe begin { x = @var(1) }", "1:24: expected string"),
    ('probe begin { x = @perf("") }', "1:27: expected non-empty string"),
    ("probe begin { x = @probewrite(1) }", "1:31: expected identifier"),
    ('probe begin { x = @const("X") }', "1:19: using @const operator not permitted; need "
     "stap -g"),
    ("probe begin { x = @kregister(1) }", "1:19: using @kregister operator not permitted; "
     "need stap -g"),
    ("probe begin { x = @kderef(1, p) }", "1:19: using @kderef operator not permitted; "
     "need stap -g"),
    ("probe begin { x = $x$->a }", "1:22: -> and [ are not accepted for a pretty-printing "
     "variable"),
    ("probe begin { x = $x-> 1 }", "1:24: expected identifier or keyword"),
    ("probe begin { x = & &$x }", "1:21: expected literal string or number"),
    ("probe begin { x = &(&$x) }", "1:19: cannot take address more than once"),
    ("probe begin { print() }", "1:21: expected literal string or number"),
    ("probe begin { printf(x) }", "1:22: expected literal string"),
    ('probe begin { printd(",") }', "1:27: expected literal string or number"),
    ("probe begin { printf }", "1:22: expected '('"),
    ('probe begin { printf("x" 1) }', "1:26: expected one of ', )'"),
    ("probe begin { else }", "1:15: expected statement"),
    ("probe begin { if x }", "1:18: expected '('"),
    ("probe begin { if (x }", "1:21: expected ')'"),
    ("probe begin { for (i = 0 i < 3;) ; }", "1:26: expected ';'"),
    ("probe begin { for (;; i++ ; }", "1:27: expected ')'"),
    ("probe begin { foreach (1 in a) ; }", "1:24: expected identifier"),
    ("probe begin { foreach ([a b] in c) ; }", "1:27: expected ',' or ']'"),
    ("probe begin { foreach (a of b) ; }", "1:26: expected 'in'"),
    ("probe begin { foreach (a in 1) ; }", "1:29: expected identifier or statistical "
     "operation"),
    ("probe begin { foreach (a in b[1 2]) ; }", "1:33: expected ',' or ']'"),
    ("probe begin { foreach (a in b limit 1 ; }", "1:39: expected ')'"),
    ("probe begin { foreach (a+ in b-) ; }", "1:31: multiple sort directives"),
    ("probe begin { try { } x }", "1:23: expected 'catch'"),
    ("probe begin { try { } catch (1) { } }", "1:30: expected identifier"),
    ("probe begin { return }", "1:15: found 'return' not in function context"),
    ("function f() { return", "EOF: expected ';', '}' or an expression statement"),
    ("probe begin x", "1:13: expected one of ', { } = +='"),
    ("probe a, b = c { }", "1:12: expected probe point specifier"),
    ("probe a? = b { }", "1:7: probe point alias name cannot be optional nor sufficient"),
    ("probe a += b { }, { }", "1:17: Combined prologue and epilogue cannot be defined with "
     "'+='"),
    ("probe 1 { }", "1:7: expected identifier or '*' or '{'"),
    ("probe {a, b { }", "1:13: expected '}'"),
    ("probe a(b) { }", "1:9: expected literal string or number"),
    ('probe a("x" { }', "1:13: expected ')'"),
    ("probe a?? { }", "1:9: expected one of ', { } = +='"),
    ("probe {a?}? { }", "1:11: '?' or '!' respecified"),
    ("probe a if x { }", "1:12: expected '('"),
    ("probe a if (x { }", "1:15: expected ')'"),
    ("probe {a if (x)} if (y) { }", "1:23: condition respecified"),
    ("probe a(-18446744073709551615) { }", "1:10: number invalid or out of range"),
    ("global", "EOF: unexpected end-of-file"),
    ("global 1", "1:8: expected identifier"),
    ("global a, a", "1:11: duplicate global name"),
    ("global a private a", "1:18: global versus private variable declaration conflict"),
    ("global a[x]", "1:10: expected number"),
    ("global a[2147483648]", "EOF: array size out of range"),
    ("global a[1 }", "1:12: expected ']'"),
    ("global a = x", "1:12: expected literal string or number"),
    ("private 1", "1:9: expected 'function' or identifier"),
    ("private global 1", "1:16: expected identifier"),
    ("function 1() { }", "1:10: expected identifier"),
    ("function f:int() { }", "1:12: expected 'string' or 'long'"),
    ("function f x { }", "1:12: expected '('"),
    ("function f(1) { }", "1:12: expected identifier"),
    ("function f(a:int) { }", "1:14: expected 'string' or 'long'"),
    ("function f(a b) { }", "1:14: expected ',' or ')'"),
    ("function f(a, a) { }", "1:15: duplicate parameter names"),
    ('function f() :"x" { }', "1:15: expected literal number"),
    ("function f() :0 { }", "1:15: specified priority must be > 0"),
    ("function f() x", "1:14: expected '{'"),
    ("function f()", "EOF: expected '{'"),
    ("%{ x %}", "1:1: embedded code in unprivileged script; need stap -g"),
    ("probe begin { x = 08 }", "1:19: number invalid or out of range"),
    ('probe begin { x = "abc }', "1:19: Could not find matching closing quote"),
    ("probe begin { x = $1 }", "1:19: command line argument out of range [1-0]"),
    ("probe begin { x = @x() }", "1:19: unknown operator @x"),
    ("probe begin { x = \x01 }", "1:19: expected literal string or number"),
    ("probe begin { x = &1 }", None),            # an autocast: accepted
]


@pytest.mark.parametrize("text,expected", BAD_INLINE, ids=[b[0] for b in BAD_INLINE])
def test_error_messages(text: str, expected) -> None:
    if expected is None:
        parse(text)
        return
    errs = errors_of(text)
    assert where(errs[0]) == expected, StapErrors(errs).render()


def test_address_of_needs_2_6() -> None:
    errs = errors_of("probe begin { x = &y->z }", compatible="2.5")
    assert where(errs[0]) == "1:20: expected @cast, @var or $var"


def test_version_gated_operators() -> None:
    assert where(errors_of("probe begin { x = @uregister(1) }", compatible="3.9")[0]) == \
        "1:19: unknown operator @uregister"
    assert where(errors_of('probe begin { x = @enum("A") }', compatible="5.4")[0]) == \
        "1:19: unknown operator @enum"
    # tapsets (the library) ignore --compatible
    parse_file("t.stp", "probe begin { x = @uregister(1) }", tapset=True, compatible="3.0")


def test_no_concatenation_across_comments_before_2_0() -> None:
    assert body_expr('"a" /* c */ "b"', compatible="1.9") == A.String("a")


def test_recovery_reports_several_errors() -> None:
    errs = errors_of("probe begin { x = }\nprobe end { y = 1 }\nglobal\nprobe begin { z z = }\n"
                     "function f() { return 1 ( }\nprobe end { }")
    assert [where(e) for e in errs] == [
        "1:19: expected literal string or number", "4:1: expected identifier",
        "5:27: expected literal string or number"]


def test_unprivileged_embedded_expression_cascade() -> None:
    errs = errors_of("probe begin { x = %{ 1 %} }")
    assert [e.msg for e in errs] == [
        "embedded expression code in unprivileged script; need stap -g",
        "embedded code in unprivileged script; need stap -g",
        "expected 'probe', 'global', 'private', 'function', or '%{'"]


def test_deep_nesting_is_an_error_not_a_recursion_error() -> None:
    n = 100000
    for text in ("probe begin { x = " + "(" * n + "1" + ")" * n + " }",
                 "probe begin " + "{" * n + "}" * n,
                 "probe begin { x = " + "- " * n + "1 }",
                 "probe begin { x = " + "!" * n + "1 }",
                 "probe begin { " + "if (1) " * n + "x }",
                 "probe begin { x = " + "a[" * n + "1" + "]" * n + " }",
                 "probe begin { x = " + "f(" * n + ")" * n + " }"):
        errs = errors_of(text)
        assert any("too many nested levels" in e.msg for e in errs)


def test_recursive_macro_is_an_error() -> None:
    errs = errors_of("@define a %( @a %) probe begin { x = @a }")
    assert "macro" in errs[0].msg


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
    real = [e for e in errs if isinstance(e, ParseError)]
    if expected.startswith("Input file"):
        assert StapErrors(errs).render() if False else True
        from codegen.parser import ParseErrors
        assert ParseErrors(errs).render().strip() == expected.replace("EMPTY", str(path))
        return
    assert len(real) == count, StapErrors(errs).render()
    assert where(real[0]) == expected, StapErrors(errs).render()


GOOD = sorted((DATA / "parse_ok").glob("*.stp"))


@pytest.mark.parametrize("path", GOOD, ids=[p.stem for p in GOOD])
def test_round_trip(path: Path) -> None:
    tree = parse_file(str(path), path.read_text(), pp=PP)
    printed = print_file(tree)
    assert printed.startswith(f"# file {path}\n")
    again = parse_file(str(path) + ".printed", printed, pp=PP)
    assert dataclasses.replace(again, path=tree.path) == tree
    # Printing is a fixed point after one round.
    assert print_file(again).splitlines()[1:] == printed.splitlines()[1:]


def test_ast_json_round_trip() -> None:
    path = DATA / "parse_ok" / "stmts.stp"
    tree = parse_file(str(path), path.read_text(), pp=PP)
    again = A.from_json(A.to_json(tree))
    assert again == tree
    assert A.to_json(again) == A.to_json(tree)          # locations survive too
