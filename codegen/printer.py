"""Print a parse tree back as SystemTap source, in the spirit of ``stap -p1``.

``print_file`` gives one file's dump, starting with ``# file NAME``; the
``-p1`` driver prints ``# parse tree dump`` once before the files, as stap
does. Binary expressions are fully parenthesised, as stap prints them, so
that the text re-parses to an equal tree: parse -> print -> parse is how the
parser is tested (tests/test_parse_roundtrip.py). Unlike stap, simple
statements end in ';' because without it "x" followed by "(a) + (b)" would
re-parse as a call.
"""
from __future__ import annotations

from codegen import ast as A
from codegen.lexer import quote_string

INDENT = "  "


def print_file(f: A.File) -> str:
    out = [f"# file {f.path}"]
    for e in f.embeds:
        out.append("%{" + e.code + "%}")
    for g in f.globals:
        out.append(global_decl(g))
    for a in f.aliases:
        op = "+=" if a.epilogue else "="
        names = f" {op} ".join(point(n) for n in a.names)
        out.append(f"probe {names} {op} {points(a.points)}" + block(a.body, 0))
    for p in f.probes:
        out.append(f"probe {points(p.points)}" + block(p.body, 0))
    for fn in f.functions:
        out.append(function(fn))
    return "\n".join(out) + "\n"


def literal(lit: A.Expr) -> str:
    """A literal where stap folds a leading '-' (global init, probe-point args)."""
    if isinstance(lit, A.String):
        return f'"{quote_string(lit.value)}"'
    assert isinstance(lit, A.Number)
    return str(lit.value)


def global_decl(g: A.Global) -> str:
    text = ("private " if g.private else "") + "global " + g.name
    if g.wrap:
        text += "%"
    if g.size is not None:
        text += f"[{g.size}]"
    if g.init is not None:
        text += " = " + literal(g.init)
    return text


def point(p: A.ProbePoint) -> str:
    parts = []
    for c in p.components:
        parts.append(c.name if c.arg is None else f"{c.name}({literal(c.arg)})")
    text = ".".join(parts)
    if p.sufficient:
        text += "!"
    elif p.optional:
        text += "?"
    if p.condition is not None:
        text += f" if ({expr(p.condition)})"
    return text


def points(ps: list[A.ProbePoint]) -> str:
    return ", ".join(point(p) for p in ps)


def function(fn: A.Function) -> str:
    head = ("private " if fn.private else "") + "function " + fn.name
    if fn.return_type:
        head += ":" + fn.return_type
    params = ", ".join(p.name + (":" + p.type if p.type else "") for p in fn.params)
    head += f" ({params})"
    if fn.priority:
        head += f" :{fn.priority}"
    if isinstance(fn.body, A.EmbeddedExpr):
        return head + " %{" + fn.body.code + "%}"
    return head + block(fn.body, 0)


# ---------------------------------------------------------------- statements
def block(b: A.Block, depth: int) -> str:
    inner = "".join(stmt(s, depth + 1) for s in b.stmts)
    return " {\n" + inner + INDENT * depth + "}\n"


def stmt(s: A.Stmt, depth: int) -> str:
    pad = INDENT * depth
    if isinstance(s, A.Block):
        return pad + block(s, depth).lstrip()
    if isinstance(s, A.NullStmt):
        return pad + ";\n"
    if isinstance(s, A.ExprStmt):
        return pad + expr(s.expr) + ";\n"
    if isinstance(s, A.If):
        text = pad + f"if ({expr(s.cond)})\n" + stmt(s.then, depth + 1)
        if s.else_ is not None:
            text += pad + "else\n" + stmt(s.else_, depth + 1)
        return text
    if isinstance(s, A.While):
        return pad + f"while ({expr(s.cond)})\n" + stmt(s.body, depth + 1)
    if isinstance(s, A.For):
        parts = [expr(e) if e is not None else "" for e in (s.init, s.cond, s.incr)]
        return pad + f"for ({parts[0]}; {parts[1]}; {parts[2]})\n" + stmt(s.body, depth + 1)
    if isinstance(s, A.Foreach):
        return pad + foreach_head(s) + "\n" + stmt(s.body, depth + 1)
    if isinstance(s, A.Break):
        return pad + "break;\n"
    if isinstance(s, A.Continue):
        return pad + "continue;\n"
    if isinstance(s, A.Next):
        return pad + "next;\n"
    if isinstance(s, A.Return):
        return pad + ("return;\n" if s.value is None else f"return {expr(s.value)};\n")
    if isinstance(s, A.Delete):
        return pad + f"delete {expr(s.target)};\n"
    if isinstance(s, A.TryCatch):
        text = pad + "try" + block(s.body, depth) + pad + "catch"
        if s.var is not None:
            text += f" ({s.var})"
        return text + block(s.handler, depth)
    raise TypeError(f"cannot print statement {type(s).__name__}")


