"""Issue 11: kernel.statement(ADDR)[.absolute], kernel.statement("fn@file:N")
(N, N-M, *, +N, .nearest), kernel.function("fn@file:N"), .label("L"),
.callees/.callee("g"), $locals at a statement, and their -l/-L listing.

Pure logic first (line-spec parsing, line-table queries), then pass 2
against both kernels' DWARF.  tests/test_statement_probes_boot.py runs
them booted."""
from __future__ import annotations

import subprocess
import sys

import pytest

from codegen import ast
from codegen.debuginfo.statements import LineTable, near_lines
from codegen.errors import StapError, StapErrors
from codegen.probes import _line_wanted, _split_lines
from stapbuild import passes
from tests.bootlib import resolve


# -- pure: line specifications ------------------------------------------------
def _comp(text: str) -> ast.Component:
    return ast.Component("statement", ast.String(text, loc=None), loc=None)  # type: ignore[call-arg]


@pytest.mark.parametrize("text,want", [
    ("fs/read_write.c", ("fs/read_write.c", None)),
    ("fs/read_write.c:12", ("fs/read_write.c", ("list", [(12, 12)]))),
    ("fs/read_write.c:12-15", ("fs/read_write.c", ("list", [(12, 15)]))),
    ("fs/read_write.c:3,12-15", ("fs/read_write.c", ("list", [(3, 3), (12, 15)]))),
    ("fs/read_write.c:*", ("fs/read_write.c", ("all",))),
    ("fs/read_write.c+4", ("fs/read_write.c", ("rel", 4))),
])
def test_split_lines(text, want):
    try:
        c = _comp(text)
    except TypeError:
        pytest.skip("ast.Component signature differs")
    assert _split_lines(text, c) == want


@pytest.mark.parametrize("bad", ["f.c:x", "f.c:5-", "f.c:9-3", "f.c+x", "f.c:4*"])
def test_split_lines_rejects(bad):
    try:
        c = _comp(bad)
    except TypeError:
        pytest.skip("ast.Component signature differs")
    with pytest.raises(StapError, match="invalid line specification"):
        _split_lines(bad, c)


def test_line_wanted():
    info = {"decl_line": 10}
    assert _line_wanted(14, ("rel", 4), info)
    assert not _line_wanted(13, ("rel", 4), info)
    assert _line_wanted(7, ("all",), info)
    assert _line_wanted(12, ("list", [(3, 3), (11, 12)]), info)
    assert not _line_wanted(4, ("list", [(3, 3), (11, 12)]), info)


# -- pure: line-table queries ---------------------------------------------------
ROWS = {"files": [None, "a.c", "include/h.h"], "rows": [
    [0x100, 1, 10, 1], [0x104, 1, 11, 1], [0x104, 2, 5, 1], [0x108, 1, 11, 0],
    [0x10c, 1, 13, 1], [0x110, 1, 11, 1], [0x118, 1, 14, 1], [0x120, 1, 14, 2],
    [0x200, 1, 40, 1], [0x210, 1, 41, 2]]}


def test_row_starts_and_nearest():
    lt = LineTable(ROWS)
    assert lt.is_row_start(0x104) and lt.is_row_start(0x118)
    assert not lt.is_row_start(0x105)
    assert not lt.is_row_start(0x120)         # end of sequence: no row starts there
    assert lt.nearest(0x105, 0x100, 0x120) == (0x104, 0x108)
    assert lt.nearest(0x119, 0x100, 0x120) == (0x118, None)   # limited to the function
    assert lt.nearest(0x104, 0x100, 0x120) == (0x100, 0x108)


def test_function_lines_lowest_stmt_address_of_own_file():
    lt = LineTable(ROWS)
    got = lt.function_lines(0x100, 0x120, "a.c")
    # 11 first at 0x104 (0x110 is later, 0x108 is not is_stmt); the header's
    # line 5 is not a.c's; line 40 is outside the function.
    assert got == {10: 0x100, 11: 0x104, 13: 0x10c, 14: 0x118}
    assert lt.line_at(0x10e) == ("a.c", 13)


def test_stack_locations_are_rebased_on_the_cfa_at_the_pc():
    from codegen.debuginfo.statements import _stack_location
    cfa_frame = {"kind": "cfa"}
    # DW_OP_fbreg(-56) with CFA = sp + 56 at the PC: the slot at sp + 0,
    # which the translator's "cfa" base spells sp + 8 + (-8).
    assert _stack_location({"kind": "fbreg", "offset": -56}, cfa_frame, ("sp", 56)) == \
        {"kind": "fbreg", "frame_base": "cfa", "offset": -8}
    # CFA = bp + 16 (frame pointer): bp + 16 + (-24 - 16 + 16)
    assert _stack_location({"kind": "fbreg", "offset": -24}, cfa_frame, ("bp", 16)) == \
        {"kind": "bpcfa", "offset": -24}
    # DW_OP_breg7(rsp) + 16
    assert _stack_location({"kind": "breg", "reg": "sp", "offset": 16}, None, None) == \
        {"kind": "fbreg", "frame_base": "cfa", "offset": 8}
    # no CFA rule for the PC: cannot be located (an error at use, not a guess)
    assert _stack_location({"kind": "fbreg", "offset": -8}, cfa_frame, None) == \
        {"kind": "unknown"}
    assert _stack_location({"kind": "reg", "reg": "bx"}, cfa_frame, None) == \
        {"kind": "reg", "reg": "bx"}


