"""The library index (stapbuild.library_index): pass 1 parses only the
library files a script can reach, and links exactly what it linked when it
parsed the whole library.

The reference everywhere is codegen.link.closure over the fully parsed
library (passes.tapset_library); the lazy selection must give the same
list of files, and so the same parse artifact and the same pass-2 result.
"""
from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Optional

import pytest

from codegen import ast
from codegen.link import closure, definitions
from codegen.parser import parse_file
from codegen.preprocess import PPContext
from stapbuild import passes, store
from stapbuild.library_index import linked, scan_file

ROOT = Path(__file__).resolve().parent.parent
PROBES = sorted((ROOT / "probes").glob("*.stp"))
TAPSETS = sorted((ROOT / "tapsets").rglob("*.stp"))


@pytest.fixture(autouse=True, scope="module")
def private_store(tmp_path_factory):
    """One store for the module: trees and indexes are keyed by content, so
    the tests share them safely (and parse our library once)."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("STAPBUILD_ARTIFACTS", str(tmp_path_factory.mktemp("artifacts")))
        yield


def both(text: str, dirs: Optional[list[Path]] = None, name: str = "<t>"
         ) -> tuple[list[str], list[str], dict[str, ast.File]]:
    """(closure over the whole library, closure over the lazy one, the lazy one)."""
    pp = PPContext()
    macros = passes.library_macros(pp, dirs)
    user = parse_file(name, text, pp=pp, library_macros=macros[0])
    full = passes.tapset_library(pp, dirs, macros)
    lazy, _ = passes.lazy_library([user], pp, dirs, macros)
    used = closure([user], lazy)
    assert linked([user], lazy) == used      # what parse_pass links with
    return closure([user], full), used, lazy


def reference_doc(path: Path) -> dict:
    """The parse artifact as pass 1 wrote it when it parsed the whole library."""
    pp = PPContext()
    macros = passes.library_macros(pp)
    user = parse_file(passes.rel(path), path.read_text(), pp=pp, library_macros=macros[0])
    full = passes.tapset_library(pp, None, macros)
    used = closure([user], full)
    return {"schema": ast.PARSE_TREE_SCHEMA, "user": [ast.to_json(user)],
            "tapsets": [ast.to_json(full[u]) for u in used]}


# ------------------------------------------------------------------ our library
@pytest.mark.parametrize("probe", PROBES, ids=lambda p: p.stem)
def test_probe_parse_artifact_same_as_full_library(probe):
    """Every catalogue probe: the lazy pass 1 writes the very artifact the
    full-library pass 1 wrote (canonical JSON), so pass 2 gets the same key."""
    r = passes.parse_pass(probe, probe.read_text(), None)
    expected = store._json_bytes(reference_doc(probe))
    assert r.artifact.path.read_bytes() == expected
    assert r.library_files == len(reference_doc(probe)["tapsets"])


def _uses_of(path: Path) -> str:
    """A script naming everything one tapset file defines."""
    tree = parse_file(passes.rel(path), path.read_text(), tapset=True)
    d = definitions(tree)
    lines = [f"probe {ast.ProbePoint(a).text()} {{}}" for a in d.aliases]
    body = [f"{fn}()" for fn in sorted(d.functions)] + \
        [f"print({g})" for g in sorted(d.globals)]
    if body:
        lines.append("probe begin { " + "; ".join(body) + " }")
    return "\n".join(lines) + "\n"


@pytest.mark.parametrize("tapset", TAPSETS, ids=lambda p: str(p.relative_to(ROOT / "tapsets")))
def test_every_tapset_links_the_same(tapset):
    text = _uses_of(tapset)
    if not text.strip():
        pytest.skip("defines nothing")
    full, lazy, _ = both(text)
    assert lazy == full
    assert passes.rel(tapset) in lazy


@pytest.mark.parametrize("points", [
    "syscall.*", "syscall.*.return", "vfs.*", "vfs.**", "scheduler.ctxswitch", "*", "*.*",
    "kernel.function(\"vfs_read\")", "begin", "s*.{open,close}",
])
def test_wildcards_link_the_same(points):
    full, lazy, _ = both(f"probe {points} {{}}\n")
    assert lazy == full


def test_no_file_of_our_library_is_opaque():
    """Opaque files are always parsed: none of ours should need that."""
    index = passes.library_index()
    assert index.opaque == []
    assert len(index.files) == len(TAPSETS)


@pytest.mark.kernel
def test_pass2_same_as_full_library():
    """The elaborated result of every probe is the same from the lazy
    library as from the whole library (6.1's debug info)."""
    from codegen.elaborate import elaborate
    from codegen.kernel_facts import make_kernel_facts
    from tests.bootlib import resolve
    kctx = passes.kernel_context(resolve("6.1"))
    facts = make_kernel_facts(kctx.release, kctx.kernel, kctx.index_file)
    pp = kctx.pp_context()
    macros = passes.library_macros(pp)
    full = passes.tapset_library(pp, None, macros)
    for probe in PROBES:
        user = parse_file(passes.rel(probe), probe.read_text(), pp=pp, library_macros=macros[0])
        lazy, _ = passes.lazy_library([user], pp, None, macros)
        irs = []
        for lib in (full, lazy):
            files = [user] + [lib[u] for u in closure([user], lib)]
            for f in files[1:]:
                f.is_tapset = True
            irs.append(json.dumps(elaborate(files, facts), sort_keys=True, default=str))
        assert irs[0] == irs[1], probe.name


# ------------------------------------------------------------------ a synthetic library
def test_synthetic_stap_sized_library(tmp_path, monkeypatch):
    """bench/corpus.py's 487 files in stap's idioms: the same closures,
    nothing opaque, and the syscall.* wildcard pulls in every sysc file."""
    sys.path.insert(0, str(ROOT / "bench"))
    from corpus import library
    lib_dir = tmp_path / "lib"
    for name, text in library():
        (lib_dir / name).parent.mkdir(parents=True, exist_ok=True)
        (lib_dir / name).write_text(text)
    monkeypatch.setenv("STAPBUILD_TAPSETS", str(lib_dir))
    pp = PPContext()
    macros = passes.library_macros(pp)
    full = passes.tapset_library(pp, None, macros)
    index = passes.library_index()
    assert index.opaque == []
    scripts = [(ROOT / "probes" / "iotop.stp").read_text(),
               "probe syscall.* { print(argstr) }\n",
               "probe syscall.accept, syscall.close.return { print(name) }\n",
               "probe scheduler.* ?, socket.send1 ? { print(task_pid0(0)) }\n",
               "probe nd_syscall.bind { }\n"]
    scripts.append("probe syscall.a* { }\n")
    for text in scripts:
        user = parse_file("<t>", text, pp=pp, library_macros=macros[0])
        lazy, _ = passes.lazy_library([user], pp, None, macros)
        # link.closure takes a minute over syscall.*: there, linked() (equal
        # to it wherever both run, see both()) stands in for it.
        used = (linked if text == scripts[1] else closure)([user], full)
        assert linked([user], lazy) == used, text
        if text == scripts[1]:
            assert sum("/sysc_" in u for u in used) == len(list(lib_dir.rglob("sysc_*.stp")))
        else:
            assert closure([user], lazy) == used, text


# ------------------------------------------------------------------ tricky cases
def library(tmp_path, monkeypatch, files: dict[str, str]) -> Path:
    d = tmp_path / "tapsets"
    for name, text in files.items():
        (d / name).parent.mkdir(parents=True, exist_ok=True)
        (d / name).write_text(text)
    monkeypatch.setenv("STAPBUILD_TAPSETS", str(d))
    return d


def names(used: list[str]) -> list[str]:
    return sorted(Path(u).name for u in used)


def test_both_branches_of_conditionals_are_indexed(tmp_path, monkeypatch):
    library(tmp_path, monkeypatch, {
        "a.stp": '%( kernel_v >= "99.0" %?\nfunction f() { return 1 }\n%:\n'
                 'function g() { return 2 }\nglobal gv\n%)\n'
                 '%( arch == "x86_64" %? probe c.one = begin { } %: probe c.two = end { } %)\n',
        "b.stp": "function other() { return 3 }\n"})
    e = scan_file((tmp_path / "tapsets" / "a.stp").read_text())
    assert e.functions == ["f", "g"] and e.globals == ["gv"] and e.opaque is None
    assert e.aliases == [["c", "one"], ["c", "two"]]
    for script in ("probe begin { g() }", "probe begin { f() }", "probe begin { print(gv) }",
                   "probe c.* {}"):
        full, lazy, sel = both(script + "\n")
        assert lazy == full, script
    full, lazy, sel = both("probe begin { g() }\n")
    assert names(lazy) == ["a.stp"] and "b.stp" not in names(list(sel))


def test_braces_that_differ_between_branches_make_a_file_opaque(tmp_path, monkeypatch):
    library(tmp_path, monkeypatch, {
        "a.stp": '%( kernel_v >= "99.0" %?\nprobe x.y = kernel.function("a") {\n%:\n'
                 'probe x.y = kernel.function("b") {\n%)\n  n = 1\n}\n'
                 "function after() { return 1 }\n"})
    assert scan_file((tmp_path / "tapsets" / "a.stp").read_text()).opaque
    assert passes.library_index().opaque == [passes.rel(tmp_path / "tapsets" / "a.stp")]
    for script in ("probe x.y {}", "probe begin { after() }", "probe begin {}"):
        full, lazy, _ = both(script + "\n")
        assert lazy == full, script
    assert names(both("probe x.y {}\n")[1]) == ["a.stp"]


def test_define_macros_and_top_level_macro_use(tmp_path, monkeypatch):
    library(tmp_path, monkeypatch, {
        "gen.stp": "@define mkfn %( function made() { return 3 } %)\n@mkfn\n",
        "loc.stp": "@define call_h(x) %( helper_h(@x) %)\n"
                   "probe loc.p = begin { v = @call_h(1) }\n",
        "h.stp": "function helper_h(x) { return x }\n"})
    idx = passes.library_index()
    assert idx.opaque == [passes.rel(tmp_path / "tapsets" / "gen.stp")]
    # a macro's body is not a definition of the file that defines the macro
    assert scan_file("@define m %( function nope() {} %)\n").functions == []
    for script in ("probe begin { made() }", "probe loc.p {}"):
        full, lazy, _ = both(script + "\n")
        assert lazy == full, script
    assert names(both("probe begin { made() }\n")[1]) == ["gen.stp"]
    assert names(both("probe loc.p {}\n")[1]) == ["h.stp", "loc.stp"]


def test_stpm_library_macros(tmp_path, monkeypatch):
    library(tmp_path, monkeypatch, {
        "m.stpm": "@define helper %( lib_helper() %)\n"
                  "@define opens %( { %)\n",
        "h.stp": "function lib_helper() { return 1 }\n",
        "u.stp": "probe u.x = begin { v = @helper }\n",
        # uses a library macro whose expansion has unbalanced braces
        "odd.stp": "function odd() { if (1) @opens } }\n"})
    idx = passes.library_index()
    assert idx.structural_macros == ["opens"]
    assert idx.opaque == [passes.rel(tmp_path / "tapsets" / "odd.stp")]
    for script in ("probe begin { print(@helper) }", "probe u.x {}"):
        full, lazy, _ = both(script + "\n")
        assert lazy == full, script
        assert "h.stp" in names(lazy)


def test_alias_kinds_and_points_inside_aliases(tmp_path, monkeypatch):
    library(tmp_path, monkeypatch, {
        "pro.stp": 'probe p.q = kernel.function("x") ? { a = 1 }\n',
        "epi.stp": 'probe p.r += kernel.function("y") { b = mid_fn() }\n',
        "two.stp": 'probe p.s = begin { c = 1 }, { d = 2 }\n',
        "top.stp": "probe top.x = mid.y, p.q { }\n",
        "mid.stp": 'probe mid.y = kernel.function("k").return { v = helper2() }\n',
        "fn.stp": "function helper2() { return helper3() }\n",
        "fn3.stp": "function helper3() { return 1 }\n",
        "midfn.stp": "function mid_fn() { return 1 }\n"})
    e = scan_file((tmp_path / "tapsets" / "two.stp").read_text())
    assert e.aliases == [["p", "s"]]
    for script in ("probe p.* {}", "probe p.r {}", "probe top.x {}", "probe p.s.foo {}"):
        full, lazy, _ = both(script + "\n")
        assert lazy == full, script
    assert names(both("probe top.x {}\n")[1]) == \
        ["fn.stp", "fn3.stp", "mid.stp", "pro.stp", "top.stp"]
    assert names(both("probe p.* {}\n")[1]) == ["epi.stp", "midfn.stp", "pro.stp", "two.stp"]


def test_private_definitions_are_not_linked(tmp_path, monkeypatch):
    library(tmp_path, monkeypatch, {
        "a.stp": "private function pf() { return 1 }\nprivate global pg\nprivate pg2\n"
                 "function pub() { return pf() + pg + pg2 }\n",
        "b.stp": "function pf() { return 2 }\nglobal pg\n"})
    e = scan_file((tmp_path / "tapsets" / "a.stp").read_text())
    assert e.functions == ["pub"] and e.globals == []
    for script in ("probe begin { pf() }", "probe begin { print(pg) }",
                   "probe begin { pub() }", "probe begin { print(pg2) }"):
        full, lazy, _ = both(script + "\n")
        assert lazy == full, script
    assert names(both("probe begin { pf() }\n")[1]) == ["b.stp"]


def test_embedded_c_and_at_operators(tmp_path, monkeypatch):
    library(tmp_path, monkeypatch, {
        "e.stp": "%{\n/* function fake() { } probe fake.x = a {} global nope */\n%}\n"
                 "function real:long () %{ /* pure */ /* global nope2 */ STAP_RETURN(1); %}\n"
                 'function v() { return @var("jiffies@kernel/time.c") + '
                 '@cast(0, "task_struct")->pid }\n'
                 'function kw() { return @cast(0, "struct x")->function }\n'})
    e = scan_file((tmp_path / "tapsets" / "e.stp").read_text())
    assert e.functions == ["kw", "real", "v"] and e.globals == [] and e.aliases == []
    assert e.opaque is None
    for script in ("probe begin { real() }", "probe begin { fake() }", "probe fake.x {}"):
        full, lazy, _ = both(script + "\n")
        assert lazy == full, script


def test_script_defines_a_library_name(tmp_path, monkeypatch):
    library(tmp_path, monkeypatch, {
        "f.stp": "function dup() { return 1 }\nglobal shared\nprobe al.x = begin { }\n"})
    for script in ("function dup() { return 2 } probe begin { dup() }",
                   "global shared probe begin { shared = 1 }",
                   "probe al.x = end { } probe al.x { }"):
        full, lazy, _ = both(script + "\n")
        assert lazy == full, script


def test_listing_patterns_find_every_defining_file():
    """stap -l 'syscall.*' needs every file that defines a matching alias:
    the index names each of them (so listing may parse only those)."""
    pp = PPContext()
    full = passes.tapset_library(pp)
    index = passes.library_index()
    for pattern in ("syscall.*", "vfs.*", "scheduler.ctxswitch", "*.*", "syscall.**"):
        point = parse_file("<l>", f"probe {pattern} {{}}\n").probes[0].points[0]
        defining = {name for name, f in full.items()
                    for a in definitions(f).aliases
                    if len(a) == len(point.components) and
                    all(__import__("fnmatch").fnmatchcase(c.name, p.name)
                        for p, c in zip(point.components, a))}
        assert defining, pattern
        assert defining <= index.alias_files(point.components), pattern


# ------------------------------------------------------------------ invalidation
def test_index_follows_library_edits(tmp_path, monkeypatch):
    d = library(tmp_path, monkeypatch, {"a.stp": "function one() { return 1 }\n",
                                        "b.stp": "function two() { return 2 }\n"})
    first = passes.library_index()
    cat = passes.library_catalogue()
    assert names(both("probe begin { three() }\n")[1]) == []
    (d / "b.stp").write_text("function two() { return 2 }\nfunction three() { return 3 }\n")
    second = passes.library_index()
    assert second is not first and second.files[passes.rel(d / "b.stp")].functions == \
        ["three", "two"]
    assert passes.library_catalogue() != cat
    assert names(both("probe begin { three() }\n")[1]) == ["b.stp"]
    # a comment changes the index key but not what the library defines
    cat = passes.library_catalogue()
    (d / "a.stp").write_text("// note\nfunction one() { return 1 }\n")
    assert passes.library_index() is not second
    assert passes.library_catalogue() == cat
    # a new file joins the index
    (d / "c.stp").write_text("probe new.x = begin { }\n")
    assert names(both("probe new.* {}\n")[1]) == ["c.stp"]
    # and a new .stpm macro file is part of the key
    (d / "m.stpm").write_text("@define mm %( three() %)\n")
    assert names(both("probe begin { print(@mm) }\n")[1]) == ["b.stp"]


def test_index_is_stored_and_reloaded(tmp_path, monkeypatch):
    from stapbuild import library_index
    library(tmp_path, monkeypatch, {"a.stp": "function one() { return 1 }\n"})
    first = passes.library_index()
    library_index._MEMO.clear()
    again = passes.library_index()
    assert again is not first and again.to_json() == first.to_json()
    digests = {passes.rel(tmp_path / "tapsets" / "a.stp"):
               store.sha256_file(tmp_path / "tapsets" / "a.stp")}
    art = store.lookup("library-index", library_index.index_key(digests), "json")
    assert art is not None
    assert json.loads(art.path.read_text())["schema"] == library_index.INDEX_SCHEMA


def test_parse_task_catalogue_matches_what_parse_pass_records():
    """ParseUpToDate compares the catalogue parse_pass recorded with the
    current one: they must be computed the same way."""
    from stapbuild import tasks
    tasks._CATALOGUES.clear()
    r = passes.parse_pass(PROBES[0], PROBES[0].read_text(), None)
    assert r.catalogue == tasks._current_catalogue("any")


def test_scan_never_raises_on_broken_text():
    """A cut-off or garbled library file makes the scan say opaque (or
    index less of a file that cannot parse anyway), never raise."""
    import random
    texts = [p.read_text() for p in TAPSETS[:8]]
    texts += ["probe a(", "function", "@define", "%( x", "probe a = b (", "@define x %(",
              "probe a.{b", "}", "%)", "%:", "%?", "private", "global a[", "probe a =",
              "function f(a:long) %{", "probe x.y = a { %( b %? } %) "]
    rnd = random.Random(3)
    pieces = ["probe", "function", "global", "private", "@define", "@m", "%(", "%?", "%:",
              "%)", "{", "}", "(", ")", "=", "+=", ",", ".", "a", "b.c", '"s"', "%{ x %}",
              "if", "?", "!", "*", "->", ";", "1", "#c\n", "/*", "$1", "\\"]
    for _ in range(2000):
        texts.append(" ".join(rnd.choice(pieces) for _ in range(rnd.randint(1, 25))))
    for text in texts:
        for cut in {len(text), len(text) // 2, len(text) // 3, 7}:
            scan_file(text[:cut])


# ------------------------------------------------------------------ the sparse scan
from stapbuild import library_index  # noqa: E402
from stapbuild.library_scan import sparse_tokens  # noqa: E402


def _synthetic_texts() -> dict[str, str]:
    sys.path.insert(0, str(ROOT / "bench"))
    from corpus import library as synthetic
    return dict(synthetic())


def _same_as_full_walk(text: str) -> None:
    """The sparse stream's entry is the full walk's, to the opaque reason."""
    assert scan_file(text).to_json() == scan_file(text, fast=False).to_json(), text


def test_sparse_scan_equals_full_walk_over_real_libraries():
    """Every file of tapsets/ and of the stap-sized synthetic library: the
    sparse token stream gives the very entry the full lexer's does, and
    the fast path really serves them (no bail-out to the full lexer)."""
    texts = {str(p): p.read_text() for p in sorted((ROOT / "tapsets").rglob("*.stp*"))}
    texts.update(_synthetic_texts())
    bailed = [n for n, t in texts.items() if sparse_tokens(t) is None]
    assert bailed == []
    for text in texts.values():
        _same_as_full_walk(text)


def _assert_covers(entry, tree: ast.File, what: str) -> None:
    d = definitions(tree)
    assert entry.opaque is None, what
    assert d.functions <= set(entry.functions), what
    assert d.globals <= set(entry.globals), what
    assert {tuple(c.name for c in a) for a in d.aliases} <= \
        {tuple(a) for a in entry.aliases}, what


@pytest.mark.parametrize("which", ["tapsets", "synthetic"])
def test_index_names_every_definition_the_parser_finds(which, tmp_path, monkeypatch):
    """The index must never miss a definition (a miss is a wrong 'unresolved
    function' error): each file parsed in full, with the library's .stpm
    macros, defines nothing its sparse-scan entry leaves out."""
    if which == "tapsets":
        files = {str(p): p.read_text() for p in TAPSETS}
        lib = ROOT / "tapsets"
    else:
        lib = library(tmp_path, monkeypatch, _synthetic_texts())
        files = {str(p): p.read_text() for p in sorted(lib.rglob("*.stp"))}
        monkeypatch.setenv("STAPBUILD_TAPSETS", str(lib))
    macros = passes.library_macros(PPContext())[0]
    for name, text in files.items():
        tree = parse_file(name, text, tapset=True, library_macros=macros)
        _assert_covers(scan_file(text), tree, name)


# Pieces of library text where a careless scanner goes wrong: structure in
# comments, strings and embedded C, keywords as members, conditionals whose
# branches define different things, macros.
TRICKY = [
    "function f1() { return 1 }\n", "global g1\n", "global g2 = 3, g3[10]\n",
    "private function pf() { }\n", "private pg\n", "probe al.one = begin { x = 1 }\n",
    "probe al.two += kernel.function(\"vfs_read\").call ?, k.f(\"x\").return ! { }\n",
    "probe begin { }\n", "probe s*.{open,close} { }\n", "probe al.three = begin { }, { y = 2 }\n",
    "# function c1() { }\n", "// global c2\n", "/* probe c3.x = begin { } */\n",
    "/* { */\n", "# }\n", "%{ /* function e1() { } */ static int x = '{'; %}\n",
    "function e2:long (a:long) %{ /* pure */ STAP_RETURN(1); %}\n",
    "function s1() { s = \"} function s2() {\" return 1 }\n",
    "function m1() { return @cast(0, \"task_struct\")->function + $p->global }\n",
    "%( kernel_v >= \"2.6\" %? function c4() { } %: function c5() { } %)\n",
    "%( arch == \"x86_64\" %? probe al.c6 = begin { } %: probe al.c7 = end { } %)\n",
    "function b1() { %( CONFIG_X == \"y\" %? if (1) { a = 1 } %: a = 2 %) }\n",
    "@define mac1 %( function nope() { } %)\n", "function u2() { @mac1 }\n",
    "@define mac2(x) %( @x + 1 %)\nfunction u1() { return @mac2(1) + @mac2(2) }\n",
    "probe al.four = begin { if (x) { y = 1 } else { y = \"}\" } }\n",
    "function k1() { probe_x = 1; function_y = 2; $global = 3; return 1 }\n",
    "function k2() { # probe\n return 1 }\n", "probe a.b, c.d = begin { }\n",
    "global x = \"%( %)\"\n", "function q() { return \"\\\"}\" }\n",
    "function n1() { v = 1.function } \n", "function n2() { x = y-->z }\n",
    "probe m.\nprobe al.five = begin { }\n", "probe x = k(\nprobe al.six = begin { } )\n",
]
SOUP = ["probe", "function", "global", "private", "@define", "@m", "%(", "%?", "%:", "%)",
        "{", "}", "(", ")", "=", "+=", ",", ".", "->", "a", "b.c", '"s"', '"{"', "%{ x %}",
        "%{", "if", "?", "!", "*", ";", "1", "#c\n", "//c\n", "/*", "*/", "$1", "$#", "@1",
        "\\", "\n", "kernel.function(\"x\")", "return", "é", "`"]


def test_sparse_scan_equals_full_walk_on_tricky_and_random_text():
    """Tricky pieces in every order and random token soups (cut anywhere):
    the sparse stream never changes what the walk concludes."""
    from hypothesis import given, settings, strategies as st

    @settings(max_examples=1500, deadline=None, derandomize=True)
    @given(st.lists(st.sampled_from(TRICKY), max_size=8),
           st.lists(st.sampled_from(SOUP), max_size=30), st.sampled_from([" ", "", "\n"]),
           st.integers(min_value=0, max_value=400))
    def check(pieces, soup, sep, cut):
        text = "".join(pieces) + sep.join(soup)
        _same_as_full_walk(text)
        _same_as_full_walk(text[:cut])
        _same_as_full_walk(sep.join(soup) + "".join(pieces))
    check()


def test_tricky_library_files_index_what_they_define(tmp_path, monkeypatch):
    """Valid files made of the tricky pieces: whatever the parser finds
    defined (in either branch of a conditional), the index names."""
    from hypothesis import given, settings, strategies as st
    valid = [p for p in TRICKY if "mac1" not in p and "u2()" not in p and
             "a.b, c.d" not in p and "y-->z" not in p and "1.function" not in p and
             "al.five" not in p and "al.six" not in p]
    for p in valid:
        parse_file("<t>", p, tapset=True, guru=True)     # each piece parses alone

    @settings(max_examples=300, deadline=None, derandomize=True)
    @given(st.lists(st.sampled_from(valid), max_size=10, unique=True))
    def check(pieces):
        text = "".join(pieces)
        entry = scan_file(text)
        _same_as_full_walk(text)
        for arch in ("x86_64", "arm64"):
            pp = PPContext(arch=arch, kernel_release="6.1.0")
            tree = parse_file("<t>", text, tapset=True, guru=True, pp=pp)
            _assert_covers(entry, tree, text)
    check()


def test_edit_rescans_only_the_edited_file(tmp_path, monkeypatch):
    """A rebuild after one edit reads the files whose stat changed and
    scans only the file whose content changed; with nothing changed and
    stats old enough to trust, no library file is read at all."""
    d = library(tmp_path, monkeypatch, {f"f{i}.stp": f"function fn{i}() {{ return {i} }}\n"
                                        for i in range(6)})
    scanned: list[str] = []
    read: list[Path] = []
    real_scan, real_read = library_index.scan_file, library_index._read_bytes
    monkeypatch.setattr(library_index, "scan_file",
                        lambda text, fast=True: scanned.append(text) or real_scan(text, fast))
    monkeypatch.setattr(library_index, "_read_bytes",
                        lambda p: read.append(p) or real_read(p))
    first = passes.library_index()
    assert len(scanned) == 6 and len(read) == 6
    # a new process, later: every stat is old enough to be trusted
    clock = library_index._now_ns() + 10 * library_index.RACY_NS
    monkeypatch.setattr(library_index, "_now_ns", lambda: clock)
    library_index._MEMO.clear()
    scanned.clear(), read.clear()
    passes.library_index()              # records the stats at the later time
    library_index._MEMO.clear()
    scanned.clear(), read.clear()
    again = passes.library_index()
    assert scanned == [] and read == [] and again.to_json() == first.to_json()
    (d / "f3.stp").write_text("function fn3() { return 3 }\nfunction extra() { }\n")
    library_index._MEMO.clear()
    edited = passes.library_index()
    assert read == [d / "f3.stp"] and len(scanned) == 1 and "extra" in scanned[0]
    assert edited.files[passes.rel(d / "f3.stp")].functions == ["extra", "fn3"]
    assert names(both("probe begin { extra() }\n")[1]) == ["f3.stp"]


def test_recent_stats_are_not_trusted(tmp_path, monkeypatch):
    """A file rewritten with the same size within the timestamp granularity
    keeps its mtime: a stat recorded that close to its change is not
    trusted, so the rewrite is seen."""
    d = library(tmp_path, monkeypatch, {"a.stp": "function aaa() { }\n"})
    passes.library_index()
    st = (d / "a.stp").stat()
    (d / "a.stp").write_text("function bbb() { }\n")           # same size
    os.utime(d / "a.stp", ns=(st.st_atime_ns, st.st_mtime_ns))
    library_index._MEMO.clear()
    assert passes.library_index().files[passes.rel(d / "a.stp")].functions == ["bbb"]


def test_damaged_scan_state_is_ignored(tmp_path, monkeypatch):
    d = library(tmp_path, monkeypatch, {"a.stp": "function aaa() { }\n"})
    passes.library_index()
    for p in (Path(os.environ["STAPBUILD_ARTIFACTS"]) / "store" / "library-scan-state").glob("*"):
        p.write_text("{not json")
    (d / "a.stp").write_text("function ccc() { }\n")
    library_index._MEMO.clear()
    assert passes.library_index().files[passes.rel(d / "a.stp")].functions == ["ccc"]


# ------------------------------------------------------------------ listing and dumps
def _whole_library(monkeypatch) -> None:
    """Make listing and dumps read the whole library, as they did before
    the index: the reference their output must equal."""
    from stapbuild import dumps
    monkeypatch.setattr(dumps, "_library",
                        lambda dirs, wanted: passes.tapset_library(PPContext(), dirs))
    monkeypatch.setattr(passes, "lazy_library",
                        lambda users, pp, dirs, macros, refs=None:
                        (passes.tapset_library(pp, dirs, macros), ""))


@pytest.mark.parametrize("lib", ["tapsets", "synthetic"])
def test_dumps_and_listing_from_the_index_print_the_same(lib, tmp_path, monkeypatch):
    """--dump-functions, --dump-probe-aliases and -l's alias names: the same
    lines from the files the index picks as from the whole library, while
    fewer files are parsed."""
    from stapbuild import dumps, listing
    if lib == "synthetic":
        d = library(tmp_path, monkeypatch, _synthetic_texts())
        for p in (ROOT / "tapsets").rglob("*.stp"):
            (d / "ours" / p.name).parent.mkdir(exist_ok=True)
            (d / "ours" / p.name).write_text(p.read_text())
    monkeypatch.setattr(listing, "_facts", lambda kctx: None)

    class NoKernel:                     # alias names need no kernel facts
        def pp_context(self):
            return PPContext()
    patterns = ["syscall.*", "vfs.*", "scheduler.ctxswitch", "*.*", "nd_syscall.a*", "s*.*.return"]

    def listed(pattern):
        from codegen.errors import StapError
        try:
            return listing.list_points(pattern, NoKernel(), False)
        except StapError as e:          # no alias matches: a kernel-side point
            return e.render()
    loaded: list[str] = []
    real_loader = passes.library_loader

    def counting_loader(*a):
        load = real_loader(*a)
        return lambda name: loaded.append(name) or load(name)
    monkeypatch.setattr(passes, "library_loader", counting_loader)
    got = {"functions": dumps.functions(), "aliases": dumps.probe_aliases()}
    dump_loads = len(loaded)
    for pattern in patterns:
        loaded.clear()
        got[pattern] = listed(pattern)
        if pattern == "scheduler.ctxswitch":
            assert 0 < len(loaded) < len(passes.tapset_files()) / 2
    total = len(passes.tapset_files())
    assert dump_loads < 2 * total
    _whole_library(monkeypatch)
    want = {"functions": dumps.functions(), "aliases": dumps.probe_aliases()}
    for pattern in patterns:
        want[pattern] = listed(pattern)
    assert got == want
    assert got["functions"] and got["aliases"] and got["syscall.*"]


# ------------------------------------------------------------------ broken tapsets
def test_a_broken_tapset_fails_only_the_scripts_that_may_link_it(tmp_path, monkeypatch):
    """Pass 1 parses only the library files the index selects, so a tapset
    with a parse error is reported (stap's 'parse error:' lines, naming the
    tapset, and pass 1 fails) only for a script that may link it; other
    scripts build as if it were not there (stap skips a broken tapset
    with a warning on every run; see README, Extending)."""
    from codegen.parser import ParseErrors
    d = library(tmp_path, monkeypatch, {"bad.stp": "function broken() { return 1 +* }\n",
                                        "good.stp": "function fine() { return 1 }\n"})
    assert passes.parse_pass(None, "probe begin { print(fine()) }\n", None).library_files == 1
    with pytest.raises(ParseErrors) as e:
        passes.parse_pass(None, "probe begin { print(broken()) }\n", None)
    text = e.value.render()
    assert text.startswith("parse error: expected literal string or number\n")
    assert f"at {d / 'bad.stp'}:1:31" in text and text.endswith("1 parse error.\n")
