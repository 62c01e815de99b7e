"""Pass 1's library index: which tapset file may define which name.

Linking (codegen.link.closure) needs to know, for every library file, the
functions, globals and probe aliases it defines. Parsing all of stap's 486
library files to learn that costs over a second, while a script uses a few
of them. So the definitions are read once per library content by a token
scan (no preprocessing, no parse), kept as a small JSON artifact keyed by
the files' content hashes, and pass 1 parses only the files the script can
reach through them (``select_library``).

The index must never miss a definition; naming too many is harmless (the
real closure runs afterwards on the parsed candidates and drops them):

* both branches of every ``%( %? %: %)`` conditional are read;
* ``private`` functions and globals are left out (link ignores them too);
* a file whose structure the scan cannot follow (a macro used at the top
  level, braces that differ between conditional branches, a conditional or
  macro in an alias name, a body that uses a macro whose expansion holds
  definitions or unbalanced braces) is *opaque*: pass 1 always parses it and
  takes its definitions from the tree.

References are not indexed: they are taken from the parsed trees of the
files already selected (after macro expansion and conditionals), exactly
as link does, so macros, ``@var`` and embedded C need no special case.
"""
from __future__ import annotations

import fnmatch
import json
import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable, Optional

from codegen import ast
from codegen.lexer import EMBED, EOF, G, IDENT, JUNK, P, T, Source, scan
from codegen.link import definitions, point_uses_alias, references
from stapbuild.library_scan import ALIAS, sparse_tokens

INDEX_SCHEMA = "stapbuild.library-index/1"

# Keywords that start a top-level construct; inside a body or an alias name
# they mean the scan lost the file's structure (unless after '.' or '->',
# where they are a probe-point component or a struct member).
# ALIAS (a plain alias header the sparse stream read whole) stands for the
# 'probe' that starts it wherever the walk looks for these.
_TOPLEVEL_KW = frozenset(("probe", "function", "global", "private", ALIAS))
_PP_COND = frozenset(("%(", "%?", "%:", "%)"))
_WILD = frozenset("*?[")


# ------------------------------------------------------------------ one file
@dataclass
class FileEntry:
    """What one library file may define (a superset of what it does)."""
    functions: list[str] = field(default_factory=list)
    globals: list[str] = field(default_factory=list)
    aliases: list[list[str]] = field(default_factory=list)   # component names
    macros_used: list[str] = field(default_factory=list)     # @NAME used in bodies
    structural_macros: list[str] = field(default_factory=list)  # @defines that hold structure
    opaque: Optional[str] = None                              # why it cannot be indexed

    def to_json(self) -> dict:
        return {"functions": self.functions, "globals": self.globals,
                "aliases": self.aliases, "macros_used": self.macros_used,
                "structural_macros": self.structural_macros, "opaque": self.opaque}

    @classmethod
    def from_json(cls, doc: dict) -> "FileEntry":
        return cls(doc["functions"], doc["globals"], doc["aliases"], doc["macros_used"],
                   doc["structural_macros"], doc["opaque"])


