"""Resolving target expressions ($var chains, @cast, $$parms) in pass 2.

Each resolved expression gets an *access program* in its ``info``, which
is all pass 3 needs to read it (codegen.target_c turns it into C):

    {"access": "chain",
     "base": {"kind": "reg", "reg": "di"}        # a register at the probe
           | {"kind": "cfa", "offset": 8}        # a stack slot (entry CFA + off)
           | {"kind": "return"}                  # the return value register
           | {"kind": "const", "value": 3}       # optimised to a constant
           | {"kind": "expr"}                    # @cast: the value of args[0]
     "start": "val" | "loc",                     # base is a value / an address
     "steps": [{"op": "deref"}                   # a = *(u64 *)a
              |{"op": "add", "n": 16}            # a += 16
              |{"op": "index", "comp": 2, "size": 8}],   # a += idx * 8
     "final": {"kind": "value", "size": 8, "signed": true}   # the value itself
            | {"kind": "load", "size": 4, "signed": false}   # *(u32 *)a
            | {"kind": "bits", "size": 2, "shift": 3, "bits": 5, "signed": false}
            | {"kind": "addr"},                  # a (&..., or an array)
     "type": "struct dentry*"}                   # C type of the result

SystemTap's rules: every target value is a long; `->` follows pointers and
walks into embedded structs alike; a char* or char[] member is a number
(the address), which the user reads with kernel_string(); an array used
as a value decays to its address; a struct cannot be a value.
"""
from __future__ import annotations

import difflib
from typing import Optional

from codegen import ast

class TargetError(Exception):
    """A target expression that does not resolve; the message is stap's."""


def _suggest(name: str, names: list[str], limit: int = 6) -> str:
    close = difflib.get_close_matches(name, names, n=limit, cutoff=0.6)
    rest = [n for n in names if n not in close]
    return " ".join(close + rest)[:400]


def _tinfo(d: Optional[dict]):  # type: ignore[no-untyped-def]
    """dict (from FunctionInfo JSON) -> TypeInfo."""
    from codegen.debuginfo.model import TypeInfo
    if d is None:
        return None
    if not isinstance(d, dict):
        return d
    x = dict(d)
    x["target"] = _tinfo(x.get("target"))
    return TypeInfo(**x)


def _scalar_final(t, what: str) -> dict:  # type: ignore[no-untyped-def]
    if t.kind in ("struct", "union"):
        bare = t.name.split(" ", 1)[-1]
        raise TargetError(f"struct/union '{bare}' is being accessed instead of a member "
                          f"of the struct/union ({what})")
    if t.kind == "float":
        raise TargetError(f"floating point value '{what}' ({t.name}) cannot be read")
    if t.kind == "void":
        raise TargetError(f"'{what}' has type void")
    size = t.size or 8
    if size not in (1, 2, 4, 8):
        raise TargetError(f"'{what}' has an unsupported size ({size} bytes, {t.name})")
    signed = bool(t.signed) if t.kind in ("int", "enum") else False
    return {"size": size, "signed": signed}


def walk_chain(nav, t, start: str, comps: list[ast.TargetComponent], addressof: bool,
               what: str) -> dict:  # type: ignore[no-untyped-def]
    """The steps and final read for `comps` applied to a base of type t.

    start: "val" (the base is the value, e.g. a register) or "loc" (the
    base is the address of an object of type t, e.g. a stack slot)."""
    state, steps, bits, t, shown = walk_steps(nav, t, start, comps, what)
    return _final(start, state, steps, bits, t, shown, addressof)


