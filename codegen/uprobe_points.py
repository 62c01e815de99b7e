"""process(...) probe points (pass 2): user-space functions through
uprobes, resolved against the binary's ELF symbols and DWARF.

    process("PATH").function("PATTERN")[.call|.return]
    process("PATH").library("LIB").function("PATTERN")[.call|.return]

    process(PID)...                 the same forms for one running process

PATH without a slash is searched in $PATH, as a shell (and stap) does.
process(PID) finds the program through /proc/PID/exe when the script is
translated (the process must exist then, as in SystemTap), and its probes
fire only in that process (its thread group).
LIB is an absolute path, or a name matched against the binary's DT_NEEDED
entries ("libc", "libc.so.6", "libc.so*") and found where the dynamic
linker would find it.  Library probes only fire in processes that run
PATH, as in SystemTap.
"""
from __future__ import annotations

import copy
import hashlib
import os
from typing import Optional

from codegen import ast
from codegen.errors import StapError
from codegen.debuginfo.user_elf import UserElfError

_cache: dict[str, object] = {}


def _string(c: ast.Component, what: str) -> str:
    if not isinstance(c.arg, ast.String):
        raise StapError("semantic", f"{what} requires a string argument", c.loc,
                        token=f"identifier '{c.name}'")
    return c.arg.value


def _mismatch(c: ast.Component) -> StapError:
    return StapError("semantic", "probe point mismatch", c.loc, token=f"identifier '{c.name}'")


def _binary(path: str, c: ast.Component):  # type: ignore[no-untyped-def]
    from codegen.debuginfo.user_elf import UserBinary, UserElfError
    try:
        st = os.stat(path)
        key = f"{path}\0{st.st_mtime_ns}\0{st.st_size}"
    except OSError:
        key = path
    b = _cache.get(key)
    if b is None:
        try:
            b = UserBinary(path)
        except UserElfError as e:
            raise StapError("semantic", str(e), c.loc,
                            token=f"string '{c.arg.value}'" if isinstance(c.arg, ast.String)
                            else f"identifier '{c.name}'") from None
        _cache[key] = b
    return b


def file_digest(path: str) -> str:
    """sha256 of a probed binary: pass 2's result depends on it (offsets,
    DWARF), so the build cache records it beside the IR."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def stale_user_binaries(ir: dict) -> list[str]:
    """The probed files whose contents differ from what pass 2 read (a
    rebuilt program moves its functions): a cached IR that names one
    must be elaborated again."""
    stale = []
    for p in ir.get("probes", []):
        params = p.get("params") or {}
        pid_exe = params.get("pid_exe")
        if pid_exe and pid_program(params["pid"]) != pid_exe and pid_exe not in stale:
            stale.append(pid_exe)   # the PID is gone, or now runs another program
        if p.get("family") != "uprobe" or "digest" not in params:
            continue
        try:
            same = file_digest(params["path"]) == params["digest"]
        except OSError:
            same = False
        if not same and params["path"] not in stale:
            stale.append(params["path"])
    return stale


def user_binary_digests(ir: dict) -> dict[str, str]:
    """The current sha256 of every file the IR's uprobes are in."""
    out: dict[str, str] = {}
    for p in ir.get("probes", []):
        params = p.get("params") or {}
        if params.get("pid_exe"):
            out[f"pid {params['pid']}"] = pid_program(params["pid"]) or "no such process"
        path = params.get("path")
        if p.get("family") == "uprobe" and path and path not in out:
            try:
                out[path] = file_digest(path)
            except OSError:
                out[path] = "missing"
    return out


def pid_program(pid: int) -> Optional[str]:
    """The program process `pid` runs now (None: no such process)."""
    try:
        exe = os.readlink(f"/proc/{pid}/exe")
    except OSError:
        return None
    return exe[:-len(" (deleted)")] if exe.endswith(" (deleted)") else exe