class _Scan:
    """A single left-to-right walk over the raw tokens of one file."""

    def __init__(self, keys: list[str], toks: list[tuple]) -> None:
        self.keys, self.toks = keys, toks
        # More EOFs: a step or two past the end (a cut-off file) reads EOF
        # again instead of running off the list.
        self.keys += [EOF] * 4
        self.toks += [self.toks[-1]] * 4
        self.i = 0
        self.depth = 0                      # brace depth of probe/function bodies
        self.conds: list[int] = []          # body depth at each open %(
        self.entry = FileEntry()
        self.functions: set[str] = set()
        self.globals: set[str] = set()
        self.macros_used: set[str] = set()
        self.local_macros: dict[str, bool] = {}   # @define name -> holds structure

    def fail(self, reason: str) -> None:
        if self.entry.opaque is None:
            self.entry.opaque = reason

    def _after_member(self, i: int) -> bool:
        return i > 0 and self.keys[i - 1] in (".", "->")

    # %( COND %?  ...  %:  ...  %)  -- both branches are read as if in a row
    def conditional(self) -> bool:
        """Handle a preprocessor token at self.i; False if it is not one."""
        k = self.keys[self.i]
        if k == "%(":
            j = self.i + 1
            while self.keys[j] != "%?":
                if self.keys[j] in _PP_COND or self.keys[j] == EOF:
                    self.fail("malformed %( condition")
                    break
                j += 1
            self.conds.append(self.depth)
            self.i = j + 1
            return True
        if k in ("%:", "%)"):
            if not self.conds or self.conds[-1] != self.depth:
                self.fail("braces differ between %( %) branches")
            if k == "%)" and self.conds:
                self.conds.pop()
            self.i += 1
            return True
        if k == "%?":
            self.fail("stray %?")
            self.i += 1
            return True
        return False

    def define(self) -> None:
        """@define NAME[(params)] %( body %): a file-local macro; record
        whether its body holds top-level structure or unbalanced braces."""
        keys, toks = self.keys, self.toks
        j = self.i + 1
        name = toks[j][T] if keys[j] != EOF else ""
        while keys[j] not in ("%(", EOF):
            j += 1
        nest, braces, structural = 0, 0, False
        while keys[j] != EOF:
            k = keys[j]
            if k == "%(":
                nest += 1
            elif k == "%)":
                nest -= 1
                if nest == 0:
                    break
            elif k == "{":
                braces += 1
            elif k == "}":
                braces -= 1
                structural = structural or braces < 0
            elif k in _TOPLEVEL_KW and not self._after_member(j):
                structural = True
            elif k[0] == "@" and k != "@define":
                self.macros_used.add(k[1:])
            j += 1
        if keys[j] == EOF:
            self.fail("unterminated @define")
        self.local_macros[name] = structural or braces != 0
        self.i = j + 1

    def run(self) -> FileEntry:
        keys = self.keys
        private = False
        in_global = expect_name = global_private = False
        while keys[self.i] != EOF:
            k = keys[self.i]
            if self.conditional():
                continue
            if k == "@define":
                self.define()
                continue
            if self.depth > 0:                  # inside a body: braces and macros
                if k == "{":
                    self.depth += 1
                elif k == "}":
                    self.depth -= 1
                elif k in _TOPLEVEL_KW and not self._after_member(self.i):
                    self.fail(f"'{k}' inside a body")
                elif k[0] == "@":
                    self.macro_in_body(k[1:])
                self.i += 1
                continue
            # top level
            if k == "{":                        # a body (e.g. an alias's second one)
                self.depth = 1
                in_global = False
            elif k == "}":
                self.fail("unbalanced '}'")
            elif k == "probe":
                in_global = private = False
                self.i += 1
                self.probe_header()
                continue
            elif k == ALIAS:                    # 'probe NAME = POINTS', read already
                in_global = private = False
                self.entry.aliases.append(list(self.toks[self.i][T]))
            elif k == "function":
                in_global = False
                t = self.toks[self.i + 1]
                if keys[self.i + 1] in (IDENT, "string", "long"):
                    if not private:
                        self.functions.add(t[T])
                else:
                    self.fail("function without a name")
                private = False
                self.i += 2
                self.function_header()
                continue
            elif k == "global":
                in_global = expect_name = True
                global_private, private = private, False
            elif k == "private":
                private = True
                if keys[self.i + 1] == IDENT:   # 'private NAME' is a private global
                    in_global = expect_name = global_private = True
                    private = False
            elif k == IDENT:
                # A global's name, or (after conditionals the scan cannot
                # pair up) an identifier in an odd place: index it as a
                # global, which can only make the closure larger.
                if not (in_global and global_private and expect_name):
                    self.globals.add(self.toks[self.i][T])
                expect_name = False
            elif k == ",":
                expect_name = in_global
            elif k[0] == "@":
                self.fail(f"top-level use of {k}")
            elif k == EMBED or k in ("%", "[", "]", "=", "-", ";") or k[0] == "\0":
                pass                            # C blocks, global sizes and initialisers
            else:
                self.fail(f"unexpected '{self.toks[self.i][T]}' at the top level")
            self.i += 1
        if self.depth != 0 or self.conds:
            self.fail("unbalanced braces or %( at the end")
        e = self.entry
        e.functions = sorted(self.functions)
        e.globals = sorted(self.globals)
        e.macros_used = sorted(self.macros_used)
        e.structural_macros = sorted(n for n, s in self.local_macros.items() if s)
        return e

    def macro_in_body(self, name: str) -> None:
        if self.local_macros.get(name):
            self.fail(f"@{name} holds structure")
        self.macros_used.add(name)

    def function_header(self) -> None:
        """Skip ':type (params) :priority' up to the body ('{' or '%{')."""
        keys = self.keys
        while True:
            k = keys[self.i]
            if k == "{":
                return                           # the top-level loop enters the body
            if k == EMBED or k == EOF:
                return
            if k in _TOPLEVEL_KW or k in _PP_COND or k[0] == "@":
                self.fail(f"'{k}' in a function header")
                return
            self.i += 1

    def probe_header(self) -> None:
        """probe NAME (=|+=) POINTS {  or  probe POINTS {: record alias
        names; stop at the body's '{' (left for the top-level loop)."""
        keys, toks = self.keys, self.toks
        points: list[list[str]] = []      # points of the current segment
        comp: list[str] = []              # components of the current point
        dirty = False                     # the segment's text is not plain names
        expect = True                     # a component may start here
        braces = 0                        # brace-expansion depth
        while True:
            k = keys[self.i]
            tok = toks[self.i]
            if k == EOF:
                self.fail("probe header runs to the end")
                return
            if k in _PP_COND:
                dirty = True
                self.conditional()
                continue
            if k == "@define":
                self.fail("@define in a probe header")
                return
            if k == "(":                     # a component's argument or if (...)
                nest = 0
                while keys[self.i] != EOF:
                    if keys[self.i] == "(":
                        nest += 1
                    elif keys[self.i] == ")":
                        nest -= 1
                        if nest == 0:
                            break
                    elif keys[self.i] in _TOPLEVEL_KW or keys[self.i] in _PP_COND \
                            or keys[self.i] in ("{", "}"):
                        dirty = True
                    self.i += 1
                self.i += 1
                expect = False
                continue
            if k == "{":
                if expect:
                    braces += 1
                    dirty = True
                elif braces == 0:
                    return                      # the body
                else:
                    self.fail("'{' inside a brace expansion")
                    return
            elif k == "}":
                if braces == 0:
                    self.fail("'}' in a probe header")
                    return
                braces -= 1
                expect = False
            elif k == "," or k == ".":
                expect = True
                if k == "," and braces == 0:
                    if comp:
                        points.append(comp)
                    comp = []
            elif k == "=" or k == "+=":
                if comp:
                    points.append(comp)
                if dirty or braces or not points:
                    self.fail("alias name the scan cannot read")
                else:
                    self.entry.aliases.extend(points)
                points, comp, dirty, expect = [], [], False, True
            elif k in ("?", "!"):
                expect = False
            elif k == "if" and not expect:
                pass                            # its '(' is skipped above
            elif k == IDENT or k == "*" or k[0].isalpha() or k == ALIAS:
                if k in _TOPLEVEL_KW and not (expect and self._after_member(self.i)):
                    self.fail(f"'{k}' in a probe header")
                    return
                if expect:
                    comp.append(tok[T])
                elif tok[G] == tok[P] and comp and keys[self.i - 1] not in (")", "?", "!"):
                    comp[-1] += tok[T]          # glued: foo*bar, sys_*
                else:                           # two points in a row (both branches)
                    dirty = True
                    if comp:
                        points.append(comp)
                    comp = [tok[T]]
                expect = False
            else:                               # @macro, strings, $1, junk ...
                dirty = True
                if k == EMBED or k == JUNK:
                    expect = False
            self.i += 1