def walk_steps(nav, t, start: str, comps: list[ast.TargetComponent],
               what: str) -> tuple:  # type: ignore[no-untyped-def]
    """Follow `comps` from a base of type t: (state, steps, bits, type,
    shown), where state says whether the result is a value ("val") or the
    object's address ("loc"), and bits is (shift, width) for a bitfield."""
    state = start
    steps: list[dict] = []
    bits: Optional[tuple[int, int]] = None
    shown = what
    for i, c in enumerate(comps):
        bits = None
        if c.kind == "member":
            shown_next = f"{shown}->{c.member}"
            if state == "val":
                if t.kind != "pointer":
                    raise TargetError(f"'{shown}' is not a pointer ({t.name}); cannot "
                                      f"access member '{c.member}'")
                tgt = nav.pointee(t)
                if tgt is None:
                    raise TargetError(f"cannot dereference a void pointer ('{shown}')")
                t = nav.complete(tgt)
                state = "loc"
            elif t.kind == "pointer":
                steps.append({"op": "deref"})
                tgt = nav.pointee(t)
                if tgt is None:
                    raise TargetError(f"cannot dereference a void pointer ('{shown}')")
                t = nav.complete(tgt)
            if t.kind not in ("struct", "union"):
                raise TargetError(f"'{shown}' is not a struct or union ({t.name}); cannot "
                                  f"access member '{c.member}'")
            m = nav.member(t, c.member)
            if m is None:
                names = nav.member_names(t)
                if not names and t.size is None:
                    raise TargetError(f"incomplete type {t.name}: no member layout for "
                                      f"'{c.member}' in the debug info")
                raise TargetError(f"unable to find member '{c.member}' for {t.name} "
                                  f"(alternatives: {_suggest(c.member, names)})")
            if m.bit_size:
                start_byte = m.bit_offset // 8
                steps.append({"op": "add", "n": start_byte})
                bits = (m.bit_offset % 8, m.bit_size)
            elif m.offset:
                steps.append({"op": "add", "n": m.offset})
            t = m.type
            shown = shown_next
        else:
            shown_next = f"{shown}[...]"
            if state == "val":
                if t.kind != "pointer":
                    raise TargetError(f"'{shown}' is not a pointer or array ({t.name}); "
                                      "cannot index it")
                state = "loc"
            elif t.kind == "pointer":
                steps.append({"op": "deref"})
            elif t.kind != "array":
                raise TargetError(f"'{shown}' is not a pointer or array ({t.name}); "
                                  "cannot index it")
            elem = nav.pointee(t)
            if elem is None:
                raise TargetError(f"cannot index a void pointer ('{shown}')")
            elem = nav.complete(elem)
            if not elem.size:
                raise TargetError(f"cannot index '{shown}': element type {elem.name} "
                                  "has no size")
            steps.append({"op": "index", "comp": i, "size": elem.size})
            t = elem
            shown = shown_next
    return state, steps, bits, t, shown


def _final(start: str, state: str, steps: list[dict], bits: Optional[tuple[int, int]], t,
           shown: str, addressof: bool) -> dict:  # type: ignore[no-untyped-def]
    """The access program's final read of the object walk_steps reached."""
    if addressof:
        if state == "val":
            raise TargetError(f"cannot take the address of '{shown}': it is held in a "
                              "register, not in memory")
        if bits is not None:
            raise TargetError(f"cannot take the address of bitfield '{shown}'")
        return {"start": start, "steps": steps, "final": {"kind": "addr"},
                "type": t.name + "*", "type_info": None}
    if state == "val":
        final = {"kind": "value", **_scalar_final(t, shown)}
    elif t.kind == "array":
        final = {"kind": "addr"}
    elif bits is not None:
        f = _scalar_final(t, shown)
        nbytes = (bits[0] + bits[1] + 7) // 8
        final = {"kind": "bits", "size": nbytes, "shift": bits[0], "bits": bits[1],
                 "signed": f["signed"]}
    else:
        final = {"kind": "load", **_scalar_final(t, shown)}
    return {"start": start, "steps": steps, "final": final, "type": t.name,
            "type_info": t}


def param_base(p: dict, fn_name: str) -> tuple[dict, str]:
    """(base, start) of a parameter at the function's entry."""
    loc = p.get("entry_location") or {}
    kind = loc.get("kind")
    if kind == "reg":
        return {"kind": "reg", "reg": loc["reg"]}, "val"
    if kind == "fbreg" and loc.get("frame_base") == "cfa":
        return {"kind": "cfa", "offset": loc["offset"]}, "loc"
    if kind == "bpcfa":     # user code after its frame-pointer prologue
        return {"kind": "bpcfa", "offset": loc["offset"]}, "loc"
    if kind == "const":
        return {"kind": "const", "value": loc["value"]}, "val"
    at = f"pc {loc['pc']:#x}" if "pc" in loc else "the function's entry"
    if kind in ("optimized_out",):
        raise TargetError(f"'${p['name']}' of '{fn_name}' is optimized out at {at}")
    raise TargetError(f"cannot locate '${p['name']}' at {at} in '{fn_name}' "
                      f"(location: {kind or 'unknown'})")