def _exe_path(head: ast.Component) -> str:
    from codegen.debuginfo.user_elf import find_executable
    if head.arg is None:
        raise StapError("semantic", "process probes need a path here: "
                        "process(\"PATH\").function(...)", head.loc,
                        token=f"identifier '{head.name}'")
    if isinstance(head.arg, ast.Number):
        pid = head.arg.value
        exe = pid_program(pid) if pid > 0 else None
        if exe is None or not os.path.isfile(exe):
            raise StapError("semantic", f"cannot find executable of process {pid}: "
                            "no such process (process(PID) needs it running at translation)",
                            head.loc, token=f"number '{pid}'")
        return os.path.realpath(exe)
    name = _string(head, "process")
    found = find_executable(name)
    if found is None or not os.path.isfile(found):
        raise StapError("semantic", f"cannot find executable '{name}'", head.loc,
                        token=f"string '{name}'")
    return os.path.realpath(found)


def resolve_process(comps: list[ast.Component], body: ast.Block,
                    origin: ast.ProbePoint) -> list:  # type: ignore[type-arg]
    head = comps[0]
    rest = comps[1:]
    if not rest:
        raise _mismatch(head)
    if rest[0].name == "statement":
        exe = _exe_path(head)
        return _for_pid(head, exe, _statements(exe, head, rest, body, origin))
    if rest[0].name in ("library", "function", "provider", "mark", "plt"):
        exe = _exe_path(head)
        return _for_pid(head, exe, _functions(exe, head, rest, body, origin))
    if rest[0].name in ("begin", "end", "thread", "syscall"):
        return _for_pid(head, None, [_lifecycle(head, rest, body, origin)])
    raise _mismatch(rest[0])


def _for_pid(head: ast.Component, exe: Optional[str], probes: list) -> list:  # type: ignore[type-arg]
    """process(PID): the probes of its program, only in that process, and
    named process(PID) in pp() as SystemTap names them."""
    if not isinstance(head.arg, ast.Number):
        return probes
    pid = head.arg.value
    if pid <= 0:
        raise StapError("semantic", f"process({pid}): a process ID is a positive number",
                        head.loc, token=f"number '{pid}'")
    prefix = f'process("{exe}")' if exe else "process"
    for p in probes:
        p.params["pid"] = pid
        if exe:
            p.params["pid_exe"] = exe     # re-elaborate if the PID runs another program
        if p.pp.startswith(prefix):
            p.pp = f"process({pid})" + p.pp[len(prefix):]
    return probes


def _lifecycle(head: ast.Component, rest: list[ast.Component], body: ast.Block,
               origin: ast.ProbePoint):  # type: ignore[no-untyped-def]
    """process[("PATH")][.thread].begin/.end and .syscall[.return]
    (runtime_c/stp_uprobes.h)."""
    from codegen.probes import DerivedProbe
    names = [c.name for c in rest]
    for c in rest:
        if c.arg is not None:
            raise _mismatch(c)
    if names in (["begin"], ["end"]):
        kind = names[0]
    elif names in (["thread", "begin"], ["thread", "end"]):
        kind = "thread." + names[1]
    elif names in (["syscall"], ["syscall", "return"]):
        kind = ".".join(names)
    else:
        raise _mismatch(rest[-1] if rest[0].name == "thread" else rest[1])
    # With a PATH every kind fires only in processes running it: the
    # runtime compares the current mm's exe inode (runtime_c/stp_uprobes.h).
    # A PID needs no program here: the runtime compares the thread group.
    exe = _exe_path(head) if isinstance(head.arg, ast.String) else None
    pp = (f'process("{exe}")' if exe else "process") + f".{kind}"
    return DerivedProbe("procevent", pp, body, origin.loc, {"kind": kind, "exe": exe})


