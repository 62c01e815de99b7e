"""Pass 3: translation. IR (JSON) -> one C file for kbuild.

Bodies are emitted by ``BodyEmitter``: each expression becomes a C
expression plus *prelude* statements that must run first (map lookups,
calls, checked division...). Every temporary lives in the handler's frame in
the per-CPU context, never on the kernel stack. The module skeleton
(globals, frames, tables) comes from ``templates/module.c.j2``.
"""
from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator, Optional

import jinja2

from codegen import ast
from codegen.errors import StapError
from codegen.formats import c_escape, to_kernel_format

TEMPLATES = Path(__file__).parent / "templates"
LONG, STRING, STATS = "long", "string", "stats"

AGG = {None: "STP_AGG_COUNT", "count": "STP_AGG_COUNT", "sum": "STP_AGG_SUM",
       "min": "STP_AGG_MIN", "max": "STP_AGG_MAX", "avg": "STP_AGG_AVG"}


def c_string(text: str) -> str:
    return '"' + c_escape(text) + '"'


def c_long(v: int) -> str:
    if v == -(1 << 63):
        return "(-9223372036854775807LL - 1)"
    return f"{v}LL"


@dataclass
class Frame:
    """Fields of one handler's frame struct (locals, params, temporaries)."""
    fields: list[str] = field(default_factory=list)
    counter: int = 0

    def add(self, decl_fmt: str, prefix: str) -> str:
        self.counter += 1
        name = f"{prefix}{self.counter}"
        self.fields.append(decl_fmt.format(name))
        return name

    def long(self) -> str:
        return "f->" + self.add("stp_long {};", "t")

    def string(self) -> str:
        return "f->" + self.add("char {}[MAXSTRINGLEN];", "s")

    def keys(self, n: int) -> str:
        return "f->" + self.add(f"union stp_key {{}}[{max(n, 1)}];", "k")

    def stat(self) -> str:
        return "f->" + self.add("struct stp_stat {};", "st")

    def map(self) -> str:
        return "f->" + self.add("struct stp_map *{};", "m")

    def entry(self) -> str:
        return "f->" + self.add("struct stp_map_entry *{};", "e")


def local_decl(name: str, ty: Optional[str]) -> str:
    if ty == STRING:
        return f"char l_{name}[MAXSTRINGLEN];"
    return f"stp_long l_{name};"


def local_init(name: str, ty: Optional[str]) -> str:
    if ty == STRING:
        return f"f->l_{name}[0] = '\\0';"
    return f"f->l_{name} = 0;"