def resolve_pretty(nav, t, base: dict, start: str, e: ast.Expr,
                   what: str) -> dict:  # type: ignore[no-untyped-def]
    """`$var$`, `$p->m$$`, `@cast(p, "T")$`: the chain to the object, then
    the print ops codegen.pretty lays out from its type."""
    from codegen.pretty import PrettyError, pretty_program
    if e.addressof:
        raise TargetError(f"cannot take the address of a pretty-printed '{what}'")
    state, steps, bits, t, _ = walk_steps(nav, t, start, e.components, what)
    try:
        prog = pretty_program(nav, t, state, steps, bits, e.pretty)
    except PrettyError as err:
        raise TargetError(str(err)) from None
    return {"access": "pretty", "base": base, "start": start, **prog}


def resolve_param(nav, fn: dict, e: ast.TargetSymbol) -> dict:  # type: ignore[no-untyped-def]
    """A `$param[...]` chain at the entry of kernel function fn."""
    name = e.name[1:]
    for p in fn.get("params", []):
        if p["name"] == name:
            base, start = param_base(p, fn["name"])
            t = _tinfo(p.get("type"))
            if base["kind"] == "const" and (e.components or e.addressof):
                raise TargetError(f"'{e.name}' is a constant at the entry of "
                                  f"'{fn['name']}'; it has no address")
            if e.pretty:
                return resolve_pretty(nav, t, base, start, e, e.name)
            prog = walk_chain(nav, t, start, e.components, e.addressof, e.name)
            return {"access": "chain", "base": base, **_public(prog)}
    known = " ".join("$" + p["name"] for p in fn.get("params", []))
    where = f"{fn.get('decl_file') or '?'}:{fn.get('decl_line') or 0}"
    what = f"function '{fn['name']}' of {fn['user_binary']}" if fn.get("user_binary") \
        else f"kernel function '{fn['name']}'"
    raise TargetError(f"unable to find local '{name}' in {what} "
                      f"at {where} (alternatives: {known})")


def resolve_return(nav, fn: dict, e: ast.TargetSymbol) -> dict:  # type: ignore[no-untyped-def]
    rtype = fn.get("return_type")
    if rtype is None:
        raise TargetError(f"function '{fn['name']}' returns void: no $return")
    if e.pretty:
        return resolve_pretty(nav, _tinfo(rtype), {"kind": "return"}, "val", e, "$return")
    prog = walk_chain(nav, _tinfo(rtype), "val", e.components, e.addressof, "$return")
    return {"access": "chain", "base": {"kind": "return"}, **_public(prog)}


def resolve_cast(nav, type_name: str, e: ast.AtOp) -> dict:  # type: ignore[no-untyped-def]
    """@cast(ptr, "type")->chain: ptr is a pointer to `type`."""
    from codegen.debuginfo.model import TypeInfo
    t = nav.lookup(type_name)
    if t is None:
        raise TargetError(f"type definition '{type_name}' not found in the kernel's "
                          "debug info")
    ptr = TypeInfo("pointer", t.name + "*", 8, False, t)
    if e.pretty:
        return resolve_pretty(nav, ptr, {"kind": "expr"}, "val", e, f"@cast({t.name})")
    if not e.components:
        if e.addressof:
            raise TargetError("cannot take the address of a @cast without members")
        return {"access": "chain", "base": {"kind": "expr"}, "start": "val", "steps": [],
                "final": {"kind": "value", "size": 8, "signed": False},
                "type": ptr.name}
    # ptr has no ref: its pointee is its `target`, the looked-up type.
    prog = walk_chain(nav, ptr, "val", e.components, e.addressof, f"@cast({t.name})")
    return {"access": "chain", "base": {"kind": "expr"}, **_public(prog)}


