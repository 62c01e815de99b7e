"""Pass 3 for target expressions: access programs (codegen.targets) -> C.

Called from translate.BodyEmitter.e_TargetSymbol / e_AtOp.  Every memory
read goes through runtime_c/stp_deref.h, so a bad pointer is a script
error ("kernel read fault at 0x... near identifier '$p' at f.stp:3:9"),
never an oops.
"""
from __future__ import annotations

from codegen import ast

LONG, STRING = "long", "string"


def _ctype(size: int, signed: bool) -> str:
    return f"{'s' if signed else 'u'}{size * 8}"


def _where(em, e: ast.Expr) -> None:  # type: ignore[no-untyped-def]
    name = e.name if isinstance(e, ast.TargetSymbol) else f"@{e.op}"
    em.where(e, f"identifier '{name}'" if isinstance(e, ast.TargetSymbol) else f"operator '{name}'")


def _base(em, e: ast.Expr, base: dict) -> str:  # type: ignore[no-untyped-def]
    kind = base["kind"]
    if kind == "reg":
        return f"(stp_long)c->regs->{base['reg']}"
    if kind == "cfa":
        # At a function's entry the CFA is sp + 8 (above the return address).
        return f"(stp_long)(c->regs->sp + 8 + ({base['offset']}))"
    if kind == "bpcfa":
        # After push %rbp; mov %rsp,%rbp the CFA is bp + 16.
        return f"(stp_long)(c->regs->bp + 16 + ({base['offset']}))"
    if kind == "return":
        return "stp_return_value(c->regs)"
    if kind == "const":
        return f"((stp_long){base['value']}LL)"
    if kind == "sc_nr":
        return "((stp_long)stp_syscall_nr())"
    if kind == "sc_ret":
        return "((stp_long)stp_syscall_ret())"
    if kind == "ip_rel":
        return f"(stp_long)(c->regs->ip + ({base['delta']}LL))"
    if kind == "tparg":
        return f"stp_tp_arg({base['index']})"
    if kind == "expr":
        assert isinstance(e, ast.AtOp)
        return f"(stp_long)({em.expr(e.args[0])})"
    if kind == "kaddr":
        # A kernel variable: its link-time address moved by the KASLR
        # shift, which is where _printk is minus where it was linked.
        return (f"(stp_long)((unsigned long)_printk - {base['anchor_link']}UL + "
                f"{base['link']}UL)")
    raise AssertionError(f"unknown target base {kind}")


def _reader(info: dict) -> tuple[str, str]:
    """The nofault readers for a chain: user memory for process probes
    (runtime_c/stp_uprobes.h), kernel memory otherwise."""
    if info.get("user"):
        return "stp_utarget_read", "stp_utarget_read_bits"
    return "stp_kread", "stp_kread_bits"


def emit_chain(em, e: ast.Expr) -> str:  # type: ignore[no-untyped-def]
    info = e.info
    fail = em.error_labels[-1]
    read, read_bits = _reader(info)
    base_c = _base(em, e, info["base"])
    final = info["final"]
    if not info["steps"] and info["start"] == "val" and final["kind"] == "value":
        return f"((stp_long)({_ctype(final['size'], final['signed'])})({base_c}))"
    a = em.frame.long()
    em.emit(f"{a} = {base_c};")
    needs_where = True
    for step in info["steps"]:
        op = step["op"]
        if op == "add":
            em.emit(f"{a} += {step['n']};")
        elif op == "index":
            idx = em.expr(e.components[step["comp"]].index)
            em.emit(f"{a} += (stp_long)({idx}) * {step['size']};")
        elif op == "deref":
            if needs_where:
                _where(em, e)
                needs_where = False
            em.emit(f"if (!{read}(c, (u64){a}, 8, false, &{a})) goto {fail};")
    kind = final["kind"]
    if kind == "addr":
        return a
    if kind == "value":
        return f"((stp_long)({_ctype(final['size'], final['signed'])}){a})"
    if needs_where:
        _where(em, e)
    t = em.frame.long()
    signed = "true" if final["signed"] else "false"
    if kind == "load":
        em.emit(f"if (!{read}(c, (u64){a}, {final['size']}, {signed}, &{t})) goto {fail};")
    elif kind == "bits":
        em.emit(f"if (!{read_bits}(c, (u64){a}, {final['size']}, {final['shift']}, "
                f"{final['bits']}, {signed}, &{t})) goto {fail};")
    else:
        raise AssertionError(f"unknown final {kind}")
    return t