def full_tokens(text: str) -> tuple[list[str], list[tuple]]:
    """Every token of text, as pass 1's lexer sees it (no arguments)."""
    keys, toks, _ = scan(Source("<library-index>", text), [], private_keyword=True)
    return keys, toks


def scan_file(text: str, fast: bool = True) -> FileEntry:
    """The index entry of one library file's text. fast: walk the sparse
    token stream (stapbuild.library_scan), which gives the same entry at a
    fraction of the cost; the full lexer serves where it bails out, and
    for a file the walk finds opaque (rare, and then the reason is the
    full walk's own)."""
    if fast:
        sparse = sparse_tokens(text)
        if sparse is not None:
            entry = _Scan(*sparse).run()
            if entry.opaque is None:
                return entry
    return _Scan(*full_tokens(text)).run()


# ------------------------------------------------------------------ library
def _matches(pattern: list[ast.Component], alias: list[str]) -> bool:
    """Can a probe point name this alias? Like codegen.link.point_uses_alias,
    but component arguments are ignored and '**' matches any rest: both can
    only say yes more often."""
    if len(pattern) < len(alias) and not any("**" in c.name for c in pattern):
        return False
    for p, a in zip(pattern, alias):
        if "**" in p.name:
            return True
        if not fnmatch.fnmatchcase(a, p.name):
            return False
    return True