class BodyEmitter:
    def __init__(self, unit: "Translator", frame: Frame, is_function: bool,
                 ret_type: Optional[str] = None) -> None:
        self.unit = unit
        self.frame = frame
        self.is_function = is_function
        self.ret_type = ret_type
        self.lines: list[str] = []
        self.depth = 1
        self.error_labels = ["out"]
        self.loops: list[tuple[str, str]] = []          # (break label, continue label)
        self.foreach_maps: dict[str, str] = {}          # global c_name -> aggregated map
        self.labels = 0

    # -- output helpers -----------------------------------------------------
    def emit(self, line: str) -> None:
        self.lines.append("\t" * self.depth + line)

    def label(self, name: str) -> None:
        self.lines.append(f"{name}: ;")

    def new_label(self, kind: str) -> str:
        self.labels += 1
        return f"{kind}_{self.labels}"

    @contextlib.contextmanager
    def block(self, head: str) -> Iterator[None]:
        self.emit(head + " {")
        self.depth += 1
        yield
        self.depth -= 1
        self.emit("}")

    def check(self) -> None:
        self.emit(f"if (unlikely(c->last_error)) goto {self.error_labels[-1]};")

    def where(self, node: ast.Node, what: str) -> None:
        """Remember the statement for "ERROR: ... near <what> at FILE:L:C"."""
        self.emit(f"c->last_stmt = {c_string(f'{what} at {node.loc}')};")

    @contextlib.contextmanager
    def captured(self) -> Iterator[list[str]]:
        """Collect the lines emitted inside (to see if a sub-expression
        needed preludes, and to place them conditionally)."""
        saved = self.lines
        self.lines = []
        out: list[str] = []
        try:
            yield out
        finally:
            out.extend(self.lines)
            self.lines = saved

    # -- statements ---------------------------------------------------------
    def stmt(self, s: ast.Stmt) -> None:
        m = getattr(self, "s_" + type(s).__name__, None)
        if m is None:
            raise StapError("translation", f"unsupported statement {type(s).__name__}", s.loc)
        m(s)

    def s_Block(self, s: ast.Block) -> None:
        for x in s.stmts:
            self.stmt(x)

    def s_NullStmt(self, s: ast.NullStmt) -> None:
        pass

    def s_ExprStmt(self, s: ast.ExprStmt) -> None:
        e = s.expr
        if isinstance(e, ast.Assign) and isinstance(e.target, (ast.Symbol,)) \
                and e.op not in ("<<<",) and e.target.ty != STRING:
            self.emit(f"(void){self.expr(e)};")
            return
        value = self.expr(e)
        if value and not value.startswith('"') and e.ty != STRING:
            self.emit(f"(void)({value});")

    def s_If(self, s: ast.If) -> None:
        cond = self.expr(s.cond)
        with self.block(f"if ({cond})"):
            self.stmt(s.then)
        if s.else_ is not None:
            with self.block("else"):
                self.stmt(s.else_)

    def _loop_budget(self, body: ast.Stmt) -> None:
        n = max(1, len(body.stmts) if isinstance(body, ast.Block) else 1)
        self.emit(f"if (unlikely(!stp_action(c, {n}))) goto {self.error_labels[-1]};")

    def s_While(self, s: ast.While) -> None:
        brk, cont = self.new_label("break"), self.new_label("cont")
        with self.block("for (;;)"):
            cond = self.expr(s.cond)
            self.emit(f"if (!({cond})) break;")
            self._loop_budget(s.body)
            self.loops.append((brk, cont))
            self.stmt(s.body)
            self.loops.pop()
            self.label(cont)
        self.label(brk)

    def s_For(self, s: ast.For) -> None:
        brk, cont = self.new_label("break"), self.new_label("cont")
        if s.init is not None:
            self.s_ExprStmt(ast.ExprStmt(s.init, loc=s.loc))
        with self.block("for (;;)"):
            if s.cond is not None:
                cond = self.expr(s.cond)
                self.emit(f"if (!({cond})) break;")
            self._loop_budget(s.body)
            self.loops.append((brk, cont))
            self.stmt(s.body)
            self.loops.pop()
            self.label(cont)
            if s.incr is not None:
                self.s_ExprStmt(ast.ExprStmt(s.incr, loc=s.loc))
        self.label(brk)

    def s_Break(self, s: ast.Break) -> None:
        self.emit(f"goto {self.loops[-1][0]};")

    def s_Continue(self, s: ast.Continue) -> None:
        self.emit(f"goto {self.loops[-1][1]};")

    def s_Next(self, s: ast.Next) -> None:
        self.emit("goto out;")

    def s_Return(self, s: ast.Return) -> None:
        if s.value is not None:
            v = self.expr(s.value)
            if self.ret_type == STRING:
                self.emit(f"stp_strlcpy(f->__retvalue, {v});")
            else:
                self.emit(f"f->__retvalue = {v};")
        self.emit("goto out;")

    def s_TryCatch(self, s: ast.TryCatch) -> None:
        catch, end = self.new_label("catch"), self.new_label("endtry")
        self.error_labels.append(catch)
        self.stmt(s.body)
        self.error_labels.pop()
        self.emit(f"goto {end};")
        self.label(catch)
        if s.var:
            self.emit(f"stp_strlcpy(f->l_{s.var}, c->last_error);")
        self.emit("c->last_error = NULL;")
        self.stmt(s.handler)
        self.label(end)

    def s_Delete(self, s: ast.Delete) -> None:
        t = s.target
        if isinstance(t, ast.Index):
            g = self.unit.global_(t.info["c_name"] if t.info else t.base.info["c_name"])
            if any(isinstance(k, ast.Wildcard) for k in t.indexes):
                raise StapError("translation", "delete with wildcards is not supported yet",
                                t.loc, token="operator '*'")
            keys = self.keys(t, g)
            fn = "stp_pmap_delete" if g["type"] == STATS else "stp_map_delete"
            self.emit(f"{fn}({g['c_name']}, {keys});")
            return
        assert isinstance(t, ast.Symbol)
        if t.info and t.info.get("scope") == "global":
            g = self.unit.global_(t.info["c_name"])
            if g["keys"] is not None:
                fn = "stp_pmap_clear" if g["type"] == STATS else "stp_map_clear"
                self.emit(f"{fn}({g['c_name']});")
            elif g["type"] == STATS:
                self.emit(f"stp_pstat_clear({g['c_name']});")
            elif g["type"] == STRING:
                self.emit(f"{g['c_name']}[0] = '\\0';")
            else:
                self.emit(f"{g['c_name']} = 0;")
        else:
            self.emit(local_init(t.name, t.ty).replace("f->", "f->"))

    def s_Foreach(self, s: ast.Foreach) -> None:
        g = self.unit.global_(s.array.info["c_name"])
        m = self.frame.map()
        e = self.frame.entry()
        if g["type"] == STATS:
            self.emit(f"{m} = stp_pmap_aggregate({g['c_name']});")
        else:
            self.emit(f"{m} = {g['c_name']};")
        column, direction = s.sort_column, s.sort_dir
        if column is not None:
            self.emit(f"stp_map_sort({m}, {column}, {direction}, {AGG[s.agg]});")
        limit = None
        if s.limit is not None:
            limit = self.frame.long()
            self.emit(f"{limit} = {self.expr(s.limit)};")
        brk, cont = self.new_label("break"), self.new_label("cont")
        self.foreach_maps[g["c_name"]] = m
        self.loops.append((brk, cont))
        with self.block(f"for ({e} = stp_map_first({m}); {e}; {e} = stp_map_next({m}, {e}))"):
            if limit is not None:
                self.emit(f"if ({limit}-- <= 0) break;")
            self._loop_budget(s.body)
            for i, k in enumerate(s.keys):
                if g["keys"][i] == STRING:
                    self.emit(f"stp_strlcpy(f->l_{k.name}, stp_entry_key_str({m}, {e}, {i}));")
                else:
                    self.emit(f"f->l_{k.name} = stp_entry_key_long({m}, {e}, {i});")
            if s.slice is not None:
                for i, x in enumerate(s.slice):
                    if isinstance(x, ast.Wildcard):
                        continue
                    v = self.expr(x)
                    if g["keys"][i] == STRING:
                        self.emit(f"if (strcmp(f->l_{s.keys[i].name}, {v}) != 0) goto {cont};")
                    else:
                        self.emit(f"if (f->l_{s.keys[i].name} != {v}) goto {cont};")
            if s.value is not None:
                if g["type"] == STRING:
                    self.emit(f"stp_strlcpy(f->l_{s.value.name}, stp_entry_str({m}, {e}));")
                elif g["type"] == STATS:
                    self.emit(f"f->l_{s.value.name} = stp_stat_extract(c, "
                              f"stp_entry_stat({m}, {e}), {AGG[s.agg]});")
                else:
                    self.emit(f"f->l_{s.value.name} = stp_entry_long({m}, {e});")
            self.stmt(s.body)
            self.label(cont)
        self.label(brk)
        self.loops.pop()
        del self.foreach_maps[g["c_name"]]

    # -- expressions --------------------------------------------------------
    def expr(self, e: ast.Expr) -> str:
        m = getattr(self, "e_" + type(e).__name__, None)
        if m is None:
            raise StapError("translation", f"unsupported expression {type(e).__name__}", e.loc)
        return m(e)

    def e_Number(self, e: ast.Number) -> str:
        return f"((stp_long){c_long(e.value)})"

    def e_String(self, e: ast.String) -> str:
        return c_string(e.value)

    def e_Symbol(self, e: ast.Symbol) -> str:
        if e.info and e.info.get("scope") == "global":
            return e.info["c_name"]
        return f"f->l_{e.name}"

    # -- target variables, @cast, @entry, @defined: see codegen/target_c.py
    def e_TargetSymbol(self, e: ast.TargetSymbol) -> str:
        from codegen.target_c import emit_target
        return emit_target(self, e)

    def e_AtOp(self, e: ast.AtOp) -> str:
        from codegen.target_c import emit_target
        return emit_target(self, e)

    def keys(self, idx: ast.Index, g: dict) -> str:
        vals = [self.expr(k) for k in idx.indexes]
        k = self.frame.keys(len(vals))
        for i, v in enumerate(vals):
            member = "s" if g["keys"][i] == STRING else "n"
            self.emit(f"{k}[{i}].{member} = {v};")
        return k

    def stats_map(self, g: dict) -> str:
        """The aggregated map of a per-CPU statistics array."""
        m = self.foreach_maps.get(g["c_name"])
        return m if m is not None else f"stp_pmap_aggregate({g['c_name']})"

    def e_Index(self, e: ast.Index) -> str:
        g = self.unit.global_(e.info["c_name"])
        k = self.keys(e, g)
        if g["type"] == STRING:
            t = self.frame.string()
            self.emit(f"stp_map_get_str({g['c_name']}, {k}, {t});")
            return t
        if g["type"] == STATS:
            raise StapError("translation", "a statistic can only be read with @count, "
                            "@sum, ...", e.loc)
        t = self.frame.long()
        self.emit(f"{t} = stp_map_get_long({g['c_name']}, {k});")
        return t

    def e_InArray(self, e: ast.InArray) -> str:
        g = self.unit.global_(e.array.info["c_name"])
        k = self.keys(ast.Index(e.array, e.keys, loc=e.loc), g)
        m = self.stats_map(g) if g["type"] == STATS else g["c_name"]
        return f"((stp_long)stp_map_exists({m}, {k}))"

    def e_StatOp(self, e: ast.StatOp) -> str:
        st = self.frame.stat()
        x = e.operand
        if isinstance(x, ast.Index):
            g = self.unit.global_(x.info["c_name"])
            k = self.keys(x, g)
            self.emit(f"stp_map_get_stat({self.stats_map(g)}, {k}, &{st});")
        else:
            self.emit(f"stp_pstat_get({x.info['c_name']}, &{st});")
        if e.op == "count":
            return f"{st}.count"
        if e.op not in AGG:
            raise StapError("translation", f"@{e.op} is not supported yet", e.loc)
        t = self.frame.long()
        self.where(e, f"operator '@{e.op}'")
        self.emit(f"{t} = stp_stat_extract(c, &{st}, {AGG[e.op]});")
        self.check()
        return t

    def e_Binary(self, e: ast.Binary) -> str:
        if e.op == ".":
            a = self.expr(e.left)
            b = self.expr(e.right)
            t = self.frame.string()
            self.emit(f"stp_strlcpy({t}, {a});")
            self.emit(f"stp_strlcat({t}, {b});")
            return t
        if e.op in ("=~", "!~"):
            raise StapError("translation", "regular expressions are not supported yet",
                            e.loc, token=f"operator '{e.op}'")
        a = self.expr(e.left)
        b = self.expr(e.right)
        if e.op in ("<", ">", "<=", ">=", "==", "!="):
            if e.left.ty == STRING:
                return f"((stp_long)(strcmp({a}, {b}) {e.op} 0))"
            return f"((stp_long)({a} {e.op} {b}))"
        if e.op in ("/", "%"):
            t = self.frame.long()
            self.where(e, f"operator '{e.op}'")
            fn = "stp_div" if e.op == "/" else "stp_mod"
            self.emit(f"{t} = {fn}(c, {a}, {b});")
            self.check()
            return t
        if e.op == "<<":
            return f"((stp_long)((u64)({a}) << (({b}) & 63)))"
        if e.op == ">>":
            return f"(({a}) >> (({b}) & 63))"
        if e.op == ">>>":
            return f"((stp_long)((u64)({a}) >> (({b}) & 63)))"
        return f"(({a}) {e.op} ({b}))"

    def e_Logical(self, e: ast.Logical) -> str:
        a = self.expr(e.left)
        with self.captured() as pre:
            b = self.expr(e.right)
        if not pre:
            return f"((stp_long)(({a}) {e.op} ({b})))"
        t = self.frame.long()
        self.emit(f"{t} = ({a}) != 0;")
        cond = t if e.op == "&&" else f"!{t}"
        with self.block(f"if ({cond})"):
            self.lines.extend("\t" + line for line in pre)
            self.emit(f"{t} = ({b}) != 0;")
        return t

    def e_Unary(self, e: ast.Unary) -> str:
        a = self.expr(e.operand)
        return f"({e.op}({a}))" if e.op != "+" else a

    def e_Ternary(self, e: ast.Ternary) -> str:
        cond = self.expr(e.cond)
        with self.captured() as pre_a:
            a = self.expr(e.then)
        with self.captured() as pre_b:
            b = self.expr(e.else_)
        if not pre_a and not pre_b:
            return f"(({cond}) ? ({a}) : ({b}))"
        t = self.frame.string() if e.ty == STRING else self.frame.long()
        assign = (lambda v: f"stp_strlcpy({t}, {v});") if e.ty == STRING \
            else (lambda v: f"{t} = {v};")
        with self.block(f"if ({cond})"):
            self.lines.extend("\t" + line for line in pre_a)
            self.emit(assign(a))
        with self.block("else"):
            self.lines.extend("\t" + line for line in pre_b)
            self.emit(assign(b))
        return t

    def _scalar_target(self, t: ast.Expr) -> Optional[str]:
        if isinstance(t, ast.Symbol):
            return self.e_Symbol(t)
        return None

    def e_IncDec(self, e: ast.IncDec) -> str:
        op = e.op
        target = self._scalar_target(e.operand)
        if target is not None:
            return f"({op}{target})" if e.prefix else f"({target}{op})"
        idx = e.operand
        assert isinstance(idx, ast.Index)
        g = self.unit.global_(idx.info["c_name"])
        k = self.keys(idx, g)
        old, new = self.frame.long(), self.frame.long()
        self.emit(f"{old} = stp_map_get_long({g['c_name']}, {k});")
        self.emit(f"{new} = {old} {op[0]} 1;")
        self.where(e, f"operator '{op}'")
        self.emit(f"if (!stp_map_set_long(c, {g['c_name']}, {k}, {new})) "
                  f"goto {self.error_labels[-1]};")
        return new if e.prefix else old

    def e_Assign(self, e: ast.Assign) -> str:
        if e.op == "<<<":
            v = self.expr(e.value)
            t = e.target
            if isinstance(t, ast.Index):
                g = self.unit.global_(t.info["c_name"])
                k = self.keys(t, g)
                self.where(e, "operator '<<<'")
                self.emit(f"if (!stp_pmap_add(c, {g['c_name']}, {k}, {v})) "
                          f"goto {self.error_labels[-1]};")
            else:
                self.emit(f"stp_pstat_add({t.info['c_name']}, {v});")
            return v
        if isinstance(e.target, ast.Index):
            return self._assign_element(e)
        target = self._scalar_target(e.target)
        assert target is not None
        if e.target.ty == STRING:
            v = self.expr(e.value)
            fn = "stp_strlcat" if e.op == ".=" else "stp_strlcpy"
            self.emit(f"{fn}({target}, {v});")
            return target
        v = self.expr(e.value)
        if e.op in ("/=", "%="):
            self.where(e, f"operator '{e.op}'")
            fn = "stp_div" if e.op == "/=" else "stp_mod"
            self.emit(f"{target} = {fn}(c, {target}, {v});")
            self.check()
            return target
        if e.op in ("<<=", ">>="):
            shift = "<<" if e.op == "<<=" else ">>"
            return f"({target} = (stp_long)((u64){target} {shift} (({v}) & 63)))" \
                if shift == "<<" else f"({target} = {target} >> (({v}) & 63))"
        return f"({target} {e.op} {v})"

    def _assign_element(self, e: ast.Assign) -> str:
        idx = e.target
        assert isinstance(idx, ast.Index)
        g = self.unit.global_(idx.info["c_name"])
        v = self.expr(e.value)
        k = self.keys(idx, g)
        name = g["c_name"]
        if g["type"] == STRING:
            if e.op == ".=":
                t = self.frame.string()
                self.emit(f"stp_map_get_str({name}, {k}, {t});")
                self.emit(f"stp_strlcat({t}, {v});")
                v = t
            self.where(e, f"operator '{e.op}'")
            self.emit(f"if (!stp_map_set_str(c, {name}, {k}, {v})) "
                      f"goto {self.error_labels[-1]};")
            return v
        if e.op != "=":
            old = self.frame.long()
            self.emit(f"{old} = stp_map_get_long({name}, {k});")
            op = e.op[:-1]
            t = self.frame.long()
            if op in ("/", "%"):
                self.where(e, f"operator '{e.op}'")
                self.emit(f"{t} = {'stp_div' if op == '/' else 'stp_mod'}(c, {old}, {v});")
                self.check()
            elif op == "<<":
                self.emit(f"{t} = (stp_long)((u64){old} << (({v}) & 63));")
            elif op == ">>":
                self.emit(f"{t} = {old} >> (({v}) & 63);")
            else:
                self.emit(f"{t} = {old} {op} ({v});")
            v = t
        else:
            t = self.frame.long()
            self.emit(f"{t} = {v};")
            v = t
        self.where(e, f"operator '{e.op}'")
        self.emit(f"if (!stp_map_set_long(c, {name}, {k}, {v})) goto {self.error_labels[-1]};")
        return v

    def e_Call(self, e: ast.Call) -> str:
        if e.info and "fn" in e.info:
            return self.user_call(e)
        return self.print_call(e)

    def user_call(self, e: ast.Call) -> str:
        fn = self.unit.function(e.info["fn"])
        values = [self.expr(a) for a in e.args]
        frame = f"STPG_FRAME(c, c->nesting + 1, {fn['c_name']})"
        for p, v in zip(fn["params"], values):
            if p["type"] == STRING:
                self.emit(f"stp_strlcpy({frame}->l_{p['name']}, {v});")
            else:
                self.emit(f"{frame}->l_{p['name']} = {v};")
        self.where(e, f"identifier '{e.name}'")
        self.emit(f"{fn['c_name']}(c);")
        self.check()
        ret = fn["return_type"]
        if ret == STRING:
            t = self.frame.string()
            self.emit(f"stp_strlcpy({t}, {frame}->__retvalue);")
            return t
        if ret == LONG:
            t = self.frame.long()
            self.emit(f"{t} = {frame}->__retvalue;")
            return t
        return "0"

    def print_call(self, e: ast.Call) -> str:
        name = e.name
        to_string = name.startswith("s")
        base = name[1:] if to_string else name
        out = self.frame.string() if to_string else None
        if out is not None:
            self.emit(f"{out}[0] = '\\0';")
        if base == "printf":
            fmt, kinds = to_kernel_format(e.args[0].value)
            args = [self.expr(a) for a in e.args[1:]]
            cargs = []
            for kind, a in zip(kinds, args):
                cargs.append(f"(int)({a})" if kind == "int" else
                             f"(long long)({a})" if kind == "ll" else a)
            tail = "".join(", " + a for a in cargs)
            if out is not None:
                self.emit(f"snprintf({out}, MAXSTRINGLEN, \"{fmt}\"{tail});")
            else:
                self.emit(f"stp_printf(c, \"{fmt}\"{tail});")
            return out or "0"
        delim = None
        args = e.args
        if base in ("printd", "printdln"):
            delim = self.expr(args[0])
            args = args[1:]
        values = [(self.expr(a), a.ty) for a in args]
        for i, (v, ty) in enumerate(values):
            if i and delim is not None:
                self._put(out, delim, STRING)
            self._put(out, v, ty)
        if base.endswith("ln"):
            self._put(out, '"\\n"', STRING)
        return out or "0"

    def _put(self, out: Optional[str], v: str, ty: Optional[str]) -> None:
        if out is None:
            if ty == STRING:
                self.emit(f"stp_print_str(c, {v});")
            else:
                self.emit(f"stp_print_long(c, {v});")
        elif ty == STRING:
            self.emit(f"stp_strlcat({out}, {v});")
        else:
            t = self.frame.string()
            self.emit(f"snprintf({t}, MAXSTRINGLEN, \"%lld\", (long long)({v}));")
            self.emit(f"stp_strlcat({out}, {t});")