def _public(prog: dict) -> dict:
    return {k: v for k, v in prog.items() if k != "type_info"}


def type_of_chain(nav, base_type, comps, addressof):  # type: ignore[no-untyped-def]
    """The TypeInfo a chain yields (for autocast through a typed value)."""
    prog = walk_chain(nav, base_type, "val", comps, addressof, "?")
    return prog.get("type_info")


# ---------------------------------------------------------------- $$ strings

def vars_format(fn: dict, which: str, pretty: str) -> tuple[str, list[dict]]:
    """$$parms / $$vars / $$locals: a format and one item per parameter.

    SystemTap prints `name=0x1f` for each (sprintf "%#x"), or `name=?` when
    the value has no location at the probe; `$$parms$` shows char* as a
    quoted string.  Locals are not tracked at function entry (they hold
    nothing yet), so $$vars is $$parms there, as stap prints it for most
    kernel functions' entries.
    """
    items: list[dict] = []
    if which in ("$$parms", "$$vars"):
        for p in fn.get("params", []):
            if not p.get("name"):
                continue
            try:
                base, start = param_base(p, fn["name"])
            except TargetError:
                items.append({"name": p["name"], "unavailable": True})
                continue
            t = _tinfo(p.get("type"))
            item: dict = {"name": p["name"], "base": base, "start": start,
                          "size": min(t.size or 8, 8) if t.kind not in ("struct", "union", "array")
                          else 8,
                          "signed": bool(t.signed) if t.kind in ("int", "enum") else False}
            if t.kind in ("struct", "union") and start == "val":
                item["unavailable"] = True
            if pretty and t.kind == "pointer" and t.target is not None and \
                    t.target.kind == "int" and t.target.size == 1:
                item["string"] = True
            items.append(item)
    return which, items


# ---------------------------------------------------------------- pass-2 pre-pass
#
# Before type inference, every target expression of a derived probe is
# resolved against the kernel (its info becomes an access program, or
# {"error": msg}), @defined(...) folds to 0/1, and branches that a folded
# constant makes dead are dropped, so `@defined($x) ? $x : 0` never reports
# the $x it guards.  In .return probes, what must be read at the function's
# entry ($params, @entry(...)) moves to a synthesized entry handler.

import dataclasses  # noqa: E402


def rewrite(node: ast.Node, fn) -> None:  # type: ignore[no-untyped-def]
    """Post-order: every Expr below node is replaced by fn(expr)."""
    for f in dataclasses.fields(node):
        if f.name in ("loc", "ty", "info"):
            continue
        v = getattr(node, f.name)
        if isinstance(v, ast.Node):
            rewrite(v, fn)
            if isinstance(v, ast.Expr):
                setattr(node, f.name, fn(v))
        elif isinstance(v, list):
            for i, x in enumerate(v):
                if isinstance(x, ast.Node):
                    rewrite(x, fn)
                    if isinstance(x, ast.Expr):
                        v[i] = fn(x)


def _has_error(node: ast.Node) -> bool:
    from codegen.link import walk
    return any(isinstance(n, ast.Expr) and isinstance(n.info, dict) and "error" in n.info
               for n in walk(node))


def _const(e: ast.Expr) -> Optional[int]:
    return e.value if isinstance(e, ast.Number) else None


def fold(node: ast.Node) -> None:
    """Constant-fold what @defined produced: !, &&, ||, ?:, and if (...)."""
    def fe(e: ast.Expr) -> ast.Expr:
        if isinstance(e, ast.Unary) and e.op == "!" and _const(e.operand) is not None:
            return ast.Number(int(not e.operand.value), loc=e.loc)
        if isinstance(e, ast.Logical) and _const(e.left) is not None:
            lv = bool(e.left.value)
            if e.op == "&&" and not lv:
                return ast.Number(0, loc=e.loc)
            if e.op == "||" and lv:
                return ast.Number(1, loc=e.loc)
            if _const(e.right) is not None:
                return ast.Number(int(bool(e.right.value)), loc=e.loc)
        if isinstance(e, ast.Ternary) and _const(e.cond) is not None:
            return e.then if e.cond.value else e.else_
        return e
    rewrite(node, fe)
    _fold_stmts(node)