def _item_value(em, item: dict, user: bool = False) -> str:  # type: ignore[no-untyped-def]
    """The raw value of one $$parms item (register, stack slot, constant)."""
    base = item["base"]
    if item["start"] == "val":
        if base["kind"] == "tparg":
            return f"(u64)({_ctype(item['size'], item['signed'])})stp_tp_arg({base['index']})"
        if base["kind"] == "reg":
            return f"(u64)({_ctype(item['size'], item['signed'])})c->regs->{base['reg']}"
        if base["kind"] == "const":
            return f"(u64){base['value']}LL"
    t = em.frame.long()
    addr = f"(u64)({_base(em, None, base)})"
    read = "stp_utarget_read" if user else "stp_kread"
    em.emit(f"if (!{read}(c, {addr}, {item['size']}, false, &{t})) "
            f"{{ c->last_error = NULL; {t} = 0; }}")
    return f"(u64){t}"


def emit_vars(em, e: ast.TargetSymbol) -> str:  # type: ignore[no-untyped-def]
    """$$parms, $$vars, $$locals (and $$return): one string."""
    info = e.info
    out = em.frame.string()
    piece = em.frame.string()
    em.emit(f"{out}[0] = '\\0';")
    if info["access"] == "vars_return":
        if info.get("void"):
            return out
        em.emit(f"snprintf({out}, MAXSTRINGLEN, \"return=0x%llx\", "
                f"(unsigned long long)stp_return_value(c->regs));")
        return out
    for i, item in enumerate(info["items"]):
        sep = " " if i else ""
        if item.get("unavailable"):
            em.emit(f"stp_strlcat({out}, \"{sep}{item['name']}=?\");")
            continue
        v = _item_value(em, item, bool(info.get("user")))
        if item.get("string"):
            s = em.frame.string()
            em.emit(f"if ((u64)({v}) == 0) {{")
            em.emit(f"\tstp_strlcpy({s}, \"NULL\");")
            sread = "stp_utarget_string" if info.get("user") else "stp_kread_string"
            em.emit(f"}} else if ({sread}(c, {s}, (u64)({v}), MAXSTRINGLEN - 2)) {{")
            em.emit(f"\tsnprintf({piece}, MAXSTRINGLEN, \"\\\"%s\\\"\", {s});")
            em.emit(f"\tstp_strlcpy({s}, {piece});")
            em.emit("} else {")
            em.emit(f"\tc->last_error = NULL;")
            em.emit(f"\tsnprintf({s}, MAXSTRINGLEN, \"0x%llx\", (unsigned long long)({v}));")
            em.emit("}")
            em.emit(f"snprintf({piece}, MAXSTRINGLEN, \"{sep}{item['name']}=%s\", {s});")
        else:
            em.emit(f"snprintf({piece}, MAXSTRINGLEN, \"{sep}{item['name']}=0x%llx\", "
                    f"(unsigned long long)({v}));")
        em.emit(f"stp_strlcat({out}, {piece});")
    return out


def emit_sdt_vars(em, e: ast.TargetSymbol) -> str:  # type: ignore[no-untyped-def]
    """$$parms of an SDT marker: "arg1=0x.. arg2=0x.."; an argument that
    cannot be read shows as '?'."""
    out = em.frame.string()
    piece = em.frame.string()
    em.emit(f"{out}[0] = '\\0';")
    for i, item in enumerate(e.info["items"]):
        sep = " " if i else ""
        chain = item["chain"]
        if "error" in chain:
            em.emit(f"stp_strlcat({out}, \"{sep}{item['name']}=?\");")
            continue
        base = _base(em, e, chain["base"])
        fin = chain["final"]
        if fin["kind"] == "value":
            v = f"(u64)({_ctype(fin['size'], fin['signed'])})({base})"
        else:
            t = em.frame.long()
            n = chain["steps"][0]["n"] if chain["steps"] else 0
            signed = "true" if fin["signed"] else "false"
            em.emit(f"if (!stp_utarget_read(c, (u64)({base}) + ({n}), {fin['size']}, "
                    f"{signed}, &{t})) {{ c->last_error = NULL; {t} = 0; }}")
            v = f"(u64){t}"
        em.emit(f"snprintf({piece}, MAXSTRINGLEN, \"{sep}{item['name']}=0x%llx\", "
                f"(unsigned long long)({v}));")
        em.emit(f"stp_strlcat({out}, {piece});")
    return out