def ksys_read_line_with_stack_pos(kctx):
    """A line of ksys_read where the local `pos` lives in a stack slot and
    ppos already points at it (just before the call to vfs_read)."""
    from codegen.debuginfo import statements
    f = facts(kctx)
    info = f.function("ksys_read")
    lt = statements.line_table(f, info["cu_offset"])
    lines = lt.function_lines(info["address"], info["address"] + info["size"],
                              info["decl_file"])
    for ln in sorted(x for x in lines if x >= info["decl_line"]):
        scope = {v["name"]: v["entry_location"] for v in statements.scope_at(f, info, lines[ln])}
        if scope.get("pos", {}).get("frame_base") == "cfa" and \
                scope.get("ppos", {}).get("kind") == "reg":
            return info, ln
    raise AssertionError("no line of ksys_read has pos on the stack and ppos in a register")


@pytest.mark.kernel
def test_stack_local_resolves(kctx):
    info, ln = ksys_read_line_with_stack_pos(kctx)
    (d,) = points(kctx, f'kernel.statement("ksys_read@{info["decl_file"]}:{ln}")')
    pos = {p["name"]: p for p in d.function["params"]}["pos"]
    assert pos["entry_location"]["kind"] == "fbreg" and pos["type"]["name"] == "loff_t"


def test_near_lines():
    assert near_lines({10: 1, 13: 2, 14: 3}, 12) == (10, 13)
    assert near_lines({10: 1}, 3) == (None, 10)


# -- pass 2 on both kernels ---------------------------------------------------
@pytest.fixture(scope="module", params=["6.1", "6.12"])
def kctx(request):
    return passes.kernel_context(resolve(request.param), frozenset({"headers", "dbg"}))


def facts(kctx):
    from codegen.kernel_facts import make_kernel_facts
    return make_kernel_facts(kctx.release, kctx.kernel, kctx.index_file)


def resolver(kctx):
    from codegen.probes import ProbeResolver
    return ProbeResolver([], facts(kctx))


def points(kctx, text: str):
    from codegen.parser import parse_file
    from codegen.errors import register_source
    src = f"probe {text} {{}}\n"
    register_source("<t>", src)
    probe = parse_file("<t>", src).probes[0]
    return resolver(kctx).resolve(probe)


def vfs_read_line_with_reg_count(kctx):
    """A line of vfs_read (after its entry line) where $count is in a register."""
    from codegen.debuginfo import statements
    f = facts(kctx)
    info = f.function("vfs_read")
    lt = statements.line_table(f, info["cu_offset"])
    lines = lt.function_lines(info["address"], info["address"] + info["size"],
                              info["decl_file"])
    for ln in sorted(lines):
        if ln <= info["decl_line"] + 1:
            continue
        scope = {v["name"]: v for v in statements.scope_at(f, info, lines[ln])}
        if scope.get("count", {}).get("entry_location", {}).get("kind") == "reg":
            return info, ln, lines[ln], lines
    raise AssertionError("no line of vfs_read holds count in a register")


@pytest.mark.kernel
def test_statement_line_resolves_to_symbol_offset(kctx):
    info, ln, addr, _ = vfs_read_line_with_reg_count(kctx)
    (d,) = points(kctx, f'kernel.statement("vfs_read@{info["decl_file"]}:{ln}")')
    assert d.pp == f'kernel.statement("vfs_read@{info["decl_file"]}:{ln}")'
    assert d.params["symbol"] == "vfs_read" and d.params["offset"] == addr - info["address"]
    assert d.params["offset"] > 0
    assert "count" in {p["name"] for p in d.function["params"]}


@pytest.mark.kernel
def test_statement_address_checked_against_rows(kctx):
    info, ln, addr, _ = vfs_read_line_with_reg_count(kctx)
    (d,) = points(kctx, f"kernel.statement({addr:#x})")
    assert d.pp == f"kernel.statement({addr:#x})"
    assert d.params["offset"] == addr - info["address"]
    # .absolute takes the address as it is
    (d,) = points(kctx, f"kernel.statement({addr + 1:#x}).absolute")
    assert d.params["offset"] == addr + 1 - info["address"]
    with pytest.raises(StapError) as ei:
        points(kctx, f"kernel.statement({addr + 1:#x})")
    msg = ei.value.render()
    assert f"address {addr + 1:#x} does not match the beginning of a statement (try {addr:#x} or 0x" in msg


