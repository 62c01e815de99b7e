"""``stapbuild -l PP`` / ``-L PP``: list the probe points a pattern names.

As stap prints them: one line per match, sorted; ``-L`` adds the variables
a handler can use: for a tapset alias, the locals its prologue sets
(``name:string``), for a kernel function its parameters
(``$file:struct file*``) and, at ``.return``, ``$return``. Exit status 1 when
nothing matches.

Kernel functions are resolved through the per-kernel debug-info index, so a
wildcard touches only the CUs of the functions it names.
"""
from __future__ import annotations

import sys
from typing import Optional, TextIO

from codegen import ast
from codegen.elaborate import Elaborator
from codegen.errors import StapError, StapErrors, register_source
from codegen.link import closure, point_uses_alias
from codegen.parser import parse_file
from codegen.probes import Alias, ProbeResolver

LISTING_NAME = "<listing>"


def _facts(kctx):  # type: ignore[no-untyped-def]
    from codegen.kernel_facts import make_kernel_facts
    return make_kernel_facts(kctx.release, kctx.kernel, kctx.index_file)


def _param_vars(fn: Optional[dict], is_return: bool) -> list[str]:
    if fn is None:
        return []
    out = [f"${p['name']}:{p['type']['name']}" for p in fn.get("params", []) if p.get("name")]
    if is_return and fn.get("return_type") is not None:
        out.append(f"$return:{fn['return_type']['name']}")
    return out


def list_points(pattern: str, kctx, with_vars: bool) -> list[str]:  # type: ignore[no-untyped-def]
    """The lines `stap -l/-L PATTERN` prints (raises StapError on a bad pattern)."""
    from stapbuild import passes
    text = f"probe {pattern} {{}}\n"
    register_source(LISTING_NAME, text)
    pp = kctx.pp_context() if kctx is not None else None
    user = parse_file(LISTING_NAME, text, pp=pp) if pp is not None else \
        parse_file(LISTING_NAME, text)
    point = user.probes[0].points[0]
    # Only the library files the pattern can reach (the library index):
    # every file that defines an alias it names, and what those aliases use
    # (what -L's closure() needs); not the whole library.
    lib = passes.lazy_library([user], pp, None, passes.library_macros(pp))[0] \
        if pp is not None else {}
    # Aliases the pattern names (vfs.*, syscall.read): listed by alias name.
    names: list[list[ast.Component]] = []
    for f in lib.values():
        for a in f.aliases:
            for n in a.names:
                if len(n.components) == len(point.components) and \
                        point_uses_alias(point.components, n.components):
                    names.append(n.components)
    facts = _facts(kctx) if kctx is not None else None
    lines: set[str] = set()
    if names:
        for comps in names:
            lines.add(_alias_line(comps, lib, facts, with_vars))
        return sorted(lines)
    resolver = ProbeResolver([], facts)
    for d in resolver.resolve(ast.Probe([point], ast.Block([]), loc=point.loc)):
        if d.family == "kretprobe_entry":
            continue
        line = d.pp
        if with_vars:
            line = " ".join([line] + _param_vars(d.function, bool(d.params.get("is_return"))))
        lines.add(line)
    return sorted(lines)


def _alias_line(comps: list[ast.Component], lib: dict, facts, with_vars: bool) -> str:  # type: ignore[no-untyped-def]
    name = ast.ProbePoint(comps).text()
    if not with_vars:
        return name
    text = f"probe {name} {{}}\n"
    register_source(LISTING_NAME, text)
    user = parse_file(LISTING_NAME, text)
    used = closure([user], lib)
    files = [user] + [lib[u] for u in used]
    for f in files[1:]:
        f.is_tapset = True
    el = Elaborator(files, facts)
    try:
        el.run()
    except (StapError, StapErrors):
        return name
    local_vars: dict[str, Optional[str]] = {}
    target_vars: list[str] = []
    for d, scope in el.probes:
        if d.family == "kretprobe_entry":
            continue
        for n, t in scope.locals.items():
            local_vars.setdefault(n, t)
        for v in _param_vars(d.function, bool(d.params.get("is_return"))):
            if v not in target_vars:
                target_vars.append(v)
    parts = [name] + [f"{n}:{t or 'unknown'}" for n, t in sorted(local_vars.items())]
    return " ".join(parts + target_vars)


def run_listing(pattern: str, release: str, with_vars: bool,
                out: TextIO = sys.stdout, btf: bool = False) -> int:
    """The -l/-L command: 0 with one line per match, 1 when none match."""
    from stapbuild import passes
    kctx = passes.kernel_context_btf(release) if btf else \
        passes.kernel_context(release, frozenset({"headers", "dbg"}))
    try:
        lines = list_points(pattern, kctx, with_vars)
    except (StapError, StapErrors) as e:
        sys.stderr.write(e.render())
        return 1
    try:
        for line in lines:
            out.write(line + "\n")
        out.flush()
    except BrokenPipeError:         # `stapbuild -L ... | head`
        pass
    return 0 if lines else 1