def _fold_stmts(node: ast.Node) -> None:
    for f in dataclasses.fields(node):
        if f.name in ("loc", "ty", "info"):
            continue
        v = getattr(node, f.name)
        if isinstance(v, ast.Stmt):
            _fold_stmts(v)
            setattr(node, f.name, _fold_if(v))
        elif isinstance(v, list):
            for i, x in enumerate(v):
                if isinstance(x, ast.Stmt):
                    _fold_stmts(x)
                    v[i] = _fold_if(x)


def _fold_if(s: ast.Stmt) -> ast.Stmt:
    if isinstance(s, ast.If) and _const(s.cond) is not None:
        if s.cond.value:
            return s.then
        return s.else_ if s.else_ is not None else ast.NullStmt(loc=s.loc)
    return s


def _unresolved(e: ast.Expr, msg: str) -> ast.Expr:
    e.info = {"error": msg}
    return e


class ProbeTargets:
    """Resolves the target expressions of one derived probe (or function)."""

    def __init__(self, nav, probe=None, module_nav=None,  # type: ignore[no-untyped-def]
                 var_lookup=None) -> None:
        self.nav = nav
        self.probe = probe
        # module name -> that module's TypeNav (its DWARF), for
        # @cast(p, "type", "module"); None without kernel DWARF.
        self.module_nav = module_nav
        # (name, file glob, CU hint) -> the kernel's answer for @var
        # (KernelFacts.variable); None without kernel DWARF.
        self.var_lookup = var_lookup

    def _fn(self) -> Optional[dict]:
        p = self.probe
        if p is None or p.function is None:
            return None
        return p.function

    def resolve(self, e: ast.Expr) -> ast.Expr:
        if isinstance(e, ast.TargetSymbol):
            return self._target(e)
        if isinstance(e, ast.AtOp):
            if e.op == "defined":
                return ast.Number(1 if e.args and not _has_error(e.args[0]) else 0, loc=e.loc)
            if e.op == "cast":
                return self._cast(e)
            if e.op == "autocast":
                return _unresolved(e, "the type of this expression is not known here; "
                                      "use @cast(expr, \"type\")->member")
            if e.op == "var":
                return self._var(e)
        return e

    def _cast(self, e: ast.AtOp) -> ast.Expr:
        if self.nav is None:
            return _unresolved(e, "@cast needs the kernel's debug info (DWARF or BTF)")
        if not e.strings:
            return _unresolved(e, "@cast needs a type name")
        mods = e.strings[1] if len(e.strings) > 1 else "kernel"
        # SystemTap searches the ':'-separated list in order; the first
        # place that defines the type gives its layout.
        navs = []
        for m in mods.split(":"):
            if m in ("kernel", "vmlinux") or m.startswith("kernel<"):
                navs.append(self.nav)
            elif self.module_nav is None:
                return _unresolved(e, f"@cast type lookup in module '{m}' needs the kernel's "
                                      "DWARF (its -dbg package)")
            else:
                try:
                    navs.append(self.module_nav(m))
                except (LookupError, RuntimeError) as err:
                    return _unresolved(e, f"@cast type lookup in module '{m}': {err}")
        nav = next((n for n in navs if n.lookup(e.strings[0]) is not None), None)
        if nav is None:
            where = "the kernel's debug info" if mods == "kernel" else f"'{mods}'"
            e.info = {"error": f"type definition '{e.strings[0]}' not found in {where}"}
            return e
        try:
            e.info = resolve_cast(nav, e.strings[0], e)
        except TargetError as err:
            e.info = {"error": str(err)}
        return e

    def _var(self, e: ast.AtOp) -> ast.Expr:
        """@var("name[@file.c]")[->chain]: a kernel global or file-static
        variable, at its link-time address plus the kernel's KASLR shift
        (measured at run time against _printk's)."""
        spec = e.strings[0] if e.strings else ""
        name, _, file_glob = spec.partition("@")
        if len(e.strings) > 1 and e.strings[1] not in ("kernel", "vmlinux"):
            return _unresolved(e, f"@var in module '{e.strings[1]}' is not supported yet "
                                  "(only the kernel's variables)")
        if self.var_lookup is None:
            return _unresolved(e, "@var needs the kernel's DWARF debug info (the -dbg package)")
        p = self.probe
        if p is not None and p.params.get("module"):
            return _unresolved(e, "@var in a module(...) probe is not supported yet")
        fn = self._fn() if p is not None and p.family == "kprobe" else None
        cu_hint = fn.get("cu_offset") if fn else None
        got = self.var_lookup(name, file_glob, cu_hint)
        if "error" in got:
            return _unresolved(e, got["error"])
        base = {"kind": "kaddr", "link": got["address"], "anchor_link": got["anchor_link"]}
        what = f'@var("{spec}")'
        try:
            t = _tinfo(got["type"])
            if e.pretty:
                e.info = resolve_pretty(self.nav, t, base, "loc", e, what)
            else:
                prog = walk_chain(self.nav, t, "loc", e.components, e.addressof, what)
                e.info = {"access": "chain", "base": base, **_public(prog)}
        except TargetError as err:
            e.info = {"error": str(err)}
        return e

    def _target(self, e: ast.TargetSymbol) -> ast.Expr:
        p = self.probe
        if p is None:
            return _unresolved(e, "target variables can only be used in probes, not in "
                                  "functions")
        fn = self._fn()
        if p.family == "tracepoint":
            return self._tracepoint(e)
        if p.family == "procevent" and p.params.get("kind", "").startswith("syscall"):
            return self._syscall(e)
        if p.family == "uprobe":
            return self._user(e, fn)
        if fn is None:
            return _unresolved(e, "unresolved target-symbol expression (target variables "
                                  "need a kernel.function or kernel.trace probe)")
        return self._kernel_style(e, fn)

    def _kernel_style(self, e: ast.TargetSymbol, fn: dict) -> ast.Expr:
        p = self.probe
        is_return = bool(p.params.get("is_return"))
        name = e.name
        if name in ("$$parms", "$$vars", "$$locals"):
            if e.components or e.addressof:
                return _unresolved(e, f"{name} cannot be dereferenced")
            _, items = vars_format(fn, "$$parms" if name != "$$locals" else "$$locals",
                                   e.pretty)
            e.info = {"access": "vars", "items": items}
            return e
        if name == "$$return":
            if not is_return:
                return _unresolved(e, "$$return is only valid in .return probes")
            e.info = {"access": "vars_return", "void": fn.get("return_type") is None}
            return e
        try:
            if name == "$return":
                if not is_return:
                    raise TargetError("$return is only valid in .return probes")
                e.info = resolve_return(self.nav, fn, e)
            else:
                e.info = resolve_param(self.nav, fn, e)
        except TargetError as err:
            e.info = {"error": str(err)}
        return e

    def _user(self, e: ast.TargetSymbol, fn: dict) -> ast.Expr:
        """$param/$return of a process(...).function probe: the same
        access programs as the kernel's, flagged so that every load is a
        nofault *user* copy."""
        p = self.probe
        if fn.get("sdt") is not None:
            return self._sdt(e, fn["sdt"])
        if fn.get("plt") and e.name == "$$name":
            e.info = {"access": "str", "value": fn["name"]}
            return e
        if fn.get("symtab_only"):
            return _unresolved(e, f"{fn['user_binary']} has no debug info for "
                                  f"'{fn['name']}' (build it with -g): no {e.name}")
        if p.params.get("is_return") and e.name not in ("$return", "$$return") \
                and "entry_offset" not in p.params:
            return _unresolved(e, f"{e.name} in this process .return probe cannot be "
                                  "saved at entry (read it in a .call probe)")
        e = self._kernel_style(e, fn)
        if isinstance(e.info, dict) and "error" not in e.info:
            e.info["user"] = True
        return e

    # x86-64 system call argument registers (the 4th is r10, not cx)
    _SYSCALL_REGS = ["di", "si", "dx", "r10", "r8", "r9"]

    def _syscall(self, e: ast.TargetSymbol) -> ast.Expr:
        """$syscall, $arg1..6 and (in .return) $return of process.syscall."""
        is_return = self.probe.params["kind"] == "syscall.return"
        value = {"kind": "value", "size": 8, "signed": True}
        if e.components or e.addressof or e.pretty:
            return _unresolved(e, f"{e.name} is a number; it cannot be dereferenced")
        if e.name == "$syscall":
            e.info = {"access": "chain", "base": {"kind": "sc_nr"}, "start": "val",
                      "steps": [], "final": value, "type": "long"}
            return e
        if e.name == "$return" and is_return:
            e.info = {"access": "chain", "base": {"kind": "sc_ret"}, "start": "val",
                      "steps": [], "final": value, "type": "long"}
            return e
        n = e.name[4:]
        if e.name.startswith("$arg") and n.isdigit() and 1 <= int(n) <= 6:
            e.info = {"access": "chain", "base": {"kind": "reg",
                                                  "reg": self._SYSCALL_REGS[int(n) - 1]},
                      "start": "val", "steps": [], "final": value, "type": "long"}
            return e
        known = "$syscall $arg1 $arg2 $arg3 $arg4 $arg5 $arg6" + (" $return" if is_return
                                                                   else "")
        return _unresolved(e, f"unable to find local '{e.name[1:]}' in {self.probe.pp} "
                              f"(alternatives: {known})")

    def _sdt(self, e: ast.TargetSymbol, sdt: dict) -> ast.Expr:
        """$argN, $$name, $$provider, $$parms of an SDT marker: each
        argument is a register, a constant, or user memory at a register
        plus a displacement or at a symbol (see codegen.debuginfo.sdt)."""
        if e.name in ("$$name", "$$provider"):
            e.info = {"access": "str", "value": sdt["name" if e.name == "$$name"
                                                     else "provider"]}
            return e
        args = sdt["args"]
        if e.name in ("$$parms", "$$vars") or (e.name.startswith("$arg")
                                                and e.name[4:].isdigit()):
            if sdt.get("args_error"):
                return _unresolved(e, sdt["args_error"])
        if e.name in ("$$parms", "$$vars"):
            items = []
            for i, a in enumerate(args, 1):
                info = self._sdt_arg(a)
                items.append({"name": f"arg{i}", "chain": info})
            e.info = {"access": "sdt_vars", "items": items, "user": True}
            return e
        if e.name.startswith("$arg") and e.name[4:].isdigit():
            n = int(e.name[4:])
            if not 1 <= n <= len(args):
                return _unresolved(e, f"unable to find local '{e.name[1:]}' in marker "
                                      f"'{sdt['name']}' (it has {len(args)} arguments"
                                      f"{': ' + sdt['arg_text'] if args else ''})")
            if e.components or e.addressof:
                return _unresolved(e, f"{e.name} is an untyped SDT argument; read memory "
                                      "through it with user_long(), user_string() etc.")
            info = self._sdt_arg(args[n - 1])
            if "error" in info:
                return _unresolved(e, info["error"])
            e.info = info
            return e
        return _unresolved(e, f"unable to find local '{e.name[1:]}' in marker "
                              f"'{sdt['name']}' (alternatives: "
                              f"{' '.join('$arg' + str(i) for i in range(1, len(args) + 1))}"
                              " $$name $$provider $$parms)")

    @staticmethod
    def _sdt_arg(a: dict) -> dict:
        """An access program (see the module docstring) for one argument."""
        final_val = {"kind": "value", "size": a["size"], "signed": a["signed"]}
        final_load = {"kind": "load", "size": a["size"], "signed": a["signed"]}
        chain = {"access": "chain", "type": "long", "user": True}
        if a["kind"] == "reg":
            return {**chain, "base": {"kind": "reg", "reg": a["reg"]}, "start": "val",
                    "steps": [], "final": final_val}
        if a["kind"] == "const":
            return {**chain, "base": {"kind": "const", "value": a["value"]}, "start": "val",
                    "steps": [], "final": final_val}
        if a["kind"] == "mem":
            return {**chain, "base": {"kind": "reg", "reg": a["reg"]}, "start": "val",
                    "steps": [{"op": "add", "n": a["value"]}] if a["value"] else [],
                    "final": final_load}
        if a.get("delta") is None:
            return {"error": f"symbol '{a['symbol']}' of SDT argument '{a['text']}' "
                             "is not in the binary's symbol table"}
        # sym(%rip): at the marker ip is the nop, so the variable is at
        # ip + (sym - nop) whatever the load address.
        return {**chain, "base": {"kind": "ip_rel", "delta": a["delta"]}, "start": "val",
                "steps": [], "final": final_load}

    def _tracepoint(self, e: ast.TargetSymbol) -> ast.Expr:
        p = self.probe
        args = p.params.get("args", [])
        if e.name in ("$$parms", "$$vars"):
            items = [{"name": a["name"], "base": {"kind": "tparg", "index": i},
                      "start": "val", "size": min(a["type"].get("size") or 8, 8),
                      "signed": bool(a["type"].get("signed"))}
                     for i, a in enumerate(args)]
            e.info = {"access": "vars", "items": items}
            return e
        if e.name in ("$$name", "$$system"):
            value = p.params.get("tracepoint") if e.name == "$$name" else p.params.get("system")
            if value is None:
                return _unresolved(e, f"{e.name}: the tracepoint's system is not known "
                                      "without DWARF")
            e.info = {"access": "str", "value": value}
            return e
        for i, a in enumerate(args):
            if a["name"] == e.name[1:]:
                base = {"kind": "tparg", "index": i}
                try:
                    if e.pretty:
                        e.info = resolve_pretty(self.nav, _tinfo(a["type"]), base, "val", e,
                                                e.name)
                        return e
                    prog = walk_chain(self.nav, _tinfo(a["type"]), "val", e.components,
                                      e.addressof, e.name)
                    e.info = {"access": "chain", "base": base, **_public(prog)}
                except TargetError as err:
                    e.info = {"error": str(err)}
                return e
        known = " ".join("$" + a["name"] for a in args)
        return _unresolved(e, f"unable to find tracepoint variable '{e.name}' "
                              f"(alternatives: {known})")


