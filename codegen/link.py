"""Tapset linking: which library files a script needs.

SystemTap pulls a whole tapset file in when it defines a function, global or
probe alias that the program references, and repeats until nothing new is
needed. We do the same at the end of pass 1, so that the parse-tree artifact
holds exactly the files the script uses, and the doit task for pass 1 depends
on exactly those tapset files.
"""
from __future__ import annotations

import fnmatch
from dataclasses import dataclass, field
from typing import Iterable, Iterator

from codegen import ast


@dataclass
class Definitions:
    """What one tapset file defines, for quick closure computation."""
    functions: set[str] = field(default_factory=set)
    globals: set[str] = field(default_factory=set)
    aliases: list[list[ast.Component]] = field(default_factory=list)


def definitions(f: ast.File) -> Definitions:
    d = Definitions()
    d.functions = {fn.name for fn in f.functions if not fn.private}
    d.globals = {g.name for g in f.globals if not g.private}
    for alias in f.aliases:
        for name in alias.names:
            d.aliases.append(name.components)
    return d


def walk(node: object) -> Iterator[ast.Node]:
    """Every node below (and including) node, depth first."""
    if isinstance(node, ast.Node):
        yield node
        for value in vars(node).values():
            if isinstance(value, (ast.Node, list)):
                yield from walk(value)
    elif isinstance(node, list):
        for item in node:
            yield from walk(item)


def component_matches(pattern: ast.Component, concrete: ast.Component) -> bool:
    """Does one probe-point component (maybe a wildcard) match another?"""
    if not fnmatch.fnmatchcase(concrete.name, pattern.name):
        return False
    if pattern.arg is None or concrete.arg is None:
        return pattern.arg is None and concrete.arg is None
    return type(pattern.arg) is type(concrete.arg) and pattern.arg.value == concrete.arg.value


def point_uses_alias(point: list[ast.Component], alias: list[ast.Component]) -> bool:
    """A probe point names an alias when its leading components match the
    alias name (the point may carry extra suffix components, which SystemTap
    forwards to the expansion, e.g. ``alias.return.maxactive(10)``).
    The point itself may contain wildcards (``syscall.*``)."""
    if len(point) < len(alias):
        return False
    for p, a in zip(point, alias):
        if not component_matches(p, a):
            return False
    return True


def references(f: ast.File) -> tuple[set[str], set[str], list[list[ast.Component]]]:
    """Function names called, bare symbol names used, probe points named."""
    calls: set[str] = set()
    symbols: set[str] = set()
    points: list[list[ast.Component]] = []
    for node in walk([f.probes, f.functions, f.aliases]):
        if isinstance(node, ast.Call):
            calls.add(node.name)
        elif isinstance(node, ast.Symbol):
            symbols.add(node.name)
    for probe in f.probes:
        points.extend(pp.components for pp in probe.points)
    for alias in f.aliases:
        points.extend(pp.components for pp in alias.points)
    return calls, symbols, points


def closure(user_files: Iterable[ast.File], library: dict[str, ast.File]) -> list[str]:
    """Names (keys of ``library``) of the tapset files the user files need,
    in a stable order."""
    defs = {name: definitions(f) for name, f in library.items()}
    needed: list[str] = []
    pending = list(user_files)
    while pending:
        f = pending.pop()
        calls, symbols, points = references(f)
        for name in sorted(defs):
            if name in needed:
                continue
            d = defs[name]
            if (calls & d.functions or symbols & d.globals
                    or any(point_uses_alias(p, a) for p in points for a in d.aliases)):
                needed.append(name)
                pending.append(library[name])
    return sorted(needed)
