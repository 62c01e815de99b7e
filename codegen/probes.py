"""Probe-point resolution: aliases expanded, families recognised.

A probe point written by the user (``vfs.read.return``, ``timer.s(5)``,
``kernel.function("vfs_*").return``) becomes one or more *derived probes*:
a concrete mechanism (begin/end/timer/kprobe/kretprobe) plus the handler body,
with alias prologues and epilogues wrapped around the user's body.
"""
from __future__ import annotations

import copy
import fnmatch
from dataclasses import dataclass, field
from typing import Optional, Protocol

from codegen import ast
from codegen.errors import StapError
from codegen.link import point_uses_alias


class KernelFacts(Protocol):
    """What pass 2 needs to know about one kernel (see codegen.kernel_facts)."""
    release: str

    def match_functions(self, pattern: str) -> list[str]: ...

    def function(self, name: str) -> Optional[dict]: ...


@dataclass
class DerivedProbe:
    family: str                 # begin, end, error, never, timer, kprobe
    pp: str                     # pp() text of the concrete point
    body: ast.Block
    loc: ast.Loc
    params: dict = field(default_factory=dict)
    function: Optional[dict] = None     # FunctionInfo for kprobes
    condition: Optional[ast.Expr] = None
    origin: str = ""                    # the probe point as the user wrote it


@dataclass
class Alias:
    names: list[list[ast.Component]]
    node: ast.ProbeAlias


TIMER_UNITS = {
    "s": 1_000_000_000, "sec": 1_000_000_000,
    "ms": 1_000_000, "msec": 1_000_000,
    "us": 1_000, "usec": 1_000,
    "ns": 1, "nsec": 1,
}

MAX_ALIAS_DEPTH = 20


def _number_arg(c: ast.Component, what: str) -> int:
    if not isinstance(c.arg, ast.Number):
        raise StapError("semantic", f"{what} requires a number argument", c.loc,
                        token=f"identifier '{c.name}'")
    return c.arg.value


def _string_arg(c: ast.Component) -> str:
    if not isinstance(c.arg, ast.String):
        raise StapError("semantic", "expected a string argument", c.loc,
                        token=f"identifier '{c.name}'")
    return c.arg.value


def _pp_text(comps: list[ast.Component]) -> str:
    return ast.ProbePoint(comps).text()