def _functions(exe: str, head: ast.Component, rest: list[ast.Component],
               body: ast.Block, origin: ast.ProbePoint) -> list:  # type: ignore[type-arg]
    from codegen.debuginfo.user_elf import resolve_library
    from codegen.probes import DerivedProbe
    files = [exe]
    lib_c: Optional[ast.Component] = None
    if rest[0].name == "library":
        lib_c = rest[0]
        lib = _string(lib_c, "library")
        files = resolve_library(_binary(exe, head), lib)
        if not files:
            needed = ", ".join(_binary(exe, head).needed()) or "none"
            raise StapError("semantic", f"cannot find library '{lib}' for {exe} "
                            f"(DT_NEEDED: {needed})", lib_c.loc, token=f"string '{lib}'")
        rest = rest[1:]
    if rest and rest[0].name in ("provider", "mark"):
        return _marks(exe, files, head, lib_c, rest, body, origin)
    if rest and rest[0].name == "plt":
        return _plt(exe, files, head, lib_c, rest, body, origin)
    if not rest or rest[0].name != "function":
        raise _mismatch(rest[0] if rest else (lib_c or head))
    fn_c = rest[0]
    if isinstance(fn_c.arg, ast.Number):
        raise StapError("semantic", "process(...).function(ADDRESS) is not supported; "
                        "name the function", fn_c.loc, token=f"number '{fn_c.arg.value}'")
    pattern = _string(fn_c, "function")
    func_pat, _, file_pat = pattern.partition("@")
    is_return = False
    shown_call = False
    for c in rest[1:]:
        if c.name == "call" and c.arg is None and not is_return:
            shown_call = True
            continue
        if c.name == "return" and c.arg is None and not is_return:
            is_return = True
            continue
        raise _mismatch(c)
    out = []
    import fnmatch
    wild = any(ch in func_pat for ch in "*?[")
    for path in files:
        b = _binary(path, lib_c or head)
        # As in SystemTap, a wildcard over a binary with DWARF matches its
        # DWARF functions, not the symbol-only C runtime stubs (_start,
        # frame_dummy ...); a named function or a binary without DWARF
        # falls back to the symbol table.
        # (has_dwarf_info() also counts .eh_frame, which stripped libraries have)
        dwarf_only = wild and b.elf.get_section_by_name(".debug_info") is not None
        for name in b.match(func_pat):
            uf = b.function(name)
            info = uf.info
            if dwarf_only and info is None:
                continue
            if file_pat and (info is None or not fnmatch.fnmatchcase(
                    info.decl_file or "", file_pat.split(":")[0])):
                continue
            where = name if info is None or info.decl_file is None else \
                f"{name}@{info.decl_file}:{info.decl_line or 0}"
            pp = f'process("{exe}")'
            if lib_c is not None:
                pp += f'.library("{path}")'
            pp += f'.function("{where}")' + (".return" if is_return else
                                             ".call" if shown_call else "")
            fn = info.to_json() if info is not None else \
                {"name": name, "params": [], "return_type": None, "decl_file": None,
                 "decl_line": None, "symtab_only": True}
            fn["user_binary"] = path
            out.append(DerivedProbe(
                "uprobe", pp, copy.deepcopy(body), origin.loc,
                {"path": path, "exe": exe if lib_c is not None else None,
                 # .return hooks the entry (the return address is replaced there)
                 "offset": uf.symbol.offset if is_return else uf.probe_offset,
                 "is_return": is_return, "optional": origin.optional,
                 "symbol": name, "digest": file_digest(path),
                 # $params/@entry in .return: saved at the .call point,
                 # keyed by the frame's CFA (runtime_c/stp_uprobes.h)
                 **({"entry_offset": uf.probe_offset,
                     "entry_bp": uf.prologue_skipped} if is_return else {})},
                function=fn))
    if not out:
        where = f'process("{exe}")' + (f'.library("{files[0]}")' if lib_c is not None else "")
        raise StapError("semantic", f"no match for probe point {where}.function(\"{pattern}\")",
                        fn_c.loc, token=f"string '{pattern}'")
    return out


