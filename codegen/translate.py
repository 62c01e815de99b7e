"""Pass 3: translation. IR (JSON) -> one C file for kbuild (or gcc, -DSTP_USER).

Bodies are emitted by ``BodyEmitter``: each expression becomes a C
expression plus *prelude* statements that must run first (map lookups,
calls, checked division...). Every temporary lives in the handler's frame in
the per-CPU context, never on the kernel stack. The module skeleton
(globals, frames, tables) comes from ``templates/module.c.j2``.

Runtime errors follow SystemTap: before anything that can fail, the
statement is recorded (``c->last_stmt = "operator '/' at f.stp:3:9"``), the
error sets ``c->last_error`` and the handler unwinds to the innermost
``catch`` or to ``out``; the probe's epilogue reports
``ERROR: <msg> near <stmt> [(called from <call site>)...] in probe <pp>``.
"""
from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator, Optional

import jinja2

from codegen import ast
from codegen.errors import StapError
from codegen.formats import c_escape, to_runtime_format

TEMPLATES = Path(__file__).parent / "templates"
LONG, STRING, STATS = "long", "string", "stats"

AGG = {None: "STP_AGG_COUNT", "count": "STP_AGG_COUNT", "sum": "STP_AGG_SUM",
       "min": "STP_AGG_MIN", "max": "STP_AGG_MAX", "avg": "STP_AGG_AVG",
       "variance": "STP_AGG_VARIANCE"}

HIST_LOG_BUCKETS = 128


def c_string(text: str) -> str:
    return '"' + c_escape(text) + '"'


def c_long(v: int) -> str:
    if v == -(1 << 63):
        return "(-9223372036854775807LL - 1)"
    return f"{v}LL"


def has_side_effects(e: ast.Node) -> bool:
    """Could evaluating @e change a variable (or print)?"""
    from codegen.link import walk
    return any(isinstance(n, (ast.Assign, ast.IncDec, ast.Call)) for n in walk(e))