class ProbeResolver:
    def __init__(self, aliases: list[Alias], kernel: Optional[KernelFacts]) -> None:
        self.aliases = aliases
        self.kernel = kernel

    def resolve(self, probe: ast.Probe) -> list[DerivedProbe]:
        out: list[DerivedProbe] = []
        for point in probe.points:
            body = copy.deepcopy(probe.body)
            try:
                found = self._resolve_point(point.components, body, point, 0)
            except StapError as e:
                e.notes.append(f"        while resolving probe point {point.text()}")
                if point.optional:
                    continue
                raise
            if not found and not point.optional:
                raise StapError("semantic", "probe point mismatch (no match)", point.loc,
                                token=f"identifier '{point.components[0].name}'",
                                notes=[f"        while resolving probe point {point.text()}"])
            for d in found:
                d.condition = point.condition
                d.origin = point.text()
            out.extend(found)
            if found and point.sufficient:
                break
        return out

    # -- aliases ------------------------------------------------------------
    def _resolve_point(self, comps: list[ast.Component], body: ast.Block,
                       origin: ast.ProbePoint, depth: int) -> list[DerivedProbe]:
        if depth > MAX_ALIAS_DEPTH:
            raise StapError("semantic", "recursive probe alias", origin.loc)
        matches = [(a, n) for a in self.aliases for n in a.names if point_uses_alias(comps, n)]
        # An alias that names the whole point wins; suffix forwarding
        # (alias.return via alias) is only for points no alias spells out.
        exact = [(a, n) for a, n in matches if len(n) == len(comps)]
        if exact:
            matches = exact
        if matches:
            out: list[DerivedProbe] = []
            for alias, name in matches:
                suffix = comps[len(name):]
                for target in alias.node.points:
                    wrapped = self._wrap(alias.node, body)
                    try:
                        out.extend(self._resolve_point(target.components + suffix, wrapped,
                                                       origin, depth + 1))
                    except StapError:
                        if target.optional:
                            continue
                        raise
                    if out and target.sufficient:
                        break
            return out
        return self._family(comps, body, origin)

    @staticmethod
    def _wrap(alias: ast.ProbeAlias, body: ast.Block) -> ast.Block:
        """Alias locals share the probe's scope, so the prologue (or epilogue)
        is spliced into the same block as the user's statements."""
        extra = copy.deepcopy(alias.body)
        if alias.epilogue:
            return ast.Block([copy.deepcopy(body), extra], loc=body.loc)
        return ast.Block([extra, copy.deepcopy(body)], loc=body.loc)

    # -- concrete families --------------------------------------------------
    def _family(self, comps: list[ast.Component], body: ast.Block,
                origin: ast.ProbePoint) -> list[DerivedProbe]:
        head = comps[0]
        names = [c.name for c in comps]
        loc = origin.loc
        if names[0] in ("begin", "end", "error", "never") and len(comps) == 1:
            prio = head.arg.value if isinstance(head.arg, ast.Number) else 0
            return [DerivedProbe(names[0], _pp_text(comps), body, loc, {"priority": prio})]
        if names[:2] == ["timer", "profile"] and len(comps) == 2 and comps[1].arg is None:
            return [self._timer_profile(comps, body, loc)]
        if names[0] == "timer" and len(comps) >= 2:
            return [self._timer(comps, body, loc)]
        if names[0] == "kprobe" and len(comps) >= 2:
            return self._kprobe(comps, body, origin)
        if names[0] == "procfs":
            return [self._procfs(comps, body, origin)]
        if names[0] == "kernel" and len(comps) >= 2 and names[1] == "function":
            if len(comps) >= 3 and names[2] in ("label", "callee", "callees"):
                return self._kernel_function_inner(comps, body, origin)
            if "inline" in names[2:]:
                return self._kernel_function_inline(comps, body, origin)
            return self._kernel_function(comps, body, origin)
        if names[0] == "kernel" and len(comps) >= 2 and names[1] == "statement":
            return self._kernel_statement(comps, body, origin)
        if names[0] == "kernel" and len(comps) == 2 and names[1] == "trace":
            return self._kernel_trace(comps, body, origin)
        if names[0] == "module" and len(comps) >= 2 and names[1] == "function":
            if len(comps) >= 3 and names[2] == "label":
                return self._module_labels(comps, body, origin)
            return self._module_function(comps, body, origin)
        if names[0] == "module" and len(comps) >= 2 and names[1] == "statement":
            return self._module_statement(comps, body, origin)
        if names[0] == "process":
            from codegen.uprobe_points import resolve_process
            return resolve_process(comps, body, origin)
        raise StapError("semantic", "probe point mismatch (similar: begin, end, error, "
                        "kernel, never, process, timer)"
                        if names[0] not in ("begin", "end", "timer", "kernel", "error",
                                            "never", "process")
                        else "probe point mismatch", head.loc,
                        token=f"identifier '{head.name}'")

    def _timer(self, comps: list[ast.Component], body: ast.Block, loc: ast.Loc) -> DerivedProbe:
        unit = comps[1]
        if unit.name in TIMER_UNITS:
            interval_ns = _number_arg(unit, f"timer.{unit.name}") * TIMER_UNITS[unit.name]
            scale = TIMER_UNITS[unit.name]
        elif unit.name == "jiffies":
            interval_ns = _number_arg(unit, "timer.jiffies") * -1     # scaled by HZ in C
            scale = -1
        elif unit.name == "hz":
            hz = _number_arg(unit, "timer.hz")
            if hz <= 0:
                raise StapError("semantic", "frequency must be positive", unit.loc)
            interval_ns = -(-1_000_000_000 // hz)
            scale = 1
        else:
            raise StapError("semantic", "probe point mismatch", unit.loc,
                            token=f"identifier '{unit.name}'")
        randomize = 0
        rest = comps[2:]
        if rest and rest[0].name == "randomize" and unit.name != "hz":
            randomize = _number_arg(rest[0], "randomize") * abs(scale)
            rest = rest[1:]
        if rest:
            raise StapError("semantic", "probe point mismatch", rest[0].loc,
                            token=f"identifier '{rest[0].name}'")
        if unit.name != "jiffies" and not (100_000 <= interval_ns <= 86_400 * 10**9):
            raise StapError("semantic", "interval not in range (100us to 1 day)", unit.loc,
                            token=f"identifier '{unit.name}'")
        return DerivedProbe("timer", _pp_text(comps), body, loc,
                            {"interval_ns": interval_ns, "randomize_ns": randomize,
                             "jiffies": unit.name == "jiffies"})

    # -- probe families of issue 5 (runtime engineer) -------------------------
    def _timer_profile(self, comps: list[ast.Component], body: ast.Block,
                       loc: ast.Loc) -> DerivedProbe:
        """timer.profile: every scheduler tick (1/HZ) on every CPU."""
        return DerivedProbe("timer", _pp_text(comps), body, loc,
                            {"interval_ns": 0, "randomize_ns": 0, "jiffies": False,
                             "profile": True})

    def _kprobe(self, comps: list[ast.Component], body: ast.Block,
                origin: ast.ProbePoint) -> list[DerivedProbe]:
        """kprobe[.module("m")].function("f")[.call|.return[.maxactive(N)]]:
        a kprobe on a symbol, no debug info (so no $variables)."""
        rest = comps[1:]
        module = None
        if rest and rest[0].name == "module":
            module = _string_arg(rest[0])
            rest = rest[1:]
        if not rest or rest[0].name != "function":
            bad = rest[0] if rest else comps[0]
            raise StapError("semantic", "probe point mismatch", bad.loc,
                            token=f"identifier '{bad.name}'")
        symbol = _string_arg(rest[0])
        if any(ch in symbol for ch in "*?["):
            raise StapError("semantic", "kprobe.function does not take wildcards",
                            rest[0].loc, token=f"string '{symbol}'")
        is_return = False
        maxactive = 0
        for c in rest[1:]:
            if c.name == "call" and c.arg is None and not is_return:
                continue
            if c.name == "return" and c.arg is None:
                is_return = True
                continue
            if c.name == "maxactive" and is_return:
                maxactive = _number_arg(c, "maxactive")
                continue
            raise StapError("semantic", "probe point mismatch", c.loc,
                            token=f"identifier '{c.name}'")
        return [DerivedProbe("kprobe", _pp_text(comps), body, origin.loc,
                             {"symbol": f"{module}:{symbol}" if module else symbol,
                              "is_return": is_return, "maxactive": maxactive,
                              "optional": origin.optional, "raw": True})]

    def _procfs(self, comps: list[ast.Component], body: ast.Block,
                origin: ast.ProbePoint) -> DerivedProbe:
        """procfs[("path")].read[.maxsize(N)] / .write: a file under
        /proc/systemtap/MODULE/; $value is what is read or was written."""
        head = comps[0]
        name = _string_arg(head) if head.arg is not None else "command"
        if not name or name.startswith("/") or ".." in name.split("/"):
            raise StapError("semantic", "invalid procfs path", head.loc,
                            token=f"string '{name}'")
        rest = comps[1:]
        if not rest or rest[0].name not in ("read", "write") or rest[0].arg is not None:
            bad = rest[0] if rest else head
            raise StapError("semantic", "probe point mismatch", bad.loc,
                            token=f"identifier '{bad.name}'")
        write = rest[0].name == "write"
        maxsize = 0
        for c in rest[1:]:
            if c.name == "maxsize" and not write:
                maxsize = _number_arg(c, "maxsize")
                if maxsize <= 0:
                    raise StapError("semantic", "maxsize must be positive", c.loc,
                                    token=f"identifier '{c.name}'")
                continue
            raise StapError("semantic", "probe point mismatch", c.loc,
                            token=f"identifier '{c.name}'")
        return DerivedProbe("procfs", _pp_text(comps), body, origin.loc,
                            {"path": name, "write": write, "maxsize": maxsize})

    def _kernel_trace(self, comps: list[ast.Component], body: ast.Block,
                      origin: ast.ProbePoint) -> list[DerivedProbe]:
        """kernel.trace("[sys:]name"): a tracepoint, with its TP_PROTO
        arguments as $name (see codegen.kernel_facts.tracepoints)."""
        from codegen.kernel_facts import tracepoints
        tc = comps[1]
        pattern = _string_arg(tc)
        if self.kernel is None:
            raise StapError("semantic", "kernel.trace probes need the kernel's debug info "
                            "(DWARF or BTF)", tc.loc, token=f"string '{pattern}'")
        out = []
        for tp in tracepoints(self.kernel, pattern):
            shown = f"{tp['system']}:{tp['name']}" if tp["system"] else tp["name"]
            fn = {"name": tp["name"], "params": tp["args"], "return_type": None,
                  "decl_file": tp["decl_file"], "decl_line": tp["decl_line"]}
            out.append(DerivedProbe("tracepoint", f'kernel.trace("{shown}")',
                                    copy.deepcopy(body), origin.loc,
                                    {"tracepoint": tp["name"], "system": tp["system"],
                                     "args": tp["args"], "optional": origin.optional},
                                    function=fn))
        if not out:
            raise StapError("semantic", f"no match for probe point kernel.trace(\"{pattern}\")"
                            f" in kernel {self.kernel.release}", tc.loc,
                            token=f"string '{pattern}'")
        return out

    def _kernel_function(self, comps: list[ast.Component], body: ast.Block,
                         origin: ast.ProbePoint) -> list[DerivedProbe]:
        fn = comps[1]
        if isinstance(fn.arg, ast.Number):
            return self._kernel_function_at(comps, body, origin)
        pattern = _string_arg(fn)
        # .exported: only functions the kernel exports to modules (its
        # Module.symvers), in any position among .call/.return.
        exported = [c for c in comps[2:] if c.name == "exported" and c.arg is None]
        suffixes = [c for c in comps[2:] if c not in exported]
        is_return, maxactive = _function_suffixes(suffixes)
        if self.kernel is None:
            raise StapError("semantic", "kernel.function probes need the kernel's debug info",
                            fn.loc, token=f"string '{pattern}'")
        func_pat, _, file_pat = pattern.partition("@")
        names = self.kernel.match_functions(func_pat)
        if exported:
            symbols = getattr(self.kernel, "exported", lambda: None)()
            if symbols is None:
                raise StapError("semantic", ".exported needs the kernel's Module.symvers "
                                "(the headers package)", exported[0].loc,
                                token="identifier 'exported'")
            names = [n for n in names if n in symbols]
        base_file = _split_lines(file_pat, fn)[0] if file_pat else ""
        if (len(names) > 1 and base_file.endswith(".c")
                and hasattr(self.kernel, "functions_in_files")):
            # Functions defined in a .c file live in its CU: look only there.
            names = self.kernel.functions_in_files(names, base_file)
        if hasattr(self.kernel, "prefetch"):
            self.kernel.prefetch(names)
        out: list[DerivedProbe] = []
        why: list[str] = []
        line_spec = _split_lines(file_pat, fn)[1] if file_pat else None
        seen_lines: dict[int, int] = {}
        for name in names:
            info = self.kernel.function(name)
            if info is None:
                continue
            if not info.get("probeable", True):
                why.append(info.get("note") or f"{name} cannot be probed")
                continue
            freed = _freed_init(self.kernel, name, info)
            if freed:
                why.append(freed)
                continue
            if file_pat and info.get("decl_file") is None and hasattr(self.kernel, "index"):
                continue        # DWARF kernel, function without DWARF (assembly)
            if file_pat and info.get("decl_file") is None:
                raise StapError("semantic", f"kernel.function(\"{pattern}\"): @file needs "
                                "DWARF (the -dbg package); BTF has no source locations",
                                fn.loc, token=f"string '{pattern}'")
            if file_pat and not fnmatch.fnmatchcase(info.get("decl_file") or "", base_file):
                continue
            if line_spec is not None:
                # stap: @file:N on a function only picks the functions that
                # have line records for N; the probe stays at the entry.
                lines = self._function_lines(info)
                seen_lines.update(lines)
                if not any(_line_wanted(ln, line_spec, info) for ln in lines):
                    continue
            where = name if info.get("decl_file") is None else \
                f"{name}@{info['decl_file']}:{info.get('decl_line') or 0}"
            pp = f'kernel.function("{where}")' + (".exported" if exported else "") + (
                ".return" if is_return else ".call"
                if any(c.name == "call" for c in comps[2:]) else "")
            out.append(DerivedProbe("kprobe", pp, copy.deepcopy(body), origin.loc,
                                    {"symbol": name, "is_return": is_return,
                                     "maxactive": maxactive, "optional": origin.optional},
                                    function=info))
        if not out and line_spec is not None and seen_lines:
            raise _no_line_records(file_pat, line_spec, seen_lines, fn)
        if not out:
            because = f" ({'; '.join(why[:3])})" if why else ""
            what = f"kernel.function(\"{pattern}\")" + (".exported" if exported else "")
            raise StapError("semantic", f"no match for probe point {what}"
                            f" in kernel {self.kernel.release}{because}", fn.loc,
                            token=f"string '{pattern}'")
        return out

    def _kernel_function_at(self, comps: list[ast.Component], body: ast.Block,
                            origin: ast.ProbePoint) -> list[DerivedProbe]:
        """kernel.function(ADDR)[.call|.return]: the function whose symbol
        covers a link-time address (SystemTap's meaning), probed at its
        entry (or return) by symbol, so KASLR does not matter."""
        fn = comps[1]
        addr = _number_arg(fn, "function")
        is_return, maxactive = _function_suffixes(comps[2:])
        token = f"number '{addr:#x}'"
        if self.kernel is None or not hasattr(self.kernel, "function_at"):
            raise StapError("semantic", "kernel.function(ADDRESS) probes need the kernel's "
                            "DWARF debug info (the -dbg package)", fn.loc, token=token)
        hit = self.kernel.function_at(addr & 0xFFFFFFFFFFFFFFFF)
        if hit is None:
            raise StapError("semantic", f"no function contains address {addr:#x}"
                            f" in kernel {self.kernel.release}", fn.loc, token=token)
        name, start, size = hit
        info = self.kernel.function(name)
        if info is None or not info.get("probeable", True):
            note = (info or {}).get("note") or f"{name} has no DWARF"
            raise StapError("semantic", f"address {addr:#x} is in {name}, which cannot "
                            f"be probed ({note})", fn.loc, token=token)
        if self.kernel.symbol_count(name) > 1:
            raise StapError("semantic", f"address {addr:#x} is in {name}, but the kernel "
                            f"has {self.kernel.symbol_count(name)} functions of that name; "
                            "a probe by symbol cannot tell them apart", fn.loc, token=token)
        where = name if info.get("decl_file") is None else \
            f"{name}@{info['decl_file']}:{info.get('decl_line') or 0}"
        pp = f'kernel.function("{where}")' + (".return" if is_return else ".call"
                                               if any(c.name == "call" for c in comps[2:])
                                               else "")
        return [DerivedProbe("kprobe", pp, copy.deepcopy(body), origin.loc,
                             {"symbol": name, "is_return": is_return,
                              "maxactive": maxactive, "optional": origin.optional,
                              "address": addr, "function_start": start,
                              "function_size": size},
                             function=info)]


    # -- module("NAME").function: module DWARF ------------------------------
    def _module_function(self, comps: list[ast.Component], body: ast.Block,
                         origin: ast.ProbePoint) -> list[DerivedProbe]:
        """module("NAME").function("PATTERN[@file[:N]]")[.call|.return
        [.maxactive(N)]]: kprobes on "NAME:symbol" (the kernel resolves it
        in the loaded module), with $vars from the module's debug .ko."""
        mod_c, fn = comps[0], comps[1]
        module = _string_arg(mod_c)
        pattern = _string_arg(fn)
        is_return, maxactive = _function_suffixes(comps[2:])
        what = f'module("{module}").function("{pattern}")'
        facts = self._module_facts(mod_c, module, what)
        func_pat, _, file_pat = pattern.partition("@")
        base_file, line_spec = _split_lines(file_pat, fn) if file_pat else ("", None)
        names = facts.match_functions(func_pat)
        facts.prefetch(names)
        kmod = module.replace("-", "_")     # the name the kernel gives the module
        out: list[DerivedProbe] = []
        why: list[str] = []
        seen_lines: dict[int, int] = {}
        for name in names:
            info = facts.function(name)
            if info is None:
                continue
            if not info.get("probeable", True):
                why.append(info.get("note") or f"{name} cannot be probed")
                continue
            freed = _freed_init(facts, name, info)
            if freed:
                why.append(freed)
                continue
            if file_pat and not fnmatch.fnmatchcase(info.get("decl_file") or "", base_file):
                continue
            if line_spec is not None:
                lines = self._function_lines(info, facts)
                seen_lines.update(lines)
                if not any(_line_wanted(ln, line_spec, info) for ln in lines):
                    continue
            where = name if info.get("decl_file") is None else \
                f"{name}@{info['decl_file']}:{info.get('decl_line') or 0}"
            pp = f'module("{module}").function("{where}")' + (
                ".return" if is_return else ".call"
                if any(c.name == "call" for c in comps[2:]) else "")
            out.append(DerivedProbe("kprobe", pp, copy.deepcopy(body), origin.loc,
                                    {"symbol": f"{kmod}:{info.get('symbol') or name}",
                                     "is_return": is_return, "maxactive": maxactive,
                                     "optional": origin.optional, "module": module},
                                    function=info))
        if not out and line_spec is not None and seen_lines:
            raise _no_line_records(file_pat, line_spec, seen_lines, fn)
        if not out:
            because = f" ({'; '.join(why[:3])})" if why else ""
            raise StapError("semantic", f"no match for probe point {what} in kernel "
                            f"{self.kernel.release}{because}", fn.loc,
                            token=f"string '{pattern}'")
        return out

    def _module_facts(self, mod_c: ast.Component, module: str, what: str):  # type: ignore[no-untyped-def]
        """The facts of module("NAME") (its debug .ko's DWARF), or
        SystemTap's error for a kernel without DWARF, a pattern or path, or
        a module the kernel does not have."""
        from codegen.module_facts import ModuleDebugUnavailable, ModuleNotFound
        source = getattr(self.kernel, "modules", None)
        if source is None:
            raise StapError("semantic", "module probes need the kernel's DWARF debug info "
                            "(the -dbg package)", mod_c.loc, token=f"string '{module}'")
        if not module or any(ch in module for ch in "*?[/"):
            raise StapError("semantic", "module(\"NAME\") takes one module name "
                            "(no wildcards or paths)", mod_c.loc, token=f"string '{module}'")
        try:
            return source.facts(module)
        except ModuleNotFound:
            raise StapError("semantic", f"no match for probe point {what} in kernel "
                            f"{self.kernel.release} (it has no module \"{module}\")",
                            mod_c.loc, token=f"string '{module}'") from None
        except ModuleDebugUnavailable as e:
            raise StapError("semantic", f"no debug info for module \"{module}\" of kernel "
                            f"{self.kernel.release}: {e}", mod_c.loc,
                            token=f"string '{module}'") from None

    def _module_labels(self, comps: list[ast.Component], body: ast.Block,
                       origin: ast.ProbePoint) -> list[DerivedProbe]:
        """module("NAME").function("PATTERN").label("L"): the DWARF labels
        of the module's functions, as kernel.function(...).label does."""
        from codegen.debuginfo import statements
        mod_c, fn, lab = comps[0], comps[1], comps[2]
        module, pattern, sub = _string_arg(mod_c), _string_arg(fn), _string_arg(lab)
        if len(comps) > 3:
            raise StapError("semantic", "probe point mismatch", comps[3].loc,
                            token=f"identifier '{comps[3].name}'")
        prefix = f'module("{module}")'
        facts = self._module_facts(mod_c, module,
                                   f'{prefix}.function("{pattern}").label("{sub}")')
        out: list[DerivedProbe] = []
        for info in self._matching_functions(fn, pattern, facts):
            where = f"{info['name']}@{info['decl_file']}:{info.get('decl_line') or 0}"
            for lb in statements.match_labels(statements.function_labels(facts, info), sub):
                pp = f'{prefix}.function("{where}").label("{lb["name"]}")'
                out.append(self._statement_probe(pp, info, lb["addr"], body, origin, fn,
                                                 facts=facts, module=module))
        if not out:
            raise StapError("semantic", f"no match for probe point {prefix}.function"
                            f"(\"{pattern}\").label(\"{sub}\") in kernel "
                            f"{self.kernel.release}", lab.loc, token=f"string '{sub}'")
        return out

    def _module_statement(self, comps: list[ast.Component], body: ast.Block,
                          origin: ast.ProbePoint) -> list[DerivedProbe]:
        """module("NAME").statement("fn[@file[:N | :N-M | :* | +N]]")[.nearest]:
        kernel.statement's line forms inside a module, from its DWARF; the
        kprobe is "NAME:fn" plus the offset of the line's address."""
        mod_c, st = comps[0], comps[1]
        module = _string_arg(mod_c)
        prefix = f'module("{module}")'
        if isinstance(st.arg, ast.Number):
            # An address in the module: relative to its .text, as stap reads it.
            rel = st.arg.value
            facts = self._module_facts(mod_c, module, f"{prefix}.statement({rel:#x})")
            if len(comps) > 2:
                raise StapError("semantic", "probe point mismatch", comps[2].loc,
                                token=f"identifier '{comps[2].name}'")
            base = facts.section_base(".text")
            if base is None:
                raise StapError("semantic", f"module \"{module}\" has no .text", st.loc,
                                token=f"number '{rel:#x}'")
            return [self._statement_at(st, base + rel, False, body, origin, facts, prefix,
                                       module, shown=rel)]
        pattern = _string_arg(st)
        facts = self._module_facts(mod_c, module, f'{prefix}.statement("{pattern}")')
        return self._statements(comps[1:], body, origin, facts, prefix, module)

    # -- issue 11: statements, labels, callees --------------------------------
    def _dwarf_kernel(self, c: ast.Component, what: str, token: str) -> None:
        if self.kernel is None or not hasattr(self.kernel, "index"):
            raise StapError("semantic", f"{what} probes need the kernel's DWARF debug info "
                            "(the -dbg package)", c.loc, token=token)

    def _function_lines(self, info: dict, facts: Optional[KernelFacts] = None) -> dict[int, int]:
        """line -> first is_stmt address, for the lines of info's own file
        inside its code (not before its declaration: those are other
        functions of the same file inlined into it).  facts: whose DWARF
        info comes from (a module's; the kernel's by default)."""
        from codegen.debuginfo import statements
        if info.get("cu_offset") is None or not info.get("size"):
            return {}
        lt = statements.line_table(facts or self.kernel, info["cu_offset"])
        lines = lt.function_lines(info["address"], info["address"] + info["size"],
                                  info.get("decl_file"))
        decl = info.get("decl_line") or 0
        return {ln: a for ln, a in lines.items() if ln >= decl}

    def _matching_functions(self, fn: ast.Component, pattern: str,
                            facts: Optional[KernelFacts] = None) -> list[dict]:
        """FunctionInfo dicts of the probeable functions a "fn[@file...]"
        pattern names (the line part is not applied here); facts: a
        module's (the kernel's by default)."""
        facts = facts or self.kernel
        func_pat, _, file_pat = pattern.partition("@")
        file_glob = _split_lines(file_pat, fn)[0] if file_pat else ""
        names = facts.match_functions(func_pat)
        if len(names) > 1 and file_glob.endswith(".c") and \
                hasattr(facts, "functions_in_files") and facts is self.kernel:
            names = facts.functions_in_files(names, file_glob)
        if hasattr(facts, "prefetch"):
            facts.prefetch(names)
        out = []
        for name in names:
            info = facts.function(name)
            if info is None or not info.get("probeable", True) or info.get("decl_file") is None:
                continue
            if _freed_init(facts, name, info):
                continue
            if file_glob and not fnmatch.fnmatchcase(info["decl_file"], file_glob):
                continue
            out.append(info)
        return out

    def _relative_statements(self, st: ast.Component, pattern: str, rel_c: ast.Component,
                             body: ast.Block, origin: ast.ProbePoint, facts: KernelFacts,
                             prefix: str, module: Optional[str]) -> list[DerivedProbe]:
        """statement("fn").relative(N): N bytes past each matching
        function's entry, which must start a statement of it."""
        assert isinstance(rel_c.arg, ast.Number)
        rel = rel_c.arg.value
        token = f"number '{rel:#x}'"
        out: list[DerivedProbe] = []
        for info in self._matching_functions(st, pattern, facts):
            start, size = info["address"], info.get("size") or 0
            if not 0 <= rel < size:
                raise StapError("semantic", f"offset {rel:#x} is outside {info['name']} "
                                f"({size:#x} bytes)", rel_c.loc, token=token)
            self._check_statement_start(facts, start + rel, start, size, rel_c, token,
                                        lambda a, s0=start: a - s0)
            pp = f'{prefix}.statement("{info["name"]}@{info["decl_file"]}:' \
                 f'{info.get("decl_line") or 0}").relative({rel:#x})'
            out.append(self._statement_probe(pp, info, start + rel, body, origin, st,
                                             facts=facts, module=module))
        if not out:
            raise StapError("semantic", f"no match for probe point {prefix}.statement"
                            f"(\"{pattern}\") in kernel {self.kernel.release}", st.loc,
                            token=f"string '{pattern}'")
        return out

    def _statement_probe(self, pp: str, info: dict, addr: int, body: ast.Block,
                         origin: ast.ProbePoint, fn: ast.Component,
                         check_symbol: bool = True, facts: Optional[KernelFacts] = None,
                         module: Optional[str] = None) -> DerivedProbe:
        """A kprobe at addr inside info's function, registered as
        symbol+offset (KASLR-proof), with the variables in scope at addr as
        its target variables. module: the function is in that module (its
        facts), registered as "module:symbol"."""
        from codegen.debuginfo import statements
        facts = facts or self.kernel
        name = info.get("symbol") or info["name"]
        if check_symbol and facts.symbol_count(name) > 1:
            raise StapError("semantic", f"address {addr:#x} is in {name}, but the "
                            f"{'module' if module else 'kernel'} has "
                            f"{facts.symbol_count(name)} functions of that name; a probe "
                            "by symbol cannot tell them apart", fn.loc,
                            token=f"identifier '{fn.name}'")
        scoped = dict(info)
        scoped["params"] = statements.scope_at(facts, info, addr) \
            if info.get("die_offset") is not None else []
        scoped["statement_pc"] = addr
        params = {"symbol": f"{module.replace('-', '_')}:{name}" if module else name,
                  "offset": addr - info["address"], "is_return": False, "maxactive": 0,
                  "optional": origin.optional, "address": addr, "statement": True}
        if module:
            params["module"] = module
        return DerivedProbe("kprobe", pp, copy.deepcopy(body), origin.loc, params,
                            function=scoped)

    def _kernel_statement(self, comps: list[ast.Component], body: ast.Block,
                          origin: ast.ProbePoint) -> list[DerivedProbe]:
        """kernel.statement(ADDR)[.absolute], kernel.statement("fn[@file[:N |
        :N-M | :* | +N]]")[.nearest]."""
        st = comps[1]
        rest = comps[2:]
        if isinstance(st.arg, ast.Number):
            absolute = bool(rest) and rest[0].name == "absolute" and rest[0].arg is None
            extra = rest[1:] if absolute else rest
            if extra:
                raise StapError("semantic", "probe point mismatch", extra[0].loc,
                                token=f"identifier '{extra[0].name}'")
            addr = st.arg.value & 0xFFFFFFFFFFFFFFFF
            self._dwarf_kernel(st, "kernel.statement(ADDRESS)", f"number '{addr:#x}'")
            return [self._statement_at(st, addr, absolute, body, origin, self.kernel,
                                       "kernel", None)]
        self._dwarf_kernel(st, "kernel.statement", f"string '{_string_arg(st)}'")
        return self._statements(comps[1:], body, origin, self.kernel, "kernel", None)

    def _statements(self, comps: list[ast.Component], body: ast.Block,
                    origin: ast.ProbePoint, facts: KernelFacts, prefix: str,
                    module: Optional[str]) -> list[DerivedProbe]:
        """statement("fn[@file[:lines]]")[.nearest] (comps from `statement`)
        in the kernel (prefix "kernel") or a module (prefix module("m"))."""
        st, rest = comps[0], comps[1:]
        pattern = _string_arg(st)
        nearest = False
        relative: Optional[ast.Component] = None
        for c in rest:
            if c.name == "nearest" and c.arg is None and not nearest:
                nearest = True
                continue
            if c.name == "relative" and isinstance(c.arg, ast.Number) and relative is None:
                relative = c
                continue
            raise StapError("semantic", "probe point mismatch", c.loc,
                            token=f"identifier '{c.name}'")
        token = f"string '{pattern}'"
        _, _, file_pat = pattern.partition("@")
        spec = _split_lines(file_pat, st)[1] if file_pat else None
        if relative is not None:
            if spec is not None or nearest:
                raise StapError("semantic", ".relative(OFFSET) counts from a function's "
                                "entry; it cannot follow a line number or .nearest",
                                relative.loc, token=f"identifier '{relative.name}'")
            return self._relative_statements(st, pattern, relative, body, origin, facts,
                                             prefix, module)
        out: list[DerivedProbe] = []
        seen: dict[int, int] = {}
        for info in self._matching_functions(st, pattern, facts):
            name = info["name"]
            if spec is None:
                lines = {info.get("decl_line") or 0: info["address"]}
                picked = list(lines.items())
            else:
                lines = self._function_lines(info, facts)
                seen.update(lines)
                picked = [(ln, a) for ln, a in sorted(lines.items())
                          if _line_wanted(ln, spec, info)]
                if not picked and nearest and lines and spec[0] == "list":
                    want = spec[1][0][0]
                    ln = min(lines, key=lambda x: (abs(x - want), -x))
                    picked = [(ln, lines[ln])]
            for ln, addr in picked:
                pp = f'{prefix}.statement("{name}@{info["decl_file"]}:{ln}")'
                out.append(self._statement_probe(pp, info, addr, body, origin, st,
                                                 facts=facts, module=module))
        if not out and spec is not None and seen:
            raise _no_line_records(file_pat, spec, seen, st)
        if not out:
            raise StapError("semantic", f"no match for probe point {prefix}.statement"
                            f"(\"{pattern}\") in kernel {self.kernel.release}", st.loc,
                            token=token)
        return out

    def _statement_at(self, st: ast.Component, addr: int, absolute: bool,
                      body: ast.Block, origin: ast.ProbePoint, facts: KernelFacts,
                      prefix: str, module: Optional[str],
                      shown: Optional[int] = None) -> DerivedProbe:
        """statement(ADDR): a kprobe at an address (link-time for the
        kernel; in the module's layout for a module, where the user wrote
        `shown`, relative to .text) that must start a line-table row of its
        CU (.absolute: no such check)."""
        shown = addr if shown is None else shown
        token = f"number '{shown:#x}'"
        where = f"kernel {self.kernel.release}" if module is None else f'module "{module}"'
        hit = facts.function_at(addr)
        if hit is None:
            raise StapError("semantic", f"no function contains address {shown:#x}"
                            f" in {where}", st.loc, token=token)
        name, start, size = hit
        info = facts.function(name)
        if info is None or info.get("address") != start:
            info = {"name": name, "symbol": name, "address": start, "size": size,
                    "decl_file": None, "decl_line": None, "return_type": None, "params": []}
        if not absolute:
            self._check_statement_start(facts, addr, start, size, st, token,
                                        lambda a: a - (addr - shown))
        pp = f"{prefix}.statement({shown:#x})" + (".absolute" if absolute else "")
        return self._statement_probe(pp, info, addr, body, origin, st, facts=facts,
                                     module=module)

    @staticmethod
    def _check_statement_start(facts: KernelFacts, addr: int, start: int, size: int,
                               c: ast.Component, token: str, show) -> None:  # type: ignore[no-untyped-def]
        """SystemTap's error for an address that does not start a line-table
        row, with the nearest ones inside the function (shown through
        `show`: as written, absolute or relative)."""
        from codegen.debuginfo import statements
        cu = facts.index.cu_for_address(addr)
        lt = statements.line_table(facts, cu) if cu is not None else None
        if lt is not None and lt.is_row_start(addr):
            return
        below, above = lt.nearest(addr, start, start + size) if lt is not None else (None, None)
        tries = [f"{show(a):#x}" for a in (below, above) if a is not None]
        hint = f" (try {' or '.join(tries)})" if tries else ""
        raise StapError("semantic", f"address {show(addr):#x} does not match the beginning "
                        f"of a statement{hint}", c.loc, token=token)

    def _kernel_function_inner(self, comps: list[ast.Component], body: ast.Block,
                               origin: ast.ProbePoint) -> list[DerivedProbe]:
        """kernel.function("f").label("L") and .callees / .callee("g")."""
        from codegen.debuginfo import statements
        fn, kind = comps[1], comps[2]
        pattern = _string_arg(fn)
        if len(comps) > 3:
            raise StapError("semantic", "probe point mismatch", comps[3].loc,
                            token=f"identifier '{comps[3].name}'")
        if kind.name == "callees" and kind.arg is not None:
            depth = _number_arg(kind, "callees")
            if depth != 1:
                raise StapError("semantic", "callees(N) with N > 1 is not supported; "
                                "use .callees", kind.loc, token=f"identifier '{kind.name}'")
        sub = _string_arg(kind) if kind.name in ("label", "callee") else "*"
        self._dwarf_kernel(fn, f"kernel.function(...).{kind.name}", f"string '{pattern}'")
        # The runtime finds the KASLR shift from an exported function's
        # address (_printk) against its link-time address.
        anchor = self.kernel.index.lookup("_printk")
        out: list[DerivedProbe] = []
        for info in self._matching_functions(fn, pattern):
            where = f"{info['name']}@{info['decl_file']}:{info.get('decl_line') or 0}"
            if kind.name == "label":
                for lb in statements.match_labels(statements.function_labels(self.kernel, info),
                                                  sub):
                    pp = f'kernel.function("{where}").label("{lb["name"]}")'
                    out.append(self._statement_probe(pp, info, lb["addr"], body, origin, fn))
                continue
            for callee in statements.function_callees(self.kernel, info):
                if not fnmatch.fnmatchcase(callee, sub):
                    continue
                cinfo = self.kernel.function(callee)
                if cinfo is None or not cinfo.get("probeable", True):
                    continue
                cwhere = callee if cinfo.get("decl_file") is None else \
                    f"{callee}@{cinfo['decl_file']}:{cinfo.get('decl_line') or 0}"
                pp = f'kernel.function("{where}").callee("{cwhere}")'
                params = {"symbol": cinfo.get("symbol") or callee, "is_return": False,
                          "maxactive": 0, "optional": origin.optional,
                          "caller": info.get("symbol") or info["name"]}
                if len(anchor) == 1 and info.get("size"):
                    # Only calls from the caller: its return address is in
                    # the caller's code (tail calls are not seen).
                    params.update(caller_lo=info["address"],
                                  caller_hi=info["address"] + info["size"],
                                  anchor_link=anchor[0].address)
                out.append(DerivedProbe("kprobe", pp, copy.deepcopy(body), origin.loc,
                                        params, function=cinfo))
        if not out:
            raise StapError("semantic", "no match", kind.loc,
                            token=f"identifier '{kind.name}'")
        return out

    def _kernel_function_inline(self, comps: list[ast.Component], body: ast.Block,
                                origin: ast.ProbePoint) -> list[DerivedProbe]:
        """kernel.function("PATTERN").inline: a kprobe at the entry of every
        inlined instance of the matching functions, with the inlined
        function's parameters as they are at that address.  Plain
        kernel.function("f") keeps to out-of-line copies, as in SystemTap.
        Nothing may follow .inline (no .return: an inlined copy has no
        return to hook), as in SystemTap's probe point tree."""
        from codegen.debuginfo import inlines
        fn = comps[1]
        for c in comps[2:]:
            if not (c.name == "inline" and c.arg is None) or c is not comps[2]:
                raise StapError("semantic", "probe point mismatch", c.loc,
                                token=f"identifier '{c.name}'")
        if isinstance(fn.arg, ast.Number):
            raise StapError("semantic", "probe point mismatch", comps[2].loc,
                            token="identifier 'inline'")
        pattern = _string_arg(fn)
        token = f"string '{pattern}'"
        self._dwarf_kernel(fn, "kernel.function(...).inline", token)
        func_pat, _, file_pat = pattern.partition("@")
        if file_pat and _split_lines(file_pat, fn)[1] is not None:
            raise StapError("semantic", ".inline takes a function and file, not lines",
                            fn.loc, token=token)
        out: list[DerivedProbe] = []
        try:
            found = inlines.find_instances(self.kernel, func_pat, file_pat)
        except inlines.TooWide as err:
            raise StapError("semantic", str(err), fn.loc, token=token) from None
        for cu, inst in found:
            probe = self._inline_probe(cu, inst, body, origin)
            if probe is not None:
                out.append(probe)
        if not out:
            raise StapError("semantic", f"no match for probe point kernel.function"
                            f"(\"{pattern}\").inline in kernel {self.kernel.release}",
                            fn.loc, token=token)
        return out

    def _inline_probe(self, cu: int, inst: dict, body: ast.Block,
                      origin: ast.ProbePoint) -> Optional[DerivedProbe]:
        """A kprobe at one inlined instance, registered as the containing
        function's symbol + offset (KASLR-proof); None when that symbol is
        not unique (a static name defined twice cannot be told apart)."""
        from codegen.debuginfo import inlines
        hit = self.kernel.function_at(inst["entry"])
        if hit is None or self.kernel.symbol_count(hit[0]) != 1:
            return None
        symbol, start, _size = hit
        where = inst["name"] if inst.get("decl_file") is None else \
            f"{inst['name']}@{inst['decl_file']}:{inst.get('decl_line') or 0}"
        scoped = {"name": inst["name"], "symbol": symbol, "address": inst["entry"],
                  "decl_file": inst.get("decl_file"), "decl_line": inst.get("decl_line"),
                  "return_type": None, "params": inlines.instance_scope(self.kernel, cu, inst),
                  "statement_pc": inst["entry"], "inlined_into": symbol}
        return DerivedProbe("kprobe", f'kernel.function("{where}").inline',
                            copy.deepcopy(body), origin.loc,
                            {"symbol": symbol, "offset": inst["entry"] - start,
                             "is_return": False, "maxactive": 0, "optional": origin.optional,
                             "address": inst["entry"], "statement": True, "inline": True},
                            function=scoped)


def _function_suffixes(suffixes: list[ast.Component]) -> tuple[bool, int]:
    """kernel.function(...)'s [.call | .return[.maxactive(N)]]: (is_return,
    maxactive, 0 when not given); anything else is a probe point mismatch."""
    is_return = False
    for c in suffixes:
        if c.name == "call" and c.arg is None:
            continue
        if c.name == "return" and c.arg is None:
            is_return = True
            continue
        if c.name == "maxactive" and is_return:
            continue
        raise StapError("semantic", "probe point mismatch", c.loc,
                        token=f"identifier '{c.name}'")
    maxactive = next((_number_arg(c, "maxactive") for c in suffixes
                      if c.name == "maxactive"), 0)
    return is_return, maxactive


def _split_lines(file_pat: str, c: ast.Component) -> tuple[str, Optional[tuple]]:
    """"fs/read_write.c:450-460" -> ("fs/read_write.c", spec) where spec is
    ("all",), ("rel", N) for "+N" or ("list", [(lo, hi), ...]) for
    "N", "N-M" and "a,b-c"; None when no line part is given."""
    import re
    m = re.match(r"^(?P<file>[^:+]*)(?:(?P<sep>[:+])(?P<lines>.*))?$", file_pat)
    if m is None or m.group("sep") is None:
        return file_pat, None
    text = m.group("lines")
    bad = StapError("semantic", f"invalid line specification '{m.group('sep')}{text}'", c.loc,
                    token=f"string '{c.arg.value if isinstance(c.arg, ast.String) else ''}'")
    if m.group("sep") == "+":
        if not text.isdigit():
            raise bad
        return m.group("file"), ("rel", int(text))
    if text == "*":
        return m.group("file"), ("all",)
    ranges = []
    for part in text.split(","):
        lo, dash, hi = part.partition("-")
        if not lo.isdigit() or (dash and not hi.isdigit()):
            raise bad
        a, b = int(lo), int(hi) if dash else int(lo)
        if b < a:
            raise bad
        ranges.append((a, b))
    return m.group("file"), ("list", ranges)


def _line_wanted(line: int, spec: tuple, info: dict) -> bool:
    if spec[0] == "all":
        return True
    if spec[0] == "rel":
        return line == (info.get("decl_line") or 0) + spec[1]
    return any(lo <= line <= hi for lo, hi in spec[1])


def _freed_init(facts, name: str, info: dict) -> Optional[str]:  # type: ignore[no-untyped-def]
    """Why a function can never be probed because its code is .init.text,
    freed after boot (kernel) or load (module); None when it can be, or
    when the facts know no sections (BTF)."""
    in_init = getattr(facts, "in_init_section", None)
    if in_init is None or info.get("address") is None or not in_init(info["address"]):
        return None
    return f"{name} is in .init.text, freed {facts.INIT_FREED}"


def _no_line_records(file_pat: str, spec: tuple, seen: dict[int, int],
                     c: ast.Component) -> StapError:
    """stap's "no line records for FILE:N [man error::dwarf] (try :A or :B)"."""
    from codegen.debuginfo.statements import near_lines
    file_part = _split_lines(file_pat, c)[0]
    if spec[0] == "list":
        want = spec[1][0][0]
        text = ",".join(f"{a}" if a == b else f"{a}-{b}" for a, b in spec[1])
        shown = f"{file_part}:{text}"
    elif spec[0] == "rel":
        want, shown = 0, f"{file_part}+{spec[1]}"
    else:
        want, shown = 0, f"{file_part}:*"
    below, above = near_lines(seen, want)
    tries = [f":{x}" for x in (below, above) if x is not None]
    hint = f" (try {' or '.join(tries)})" if tries and spec[0] == "list" else ""
    return StapError("semantic", f"no line records for {shown} [man error::dwarf]{hint}",
                     c.loc, token=f"string '{c.arg.value if isinstance(c.arg, ast.String) else ''}'")