def prepare_body(body: ast.Node, nav, probe=None,  # type: ignore[no-untyped-def]
                 module_nav=None, var_lookup=None) -> None:
    """Resolve targets, fold @defined and the dead branches it leaves."""
    rewrite(body, ProbeTargets(nav, probe, module_nav, var_lookup).resolve)
    fold(body)


def split_entry(body: ast.Block, first_slot: int = 0) -> list[ast.Expr]:
    """In a .return probe body, replace what must be read at entry (every
    $target except $return/$$return, and every @entry(x)) by an entry_load
    node; return the expressions to evaluate at entry, in slot order."""
    saved: list[ast.Expr] = []

    def visit(node: ast.Node) -> None:
        for f in dataclasses.fields(node):
            if f.name in ("loc", "ty", "info"):
                continue
            v = getattr(node, f.name)
            if isinstance(v, ast.Node):
                setattr(node, f.name, sub(v))
            elif isinstance(v, list):
                for i, x in enumerate(v):
                    if isinstance(x, ast.Node):
                        v[i] = sub(x)

    def sub(x: ast.Node) -> ast.Node:
        moved: Optional[ast.Expr] = None
        if isinstance(x, ast.AtOp) and x.op == "entry":
            moved = x.args[0] if x.args else ast.Number(0, loc=x.loc)
        elif isinstance(x, ast.TargetSymbol) and x.name not in ("$return", "$$return") \
                and not (isinstance(x.info, dict) and x.info.get("base", {}).get("kind")
                         == "return"):
            moved = x
        if moved is None:
            visit(x)
            return x
        saved.append(moved)
        return ast.AtOp("entry_load", loc=x.loc,
                        info={"access": "entry_load", "slot": first_slot + len(saved) - 1})
    visit(body)
    return saved