@dataclass
class LibraryIndex:
    """The index of a whole library: one entry per .stp file (its name as
    pass 1 records it -> entry), the .stpm macros whose expansion holds
    structure, and the catalogue digest (see ``catalogue``)."""
    files: dict[str, FileEntry]
    structural_macros: list[str]
    catalogue: str
    _functions: dict[str, list[str]] = field(default_factory=dict, repr=False)
    _globals: dict[str, list[str]] = field(default_factory=dict, repr=False)
    _aliases: dict[str, list[tuple[list[str], str]]] = field(default_factory=dict, repr=False)
    _exact: dict[tuple[str, ...], list[str]] = field(default_factory=dict, repr=False)
    _opaque: list[str] = field(default_factory=list, repr=False)

    def __post_init__(self) -> None:
        for name, e in sorted(self.files.items()):
            if e.opaque is not None:
                self._opaque.append(name)
                continue
            for fn in e.functions:
                self._functions.setdefault(fn, []).append(name)
            for g in e.globals:
                self._globals.setdefault(g, []).append(name)
            for a in e.aliases:
                self._aliases.setdefault(a[0], []).append((a, name))
                self._exact.setdefault(tuple(a), []).append(name)

    @property
    def opaque(self) -> list[str]:
        """Files pass 1 must always parse."""
        return list(self._opaque)

    # Stored compactly (it is read by every pass 1): per file only what
    # linking needs, [functions, globals, "dotted.alias.names", opaque].
    def to_json(self) -> dict:
        return {"schema": INDEX_SCHEMA, "structural_macros": self.structural_macros,
                "catalogue": self.catalogue,
                "files": {n: [e.functions, e.globals, [".".join(a) for a in e.aliases],
                              e.opaque] for n, e in sorted(self.files.items())}}

    @classmethod
    def from_json(cls, doc: dict) -> "LibraryIndex":
        if doc.get("schema") != INDEX_SCHEMA:
            raise ValueError(f"library index schema {doc.get('schema')}")
        files = {n: FileEntry(fns, gs, [a.split(".") for a in als], opaque=op)
                 for n, (fns, gs, als, op) in doc["files"].items()}
        return cls(files, doc["structural_macros"], doc["catalogue"])

    def alias_files(self, point: list[ast.Component]) -> set[str]:
        """Non-opaque files that may define an alias the point names."""
        names = [c.name for c in point]
        if all(_WILD.isdisjoint(n) for n in names):
            # No wildcard: the aliases it names are its own leading components.
            return {f for k in range(1, len(names) + 1)
                    for f in self._exact.get(tuple(names[:k]), ())}
        first = names[0]
        if _WILD.isdisjoint(first):
            buckets: Iterable = [self._aliases.get(first, ())]
        else:
            buckets = [v for k, v in self._aliases.items()
                       if "**" in first or fnmatch.fnmatchcase(k, first)]
        return {f for bucket in buckets for comps, f in bucket if _matches(point, comps)}

    def candidates(self, refs: tuple[set[str], set[str], list[list[ast.Component]]]
                   ) -> set[str]:
        """Non-opaque files that may define something in refs (a file's
        codegen.link.references)."""
        calls, symbols, points = refs
        out: set[str] = set()
        for c in calls:
            out.update(self._functions.get(c, ()))
        for s in symbols:
            out.update(self._globals.get(s, ()))
        for p in points:
            if p:
                out |= self.alias_files(p)
        return out