@pytest.mark.kernel
def test_line_ranges_star_relative_and_nearest(kctx):
    info, ln, addr, lines = vfs_read_line_with_reg_count(kctx)
    f = info["decl_file"]
    every = points(kctx, f'kernel.statement("vfs_read@{f}:*")')
    assert len(every) == len([x for x in lines if x >= info["decl_line"]]) >= 5
    two = points(kctx, f'kernel.statement("vfs_read@{f}:{ln}-{ln + 3}")')
    assert 1 <= len(two) <= 4
    rel = points(kctx, f'kernel.statement("vfs_read@{f}+{ln - info["decl_line"]}")')
    assert [d.pp for d in rel] == [f'kernel.statement("vfs_read@{f}:{ln}")']
    missing = next(n for n in range(info["decl_line"] + 1, ln + 50) if n not in lines)
    with pytest.raises(StapError) as ei:
        points(kctx, f'kernel.statement("vfs_read@{f}:{missing}")')
    assert f"no line records for {f}:{missing} [man error::dwarf] (try :" in ei.value.render()
    (near,) = points(kctx, f'kernel.statement("vfs_read@{f}:{missing}").nearest')
    assert near.pp.startswith(f'kernel.statement("vfs_read@{f}:')
    # kernel.function("fn@file:N"): the function that has records for N, at its entry
    (fd,) = points(kctx, f'kernel.function("vfs_read@{f}:{ln}")')
    assert fd.params.get("offset", 0) == 0 and fd.pp.startswith('kernel.function("vfs_read@')
    with pytest.raises(StapError, match="no line records"):
        points(kctx, f'kernel.function("vfs_read@{f}:{missing}")')


@pytest.mark.kernel
def test_label_and_callees(kctx):
    labels = points(kctx, 'kernel.function("seq_read_iter").label("Done")')
    assert [d.pp for d in labels] == [
        f'kernel.function("seq_read_iter@fs/seq_file.c:{labels[0].function["decl_line"]}")'
        '.label("Done")']
    assert labels[0].params["offset"] > 0
    with pytest.raises(StapError, match="no match"):
        points(kctx, 'kernel.function("seq_read_iter").label("no_such_label")')
    callees = points(kctx, 'kernel.function("vfs_read").callees')
    names = {d.params["symbol"] for d in callees}
    assert "rw_verify_area" in names, names
    (one,) = points(kctx, 'kernel.function("vfs_read").callee("rw_verify_*")')
    assert '.callee("rw_verify_area@fs/read_write.c:' in one.pp


@pytest.mark.kernel
def test_optimized_out_local_names_variable_and_pc(kctx):
    from codegen.debuginfo import statements
    f = facts(kctx)
    info = f.function("vfs_read")
    lines = statements.line_table(f, info["cu_offset"]).function_lines(
        info["address"], info["address"] + info["size"], info["decl_file"])
    for ln in sorted(x for x in lines if x >= info["decl_line"]):
        scope = {v["name"]: v for v in statements.scope_at(f, info, lines[ln])}
        if scope.get("ret", {}).get("entry_location", {}).get("kind") == "optimized_out":
            break
    else:
        pytest.skip("ret is never optimized out at a line start here")
    r = subprocess.run([sys.executable, "-m", "stapbuild.cli", "-p2", "-r", kctx.release, "-e",
                        f'probe kernel.statement("vfs_read@{info["decl_file"]}:{ln}") '
                        '{ print($ret) }'], capture_output=True, text=True, timeout=300)
    assert r.returncode != 0 and "Traceback" not in r.stderr
    assert f"'$ret' of 'vfs_read' is optimized out at pc {lines[ln]:#x}" in r.stderr
    assert "<input>:1:" in r.stderr and "^" in r.stderr


@pytest.mark.kernel
def test_bad_statement_inputs_are_stap_errors():
    rel = resolve("6.1")
    for script, want in [
        ('probe kernel.statement("vfs_read@fs/read_write.c:1") {}',
         "semantic error: no line records for fs/read_write.c:1 [man error::dwarf]"),
        ('probe kernel.function("vfs_read").label("nope") {}', "semantic error: no match"),
        ('probe kernel.statement("vfs_read@fs/read_write.c:x") {}',
         "semantic error: invalid line specification ':x'"),
    ]:
        r = subprocess.run([sys.executable, "-m", "stapbuild.cli", "-p2", "-r", rel, "-e", script],
                           capture_output=True, text=True, timeout=300)
        assert r.returncode != 0, script
        assert "Traceback" not in r.stderr
        assert r.stderr.startswith(want), r.stderr
        assert "<input>:1:" in r.stderr and "source: " + script in r.stderr
        assert "Pass 2: analysis failed." in r.stderr


@pytest.mark.kernel
def test_listing_statement_forms(kctx):
    from stapbuild.listing import list_points
    info, ln, addr, _ = vfs_read_line_with_reg_count(kctx)
    got = list_points(f'kernel.statement("vfs_read@{info["decl_file"]}:{ln}")', kctx, True)
    assert len(got) == 1
    assert got[0].startswith(f'kernel.statement("vfs_read@{info["decl_file"]}:{ln}") ')
    assert "$count:size_t" in got[0]
    labels = list_points('kernel.function("seq_read_iter").label("*")', kctx, False)
    assert any(x.endswith('.label("Done")') for x in labels)
    callees = list_points('kernel.function("vfs_read").callees', kctx, False)
    assert any('.callee("rw_verify_area@fs/read_write.c:' in x for x in callees)