def _mark(direction: int) -> str:
    return {1: "+", -1: "-"}.get(direction, "")


def foreach_head(s: A.Foreach) -> str:
    keys = []
    for i, k in enumerate(s.keys, 1):
        keys.append(k.name + (_mark(s.sort_dir) if s.sort_column == i else ""))
    text = "foreach ("
    if s.value is not None:
        text += s.value.name + " = "
    text += "[" + ", ".join(keys) + "] in " + expr(s.array)
    if s.slice is not None:
        text += "[" + ", ".join(expr(e) for e in s.slice) + "]"
    if s.agg is not None:
        text += " @" + s.agg
    if s.sort_column == 0:
        text += _mark(s.sort_dir)
    if s.limit is not None:
        text += f" limit {expr(s.limit)}"
    return text + ")"


# ---------------------------------------------------------------- expressions
def _p(e: A.Expr) -> str:
    return "(" + expr(e) + ")"


def _components(comps: list[A.TargetComponent]) -> str:
    out = []
    for c in comps:
        out.append(f"->{c.member}" if c.kind == "member" else f"[{expr(c.index)}]")  # type: ignore[arg-type]
    return "".join(out)


def expr(e: A.Expr) -> str:
    if isinstance(e, A.Number):
        # A negative value re-lexes as its unsigned 64-bit spelling (no '-' literal).
        return str(e.value if e.value >= 0 else e.value + 2**64)
    if isinstance(e, A.String):
        return f'"{quote_string(e.value)}"'
    if isinstance(e, A.Symbol):
        return e.name
    if isinstance(e, A.Wildcard):
        return "*"
    if isinstance(e, A.TargetSymbol):
        return ("&" if e.addressof else "") + e.name + _components(e.components) + e.pretty
    if isinstance(e, A.Index):
        base = expr(e.base)
        return base + "[" + ", ".join(expr(i) for i in e.indexes) + "]"
    if isinstance(e, A.Call):
        return e.name + "(" + ", ".join(expr(a) for a in e.args) + ")"
    if isinstance(e, A.Binary):
        if e.op in ("=~", "!~"):
            return f"{_p(e.left)} {e.op} {expr(e.right)}"
        return f"{_p(e.left)} {e.op} {_p(e.right)}"
    if isinstance(e, A.Logical):
        return f"{_p(e.left)} {e.op} {_p(e.right)}"
    if isinstance(e, A.Unary):
        return e.op + _p(e.operand)
    if isinstance(e, A.IncDec):
        return e.op + _p(e.operand) if e.prefix else _p(e.operand) + e.op
    if isinstance(e, A.Assign):
        return f"{_p(e.target)} {e.op} {_p(e.value)}"
    if isinstance(e, A.Ternary):
        return f"{_p(e.cond)} ? {_p(e.then)} : {_p(e.else_)}"
    if isinstance(e, A.InArray):
        # Keys are parsed at comparison level: parenthesise anything looser.
        return "[" + ", ".join(_key(k) for k in e.keys) + "] in " + expr(e.array)
    if isinstance(e, A.StatOp):
        return f"@{e.op}(" + ", ".join(expr(a) for a in [e.operand, *e.args]) + ")"
    if isinstance(e, A.HistOp):
        return f"@hist_{e.kind}(" + ", ".join(expr(a) for a in [e.operand, *e.params]) + ")"
    if isinstance(e, A.AtOp):
        return at_op(e)
    if isinstance(e, A.EmbeddedExpr):
        return "%{" + e.code + "%}"
    raise TypeError(f"cannot print expression {type(e).__name__}")


def _key(e: A.Expr) -> str:
    if isinstance(e, (A.Assign, A.Ternary, A.Logical, A.InArray)) or (
            isinstance(e, A.Binary) and e.op in ("|", "^", "&")):
        return _p(e)
    return expr(e)


def at_op(e: A.AtOp) -> str:
    strings = [f'"{quote_string(s)}"' for s in e.strings]
    if e.op == "autocast":
        core = _p(e.args[0])
    else:
        core = f"@{e.op}(" + ", ".join([expr(a) for a in e.args] + strings) + ")"
    # A bare '$' must touch the ')' to be read back as a pretty-print suffix.
    return ("&" if e.addressof else "") + core + _components(e.components) + e.pretty