class Translator:
    def __init__(self, ir: dict, module_name: str) -> None:
        self.ir = ir
        self.module_name = module_name
        self._globals = {g["c_name"]: g for g in ir["globals"]}
        self._functions = {f["c_name"]: f for f in ir["functions"]}

    def global_(self, c_name: str) -> dict:
        return self._globals[c_name]

    def function(self, c_name: str) -> dict:
        return self._functions[c_name]

    def body(self, node: dict, locals_: list[dict], is_function: bool,
             ret: Optional[str] = None, params: list[dict] = ()) -> tuple[list[str], list[str]]:
        frame = Frame()
        for p in params:
            frame.fields.append(local_decl(p["name"], p["type"]))
        for lv in locals_:
            frame.fields.append(local_decl(lv["name"], lv["type"]))
        if is_function and ret is not None:
            frame.fields.append("char __retvalue[MAXSTRINGLEN];" if ret == STRING
                                else "stp_long __retvalue;")
        em = BodyEmitter(self, frame, is_function, ret)
        for lv in locals_:
            em.emit(local_init(lv["name"], lv["type"]))
        if is_function and ret is not None:
            em.emit("f->__retvalue[0] = '\\0';" if ret == STRING else "f->__retvalue = 0;")
        em.stmt(ast.from_json(node))
        return frame.fields, em.lines

    def run(self) -> str:
        ir = self.ir
        functions = []
        for fn in ir["functions"]:
            if fn["embedded"] is not None:
                fields = [local_decl(p["name"], p["type"]) for p in fn["params"]]
                if fn["return_type"] is not None:
                    fields.append("char __retvalue[MAXSTRINGLEN];" if fn["return_type"] == STRING
                                  else "stp_long __retvalue;")
                functions.append({"fn": fn, "fields": fields, "lines": None})
            else:
                fields, lines = self.body(fn["body"], fn["locals"], True, fn["return_type"],
                                          fn["params"])
                functions.append({"fn": fn, "fields": fields, "lines": lines})
        probes = []
        for p in ir["probes"]:
            fields, lines = self.body(p["body"], p["locals"], False)
            cond_lines: list[str] = []
            if p["condition"] is not None:
                em = BodyEmitter(self, Frame(), False)
                cond = em.expr(ast.from_json(p["condition"]))
                cond_lines = em.lines + [f"\tif (!({cond})) goto out;"]
                fields += em.frame.fields
            probes.append({"p": p, "fields": fields, "lines": cond_lines + lines})
        env = jinja2.Environment(loader=jinja2.FileSystemLoader(str(TEMPLATES)),
                                 keep_trailing_newline=True, trim_blocks=True,
                                 lstrip_blocks=True, undefined=jinja2.StrictUndefined)
        env.filters["c_string"] = c_string
        env.filters["c_long"] = c_long
        return env.get_template("module.c.j2").render(
            module_name=self.module_name, ir=ir, functions=functions, probes=probes,
            begin=self._ordered("begin"), end=self._ordered("end"),
            error=self._ordered("error"),
            kprobes=[p for p in ir["probes"] if p["family"] == "kprobe"],
            timers=[p for p in ir["probes"] if p["family"] == "timer"])

    def _ordered(self, family: str) -> list[dict]:
        ps = [p for p in self.ir["probes"] if p["family"] == family]
        return sorted(ps, key=lambda p: p["params"].get("priority", 0))


def translate(ir: dict, module_name: str) -> str:
    return Translator(ir, module_name).run()