def entry_of(text: str, fast: bool = True) -> FileEntry:
    """scan_file, but a scanner bug must not break pass 1: the file is then
    opaque (always parsed)."""
    try:
        return scan_file(text, fast)
    except Exception as exc:  # noqa: BLE001
        return FileEntry(opaque=f"scan failed: {type(exc).__name__}")


def build_index(texts: dict[str, str], fast: bool = True) -> LibraryIndex:
    """Index named library texts: .stp files get entries; .stpm files only
    say which library macros hold structure."""
    from stapbuild.store import sha256_bytes
    return assemble({n: entry_of(t, fast) for n, t in texts.items()},
                    {n: sha256_bytes(t.encode()) for n, t in texts.items()})


def assemble(scanned: dict[str, FileEntry], digests: dict[str, str]) -> LibraryIndex:
    """The index from each file's own entry (as scan_file gave it; not
    modified, so that entries can be cached per file) and its digest."""
    from stapbuild.store import key_of
    files: dict[str, FileEntry] = {}
    structural: set[str] = set()
    stpm: list[FileEntry] = []
    for name, e in sorted(scanned.items()):
        if name.endswith(".stpm"):
            stpm.append(e)
            structural.update(e.structural_macros)
        else:
            files[name] = FileEntry.from_json(e.to_json())
    # An .stpm the scan cannot follow, or whose macros use a structural one,
    # may define structural macros under any name: "*" makes every file that
    # uses any macro opaque (never expected to happen; correct if it does).
    if any(e.opaque is not None or structural.intersection(e.macros_used) for e in stpm):
        structural.add("*")
    for e in files.values():
        if e.opaque is None and e.macros_used and (
                "*" in structural or structural.intersection(e.macros_used)):
            e.opaque = "uses a library macro that holds structure"
    # The catalogue: what each file may define (an opaque file: its text).
    # Any edit that can change which files a script links changes it; a
    # comment or a body edit does not (see stapbuild.tasks.ParseUpToDate).
    catalogue = key_of({"files": {n: ["opaque", digests[n]] if e.opaque is not None else
                                  [e.functions, e.globals, e.aliases]
                                  for n, e in files.items()},
                        "stpm-structural": sorted(structural)})
    return LibraryIndex(files, sorted(structural), catalogue)


Refs = dict[int, tuple[set[str], set[str], list[list[ast.Component]]]]


def _references(f: ast.File, refs: Optional[Refs]) -> tuple:
    """link.references(f), remembered in refs (by id: the trees stay alive
    in the library dict for as long as refs is used)."""
    if refs is None:
        return references(f)
    r = refs.get(id(f))
    if r is None:
        r = refs[id(f)] = references(f)
    return r


def select_library(users: list[ast.File], index: LibraryIndex,
                   load: Callable[[str], ast.File],
                   refs: Optional[Refs] = None) -> dict[str, ast.File]:
    """The parsed library files a script may link: every file reachable
    from the user files through the index, plus every opaque file. A
    superset of what codegen.link.closure picks from the full library, so
    closure() over it gives the same answer."""
    lib: dict[str, ast.File] = {name: load(name) for name in index.opaque}
    opaque_defs = {name: definitions(f) for name, f in lib.items()}
    visited: set[str] = set()
    pending = list(users)
    while pending:
        r = _references(pending.pop(), refs)
        wanted = index.candidates(r)
        if opaque_defs:
            calls, symbols, points = r
            for name, d in opaque_defs.items():
                if (calls & d.functions or symbols & d.globals
                        or any(_matches(p, [c.name for c in a]) for p in points if p
                               for a in d.aliases)):
                    wanted.add(name)
        for name in sorted(wanted - visited):
            visited.add(name)
            if name not in lib:
                lib[name] = load(name)
            pending.append(lib[name])
    return lib


