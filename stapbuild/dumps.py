"""``--dump-probe-types``, ``--dump-functions``, ``--dump-probe-aliases``.

What the translator knows, without a script: the probe point forms pass 2
resolves, the public functions and the probe aliases of the tapset library
(with stap -I directories). One line per item, sorted, on stdout.

Formats (stap prints the same kinds of lines; its exact spelling of types
and tags is not reproduced):
- probe types: the pattern with argument kinds, ``kernel.function(string).return``;
- functions: ``name:type (arg:type, ...)``, ``unknown`` where the tapset
  leaves a type to inference, then the embedded-C tags of a %{ %} body
  (``/* pure */``, ``/* unprivileged */`` ...);
- aliases: ``name = point, point`` as declared (``+=`` for epilogue aliases).
"""
from __future__ import annotations

import re
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Optional

from codegen import ast

if TYPE_CHECKING:
    from stapbuild.library_index import FileEntry

# Every form codegen.probes.ProbeResolver resolves (tests/test_cli_options.py
# instantiates each one and runs it through pass 2, so this list cannot
# claim a form pass 2 refuses).
PROBE_TYPES = [
    "begin", "begin(number)", "end", "end(number)", "error", "error(number)", "never",
    "kernel.function(number)", "kernel.function(number).call", "kernel.function(number).return",
    "kernel.function(string)", "kernel.function(string).call",
    "kernel.function(string).exported", "kernel.function(string).exported.return",
    "kernel.function(string).return", "kernel.function(string).return.maxactive(number)",
    "kernel.trace(string)",
    "kprobe.function(string)", "kprobe.function(string).call", "kprobe.function(string).return",
    "kprobe.function(string).return.maxactive(number)",
    "kprobe.module(string).function(string)", "kprobe.module(string).function(string).return",
    "procfs(string).read", "procfs(string).read.maxsize(number)", "procfs(string).write",
    "process.begin", "process.end", "process.thread.begin", "process.thread.end",
    "process(string).begin", "process(string).end",
    "process(string).thread.begin", "process(string).thread.end",
    "process(number).begin", "process(number).end", "process(number).thread.begin",
    "process(number).thread.end", "process(number).syscall", "process(number).syscall.return",
    "process.syscall", "process.syscall.return",
    "process(string).syscall", "process(string).syscall.return",
    "process(string).function(string)", "process(string).function(string).call",
    "process(string).function(string).return",
    "process(string).statement(string)",
    "process(string).library(string).function(string)",
    "process(string).library(string).function(string).return",
    "process(string).plt", "process(string).plt(string)", "process(string).plt.return",
    "process(string).mark(string)", "process(string).provider(string).mark(string)",
    "procfs.read", "procfs.write",
    "timer.hz(number)", "timer.jiffies(number)", "timer.jiffies(number).randomize(number)",
    "timer.ms(number)", "timer.ms(number).randomize(number)", "timer.msec(number)",
    "timer.msec(number).randomize(number)", "timer.ns(number)", "timer.ns(number).randomize(number)",
    "timer.nsec(number)", "timer.nsec(number).randomize(number)", "timer.profile",
    "timer.s(number)", "timer.s(number).randomize(number)", "timer.sec(number)",
    "timer.sec(number).randomize(number)", "timer.us(number)", "timer.us(number).randomize(number)",
    "timer.usec(number)", "timer.usec(number).randomize(number)",
]

_TAG_RE = re.compile(r"/\*\s*(pure|unprivileged|myproc-unprivileged|guru|stable|unmodified-fnargs)\s*\*/")


def _library(tapset_dirs: Optional[list[Path]],
             wanted: Callable[["FileEntry"], bool]) -> dict[str, ast.File]:
    """The library files that may hold what a dump lists, parsed: the
    library index (stapbuild/library_index.py) says which files define
    what, so a dump of aliases does not parse the files of functions and
    the other way round. Opaque files are always parsed."""
    from codegen.preprocess import PPContext
    from stapbuild import passes
    pp = PPContext()
    paths = passes.library_paths(tapset_dirs)
    index = passes.library_index(tapset_dirs, paths)
    load = passes.library_loader(pp, passes.library_macros(pp, tapset_dirs), paths)
    return {name: load(name) for name, e in sorted(index.files.items())
            if e.opaque is not None or wanted(e)}


def _public_functions(e: "FileEntry") -> bool:
    return any(not fn.startswith("_") for fn in e.functions)


def _aliases(e: "FileEntry") -> bool:
    return bool(e.aliases)


def probe_types() -> list[str]:
    return sorted(PROBE_TYPES)


def functions(tapset_dirs: Optional[list[Path]] = None) -> list[str]:
    lines: set[str] = set()
    for f in _library(tapset_dirs, _public_functions).values():
        for fn in f.functions:
            # Private functions and the library's own helpers (leading _)
            # are not part of its interface.
            if fn.private or fn.name.startswith("_"):
                continue
            params = ", ".join(f"{p.name}:{p.type or 'unknown'}" for p in fn.params)
            line = f"{fn.name}:{fn.return_type or 'unknown'} ({params})"
            if isinstance(fn.body, ast.EmbeddedExpr):
                tags = _TAG_RE.findall(getattr(fn.body, "code", "") or "")
                line += "".join(f" /* {t} */" for t in dict.fromkeys(tags))
            lines.add(line)
    return sorted(lines)


def probe_aliases(tapset_dirs: Optional[list[Path]] = None) -> list[str]:
    lines: set[str] = set()
    for f in _library(tapset_dirs, _aliases).values():
        for a in f.aliases:
            op = "+=" if a.epilogue else "="
            targets = ", ".join(p.text() + ("?" if p.optional else "") for p in a.points)
            for n in a.names:
                lines.add(f"{n.text()} {op} {targets}")
    return sorted(lines)
