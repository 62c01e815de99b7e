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
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable, Optional

from codegen import ast
from codegen.lexer import EMBED, EOF, G, IDENT, JUNK, P, T, Source, scan
from codegen.link import definitions, point_uses_alias, references

INDEX_SCHEMA = "stapbuild.library-index/1"

# Keywords that start a top-level construct; inside a body or an alias name
# they mean the scan lost the file's structure (unless after '.' or '->',
# where they are a probe-point component or a struct member).
_TOPLEVEL_KW = frozenset(("probe", "function", "global", "private"))
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

    def __init__(self, text: str) -> None:
        self.keys, self.toks, _ = scan(Source("<library-index>", text), [],
                                       private_keyword=True)
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
            elif k == IDENT or k == "*" or k[0].isalpha():
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


def scan_file(text: str) -> FileEntry:
    """The index entry of one library file's text."""
    return _Scan(text).run()


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


def build_index(texts: dict[str, str]) -> LibraryIndex:
    """Index named library texts: .stp files get entries; .stpm files only
    say which library macros hold structure."""
    from stapbuild.store import key_of, sha256_bytes
    files: dict[str, FileEntry] = {}
    structural: set[str] = set()
    stpm: list[FileEntry] = []
    for name, text in sorted(texts.items()):
        try:
            e = scan_file(text)
        except Exception as exc:  # noqa: BLE001 - a scanner bug must not break pass 1
            e = FileEntry(opaque=f"scan failed: {type(exc).__name__}")
        if name.endswith(".stpm"):
            stpm.append(e)
            structural.update(e.structural_macros)
        else:
            files[name] = e
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
    catalogue = key_of({"files": {n: ["opaque", sha256_bytes(texts[n].encode())]
                                  if e.opaque is not None else
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


def index_key(digests: dict[str, str]) -> str:
    """The index's content key: its files' digests, the schema and the
    scanner (this module and the lexer it uses)."""
    from stapbuild.store import key_of, sha256_file
    from codegen import lexer
    return key_of({"schema": INDEX_SCHEMA, "files": digests,
                   "scanner": [sha256_file(Path(__file__)), sha256_file(Path(lexer.__file__))]})


def load_or_build(named: dict[str, Path]) -> LibraryIndex:
    """The index of these library files (name -> path, .stp and .stpm),
    from the store when one was built for the same contents."""
    from stapbuild import store
    from stapbuild.store import sha256_bytes
    texts = {n: p.read_bytes() for n, p in named.items()}
    digests = {n: sha256_bytes(b) for n, b in texts.items()}
    key = index_key(digests)
    hit = _MEMO.get(key)
    if hit is not None:
        return hit
    art = store.lookup("library-index", key, "json")
    index = None
    if art is not None:
        try:
            index = LibraryIndex.from_json(json.loads(art.path.read_bytes()))
        except (ValueError, KeyError, TypeError):
            index = None                   # an old or damaged index: build it again
    if index is None:
        index = build_index({n: b.decode() for n, b in texts.items()})
        store.put_bytes("library-index", key, "json",
                        json.dumps(index.to_json(), separators=(",", ":")).encode())
    _MEMO[key] = index
    return index