def linked(users: list[ast.File], lib: dict[str, ast.File],
           refs: Optional[Refs] = None) -> list[str]:
    """codegen.link.closure(users, lib), the same answer, faster: link asks
    point_uses_alias of every (point, alias) pair, which is most of pass 1
    for a wildcard such as syscall.* (hundreds of files, each with a dozen
    aliases and points). Here aliases are bucketed by their first component,
    and the same predicate is asked only where that component can match."""
    functions: dict[str, set[str]] = {}
    globals_: dict[str, set[str]] = {}
    by_first: dict[str, list[tuple[list[ast.Component], str]]] = {}
    exact: dict[tuple[str, ...], list[tuple[list[ast.Component], str]]] = {}
    for name, f in lib.items():
        d = definitions(f)
        for fn in d.functions:
            functions.setdefault(fn, set()).add(name)
        for g in d.globals:
            globals_.setdefault(g, set()).add(name)
        for a in d.aliases:
            by_first.setdefault(a[0].name, []).append((a, name))
            exact.setdefault(tuple(c.name for c in a), []).append((a, name))
    needed: set[str] = set()
    pending = list(users)
    while pending:
        calls, symbols, points = _references(pending.pop(), refs)
        new: set[str] = set()
        for c in calls:
            new |= functions.get(c, set())
        for s in symbols:
            new |= globals_.get(s, set())
        for p in points:
            if not p:
                continue
            names = [c.name for c in p]
            if all(_WILD.isdisjoint(n) for n in names):
                # without wildcards only aliases named by p's leading
                # components can match
                cands: Iterable = (e for k in range(1, len(names) + 1)
                                   for e in exact.get(tuple(names[:k]), ()))
            else:
                first = names[0]
                cands = (e for k in ([first] if _WILD.isdisjoint(first) else
                                     [k for k in by_first if fnmatch.fnmatchcase(k, first)])
                         for e in by_first.get(k, ()))
            for a, name in cands:
                if name not in new and name not in needed and point_uses_alias(p, a):
                    new.add(name)
        for name in sorted(new - needed):
            needed.add(name)
            pending.append(lib[name])
    return sorted(needed)


# ------------------------------------------------------------------ the store
_MEMO: dict[str, LibraryIndex] = {}
# False: walk every token as lexed in full (bench/bench_parse.py compares).
FAST_SCAN = True
SCAN_STATE_SCHEMA = "stapbuild.library-scan-state/1"
# A file changed this close to the time its stat was recorded may change
# again without a new mtime (coarse timestamps): its stat is not trusted.
RACY_NS = 2_000_000_000


def _now_ns() -> int:
    return time.time_ns()


def _read_bytes(path: Path) -> bytes:
    return path.read_bytes()


def _scanner_digests() -> list[str]:
    from stapbuild.store import sha256_file
    from codegen import lexer
    from stapbuild import library_scan
    return [sha256_file(Path(m.__file__)) for m in (sys.modules[__name__], library_scan, lexer)]


def index_key(digests: dict[str, str]) -> str:
    """The index's content key: its files' digests, the schema and the
    scanner (this module, the sparse tokenizer and the lexer)."""
    from stapbuild.store import key_of
    return key_of({"schema": INDEX_SCHEMA, "files": digests, "scanner": _scanner_digests()})