def token_text(e: ast.Node) -> str:
    """How SystemTap prints the token of an expression in error messages."""
    if isinstance(e, (ast.Symbol, ast.Call, ast.TargetSymbol)):
        return f"identifier '{e.name}'"
    if isinstance(e, ast.Index):
        return token_text(e.base) if isinstance(e.base, ast.Symbol) else "operator '['"
    if isinstance(e, ast.Number):
        return f"number '{e.value}'"
    if isinstance(e, ast.String):
        return f"string '{e.value}'"
    if isinstance(e, (ast.Binary, ast.Logical, ast.Assign, ast.Unary, ast.IncDec)):
        return f"operator '{e.op}'"
    if isinstance(e, ast.Ternary):
        return "operator '?'"
    if isinstance(e, ast.StatOp):
        return f"operator '@{e.op}'"
    if isinstance(e, ast.HistOp):
        return f"operator '@hist_{e.kind}'"
    if isinstance(e, ast.AtOp):
        return f"operator '@{e.op}'"
    return "keyword"


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

    def stat(self, buckets: int = 0) -> str:
        """A statistic with room for @buckets histogram buckets."""
        return "f->" + self.add(f"STP_STAT_DECL({{}}, {buckets});", "st") + ".s"

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

    def fail(self) -> str:
        return f"goto {self.error_labels[-1]};"

    def where(self, node: ast.Node, what: str) -> None:
        """Remember the statement for "ERROR: ... near <what> at FILE:L:C"."""
        self.emit(f"c->last_stmt = {c_string(f'{what} at {node.loc}')};")

    def where_token(self, node: ast.Node) -> None:
        self.where(node, token_text(node))

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
        # A per-CPU counter's update: one this_cpu_add, no read, no lock.
        if isinstance(e, ast.IncDec) and self.pcounter(e.operand):
            self.emit(f"STP_PCOUNTER_ADD({self.pcounter(e.operand)}, "
                      f"{1 if e.op == '++' else -1});")
            return
        if isinstance(e, ast.Assign) and e.op in ("+=", "-=") and self.pcounter(e.target):
            v = self.expr(e.value)
            sign = "" if e.op == "+=" else "0 - "
            self.emit(f"STP_PCOUNTER_ADD({self.pcounter(e.target)}, "
                      f"(stp_long)({sign}(u64)({v})));")
            return
        value = self.expr(e)
        if value and value != "0" and not value.startswith('"') and e.ty != STRING:
            self.emit(f"(void)({value});")

    def s_If(self, s: ast.If) -> None:
        cond = self.expr(s.cond)
        with self.block(f"if ({cond})"):
            self.stmt(s.then)
        if s.else_ is not None:
            with self.block("else"):
                self.stmt(s.else_)

    def _loop_budget(self, loop: ast.Stmt, body: ast.Stmt) -> None:
        """Charge one iteration (and the statements it runs) against
        MAXACTION, blaming the loop's keyword as SystemTap does."""
        n = 1 + max(1, len(body.stmts) if isinstance(body, ast.Block) else 1)
        with self.block(f"if (unlikely(!stp_action(c, {n})))"):
            self.where(loop, "keyword")
            self.emit(self.fail())

    def s_While(self, s: ast.While) -> None:
        brk, cont = self.new_label("break"), self.new_label("cont")
        with self.block("for (;;)"):
            self._loop_budget(s, s.body)
            cond = self.expr(s.cond)
            self.emit(f"if (!({cond})) break;")
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
            self._loop_budget(s, s.body)
            if s.cond is not None:
                cond = self.expr(s.cond)
                self.emit(f"if (!({cond})) break;")
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
        self.emit("stp_catch(c);")
        self.stmt(s.handler)
        self.label(end)

    def s_Delete(self, s: ast.Delete) -> None:
        t = s.target
        if isinstance(t, ast.Index):
            g = self.unit.global_(t.info["c_name"] if t.info else t.base.info["c_name"])
            keys, mask = self.keys_masked(t, g)
            pm = g["type"] == STATS
            if mask:
                fn = "stp_pmap_delete_matching" if pm else "stp_map_delete_matching"
                self.emit(f"{fn}({g['c_name']}, {keys}, {mask:#x});")
            else:
                fn = "stp_pmap_delete" if pm else "stp_map_delete"
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
            elif g["c_name"] in self.unit.pcounters:
                self.emit(f"STP_PCOUNTER_SET({g['c_name']}, 0);")
            else:
                self.emit(f"{g['c_name']} = 0;")
        else:
            self.emit(local_init(t.name, t.ty))

    def s_Foreach(self, s: ast.Foreach) -> None:
        if isinstance(s.array, ast.HistOp):
            self._foreach_hist(s)
            return
        g = self.unit.global_(s.array.info["c_name"])
        m = self.frame.map()
        e = self.frame.entry()
        if g["type"] == STATS:
            self.where(s.array, f"identifier '{g['name']}'")
            self.emit(f"{m} = stp_pmap_agg(c, {g['c_name']});")
            self.emit(f"if (unlikely(!{m})) {self.fail()}")
        else:
            self.emit(f"{m} = {g['c_name']};")
        limit = None
        if s.limit is not None:
            limit = self.frame.long()
            self.emit(f"{limit} = {self.expr(s.limit)};")
        column, direction = s.sort_column, s.sort_dir
        if column is not None and direction:
            if limit is not None:
                self.emit(f"stp_map_sortn({m}, {limit}, {column}, {direction}, {AGG[s.agg]});")
            else:
                self.emit(f"stp_map_sort({m}, {column}, {direction}, {AGG[s.agg]});")
        # A slice's values are computed once, before the loop.
        slice_vals: list[Optional[str]] = []
        if s.slice is not None:
            for i, x in enumerate(s.slice):
                if isinstance(x, ast.Wildcard):
                    slice_vals.append(None)
                    continue
                v = self.expr(x)
                if g["keys"][i] == STRING:
                    t = self.frame.string()
                    self.emit(f"stp_strlcpy({t}, {v});")
                else:
                    t = self.frame.long()
                    self.emit(f"{t} = {v};")
                slice_vals.append(t)
        brk, cont = self.new_label("break"), self.new_label("cont")
        # A foreach nested in one over the same array: the inner loop's map
        # is current inside it, the outer's again after it.
        outer_map = self.foreach_maps.get(g["c_name"])
        self.foreach_maps[g["c_name"]] = m
        self.loops.append((brk, cont))
        with self.block(f"for ({e} = stp_map_first({m}); {e}; {e} = stp_map_next({m}, {e}))"):
            for i, v in enumerate(slice_vals):
                if v is None:
                    continue
                if g["keys"][i] == STRING:
                    self.emit(f"if (strcmp(stp_entry_key_str({m}, {e}, {i}), {v}) != 0) "
                              f"continue;")
                else:
                    self.emit(f"if (stp_entry_key_long({m}, {e}, {i}) != {v}) continue;")
            if limit is not None:
                self.emit(f"if ({limit}-- <= 0) break;")
            self._loop_budget(s, s.body)
            for i, k in enumerate(s.keys):
                if g["keys"][i] == STRING:
                    self.emit(f"stp_strlcpy(f->l_{k.name}, stp_entry_key_str({m}, {e}, {i}));")
                else:
                    self.emit(f"f->l_{k.name} = stp_entry_key_long({m}, {e}, {i});")
            if s.value is not None:
                if g["type"] == STRING:
                    self.emit(f"stp_strlcpy(f->l_{s.value.name}, stp_entry_str({m}, {e}));")
                elif g["type"] == STATS:
                    self.where(s.value, f"identifier '{s.value.name}'")
                    self.emit(f"f->l_{s.value.name} = stp_stat_extract(c, "
                              f"{self.unit.stat_spec(g['c_name'])}, "
                              f"stp_entry_stat({m}, {e}), {AGG[s.agg]});")
                    self.check()
                else:
                    self.emit(f"f->l_{s.value.name} = stp_entry_long({m}, {e});")
            self.stmt(s.body)
            self.label(cont)
        self.label(brk)
        self.loops.pop()
        if outer_map is None:
            del self.foreach_maps[g["c_name"]]
        else:
            self.foreach_maps[g["c_name"]] = outer_map

    def _foreach_hist(self, s: ast.Foreach) -> None:
        """foreach (i in @hist_*(x)): every bucket index, in order."""
        h = s.array
        assert isinstance(h, ast.HistOp)
        st, spec, nb = self.hist_stat(h)
        i = self.frame.long()
        limit = None
        if s.limit is not None:
            limit = self.frame.long()
            self.emit(f"{limit} = {self.expr(s.limit)};")
        brk, cont = self.new_label("break"), self.new_label("cont")
        self.loops.append((brk, cont))
        with self.block(f"for ({i} = 0; {i} < {nb}; {i}++)"):
            if limit is not None:
                self.emit(f"if ({limit}-- <= 0) break;")
            self._loop_budget(s, s.body)
            self.emit(f"f->l_{s.keys[0].name} = {i};")
            if s.value is not None:
                self.emit(f"f->l_{s.value.name} = {st}.hist[{i}];")
            self.stmt(s.body)
            self.label(cont)
        self.label(brk)
        self.loops.pop()

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
            if e.info["c_name"] in self.unit.pcounters:
                return f"STP_PCOUNTER_READ({e.info['c_name']})"
            return e.info["c_name"]
        return f"f->l_{e.name}"

    def pcounter(self, e: ast.Expr) -> Optional[str]:
        if isinstance(e, ast.Symbol) and e.info and e.info.get("scope") == "global" \
                and e.info["c_name"] in self.unit.pcounters:
            return e.info["c_name"]
        return None

    # -- target variables, @cast, @entry, @defined: see codegen/target_c.py
    def e_TargetSymbol(self, e: ast.TargetSymbol) -> str:
        if e.info and e.info.get("access") == "procfs_value":
            return "stp_procfs_value(c)"
        from codegen.target_c import emit_target
        return emit_target(self, e)

    def e_AtOp(self, e: ast.AtOp) -> str:
        from codegen.target_c import emit_target
        return emit_target(self, e)

    def keys(self, idx: ast.Index, g: dict) -> str:
        keys, mask = self.keys_masked(idx, g)
        assert not mask
        return keys

    def keys_masked(self, idx: ast.Index, g: dict) -> tuple[str, int]:
        """The key array of an index, and a bit mask of its "*" columns."""
        vals: list[Optional[str]] = []
        last = len(idx.indexes) - 1
        for i, x in enumerate(idx.indexes):
            if isinstance(x, ast.Wildcard):
                vals.append(None)
            elif i == last and isinstance(x, ast.Call) and x.info and "fn" in x.info:
                # Nothing runs between this call and the key's use: read the
                # result where the callee left it instead of copying it.
                vals.append(self.user_call(x, direct=True))
            else:
                vals.append(self.expr(x))
        k = self.frame.keys(len(vals))
        mask = 0
        for i, v in enumerate(vals):
            if v is None:
                mask |= 1 << i
                self.emit(f"{k}[{i}].n = 0;")
                continue
            member = "s" if g["keys"][i] == STRING else "n"
            self.emit(f"{k}[{i}].{member} = {v};")
        return k, mask

    def stats_map(self, g: dict) -> Optional[str]:
        """The aggregated map of a per-CPU statistics array being iterated."""
        return self.foreach_maps.get(g["c_name"])

    def where_array(self, idx: ast.Expr) -> None:
        base = idx.base if isinstance(idx, ast.Index) else idx
        self.where(base, token_text(base))

    def e_Index(self, e: ast.Index) -> str:
        if isinstance(e.base, ast.HistOp):
            return self._hist_bucket(e)
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
        k, mask = self.keys_masked(ast.Index(e.array, e.keys, loc=e.loc), g)
        if g["type"] == STATS:
            m = self.stats_map(g)
            if m is None:
                fn = "stp_pmap_exists_matching" if mask else "stp_pmap_exists"
                return (f"((stp_long){fn}({g['c_name']}, {k}"
                        + (f", {mask:#x}))" if mask else "))"))
        else:
            m = g["c_name"]
        if mask:
            return f"((stp_long)stp_map_exists_matching({m}, {k}, {mask:#x}))"
        return f"((stp_long)stp_map_exists({m}, {k}))"

    def stat_of(self, x: ast.Expr) -> tuple[str, str]:
        """Read the statistic @x (a global or an element) into a frame
        temporary: (the temporary, its stat spec)."""
        if isinstance(x, ast.Index):
            g = self.unit.global_(x.info["c_name"])
        else:
            g = self.unit.global_(x.info["c_name"])
        spec = self.unit.stat_spec(g["c_name"])
        st = self.frame.stat(self.unit.buckets(g["c_name"]))
        if isinstance(x, ast.Index):
            k = self.keys(x, g)
            m = self.stats_map(g)
            if m is not None:
                self.emit(f"stp_map_get_stat({m}, {k}, &{st});")
            else:
                self.emit(f"stp_pmap_get_stat({g['c_name']}, {k}, &{st});")
        else:
            self.emit(f"stp_pstat_get({g['c_name']}, &{st});")
        return st, spec

    def e_StatOp(self, e: ast.StatOp) -> str:
        st, spec = self.stat_of(e.operand)
        if e.op == "count":
            return f"{st}.count"
        if e.op not in AGG:
            raise StapError("translation", f"@{e.op} is not supported yet", e.loc)
        t = self.frame.long()
        self.where(e, f"operator '@{e.op}'")
        self.emit(f"{t} = stp_stat_extract(c, {spec}, &{st}, {AGG[e.op]});")
        self.check()
        return t

    def hist_stat(self, h: ast.HistOp) -> tuple[str, str, int]:
        st, spec = self.stat_of(h.operand)
        c_name = h.operand.info["c_name"]
        return st, spec, self.unit.buckets(c_name)

    def _hist_bucket(self, e: ast.Index) -> str:
        h = e.base
        assert isinstance(h, ast.HistOp)
        st, spec, nb = self.hist_stat(h)
        i = self.expr(e.indexes[0])
        t = self.frame.long()
        self.where(e, "operator '['")
        self.emit(f"{t} = stp_stat_bucket(c, {spec}, &{st}, {i});")
        self.check()
        return t

    def print_hist(self, h: ast.HistOp) -> None:
        st, spec, _ = self.hist_stat(h)
        self.where(h, f"operator '@hist_{h.kind}'")
        self.emit(f"stp_stat_print_histogram(c, {spec}, &{st});")
        self.check()

    def e_Binary(self, e: ast.Binary) -> str:
        if e.op == ".":
            a = self.expr(e.left)
            b = self.expr(e.right)
            t = self.frame.string()
            self.emit(f"stp_strlcpy({t}, {a});")
            self.emit(f"stp_strlcat({t}, {b});")
            return t
        if e.op in ("=~", "!~"):
            return self.regex(e)
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
            return f"((stp_long)({a}) >> (({b}) & 63))"
        if e.op == ">>>":
            return f"((stp_long)((u64)({a}) >> (({b}) & 63)))"
        if e.op in ("+", "-", "*"):
            # Through u64: the wrap is defined, and gcc does not warn when
            # constants overflow.
            return f"((stp_long)((u64)({a}) {e.op} (u64)({b})))"
        return f"((stp_long)({a}) {e.op} (stp_long)({b}))"

    def regex(self, e: ast.Binary) -> str:
        from codegen.regex_dfa import RegexError
        assert isinstance(e.right, ast.String)
        try:
            rx = self.unit.regex(e.right.value)
        except RegexError as err:
            raise StapError("semantic", f"regex compilation error: {err}", e.right.loc,
                            token=f"string '{e.right.value}'") from None
        s = self.expr(e.left)
        # A statement, not an expression: it records the match for
        # matched(), so it must run exactly where the script has it.
        t = self.frame.long()
        self.emit(f"{t} = stp_regex_match(c, &{rx}, {s});")
        return t if e.op == "=~" else f"((stp_long)!{t})"

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
        if e.op == "+":
            return a
        if e.op == "!":
            return f"((stp_long)!({a}))"
        if e.op == "-":
            return f"((stp_long)(0 - (u64)({a})))"
        return f"((stp_long){e.op}({a}))"

    def e_Ternary(self, e: ast.Ternary) -> str:
        cond = self.expr(e.cond)
        with self.captured() as pre_a:
            a = self.expr(e.then)
        with self.captured() as pre_b:
            b = self.expr(e.else_)
        if not pre_a and not pre_b and e.ty != STRING:
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
        pc = self.pcounter(e.operand)
        if pc is not None:
            t = self.frame.long()
            self.emit(f"{t} = STP_PCOUNTER_READ({pc});")
            self.emit(f"STP_PCOUNTER_ADD({pc}, {1 if op == '++' else -1});")
            return f"((stp_long)((u64){t} {op[0]} 1))" if e.prefix else t
        target = self._scalar_target(e.operand)
        if target is not None:
            # Through u64: wraps like the kernel's -fno-strict-overflow.
            t = self.frame.long()
            if e.prefix:
                self.emit(f"{target} = (stp_long)((u64){target} {op[0]} 1);")
                self.emit(f"{t} = {target};")
            else:
                self.emit(f"{t} = {target};")
                self.emit(f"{target} = (stp_long)((u64){target} {op[0]} 1);")
            return t
        idx = e.operand
        assert isinstance(idx, ast.Index)
        g = self.unit.global_(idx.info["c_name"])
        k = self.keys(idx, g)
        old, new = self.frame.long(), self.frame.long()
        self.emit(f"{old} = stp_map_get_long({g['c_name']}, {k});")
        self.emit(f"{new} = (stp_long)((u64){old} {op[0]} 1);")
        self.where_array(idx)
        self.emit(f"if (!stp_map_set_long(c, {g['c_name']}, {k}, {new})) {self.fail()}")
        return new if e.prefix else old

    def e_Assign(self, e: ast.Assign) -> str:
        if e.op == "<<<":
            v = self.expr(e.value)
            t = e.target
            if isinstance(t, ast.Index):
                g = self.unit.global_(t.info["c_name"])
                k = self.keys(t, g)
                self.where_array(t)
                self.emit(f"if (!stp_pmap_add(c, {g['c_name']}, {k}, {v})) {self.fail()}")
            else:
                self.emit(f"stp_pstat_add({t.info['c_name']}, {v});")
            return v
        if isinstance(e.target, ast.Index):
            return self._assign_element(e)
        if isinstance(e.target, ast.TargetSymbol):
            # $value of a procfs read probe: what the reader gets.
            v = self.expr(e.value)
            fn = "stp_procfs_append" if e.op == ".=" else "stp_procfs_set"
            self.emit(f"{fn}(c, {v});")
            return "stp_procfs_value(c)"
        pc = self.pcounter(e.target)
        if pc is not None:
            v = self.expr(e.value)
            t = self.frame.long()
            if e.op == "=":
                self.emit(f"{t} = {v};")
            else:
                self.emit(f"{t} = {self._binop(e, e.op[:-1], f'STP_PCOUNTER_READ({pc})', v)};")
            self.emit(f"STP_PCOUNTER_SET({pc}, {t});")
            return t
        target = self._scalar_target(e.target)
        assert target is not None, e.target
        if e.target.ty == STRING:
            v = self.expr(e.value)
            fn = "stp_strlcat" if e.op == ".=" else "stp_strlcpy"
            self.emit(f"{fn}({target}, {v});")
            return target
        v = self.expr(e.value)
        if e.op == "=":
            self.emit(f"{target} = {v};")
            return target
        op = e.op[:-1]
        self.emit(f"{target} = {self._binop(e, op, target, v)};")
        return target

    def _binop(self, e: ast.Assign, op: str, a: str, b: str) -> str:
        """a op b for a compound assignment (b already evaluated)."""
        if op in ("/", "%"):
            # SystemTap blames the right-hand side: "near number '0' at ...".
            t = self.frame.long()
            self.where_token(e.value)
            self.emit(f"{t} = {'stp_div' if op == '/' else 'stp_mod'}(c, {a}, {b});")
            self.check()
            return t
        if op == "<<":
            return f"(stp_long)((u64){a} << (({b}) & 63))"
        if op == ">>":
            return f"((stp_long){a} >> (({b}) & 63))"
        if op in ("+", "-", "*"):
            return f"(stp_long)((u64){a} {op} (u64)({b}))"
        return f"((stp_long){a} {op} (stp_long)({b}))"

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
            elif not v.startswith("f->"):
                t = self.frame.string()
                self.emit(f"stp_strlcpy({t}, {v});")
                v = t
            self.where_array(idx)
            self.emit(f"if (!stp_map_set_str(c, {name}, {k}, {v})) {self.fail()}")
            return v
        t = self.frame.long()
        if e.op != "=":
            old = self.frame.long()
            self.emit(f"{old} = stp_map_get_long({name}, {k});")
            self.emit(f"{t} = {self._binop(e, e.op[:-1], old, v)};")
        else:
            self.emit(f"{t} = {v};")
        self.where_array(idx)
        self.emit(f"if (!stp_map_set_long(c, {name}, {k}, {t})) {self.fail()}")
        return t

    def e_Call(self, e: ast.Call) -> str:
        if e.info and "fn" in e.info:
            return self.user_call(e)
        return self.print_call(e)

    def user_call(self, e: ast.Call, direct: bool = False) -> str:
        fn = self.unit.function(e.info["fn"])
        values = self.args_in_order(e.args)
        self.where(e, f"identifier '{e.name}'")
        # The callee's frame is the next one: check the depth before
        # writing its parameters there.
        with self.block("if (unlikely(c->nesting + 1 > MAXNESTING))"):
            self.emit('STP_ERROR(c, "MAXNESTING exceeded");')
            self.emit(self.fail())
        frame = f"STPG_FRAME(c, c->nesting + 1, {fn['c_name']})"
        for p, v in zip(fn["params"], values):
            if p["type"] == STRING:
                self.emit(f"stp_strlcpy({frame}->l_{p['name']}, {v});")
            else:
                self.emit(f"{frame}->l_{p['name']} = {v};")
        self.emit(f"{fn['c_name']}(c);")
        self.check()
        ret = fn["return_type"]
        if direct and ret is not None:
            return f"{frame}->__retvalue"
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
        """The print family, all through SystemTap's formatter."""
        name = e.name
        to_string = name.startswith("s")
        base = name[1:] if to_string else name
        if base == "printf":
            fmt, kinds = to_runtime_format(e.args[0].value)
            args = e.args[1:]
        else:
            args = list(e.args)
            delim = ""
            if base in ("printd", "printdln"):
                delim = c_escape(args[0].value).replace("%", "%%")
                args = args[1:]
            if base in ("print", "println") and any(isinstance(a, ast.HistOp) for a in args):
                for a in args:
                    if isinstance(a, ast.HistOp):
                        self.print_hist(a)
                    else:
                        self._print_values(e, [a], "", False, None)
                if base.endswith("ln"):
                    self.emit('stp_print_str(c, "\\n");')
                return "0"
            return self._print_values(e, args, delim, base.endswith("ln"), to_string)
        values = self.args_in_order(args)
        cargs = []
        for kind, v in zip(kinds, values):
            cargs.append(f"(int)({v})" if kind == "int" else
                         f"(long long)({v})" if kind == "ll" else v)
        return self._emit_format(e, fmt, cargs, to_string,
                                 any(p in e.args[0].value for p in ("m", "M")))

    def _print_values(self, e: ast.Call, args: list[ast.Expr], delim: str, newline: bool,
                      to_string: Optional[bool]) -> str:
        values = list(zip(self.args_in_order(args), [a.ty for a in args]))
        parts: list[str] = []
        cargs: list[str] = []
        for v, ty in values:
            if ty == STRING:
                parts.append("%s")
                cargs.append(v)
            else:
                parts.append("%lld")
                cargs.append(f"(long long)({v})")
        fmt = delim.join(parts) + ("\\n" if newline else "")
        if not to_string and len(values) == 1 and values[0][1] == STRING and not newline:
            self.emit(f"stp_print_str(c, {values[0][0]});")
            return "0"
        return self._emit_format(e, fmt, cargs, bool(to_string), False)

    def args_in_order(self, args: list[ast.Expr]) -> list[str]:
        """Evaluate arguments left to right: a variable read is copied
        before a later argument can change it (x, x++)."""
        out = []
        for i, a in enumerate(args):
            v = self.expr(a)
            if isinstance(a, ast.Symbol) and any(has_side_effects(b) for b in args[i + 1:]):
                t = self.frame.string() if a.ty == STRING else self.frame.long()
                self.emit(f"stp_strlcpy({t}, {v});" if a.ty == STRING else f"{t} = {v};")
                v = t
            out.append(v)
        return out

    def _emit_format(self, e: ast.Call, fmt: str, cargs: list[str], to_string: bool,
                     may_fault: bool) -> str:
        tail = "".join(", " + a for a in cargs)
        if may_fault:
            self.where(e, f"identifier '{e.name}'")
        if to_string:
            out = self.frame.string()
            self.emit(f"stp_csprintf(c, {out}, \"{fmt}\"{tail});")
            if may_fault:
                self.check()
            return out
        if fmt and not cargs and "%" not in fmt:
            self.emit(f"stp_print_str(c, \"{fmt}\");")
        elif fmt:
            self.emit(f"stp_printf(c, \"{fmt}\"{tail});")
        if may_fault:
            self.check()
        return "0"


