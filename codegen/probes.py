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
            return self._kernel_function(comps, body, origin)
        if names[0] == "kernel" and len(comps) == 2 and names[1] == "trace":
            return self._kernel_trace(comps, body, origin)
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
        is_return, maxactive = _function_suffixes(comps[2:])
        if self.kernel is None:
            raise StapError("semantic", "kernel.function probes need the kernel's debug info",
                            fn.loc, token=f"string '{pattern}'")
        func_pat, _, file_pat = pattern.partition("@")
        names = self.kernel.match_functions(func_pat)
        base_file = file_pat.split(":")[0]
        if (len(names) > 1 and base_file.endswith(".c")
                and hasattr(self.kernel, "functions_in_files")):
            # Functions defined in a .c file live in its CU: look only there.
            names = self.kernel.functions_in_files(names, base_file)
        if hasattr(self.kernel, "prefetch"):
            self.kernel.prefetch(names)
        out: list[DerivedProbe] = []
        why: list[str] = []
        for name in names:
            info = self.kernel.function(name)
            if info is None:
                continue
            if not info.get("probeable", True):
                why.append(info.get("note") or f"{name} cannot be probed")
                continue
            if file_pat and info.get("decl_file") is None and hasattr(self.kernel, "index"):
                continue        # DWARF kernel, function without DWARF (assembly)
            if file_pat and info.get("decl_file") is None:
                raise StapError("semantic", f"kernel.function(\"{pattern}\"): @file needs "
                                "DWARF (the -dbg package); BTF has no source locations",
                                fn.loc, token=f"string '{pattern}'")
            if file_pat and not fnmatch.fnmatchcase(info.get("decl_file") or "",
                                                    file_pat.split(":")[0]):
                continue
            where = name if info.get("decl_file") is None else \
                f"{name}@{info['decl_file']}:{info.get('decl_line') or 0}"
            pp = f'kernel.function("{where}")' + (".return" if is_return else ".call"
                                                   if any(c.name == "call" for c in comps[2:])
                                                   else "")
            out.append(DerivedProbe("kprobe", pp, copy.deepcopy(body), origin.loc,
                                    {"symbol": name, "is_return": is_return,
                                     "maxactive": maxactive, "optional": origin.optional},
                                    function=info))
        if not out:
            because = f" ({'; '.join(why[:3])})" if why else ""
            raise StapError("semantic", f"no match for probe point kernel.function(\"{pattern}\")"
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