@dataclass
class ScanState:
    """What the last index build of a library saw, kept beside the store's
    indexes so that the next build after an edit rescans only the edited
    files: per path its stat (mtime, ctime, size, inode) and digest, and per
    digest the file's own entry. Only a cache: a missing or damaged one
    means reading and scanning everything, as on a first build."""
    taken_ns: int = 0                                   # when the stats were taken
    stats: dict[str, list] = field(default_factory=dict)    # path -> [m, c, size, ino, digest]
    entries: dict[str, dict] = field(default_factory=dict)  # digest -> FileEntry json

    @staticmethod
    def path_for(named: dict[str, Path]) -> Path:
        from stapbuild.store import artifacts_root, key_of
        where = os.path.commonpath([str(p.parent) for p in named.values()]) if named else ""
        key = key_of({"schema": SCAN_STATE_SCHEMA, "library": where,
                      "scanner": _scanner_digests()})
        return artifacts_root() / "store" / "library-scan-state" / f"{key}.json"

    @classmethod
    def load(cls, path: Path) -> "ScanState":
        try:
            doc = json.loads(path.read_bytes())
            if doc["schema"] == SCAN_STATE_SCHEMA:
                return cls(int(doc["taken_ns"]), dict(doc["stats"]), dict(doc["entries"]))
        except (OSError, ValueError, KeyError, TypeError):
            pass
        return cls()

    def save(self, path: Path) -> None:
        from stapbuild.store import atomic_write
        atomic_write(path, json.dumps({"schema": SCAN_STATE_SCHEMA, "taken_ns": self.taken_ns,
                                       "stats": self.stats, "entries": self.entries},
                                      separators=(",", ":")).encode())

    def trusted_digest(self, path: Path, st: os.stat_result) -> Optional[str]:
        """The recorded digest of path if its stat is unchanged and was old
        enough when recorded that an unnoticed same-size rewrite is ruled out."""
        rec = self.stats.get(str(path))
        if rec is None or rec[:4] != [st.st_mtime_ns, st.st_ctime_ns, st.st_size, st.st_ino]:
            return None
        if max(st.st_mtime_ns, st.st_ctime_ns) >= self.taken_ns - RACY_NS:
            return None
        return rec[4]


def load_or_build(named: dict[str, Path]) -> LibraryIndex:
    """The index of these library files (name -> path, .stp and .stpm),
    from the store when one was built for the same contents. Files whose
    stat is unchanged since the last build are not read; on a rebuild,
    only files whose content changed are scanned."""
    from stapbuild import store
    from stapbuild.store import sha256_bytes
    state_path = ScanState.path_for(named)
    old = ScanState.load(state_path)
    new = ScanState(_now_ns())
    texts: dict[str, bytes] = {}
    digests: dict[str, str] = {}
    for n, p in named.items():
        st = os.stat(p)
        d = old.trusted_digest(p, st)
        if d is None:
            texts[n] = _read_bytes(p)
            d = sha256_bytes(texts[n])
        digests[n] = d
        new.stats[str(p)] = [st.st_mtime_ns, st.st_ctime_ns, st.st_size, st.st_ino, d]
    key = index_key(digests)
    index = _MEMO.get(key) or _stored_index(key)
    if index is None:
        scanned: dict[str, FileEntry] = {}
        for n, d in digests.items():
            cached = old.entries.get(d)
            if cached is None:
                text = texts[n] if n in texts else _read_bytes(named[n])
                scanned[n] = entry_of(text.decode(), FAST_SCAN)
            else:
                scanned[n] = FileEntry.from_json(cached)
        index = assemble(scanned, digests)
        store.put_bytes("library-index", key, "json",
                        json.dumps(index.to_json(), separators=(",", ":")).encode())
        new.entries = {digests[n]: e.to_json() for n, e in scanned.items()}
    else:
        new.entries = {d: old.entries[d] for d in digests.values() if d in old.entries}
    if texts or new.entries.keys() != old.entries.keys():
        new.save(state_path)
    _MEMO[key] = index
    return index


def _stored_index(key: str) -> Optional[LibraryIndex]:
    from stapbuild import store
    art = store.lookup("library-index", key, "json")
    if art is None:
        return None
    try:
        return LibraryIndex.from_json(json.loads(art.path.read_bytes()))
    except (ValueError, KeyError, TypeError):
        return None                    # an old or damaged index: build it again