def _statements(exe: str, head: ast.Component, rest: list[ast.Component], body: ast.Block,
                origin: ast.ProbePoint) -> list:  # type: ignore[type-arg]
    """.statement("FUNC@FILE:LINE"): a uprobe at the first address of that
    line inside each matching function (from the binary's line table), with
    the parameters and locals in scope there as $vars."""
    import fnmatch
    from dataclasses import asdict

    from codegen.probes import DerivedProbe
    st_c = rest[0]
    pattern = _string(st_c, "statement")
    for c in rest[1:]:
        raise _mismatch(c)
    func_pat, _, where = pattern.partition("@")
    file_pat, _, line_text = where.partition(":")
    if not (func_pat and file_pat and line_text.isdigit()):
        raise StapError("semantic", f"process(...).statement(\"{pattern}\"): expected "
                        "\"FUNCTION@FILE:LINE\"", st_c.loc, token=f"string '{pattern}'")
    line = int(line_text)
    b = _binary(exe, head)
    out, lines_seen = [], set()
    for name in b.match(func_pat):
        uf = b.function(name)
        if uf.info is None:
            continue
        rows = [r for r in b.line_rows(name)
                if fnmatch.fnmatchcase(r[2], file_pat) or
                fnmatch.fnmatchcase(os.path.basename(r[2]), file_pat)]
        lines_seen.update(r[1] for r in rows)
        at = [r[0] for r in rows if r[1] == line]
        if not at:
            continue
        pc = min(at)
        fn = uf.info.to_json()
        fn["params"] = [asdict(v) for v in b.scope_at(name, pc)]
        fn["user_binary"] = exe
        fn["statement_pc"] = pc
        src = os.path.basename(rows[0][2])
        out.append(DerivedProbe(
            "uprobe", f'process("{exe}").statement("{name}@{src}:{line}")',
            copy.deepcopy(body), origin.loc,
            {"path": exe, "exe": None, "offset": b.file_offset(pc), "is_return": False,
             "optional": origin.optional, "symbol": name, "digest": file_digest(exe)},
            function=fn))
    if not out:
        near = sorted(lines_seen, key=lambda n: abs(n - line))[:2]
        hint = f" (try {' or '.join(f':{n}' for n in sorted(near))})" if near else ""
        raise StapError("semantic", f"no line records for {file_pat}:{line} in "
                        f"process(\"{exe}\").statement(\"{pattern}\"){hint}",
                        st_c.loc, token=f"string '{pattern}'")
    return out


def _marks(exe: str, files: list[str], head: ast.Component, lib_c: Optional[ast.Component],
           rest: list[ast.Component], body: ast.Block,
           origin: ast.ProbePoint) -> list:  # type: ignore[type-arg]
    """[.provider("P")].mark("NAME"): SDT markers (codegen.debuginfo.sdt),
    with $arg1..N, $$name, $$provider and $$parms."""
    import fnmatch

    from codegen.debuginfo.sdt import read_notes
    from codegen.probes import DerivedProbe
    provider_pat = "*"
    if rest[0].name == "provider":
        provider_pat = _string(rest[0], "provider")
        rest = rest[1:]
    if not rest or rest[0].name != "mark":
        raise _mismatch(rest[0] if rest else head)
    mark_c = rest[0]
    mark_pat = _string(mark_c, "mark")
    for c in rest[1:]:
        raise _mismatch(c)
    out = []
    for path in files:
        b = _binary(path, lib_c or head)
        for note in read_notes(b.elf):
            if not (fnmatch.fnmatchcase(note.name, mark_pat)
                    and fnmatch.fnmatchcase(note.provider, provider_pat)):
                continue
            try:
                offset = b.file_offset(note.pc)
                ref_ctr = b.file_offset(note.semaphore) if note.semaphore else 0
            except UserElfError as e:
                raise StapError("semantic", str(e), mark_c.loc,
                                token=f"string '{mark_pat}'") from None
            syms = b.symbols()
            data_syms = _data_symbols(b)
            args = []
            for a in note.args:
                j = a.to_json()
                if a.kind == "rip":
                    value = data_syms.get(a.symbol) or (syms[a.symbol].value
                                                        if a.symbol in syms else None)
                    j["delta"] = None if value is None else value + a.value - note.pc
                args.append(j)
            pp = f'process("{exe}")'
            if lib_c is not None:
                pp += f'.library("{path}")'
            pp += f'.provider("{note.provider}").mark("{note.name}")'
            out.append(DerivedProbe(
                "uprobe", pp, copy.deepcopy(body), origin.loc,
                {"path": path, "exe": exe if lib_c is not None else None,
                 "offset": offset, "ref_ctr_offset": ref_ctr, "is_return": False,
                 "optional": origin.optional, "symbol": note.name,
                 "digest": file_digest(path)},
                function={"name": note.name, "params": [], "return_type": None,
                          "decl_file": None, "decl_line": None, "user_binary": path,
                          "sdt": {"provider": note.provider, "name": note.name,
                                  "args": args, "args_error": note.args_error,
                                  "arg_text": note.arg_text}}))
    if not out:
        where = f'process("{exe}")' + (f'.library("{files[0]}")' if lib_c is not None else "")
        if provider_pat != "*":
            where += f'.provider("{provider_pat}")'
        raise StapError("semantic", f"no match for probe point {where}.mark(\"{mark_pat}\")",
                        mark_c.loc, token=f"string '{mark_pat}'")
    return out


