"""Pass 2: elaboration. Parse trees (+ one kernel's facts) -> IR.

Resolves every symbol (local, global, function, $target), expands probe
aliases into derived probes, infers the type of every expression with
SystemTap's fixpoint rules, works out which globals each probe locks, and
writes the IR: a JSON document (schema ``IR_SCHEMA``) that pass 3 turns
into C without looking at anything else.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator, Optional

from codegen import ast, targets
from codegen.errors import StapError, StapErrors
from codegen.formats import parse_format
from codegen.link import walk
from codegen.probes import Alias, DerivedProbe, KernelFacts, ProbeResolver

IR_SCHEMA = "stapbuild.ir/1"

LONG, STRING, STATS = "long", "string", "stats"

ARITH_OPS = {"+", "-", "*", "/", "%", "<<", ">>", ">>>", "&", "|", "^"}
COMPARE_OPS = {"<", ">", "<=", ">=", "==", "!="}
REGEX_OPS = {"=~", "!~"}
COMPOUND_LONG = {"+=", "-=", "*=", "/=", "%=", "<<=", ">>=", "&=", "^=", "|="}

PRINT_FAMILY = {"print", "println", "printd", "printdln", "printf",
                "sprint", "sprintln", "sprintd", "sprintdln", "sprintf"}


@dataclass
class GlobalInfo:
    decl: ast.Global
    c_name: str
    type: Optional[str] = None
    keys: Optional[list[Optional[str]]] = None     # None: scalar
    read: bool = False
    written: bool = False


@dataclass
class FunctionInfo:
    decl: ast.Function
    c_name: str
    params: list[Optional[str]]
    ret: Optional[str]
    locals: dict[str, Optional[str]] = field(default_factory=dict)
    file: str = ""
    calls: set[str] = field(default_factory=set)        # c_names of callees
    globals_read: set[str] = field(default_factory=set)
    globals_written: set[str] = field(default_factory=set)


@dataclass
class Scope:
    """What a body (a derived probe or a function) can see."""
    file: str
    locals: dict[str, Optional[str]]
    probe: Optional[DerivedProbe] = None
    function: Optional[FunctionInfo] = None
    globals_read: set[str] = field(default_factory=set)
    globals_written: set[str] = field(default_factory=set)
    calls: set[str] = field(default_factory=set)
    foreach_arrays: list[str] = field(default_factory=list)
    loop_depth: int = 0


def _tok(e: ast.Node) -> str:
    if isinstance(e, ast.Symbol):
        return f"identifier '{e.name}'"
    if isinstance(e, ast.Call):
        return f"identifier '{e.name}'"
    if isinstance(e, ast.Number):
        return f"number '{e.value}'"
    if isinstance(e, ast.String):
        return f"string \"{e.value}\""
    if isinstance(e, ast.TargetSymbol):
        return f"identifier '{e.name}'"
    if isinstance(e, ast.AtOp):
        return f"operator '@{e.op}'"
    if isinstance(e, (ast.Binary, ast.Logical, ast.Assign, ast.Unary, ast.IncDec)):
        return f"operator '{e.op}'"
    return "token"


def _mangle(name: str) -> str:
    return "".join(ch if ch.isalnum() or ch == "_" else "_" for ch in name)


class Elaborator:
    def __init__(self, files: list[ast.File], kernel: Optional[KernelFacts],
                 primary_files: int = 1, unoptimized: bool = False,
                 global_display: bool = True) -> None:
        self.files = files
        self.unoptimized = unoptimized          # stap -u: no elision, no warnings
        self.global_display = global_display    # --no-global-var-display turns it off
        self.warnings: list[str] = []
        self.kernel = kernel
        self.primary_files = primary_files
        self.globals: dict[tuple[str, str], GlobalInfo] = {}     # (scope file or "", name)
        self.functions: dict[tuple[str, int], list[FunctionInfo]] = {}
        self.probes: list[tuple[DerivedProbe, Scope]] = []
        self.changed = False
        self.final = False
        self.errors: list[StapError] = []
        self.entry_slots: list[dict] = []               # values saved at function entry
        self.entry_probe: dict[int, DerivedProbe] = {}  # id(.return probe) -> its entry handler

    # ------------------------------------------------------------ entry
    def run(self) -> dict:
        self._declare()
        self._resolve_probes()
        self._prepare_targets()
        # SystemTap's fixpoint: keep inferring until no type changes.
        self._fixpoint()
        if self.global_display and self._add_global_display():
            self._fixpoint()
        self.final = True
        self._infer_all()
        if self.errors:
            raise StapErrors(self._dedup(self.errors))
        return self._emit_ir()

    def _fixpoint(self) -> None:
        for _ in range(50):
            self.changed = False
            self._infer_all()
            if not self.changed:
                break

    # ------------------------------------------------------------ stap's pass-2 extras
    def _add_global_display(self) -> bool:
        """SystemTap prints, at the end, every global of the user's script
        that is written and never read (elaborate.cxx add_global_var_display):
        `x=5`, `s="text"`, `a[1,"k"]=7` by value descending, and stats as
        `x @count=.. @min=.. @max=.. @sum=.. @avg=..`."""
        user_files = {f.path for f in self.files if not f.is_tapset}
        shown = [g for g in sorted(self.globals.values(), key=lambda g: (g.decl.loc.file,
                                                                         g.decl.loc.line,
                                                                         g.decl.loc.col))
                 if g.decl.loc.file in user_files and g.written and not g.read
                 and g.type is not None]
        if not shown:
            return False
        loc = shown[0].decl.loc
        stmts: list[ast.Stmt] = []
        for g in shown:
            stmts.append(_display_stmt(g, loc))
        body = ast.Block(stmts, loc=loc)
        d = DerivedProbe("end", "end", body, loc, {"priority": 0}, origin="end")
        self.probes.append((d, Scope(loc.file, {}, probe=d)))
        return True

    def _elision_warnings(self, used: set[str]) -> None:
        """stap's "Eliding unused ..." warnings, for the user's own files
        (tapset leftovers go silently); -u keeps and does not warn."""
        if self.unoptimized:
            return
        user = [f for f in self.files if not f.is_tapset]
        for f in user:
            for fn in f.functions:
                infos = self.functions.get((fn.name, len(fn.params)), [])
                if not any(i.decl is fn and i.c_name in used for i in infos):
                    self.warn(f"Eliding unused function '{fn.name}'", fn.loc, fn.name)
            for g in f.globals:
                info = self.lookup_global(g.name, f.path)
                if info is not None and info.decl is g and not info.read and not info.written:
                    self.warn(f"Eliding unused variable '{g.name}'", g.loc, g.name)

    def warn(self, msg: str, loc: ast.Loc, name: str) -> None:
        from codegen.errors import source_line
        text = source_line(loc)
        col = loc.col
        if text is not None:
            import re
            m = re.compile(rf"\b{re.escape(name)}\b").search(
                text, loc.col - 1 + (len("function") if text[loc.col - 1:].startswith(
                    "function") else 0))
            if m:
                col = m.start() + 1
        out = f"WARNING: {msg}: identifier '{name}' at {loc.file}:{loc.line}:{col}\n"
        if text is not None:
            text = text.replace("\t", " ")
            out += f" source: {text}\n" + " " * (len(" source: ") + col - 1) + "^\n"
        self.warnings.append(out)

    @staticmethod
    def _dedup(errors: list[StapError]) -> list[StapError]:
        seen, out = set(), []
        for e in errors:
            key = (e.msg, e.loc)
            if key not in seen:
                seen.add(key)
                out.append(e)
        return out

    def error(self, msg: str, node: ast.Node, token: Optional[str] = None) -> None:
        if not self.final:
            return
        if msg == "unresolved type" and any(e.loc == node.loc for e in self.errors):
            return      # a consequence of the error already reported here
        self.errors.append(StapError("semantic", msg, node.loc, token or _tok(node)))

    # ------------------------------------------------------------ declarations
    def _declare(self) -> None:
        for f in self.files:
            for g in f.globals:
                key = (f.path if g.private else "", g.name)
                if key in self.globals:
                    raise StapError("semantic", "duplicate global name", g.loc,
                                    token=f"identifier '{g.name}'")
                prefix = f"stpg_p{abs(hash(f.path)) % 100000}_" if g.private else "stpg_g_"
                info = GlobalInfo(g, prefix + _mangle(g.name))
                if g.init is not None:
                    info.type = LONG if isinstance(g.init, ast.Number) else STRING
                self.globals[key] = info
            for fn in f.functions:
                key = (fn.name, len(fn.params))
                existing = self.functions.setdefault(key, [])
                if any(e.file == f.path or not fn.private for e in existing):
                    if any(e.decl.priority == fn.priority for e in existing):
                        raise StapError("semantic", f"duplicate function definition '{fn.name}'",
                                        fn.loc, token=f"identifier '{fn.name}'")
                c_name = f"stpg_f_{_mangle(fn.name)}_{len(fn.params)}"
                if existing:
                    c_name += f"_{len(existing)}"
                params = [p.type for p in fn.params]
                info = FunctionInfo(fn, c_name, params, fn.return_type, file=f.path)
                for p in fn.params:
                    info.locals[p.name] = p.type
                existing.append(info)
        for fns in self.functions.values():
            # Overloads of one arity run in priority order; we support the
            # common case of one definition and pick the highest priority.
            fns.sort(key=lambda i: i.decl.priority)

    def _aliases(self) -> list[Alias]:
        out = []
        for f in self.files:
            for a in f.aliases:
                out.append(Alias([n.components for n in a.names], a))
        return out

    def _resolve_probes(self) -> None:
        resolver = ProbeResolver(self._aliases(), self.kernel)
        count = 0
        for f in self.files:
            for probe in f.probes:
                if not f.is_tapset:
                    count += 1
                for d in resolver.resolve(probe):
                    self.probes.append((d, Scope(f.path, {}, probe=d)))
        if count == 0:
            raise StapError("semantic", "no probes found")

    def _prepare_targets(self) -> None:
        """Resolve $targets/@cast against the kernel, fold @defined, and give
        each .return probe that reads entry values its entry handler."""
        nav = getattr(self.kernel, "types", None) if self.kernel is not None else None
        modules = getattr(self.kernel, "modules", None)
        module_nav = (lambda name: modules.facts(name).types) if modules is not None else None
        var_lookup = getattr(self.kernel, "variable", None)
        for fns in self.functions.values():
            for fn in fns:
                if isinstance(fn.decl.body, ast.Block):
                    targets.prepare_body(fn.decl.body, nav, module_nav=module_nav,
                                         var_lookup=var_lookup)
        user_navs: dict[str, object] = {}
        for d, scope in list(self.probes):
            probe_nav = nav
            if d.family == "uprobe":
                # $p->field of a user probe: the binary's own DWARF types.
                from codegen.debuginfo.types import TypeNav
                path = d.params["path"]
                probe_nav = user_navs.setdefault(path, TypeNav(vmlinux=Path(path)))
            elif d.family == "kprobe" and d.params.get("module") and self.kernel is not None:
                # module("m").function: $p->field from the module's DWARF.
                probe_nav = self.kernel.modules.facts(d.params["module"]).types
            targets.prepare_body(d.body, probe_nav, d, module_nav, var_lookup)
            if d.family not in ("kprobe", "uprobe") or not d.params.get("is_return") \
                    or (d.family == "uprobe" and "entry_offset" not in d.params):
                continue
            saved = targets.split_entry(d.body, len(self.entry_slots))
            if not saved:
                continue
            stmts: list[ast.Stmt] = []
            for x in saved:
                save = ast.AtOp("entry_save", [x], loc=x.loc,
                                info={"access": "entry_save", "slot": len(self.entry_slots)})
                stmts.append(ast.ExprStmt(save, loc=x.loc))
                self.entry_slots.append({"save": save, "probe": d})
            entry = DerivedProbe("kretprobe_entry", d.pp, ast.Block(stmts, loc=d.body.loc),
                                 d.loc, {}, function=d.function, origin=d.origin)
            self.entry_probe[id(d)] = entry
            self.probes.append((entry, Scope(scope.file, {}, probe=entry)))

    # ------------------------------------------------------------ lookup
    def lookup_global(self, name: str, file: str) -> Optional[GlobalInfo]:
        return self.globals.get((file, name)) or self.globals.get(("", name))

    def lookup_function(self, name: str, arity: int) -> Optional[FunctionInfo]:
        fns = self.functions.get((name, arity))
        return fns[0] if fns else None

    # ------------------------------------------------------------ inference
    def _infer_all(self) -> None:
        # Unused functions are elided before anything is reported about them
        # (stap's semantic_pass_opt1 runs before type checking), unless -u.
        used = {f.c_name for f in self._used_functions()} \
            if self.final and not self.unoptimized else None
        for fns in self.functions.values():
            for fn in fns:
                if used is not None and fn.c_name not in used:
                    continue
                if isinstance(fn.decl.body, ast.Block):
                    scope = Scope(fn.file, fn.locals, function=fn)
                    self.stmt(fn.decl.body, scope)
                    fn.calls |= scope.calls
                    fn.globals_read |= scope.globals_read
                    fn.globals_written |= scope.globals_written
                if self.final:
                    for name, t in fn.locals.items():
                        if t is None:
                            self.error(f"unresolved type of parameter or local '{name}'",
                                       fn.decl, token=f"identifier '{fn.decl.name}'")
        for d, scope in self.probes:
            self.stmt(d.body, scope)
            if d.condition is not None:
                self.expr(d.condition, scope, LONG)
            if self.final:
                for name, t in scope.locals.items():
                    if t is None:
                        self.error("unresolved type", d.body,
                                   token=f"identifier '{name}'")
        if self.final:
            # A global that is used but whose value type nothing decides
            # (only `in`, delete): stap stops here too, and the
            # translator would have no type to store.
            for g in self.globals.values():
                if (g.read or g.written) and (g.type is None or (
                        g.keys is not None and None in g.keys)):
                    self.error("unresolved type", g.decl,
                               token=f"identifier '{g.decl.name}'")

    def unify(self, have: Optional[str], want: Optional[str], node: ast.Node) -> Optional[str]:
        if have is None:
            return want
        if want is None or have == want:
            return have
        self.error(f"type mismatch ({have} vs. {want})", node)
        return have

    def set_type(self, node: ast.Expr, t: Optional[str]) -> Optional[str]:
        if t is not None and node.ty != t:
            if node.ty is not None and self.final:
                self.error(f"type mismatch ({node.ty} vs. {t})", node)
            if node.ty is None:
                node.ty = t
                self.changed = True
        return node.ty

    # -- statements ---------------------------------------------------------
    def stmt(self, s: ast.Stmt, scope: Scope) -> None:
        if isinstance(s, ast.Block):
            for x in s.stmts:
                self.stmt(x, scope)
        elif isinstance(s, ast.ExprStmt):
            self.expr(s.expr, scope, None)
        elif isinstance(s, ast.If):
            self.expr(s.cond, scope, LONG)
            self.stmt(s.then, scope)
            if s.else_ is not None:
                self.stmt(s.else_, scope)
        elif isinstance(s, ast.While):
            self.expr(s.cond, scope, LONG)
            scope.loop_depth += 1
            self.stmt(s.body, scope)
            scope.loop_depth -= 1
        elif isinstance(s, ast.For):
            for e in (s.init, s.incr):
                if e is not None:
                    self.expr(e, scope, None)
            if s.cond is not None:
                self.expr(s.cond, scope, LONG)
            scope.loop_depth += 1
            self.stmt(s.body, scope)
            scope.loop_depth -= 1
        elif isinstance(s, ast.Foreach):
            self.foreach(s, scope)
        elif isinstance(s, (ast.Break, ast.Continue)):
            if scope.loop_depth == 0 and self.final:
                word = "break" if isinstance(s, ast.Break) else "continue"
                self.errors.append(StapError("semantic", f"found '{word}' not in a loop",
                                             s.loc, token=f"keyword '{word}'"))
        elif isinstance(s, ast.Next):
            pass
        elif isinstance(s, ast.Return):
            fn = scope.function
            if fn is None:
                if self.final:
                    self.errors.append(StapError("semantic",
                                                 "found 'return' not in function context",
                                                 s.loc, token="keyword 'return'"))
                return
            if s.value is not None:
                t = self.expr(s.value, scope, fn.ret)
                if fn.ret is None and t is not None:
                    fn.ret = t
                    self.changed = True
                elif t is not None and fn.ret != t:
                    self.error(f"type mismatch: function '{fn.decl.name}' returns {fn.ret} "
                               f"but this returns {t}", s.value)
        elif isinstance(s, ast.Delete):
            self.delete(s, scope)
        elif isinstance(s, ast.TryCatch):
            self.stmt(s.body, scope)
            if s.var:
                scope.locals[s.var] = self.unify(scope.locals.get(s.var), STRING, s)
            self.stmt(s.handler, scope)
        elif isinstance(s, ast.NullStmt):
            pass
        else:
            raise StapError("semantic", f"unsupported statement {type(s).__name__}", s.loc)

    def hist(self, h: ast.HistOp, scope: Scope) -> None:
        """@hist_linear(x, lo, hi, width) / @hist_log(x): x is a statistic."""
        self.stat_operand(h.operand, scope)
        for p in h.params:
            self.expr(p, scope, LONG)

    def foreach(self, s: ast.Foreach, scope: Scope) -> None:
        if isinstance(s.array, ast.HistOp):
            # foreach ([v =] i in @hist_*(x)): bucket indexes and counts.
            self.hist(s.array, scope)
            for k in s.keys:
                k.ty = self.local(k.name, scope, LONG, k)
                k.info = {"scope": "local"}
            if s.value is not None:
                s.value.ty = self.local(s.value.name, scope, LONG, s.value)
                s.value.info = {"scope": "local"}
            if s.limit is not None:
                self.expr(s.limit, scope, LONG)
            scope.loop_depth += 1
            self.stmt(s.body, scope)
            scope.loop_depth -= 1
            return
        arr = self.array_of(s.array, scope, len(s.keys))
        if arr is None:
            return
        if arr.keys is None:
            arr.keys = [None] * len(s.keys)
        for i, k in enumerate(s.keys):
            t = self.local(k.name, scope, arr.keys[i], k)
            if arr.keys[i] is None and t is not None:
                arr.keys[i] = t
                self.changed = True
            k.ty = t
            k.info = {"scope": "local"}
        if s.value is not None:
            vt = LONG if arr.type == STATS else arr.type
            s.value.ty = self.local(s.value.name, scope, vt, s.value)
            s.value.info = {"scope": "local"}
        if s.slice is not None:
            for i, e in enumerate(s.slice):
                if not isinstance(e, ast.Wildcard):
                    t = self.expr(e, scope, arr.keys[i] if i < len(arr.keys) else None)
                    if i < len(arr.keys) and arr.keys[i] is None and t is not None:
                        arr.keys[i] = t
        if s.limit is not None:
            self.expr(s.limit, scope, LONG)
        scope.globals_read.add(arr.c_name)
        arr.read = True                     # iterating reads it (no end-of-run display)
        if arr.type == STATS or s.sort_column is not None:
            # Aggregating a per-CPU array rewrites its aggregate map, and a
            # sorted foreach reorders the map in place: both need the lock
            # in write mode.
            scope.globals_written.add(arr.c_name)
        s.array.info = {"scope": "global", "c_name": arr.c_name}
        scope.foreach_arrays.append(arr.c_name)
        scope.loop_depth += 1
        self.stmt(s.body, scope)
        scope.loop_depth -= 1
        scope.foreach_arrays.pop()

    def delete(self, s: ast.Delete, scope: Scope) -> None:
        t = s.target
        if isinstance(t, ast.Index):
            arr = self.array_of(t.base, scope, len(t.indexes))
            if arr is not None:
                self.keys(t, arr, scope)
                self._check_foreach_write(arr.c_name, t.base, scope)
                scope.globals_written.add(arr.c_name)
                t.base.info = {"scope": "global", "c_name": arr.c_name}
        elif isinstance(t, ast.Symbol):
            g = self.lookup_global(t.name, scope.file)
            if g is not None:
                t.info = {"scope": "global", "c_name": g.c_name}
                self._check_foreach_write(g.c_name, t, scope)
                scope.globals_written.add(g.c_name)
                g.written = True
            else:
                self.expr(t, scope, None)
        else:
            self.error("invalid delete target", t)

    def _check_foreach_write(self, c_name: str, node: ast.Node, scope: Scope) -> None:
        """SystemTap refuses to change an array inside a foreach over it:
        the iteration walks the very entries being added or removed, and in
        the kernel such a loop may never end."""
        if self.final and c_name in scope.foreach_arrays:
            name = node.name if isinstance(node, ast.Symbol) else c_name
            self.error(f"variable '{name}' modified during 'foreach' iteration", node)

    # -- expressions --------------------------------------------------------
    def local(self, name: str, scope: Scope, want: Optional[str], node: ast.Node) -> Optional[str]:
        have = scope.locals.get(name)
        t = self.unify(have, want, node)
        if have is None and t is not None:
            self.changed = True
        scope.locals[name] = t
        return t

    def array_of(self, e: ast.Expr, scope: Scope, arity: int) -> Optional[GlobalInfo]:
        if not isinstance(e, ast.Symbol):
            self.error("expected an array name", e)
            return None
        g = self.lookup_global(e.name, scope.file)
        if g is None:
            if self.final:
                self.error(f"unresolved arity-{arity} global array {e.name}, "
                           "missing global declaration?", e)
            return None
        if g.keys is None:
            if g.type is not None and g.decl.init is not None:
                self.error(f"global '{e.name}' is a scalar, used as an array", e)
                return None
            g.keys = [None] * arity
            self.changed = True
        elif len(g.keys) != arity:
            self.error(f"inconsistent arity ({arity} vs {len(g.keys)})", e)
            return None
        return g

    def keys(self, idx: ast.Index, g: GlobalInfo, scope: Scope) -> None:
        assert g.keys is not None
        for i, k in enumerate(idx.indexes):
            if isinstance(k, ast.Wildcard):
                continue
            t = self.expr(k, scope, g.keys[i])
            if g.keys[i] is None and t is not None:
                g.keys[i] = t
                self.changed = True
            elif t is not None and g.keys[i] != t:
                self.error(f"type mismatch ({t} vs. {g.keys[i]})", k)

    def global_value(self, g: GlobalInfo, want: Optional[str], node: ast.Node) -> Optional[str]:
        t = self.unify(g.type, want, node)
        if g.type is None and t is not None:
            g.type = t
            self.changed = True
        return g.type

    def expr(self, e: ast.Expr, scope: Scope, want: Optional[str]) -> Optional[str]:
        t = self._expr(e, scope, want)
        if t is not None:
            self.set_type(e, t)
        elif want is not None and self.final and e.ty is None:
            pass
        if self.final and e.ty is None and want is None and not isinstance(
                e, (ast.Call, ast.Wildcard, ast.HistOp)):
            self.error("unresolved type", e)
        if want is not None and e.ty is not None and e.ty != want:
            if not (want == LONG and e.ty == STATS):
                self.error(f"type mismatch: expected {want} but found {e.ty}", e)
        return e.ty

    def _expr(self, e: ast.Expr, scope: Scope, want: Optional[str]) -> Optional[str]:
        if isinstance(e, ast.Number):
            return LONG
        if isinstance(e, ast.String):
            return STRING
        if isinstance(e, ast.Symbol):
            return self.symbol(e, scope, want)
        if isinstance(e, ast.TargetSymbol) and self.procfs_value(e, scope):
            return STRING
        if isinstance(e, (ast.TargetSymbol, ast.AtOp)):
            return self.target(e, scope)
        if isinstance(e, ast.HistOp):
            self.hist(e, scope)
            return None
        if isinstance(e, ast.Index) and isinstance(e.base, ast.HistOp):
            self.hist(e.base, scope)            # @hist_*(x)[i]: a bucket's count
            for k in e.indexes:
                self.expr(k, scope, LONG)
            return LONG
        if isinstance(e, ast.Index):
            g = self.array_of(e.base, scope, len(e.indexes))
            if g is None:
                return None
            self.keys(e, g, scope)
            e.base.info = {"scope": "global", "c_name": g.c_name}
            scope.globals_read.add(g.c_name)
            g.read = True
            if g.type == STATS:
                scope.globals_written.add(g.c_name)
            e.info = {"c_name": g.c_name, "in_foreach": g.c_name in scope.foreach_arrays}
            return self.global_value(g, want, e)
        if isinstance(e, ast.Call):
            return self.call(e, scope, want)
        if isinstance(e, ast.Binary):
            return self.binary(e, scope, want)
        if isinstance(e, ast.Logical):
            self.expr(e.left, scope, LONG)
            self.expr(e.right, scope, LONG)
            return LONG
        if isinstance(e, ast.Unary):
            self.expr(e.operand, scope, LONG)
            return LONG
        if isinstance(e, ast.IncDec):
            self.lvalue(e.operand, scope, LONG)
            return LONG
        if isinstance(e, ast.Assign):
            return self.assign(e, scope, want)
        if isinstance(e, ast.Ternary):
            self.expr(e.cond, scope, LONG)
            a = self.expr(e.then, scope, want)
            b = self.expr(e.else_, scope, want or a)
            if a is None and b is not None:
                a = self.expr(e.then, scope, b)
            return a or b
        if isinstance(e, ast.InArray):
            g = self.array_of(e.array, scope, len(e.keys))
            if g is None:
                return LONG
            self.keys(ast.Index(e.array, e.keys, loc=e.loc), g, scope)
            e.array.info = {"scope": "global", "c_name": g.c_name}
            scope.globals_read.add(g.c_name)
            g.read = True
            if g.type == STATS:
                scope.globals_written.add(g.c_name)
            return LONG
        if isinstance(e, ast.StatOp):
            self.stat_operand(e.operand, scope)
            for a in e.args:
                self.expr(a, scope, LONG)
            return LONG
        if isinstance(e, ast.Wildcard):
            return None
        self.error(f"unsupported expression {type(e).__name__}", e)
        return None

    def stat_operand(self, x: ast.Expr, scope: Scope) -> None:
        if isinstance(x, ast.Symbol):
            g = self.lookup_global(x.name, scope.file)
            if g is None:
                self.error("statistic operand must be a global", x)
                return
            self.global_value(g, STATS, x)
            x.ty = STATS
            x.info = {"scope": "global", "c_name": g.c_name}
            scope.globals_read.add(g.c_name)
            scope.globals_written.add(g.c_name)
            g.read = True
        elif isinstance(x, ast.Index):
            self.expr(x, scope, STATS)
        else:
            self.error("statistic operand must be a global or an array element", x)

    def symbol(self, e: ast.Symbol, scope: Scope, want: Optional[str]) -> Optional[str]:
        if e.name in scope.locals:
            e.info = {"scope": "local"}
            return self.local(e.name, scope, want, e)
        g = self.lookup_global(e.name, scope.file)
        if g is not None:
            if g.keys is not None:
                self.error(f"array '{e.name}' used as a scalar", e)
                return None
            e.info = {"scope": "global", "c_name": g.c_name}
            scope.globals_read.add(g.c_name)
            g.read = True
            if g.type == STATS:
                self.error("invalid use of a statistic: only <<<, @count etc., delete", e)
            return self.global_value(g, want, e)
        e.info = {"scope": "local"}
        return self.local(e.name, scope, want, e)

    def lvalue(self, e: ast.Expr, scope: Scope, want: Optional[str],
               pure: bool = True) -> Optional[str]:
        """Type an assignment target and record the write.  A pure write
        (=, <<<, ++, --) does not count as a read of a global, as in stap's
        varuse visitor: that decides which globals are displayed at exit."""
        base = e.base if isinstance(e, ast.Index) else e
        g0 = self.lookup_global(base.name, scope.file) if isinstance(base, ast.Symbol) else None
        was_read = g0.read if g0 is not None else False
        try:
            return self._lvalue(e, scope, want)
        finally:
            if g0 is not None and pure:
                g0.read = was_read

    def _lvalue(self, e: ast.Expr, scope: Scope, want: Optional[str]) -> Optional[str]:
        if isinstance(e, ast.Symbol):
            t = self.symbol(e, scope, want)
            if e.info and e.info["scope"] == "global":
                scope.globals_written.add(e.info["c_name"])
                g = self.lookup_global(e.name, scope.file)
                if g is not None:
                    g.written = True
            if t is not None:
                self.set_type(e, t)
            return t
        if isinstance(e, ast.Index):
            t = self.expr(e, scope, want)
            if e.info:
                self._check_foreach_write(e.info["c_name"], e.base, scope)
                scope.globals_written.add(e.info["c_name"])
                g = self.lookup_global(e.base.name, scope.file) if isinstance(
                    e.base, ast.Symbol) else None
                if g is not None:
                    g.written = True
            return t
        if isinstance(e, ast.TargetSymbol) and self.procfs_value(e, scope):
            if e.info["write"]:
                self.error("$value is read-only in procfs write probes", e)
            return STRING
        if isinstance(e, ast.TargetSymbol):
            self.error("write to target variable not permitted; need stap -g", e)
            return None
        self.error("expected an lvalue", e)
        return None

    def assign(self, e: ast.Assign, scope: Scope, want: Optional[str]) -> Optional[str]:
        if e.op == "<<<":
            self.stat_target(e.target, scope)
            self.expr(e.value, scope, LONG)
            return LONG
        if e.op == "=":
            vt = self.expr(e.value, scope, None)
            tt = self.lvalue(e.target, scope, vt)
            if vt is None and tt is not None:
                self.expr(e.value, scope, tt)
            return tt or vt
        if e.op == ".=":
            self.lvalue(e.target, scope, STRING, pure=False)
            self.expr(e.value, scope, STRING)
            return STRING
        if e.op in COMPOUND_LONG:
            self.lvalue(e.target, scope, LONG, pure=False)
            self.expr(e.value, scope, LONG)
            return LONG
        self.error("invalid operator", e)
        return None

    def stat_target(self, t: ast.Expr, scope: Scope) -> None:
        if isinstance(t, ast.Symbol):
            g = self.lookup_global(t.name, scope.file)
            if g is None:
                self.error("statistics must be global", t)
                return
            self.global_value(g, STATS, t)
            t.ty = STATS
            t.info = {"scope": "global", "c_name": g.c_name}
            g.written = True
            scope.globals_read.add(g.c_name)    # <<< only needs the lock in read mode
        elif isinstance(t, ast.Index):
            g = self.array_of(t.base, scope, len(t.indexes))
            if g is None:
                return
            self.keys(t, g, scope)
            self.global_value(g, STATS, t)
            t.ty = STATS
            t.base.info = {"scope": "global", "c_name": g.c_name}
            t.info = {"c_name": g.c_name, "in_foreach": False}
            g.written = True
            scope.globals_read.add(g.c_name)
        else:
            self.error("invalid target of <<<", t)

    def binary(self, e: ast.Binary, scope: Scope, want: Optional[str]) -> Optional[str]:
        if e.op in ARITH_OPS:
            self.expr(e.left, scope, LONG)
            self.expr(e.right, scope, LONG)
            return LONG
        if e.op == ".":
            self.expr(e.left, scope, STRING)
            self.expr(e.right, scope, STRING)
            return STRING
        if e.op in REGEX_OPS:
            self.expr(e.left, scope, STRING)
            self.expr(e.right, scope, STRING)
            return LONG
        if e.op in COMPARE_OPS:
            a = self.expr(e.left, scope, None)
            b = self.expr(e.right, scope, a)
            if a is None and b is not None:
                self.expr(e.left, scope, b)
            elif a is not None and b is not None and a != b:
                self.error(f"type mismatch: left and right sides don't agree ({a} vs {b})", e)
            return LONG
        self.error("invalid operator", e)
        return None

    def call(self, e: ast.Call, scope: Scope, want: Optional[str]) -> Optional[str]:
        if e.name in PRINT_FAMILY:
            return self.print_call(e, scope)
        fn = self.lookup_function(e.name, len(e.args))
        if fn is None:
            if self.final:
                other = [k for k in self.functions if k[0] == e.name]
                if other:
                    self.error(f"arity mismatch found (function '{e.name}' takes "
                               f"{other[0][1]} args)", e)
                else:
                    self.error("unresolved function", e)
            return None
        e.info = {"fn": fn.c_name}
        scope.calls.add(fn.c_name)
        for i, (arg, p) in enumerate(zip(e.args, fn.decl.params)):
            t = self.expr(arg, scope, fn.params[i])
            if fn.params[i] is None and t is not None:
                fn.params[i] = t
                fn.locals[p.name] = t
                self.changed = True
        if fn.ret is None and want is not None and isinstance(fn.decl.body, ast.Block) \
                and not self._has_value_return(fn.decl.body):
            return None
        return fn.ret

    @staticmethod
    def _has_value_return(body: ast.Block) -> bool:
        return any(isinstance(n, ast.Return) and n.value is not None for n in walk(body))

    def print_call(self, e: ast.Call, scope: Scope) -> Optional[str]:
        name = e.name
        returns = STRING if name.startswith("s") else None
        if name in ("printf", "sprintf"):
            if not e.args or not isinstance(e.args[0], ast.String):
                self.error(f"{name} format must be a literal string", e)
                return returns
            try:
                directives = parse_format(e.args[0].value)
            except ValueError as err:
                self.error(f"invalid format string: {err}", e.args[0])
                return returns
            e.args[0].ty = STRING
            wants = [d for d in directives]
            if len(wants) != len(e.args) - 1 and self.final:
                self.error(f"Wrong number of args to formatted print operator (expected "
                           f"{len(wants)}, found {len(e.args) - 1})", e)
            for arg, w in zip(e.args[1:], wants):
                self.expr(arg, scope, w)
            for arg in e.args[1 + len(wants):]:
                self.expr(arg, scope, None)
            return returns
        if name in ("printd", "printdln", "sprintd", "sprintdln"):
            if len(e.args) < 2 or not isinstance(e.args[0], ast.String):
                self.error(f"{name} needs a literal delimiter and at least one value", e)
                return returns
            e.args[0].ty = STRING
            args = e.args[1:]
        else:
            if not e.args and name in ("print", "sprint"):
                self.error(f"{name} needs at least one argument", e)
            args = e.args
        for a in args:
            t = self.expr(a, scope, None)
            if t == STATS:
                self.error("cannot print a statistic; use @count, @sum, ...", a)
        return returns

    @staticmethod
    def procfs_value(e: ast.TargetSymbol, scope: Scope) -> bool:
        """$value in a procfs probe: the text read (set it in .read) or
        written (.write). A string, handled by the translator."""
        p = scope.probe
        if p is None or p.family != "procfs" or e.name != "$value" or e.components \
                or e.addressof or e.pretty:
            return False
        e.info = {"access": "procfs_value", "write": p.params["write"]}
        return True

    def target(self, e: ast.Expr, scope: Scope) -> Optional[str]:
        """A $target, @cast or @entry node, resolved before inference
        (codegen.targets): report its error or type its sub-expressions."""
        info = e.info if isinstance(e.info, dict) else {}
        if "error" in info:
            self.error(info["error"], e)
            return None
        access = info.get("access")
        if access is None:
            if isinstance(e, ast.AtOp) and e.op == "entry":
                self.error("@entry is only valid in .return probes of kernel.function "
                           "and process(...).function", e)
            else:
                self.error("unresolved target-symbol expression", e)
            return None
        if access == "entry_save":
            assert isinstance(e, ast.AtOp)
            t = self.expr(e.args[0], scope, None)
            if t == STATS:
                self.error("invalid type stats in @entry", e)
            return t
        if access == "entry_load":
            save = self.entry_slots[info["slot"]]["save"]
            return save.args[0].ty
        if info.get("base", {}).get("kind") == "expr":
            assert isinstance(e, ast.AtOp)
            self.expr(e.args[0], scope, LONG)
        for c in getattr(e, "components", []):
            if c.index is not None:
                self.expr(c.index, scope, LONG)
        return STRING if access in ("vars", "vars_return", "str", "sdt_vars", "pretty") \
            else LONG

    # ------------------------------------------------------------ IR output
    def _closure(self, calls: set[str], attr: str) -> set[str]:
        by_c = {fn.c_name: fn for fns in self.functions.values() for fn in fns}
        seen: set[str] = set()
        out: set[str] = set()
        stack = list(calls)
        while stack:
            c = stack.pop()
            if c in seen or c not in by_c:
                continue
            seen.add(c)
            out |= getattr(by_c[c], attr)
            stack.extend(by_c[c].calls)
        return out

    def _used_functions(self) -> list[FunctionInfo]:
        by_c = {fn.c_name: fn for fns in self.functions.values() for fn in fns}
        used: set[str] = set()
        stack = [c for _, s in self.probes for c in s.calls]
        while stack:
            c = stack.pop()
            if c in used:
                continue
            used.add(c)
            stack.extend(by_c[c].calls)
        # Emit callees before callers so C needs no prototypes for most calls.
        return [by_c[c] for c in sorted(used)]

    def _layout_entry_data(self) -> None:
        """Place each .return probe's entry values in its kretprobe instance
        data (longs, then MAXSTRINGLEN strings) and name its entry handler."""
        names = {id(d): f"stpg_probe_{i}" for i, (d, _) in enumerate(self.probes)}
        for d, _ in self.probes:
            entry = self.entry_probe.get(id(d))
            if entry is None:
                continue
            slots = [s for s in self.entry_slots if s["probe"] is d]
            longs = [s for s in slots if s["save"].args[0].ty != STRING]
            strs = [s for s in slots if s["save"].args[0].ty == STRING]
            where: dict[int, dict] = {}
            for k, s in enumerate(longs):
                where[self.entry_slots.index(s)] = {"type": LONG, "index": k}
            for k, s in enumerate(strs):
                where[self.entry_slots.index(s)] = {"type": STRING, "index": k}
            for n in list(walk(d.body)) + list(walk(entry.body)):
                if isinstance(n, ast.AtOp) and n.op in ("entry_load", "entry_save"):
                    n.info.update(where[n.info["slot"]], nlong=len(longs))
                    if d.family == "uprobe":
                        n.info["uentry"] = True     # runtime_c/stp_uprobes.h
            d.params["entry_probe"] = names[id(entry)]
            d.params["entry_data_size"] = f"({8 * len(longs)} + {len(strs)} * MAXSTRINGLEN)"

    def _emit_ir(self) -> dict:
        self._layout_entry_data()
        functions = self._used_functions()
        self._elision_warnings({f.c_name for f in functions})
        if self.unoptimized:
            functions = sorted((f for fns in self.functions.values() for f in fns),
                               key=lambda f: f.c_name)
        probes = []
        for i, (d, scope) in enumerate(self.probes):
            if d.family == "never":
                continue
            reads = scope.globals_read | self._closure(scope.calls, "globals_read")
            writes = scope.globals_written | self._closure(scope.calls, "globals_written")
            locks = [{"global": g, "write": g in writes} for g in sorted(reads | writes)]
            probes.append({
                "name": f"stpg_probe_{i}",
                "family": d.family,
                "pp": d.pp,
                "origin": d.origin,
                "loc": [d.loc.file, d.loc.line, d.loc.col],
                "params": d.params,
                "locals": [{"name": n, "type": t} for n, t in sorted(scope.locals.items())],
                "condition": ast.to_json(d.condition) if d.condition is not None else None,
                "body": ast.to_json(d.body),
                "locks": locks,
            })
        used_globals = {g for p in probes for lk in p["locks"] for g in [lk["global"]]}
        globals_out = []
        for g in sorted(self.globals.values(), key=lambda g: g.c_name):
            if g.c_name not in used_globals:
                continue
            globals_out.append({
                "name": g.decl.name, "c_name": g.c_name, "type": g.type,
                "keys": g.keys, "size": g.decl.size, "wrap": g.decl.wrap,
                "init": g.decl.init.value if g.decl.init is not None else None,
                "loc": [g.decl.loc.file, g.decl.loc.line, g.decl.loc.col],
            })
        fns_out = []
        for fn in functions:
            body = fn.decl.body
            fns_out.append({
                "name": fn.decl.name, "c_name": fn.c_name,
                "params": [{"name": p.name, "type": t}
                           for p, t in zip(fn.decl.params, fn.params)],
                "return_type": fn.ret,
                "locals": [{"name": n, "type": t} for n, t in sorted(fn.locals.items())
                           if n not in {p.name for p in fn.decl.params}],
                "body": ast.to_json(body) if isinstance(body, ast.Block) else None,
                "embedded": body.code if isinstance(body, ast.EmbeddedExpr) else None,
                "loc": [fn.decl.loc.file, fn.decl.loc.line, fn.decl.loc.col],
            })
        embeds = [e.code for f in self.files for e in f.embeds]
        return {
            "schema": IR_SCHEMA,
            "kernel": {"release": self.kernel.release} if self.kernel else None,
            "globals": globals_out,
            "functions": fns_out,
            "probes": probes,
            "embeds": embeds,
            "warnings": self.warnings,
        }


def _ctype(t: dict) -> str:
    """The C type a $target value is read as, before widening to 64 bits."""
    kind = t.get("kind")
    size = t.get("size") or 8
    if kind in ("pointer", "func") or size == 8:
        return "s64" if t.get("signed", True) and kind not in ("pointer", "func") else "u64"
    signed = t.get("signed", True)
    return f"{'s' if signed else 'u'}{size * 8}"


def elaborate(files: list[ast.File], kernel: Optional[KernelFacts], *,
              unoptimized: bool = False, global_display: bool = True) -> dict:
    """Run pass 2 over the user files (first) and the linked tapset files."""
    return Elaborator(files, kernel, unoptimized=unoptimized,
                      global_display=global_display).run()


def _display_stmt(g: GlobalInfo, loc: ast.Loc) -> ast.Stmt:
    """The statement that prints one written-but-unread global at the end."""
    name = g.decl.name
    sym = lambda: ast.Symbol(name, loc=loc)  # noqa: E731
    stats_fmt = "@count=%d @min=%d @max=%d @sum=%d @avg=%d"

    def stat_args(x: Callable[[], ast.Expr]) -> list[ast.Expr]:
        return [ast.StatOp(op, x(), loc=loc) for op in ("count", "min", "max", "sum", "avg")]

    def printf(fmt: str, args: list[ast.Expr]) -> ast.Stmt:
        return ast.ExprStmt(ast.Call("printf", [ast.String(fmt, loc=loc)] + args, loc=loc),
                            loc=loc)
    if g.keys is None:
        if g.type == STATS:
            return ast.If(ast.StatOp("count", sym(), loc=loc),
                          printf(f"{name} {stats_fmt}\n", stat_args(sym)), loc=loc)
        if g.type == STRING:
            return printf(f'{name}="%s"\n', [sym()])
        return printf(f"{name}=%d\n", [sym()])
    keys = [ast.Symbol(f"__display_{name}_{i}", loc=loc) for i in range(len(g.keys))]
    kfmt = ",".join('\"%s\"' if t == STRING else "%d" for t in g.keys)
    elem = lambda: ast.Index(sym(), [ast.Symbol(k.name, loc=loc) for k in keys],  # noqa: E731
                             loc=loc)
    key_args: list[ast.Expr] = [ast.Symbol(k.name, loc=loc) for k in keys]
    if g.type == STATS:
        body = printf(f"{name}[{kfmt}] {stats_fmt}\n", key_args + stat_args(elem))
    elif g.type == STRING:
        body = printf(f'{name}[{kfmt}]="%s"\n', key_args + [elem()])
    else:
        body = printf(f"{name}[{kfmt}]=%d\n", key_args + [elem()])
    return ast.Foreach(keys, None, sym(), body, sort_column=0, sort_dir=-1, loc=loc)


def iter_nodes(ir_body: dict) -> Iterator[dict]:
    """Walk an IR body (JSON form)."""
    stack = [ir_body]
    while stack:
        n = stack.pop()
        if isinstance(n, dict):
            yield n
            stack.extend(v for v in n.values() if isinstance(v, (dict, list)))
        elif isinstance(n, list):
            stack.extend(n)