def emit_pretty(em, e: ast.Expr) -> str:  # type: ignore[no-untyped-def]
    """`$var$`, `$var$$`, `@cast(p, "T")$`: the chain to the object, then
    each print op of codegen.pretty as one read and one append.  A fault
    on the way to the object or in it is the script error every target
    read gives ("kernel read fault at ..."); a char* member that cannot
    be read prints as its address, as $$parms$ does."""
    from codegen.translate import c_string
    info = e.info
    fail = em.error_labels[-1]
    read, read_bits = _reader(info)
    obj = em.frame.long()
    em.emit(f"{obj} = {emit_chain(em, e)};")
    out, piece = em.frame.string(), em.frame.string()
    v = em.frame.long()
    em.emit(f"{out}[0] = '\\0';")
    _where(em, e)
    for op in info["ops"]:
        kind = op["op"]
        if kind == "lit":
            em.emit(f"stp_strlcat({out}, {c_string(op['text'])});")
            continue
        at = f"(u64){obj} + {op.get('off', 0)}"
        signed = "true" if op.get("signed") else "false"
        if kind == "val" or kind == "valstr":
            em.emit(f"{v} = {obj};")
        elif kind == "load":
            em.emit(f"if (!{read}(c, {at}, {op['size']}, {signed}, &{v})) goto {fail};")
        elif kind == "bits":
            em.emit(f"if (!{read_bits}(c, {at}, {op['size']}, {op['shift']}, {op['bits']}, "
                    f"{signed}, &{v})) goto {fail};")
        elif kind == "str":
            em.emit(f"if (!{read}(c, {at}, 8, false, &{v})) goto {fail};")
        if kind in ("str", "valstr"):
            _append_string(em, info, out, piece, v)
        elif kind == "chars":
            _append_chars(em, info, out, piece, at, op["len"], fail)
        else:
            em.emit(f"snprintf({piece}, MAXSTRINGLEN, {_PRETTY_FORMATS[op.get('fmt', 'x')]}{v});")
            em.emit(f"stp_strlcat({out}, {piece});")
    return out


# codegen.pretty's scalar formats: signed or unsigned decimal, or hex.
_PRETTY_FORMATS = {"d": '"%lld", (long long)',
                   "u": '"%llu", (unsigned long long)',
                   "x": '"0x%llx", (unsigned long long)'}


def _append_string(em, info: dict, out: str, piece: str,  # type: ignore[no-untyped-def]
                   v: str) -> None:
    """Append the string a char* points to, quoted; NULL as NULL and an
    unreadable one as its address (not an error: the struct was read)."""
    sread = "stp_utarget_string" if info.get("user") else "stp_kread_string"
    em.emit(f"if ({v} == 0) {{")
    em.emit(f"\tstp_strlcat({out}, \"NULL\");")
    em.emit(f"}} else if ({sread}(c, {piece}, (u64){v}, MAXSTRINGLEN - 2)) {{")
    em.emit(f"\tstp_strlcat({out}, \"\\\"\");")
    em.emit(f"\tstp_strlcat({out}, {piece});")
    em.emit(f"\tstp_strlcat({out}, \"\\\"\");")
    em.emit("} else {")
    em.emit("\tc->last_error = NULL;")
    em.emit(f"\tsnprintf({piece}, MAXSTRINGLEN, \"0x%llx\", (unsigned long long){v});")
    em.emit(f"\tstp_strlcat({out}, {piece});")
    em.emit("}")


def _append_chars(em, info: dict, out: str, piece: str, at: str, n: int,  # type: ignore[no-untyped-def]
                  fail: str) -> None:
    """Append an inline char[n], quoted, up to its first NUL (or all n
    bytes).  The array is part of the object, so a fault is an error."""
    sread = "stp_utarget_string" if info.get("user") else "stp_kread_string"
    em.emit(f"if (!{sread}(c, {piece}, {at}, {min(n + 1, 4096)})) goto {fail};")
    em.emit(f"stp_strlcat({out}, \"\\\"\");")
    em.emit(f"stp_strlcat({out}, {piece});")
    em.emit(f"stp_strlcat({out}, \"\\\"\");")


def emit_target(em, e: ast.Expr) -> str:  # type: ignore[no-untyped-def]
    """C for a resolved TargetSymbol or @cast/@entry/@defined node."""
    info = e.info or {}
    access = info.get("access")
    if access == "chain":
        return emit_chain(em, e)
    if access in ("vars", "vars_return"):
        return emit_vars(em, e)
    if access == "pretty":
        return emit_pretty(em, e)
    if access == "sdt_vars":
        return emit_sdt_vars(em, e)
    if access == "str":
        from codegen.translate import c_string
        return c_string(info["value"])
    if access == "const":
        return f"((stp_long){info['value']}LL)"
    if access == "entry_save":
        assert isinstance(e, ast.AtOp)
        v = em.expr(e.args[0])
        slot = entry_slot_c(info)
        if info["type"] == STRING:
            em.emit(f"stp_strlcpy({slot}, {v});")
        else:
            em.emit(f"{slot} = {v};")
        return "0"
    if access == "entry_load":
        return entry_slot_c(info)
    raise AssertionError(f"unresolved target expression at {e.loc}: {info}")


def entry_slot_c(info: dict) -> str:
    """Where a value saved at function entry lives in the kretprobe
    instance's data: longs first, then MAXSTRINGLEN strings."""
    data = "stp_uentry_data()" if info.get("uentry") else "c->ri->data"
    if info["type"] == STRING:
        return (f"((char *){data} + {8 * info['nlong']} + "
                f"{info['index']} * MAXSTRINGLEN)")
    return f"(((stp_long *){data})[{info['index']}])"