def _data_symbols(b) -> dict[str, int]:  # type: ignore[no-untyped-def]
    """Object symbols (sym(%rip) operands name variables)."""
    out: dict[str, int] = {}
    for secname in (".symtab", ".dynsym"):
        sec = b.elf.get_section_by_name(secname)
        if sec is None:
            continue
        for s in sec.iter_symbols():
            if s["st_info"]["type"] in ("STT_OBJECT", "STT_NOTYPE") and s["st_value"] \
                    and s["st_shndx"] != "SHN_UNDEF" and s.name:
                out.setdefault(s.name, s["st_value"])
    return out


def _plt(exe: str, files: list[str], head: ast.Component, lib_c: Optional[ast.Component],
         rest: list[ast.Component], body: ast.Block,
         origin: ast.ProbePoint) -> list:  # type: ignore[type-arg]
    """.plt[("PATTERN")][.return]: the PLT stubs through which the program
    calls into shared libraries, by imported name; $$name is that name."""
    import fnmatch

    from codegen.probes import DerivedProbe
    plt_c = rest[0]
    pattern = _string(plt_c, "plt") if plt_c.arg is not None else "*"
    is_return = False
    for c in rest[1:]:
        if c.name == "return" and c.arg is None and not is_return:
            is_return = True
            continue
        raise _mismatch(c)
    out = []
    for path in files:
        b = _binary(path, lib_c or head)
        for name, addr in sorted(b.plt_entries().items(), key=lambda kv: kv[1]):
            if not fnmatch.fnmatchcase(name, pattern):
                continue
            pp = f'process("{exe}")'
            if lib_c is not None:
                pp += f'.library("{path}")'
            pp += f'.plt("{name}")' + (".return" if is_return else "")
            out.append(DerivedProbe(
                "uprobe", pp, copy.deepcopy(body), origin.loc,
                {"path": path, "exe": exe if lib_c is not None else None,
                 "offset": b.file_offset(addr), "is_return": is_return,
                 "optional": origin.optional, "symbol": name,
                 "digest": file_digest(path)},
                function={"name": name, "params": [], "return_type": None,
                          "decl_file": None, "decl_line": None, "user_binary": path,
                          "symtab_only": True, "plt": True}))
    if not out:
        where = f'process("{exe}")' + (f'.library("{files[0]}")' if lib_c is not None else "")
        raise StapError("semantic", f"no match for probe point {where}.plt(\"{pattern}\")",
                        plt_c.loc, token=f"string '{pattern}'" if plt_c.arg is not None
                        else f"identifier '{plt_c.name}'")
    return out