class Translator:
    def __init__(self, ir: dict, module_name: str) -> None:
        self.ir = ir
        self.module_name = module_name
        self._globals = {g["c_name"]: g for g in ir["globals"]}
        self._functions = {f["c_name"]: f for f in ir["functions"]}
        self.stat_specs = self._collect_stat_specs()
        self.regexes: dict[str, str] = {}       # pattern -> C name
        self.regex_tables: list[str] = []       # C definitions
        self.re_max_prog = 1                    # sizes of matched()'s scratch
        self.re_max_caps = 2
        self.pcounters = self._find_pcounters()

    def global_(self, c_name: str) -> dict:
        return self._globals[c_name]

    def function(self, c_name: str) -> dict:
        return self._functions[c_name]

    # -- statistics: which globals keep a histogram or a variance ------------
    def _bodies(self) -> Iterator[ast.Node]:
        for fn in self.ir["functions"]:
            if fn["body"] is not None:
                yield ast.from_json(fn["body"])
        for p in self.ir["probes"]:
            yield ast.from_json(p["body"])
            if p["condition"] is not None:
                yield ast.from_json(p["condition"])

    def _collect_stat_specs(self) -> dict[str, dict]:
        from codegen.link import walk
        specs: dict[str, dict] = {}
        for body in self._bodies():
            for n in walk(body):
                if isinstance(n, ast.HistOp):
                    c_name = n.operand.info["c_name"]
                    if n.kind == "linear":
                        vals = []
                        for p in n.params:
                            if not isinstance(p, ast.Number):
                                raise StapError("semantic", "histogram parameters must be "
                                                "literal numbers", p.loc, token=token_text(p))
                            vals.append(p.value)
                        lo, hi, width = vals
                        if width <= 0:
                            raise StapError("semantic", "histogram bucket width must be "
                                            "positive", n.params[2].loc,
                                            token=token_text(n.params[2]))
                        if hi <= lo:
                            raise StapError("semantic", "histogram end must be greater than "
                                            "its start", n.params[1].loc,
                                            token=token_text(n.params[1]))
                        buckets = (hi - lo) // width + 3
                        if buckets > 258:
                            raise StapError("semantic", "too many histogram buckets "
                                            f"({buckets - 2})", n.loc, token=token_text(n))
                        hist = {"type": "STP_HIST_LINEAR", "start": lo, "interval": width,
                                "buckets": buckets}
                    else:
                        hist = {"type": "STP_HIST_LOG", "start": 0, "interval": 0,
                                "buckets": HIST_LOG_BUCKETS}
                    spec = specs.setdefault(c_name, {"hist": None, "variance": False,
                                                     "shift": 0})
                    if spec["hist"] is not None and spec["hist"] != hist:
                        raise StapError("semantic", "multiple histogram types declared on "
                                        "the same global", n.loc, token=token_text(n))
                    spec["hist"] = hist
                elif isinstance(n, ast.StatOp) and n.op == "variance":
                    c_name = n.operand.info["c_name"]
                    spec = specs.setdefault(c_name, {"hist": None, "variance": False,
                                                     "shift": 0})
                    spec["variance"] = True
                    if n.args:
                        a = n.args[0]
                        if not isinstance(a, ast.Number) or not 0 <= a.value <= 62:
                            raise StapError("semantic", "the @variance shift must be a "
                                            "literal number between 0 and 62", a.loc,
                                            token=token_text(a))
                        spec["shift"] = a.value
                elif isinstance(n, ast.Foreach) and not isinstance(n.array, ast.HistOp) \
                        and n.agg == "variance":
                    c_name = n.array.info["c_name"]
                    specs.setdefault(c_name, {"hist": None, "variance": False,
                                              "shift": 0})["variance"] = True
        return specs

    # -- per-CPU counters ----------------------------------------------------
    def _find_pcounters(self) -> set[str]:
        """Long scalar globals that probes (other than begin/end/error) only
        ever change with ``x++``, ``x--``, ``x += e`` or ``x -= e`` used as
        statements, and that no function touches. Those need no lock: each
        CPU adds into its own slot (this_cpu_add, like a hand-written
        counting probe) and begin/end/error probes, which never run
        alongside the others, read the sum and write slot 0. Nothing a
        script can observe changes."""
        from codegen.link import walk
        cands = {g["c_name"] for g in self.ir["globals"]
                 if g["keys"] is None and g["type"] == LONG}
        bad: set[str] = set()

        def sym(e: ast.Node) -> Optional[str]:
            if isinstance(e, ast.Symbol) and e.info and e.info.get("scope") == "global":
                return e.info["c_name"]
            return None

        def update_target(stmt: ast.Node) -> Optional[str]:
            if not isinstance(stmt, ast.ExprStmt):
                return None
            x = stmt.expr
            if isinstance(x, ast.IncDec):
                return sym(x.operand)
            if isinstance(x, ast.Assign) and x.op in ("+=", "-="):
                return sym(x.target)
            return None

        def scan(body: ast.Node) -> None:
            allowed: set[int] = set()
            for n in walk(body):
                name = update_target(n)
                if name is not None:
                    allowed.add(id(n.expr.operand if isinstance(n.expr, ast.IncDec)
                                   else n.expr.target))
            for n in walk(body):
                name = sym(n)
                if name is not None and id(n) not in allowed:
                    bad.add(name)

        for fn in self.ir["functions"]:
            if fn["body"] is not None:
                for n in walk(ast.from_json(fn["body"])):
                    if sym(n):
                        bad.add(sym(n))
        for p in self.ir["probes"]:
            exclusive = p["family"] in ("begin", "end", "error")
            if p["condition"] is not None:
                for n in walk(ast.from_json(p["condition"])):
                    if sym(n):
                        bad.add(sym(n))
            if not exclusive:
                scan(ast.from_json(p["body"]))
        return cands - bad

    def stat_spec(self, c_name: str) -> str:
        return f"&stpg_stat_{c_name}" if c_name in self.stat_specs else "NULL"

    def buckets(self, c_name: str) -> int:
        spec = self.stat_specs.get(c_name)
        return spec["hist"]["buckets"] if spec and spec["hist"] else 0

    # -- regular expressions ---------------------------------------------------
    def regex(self, pattern: str) -> str:
        name = self.regexes.get(pattern)
        if name is None:
            from codegen.regex_dfa import compile_regex, emit_c
            name = f"stpg_re_{len(self.regexes)}"
            rx = compile_regex(pattern)
            self.regex_tables.append(emit_c(rx, name, pattern))
            self.re_max_prog = max(self.re_max_prog, len(rx.prog))
            self.re_max_caps = max(self.re_max_caps, 2 * (rx.ngroups + 1))
            self.regexes[pattern] = name
        return name

    # -- MAXNESTING: the deepest call chain, +10 with recursion --------------
    def max_nesting(self) -> int:
        from codegen.link import walk
        calls: dict[Optional[str], set[str]] = {}
        for fn in self.ir["functions"]:
            body = ast.from_json(fn["body"]) if fn["body"] is not None else None
            calls[fn["c_name"]] = {n.info["fn"] for n in walk(body) if isinstance(n, ast.Call)
                                   and n.info and "fn" in n.info} if body is not None else set()
        roots: set[str] = set()
        for body in self._bodies():
            roots |= {n.info["fn"] for n in walk(body) if isinstance(n, ast.Call)
                      and n.info and "fn" in n.info}
        recursive = False
        memo: dict[str, int] = {}

        def depth(c: str, stack: tuple[str, ...]) -> int:
            nonlocal recursive
            if c in stack:
                recursive = True
                return 0
            if c in memo:
                return memo[c]
            d = 1 + max((depth(x, stack + (c,)) for x in calls.get(c, ())), default=0)
            memo[c] = d
            return d

        deepest = max((depth(r, ()) for r in roots), default=0)
        return deepest + (10 if recursive else 0)

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
        for p in ir["probes"]:
            # Per-CPU counters take no lock.
            p["locks"] = [lk for lk in p["locks"] if lk["global"] not in self.pcounters]
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
            lines = cond_lines + lines
            probes.append({"p": p, "fields": fields, "lines": lines,
                           "trivial": self._trivial(p, fields, lines)})
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
            trivial={x["p"]["name"] for x in probes if x["trivial"]},
            timers=[p for p in ir["probes"] if p["family"] == "timer"],
            procfs=self._procfs_files(),
            stat_specs=self.stat_specs, max_nesting=self.max_nesting(),
            pcounters=self.pcounters,
            gparams={g["c_name"] for g in global_parameters(ir)},
            regex_tables=self.regex_tables, re_max_prog=self.re_max_prog,
            re_max_caps=self.re_max_caps)

    @staticmethod
    def _trivial(p: dict, fields: list[str], lines: list[str]) -> bool:
        """A kprobe body that touches no frame, no context and no lock (say
        ``n++`` on a per-CPU counter) cannot fail and needs no per-CPU
        context: its handler skips the prologue (one state check instead),
        which costs about what a hand-written counting kprobe does."""
        import re
        if p["family"] != "kprobe" or p["params"].get("is_return") or p["locks"] or fields:
            return False
        return not any(re.search(r"\bc\b|\bf->", line) for line in lines)

    def _procfs_files(self) -> list[dict]:
        """One /proc file per path, with its read and write probes."""
        files: dict[str, dict] = {}
        for p in self.ir["probes"]:
            if p["family"] != "procfs":
                continue
            f = files.setdefault(p["params"]["path"], {"path": p["params"]["path"],
                                                       "read": None, "write": None,
                                                       "maxsize": 0})
            kind = "write" if p["params"]["write"] else "read"
            if f[kind] is not None:
                raise StapError("semantic", f"duplicate procfs {kind} probe for "
                                f"'{f['path']}'", ast.Loc(*p["loc"]),
                                token=f"identifier 'procfs'")
            f[kind] = p
            f["maxsize"] = max(f["maxsize"], p["params"]["maxsize"])
        return list(files.values())

    def _ordered(self, family: str) -> list[dict]:
        ps = [p for p in self.ir["probes"] if p["family"] == family]
        return sorted(ps, key=lambda p: p["params"].get("priority", 0))


def translate(ir: dict, module_name: str) -> str:
    return Translator(ir, module_name).run()


def global_parameters(ir: dict) -> list[dict]:
    """The globals stap -G can set at load time: scalar longs and strings,
    each a module parameter named as the global. Names the runtime's own
    parameters use (stp_*), names that are not C identifiers and names two
    globals share (private globals of two files) get none."""
    import re
    from collections import Counter
    counts = Counter(g["name"] for g in ir["globals"])
    return [g for g in ir["globals"]
            if g["keys"] is None and g["type"] in ("long", "string")
            and counts[g["name"]] == 1 and not g["name"].startswith("stp_")
            and re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", g["name"])]
