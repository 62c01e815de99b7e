"""module("NAME").function(...) probes in pass 2, against both kernel
series: the module's debug .ko is extracted from the -dbg package on first
use (cached in <cache>/kernels/K/dbg-modules/), relocated, and read like
vmlinux.  tests/test_module_probes_boot.py runs them in booted guests."""
from __future__ import annotations

import re
from pathlib import Path

import pytest

from codegen.debuginfo.elf_symbols import ElfImage
from codegen.debuginfo.kernel_index import FunctionEntry
from codegen.debuginfo.module_dwarf import build_module_index, is_relocatable, section_bases
from stapbuild import kernels, listing, passes
from tests.bootlib import resolve
from codegen.elaborate import iter_nodes
from tests.pass2lib import elaborate, error


def target_infos(probe: dict) -> dict[str, dict]:
    """$name -> the resolved access of each target symbol in a probe body."""
    out: dict[str, dict] = {}

    def walk(node) -> None:  # type: ignore[no-untyped-def]
        if isinstance(node, dict):
            if node.get("k") == "TargetSymbol":
                members = ".".join(c["member"] for c in node["components"]
                                   if c.get("kind") == "member")
                out[node["name"] + ("->" + members if members else "")] = node["info"]
            for v in node.values():
                walk(v)
        elif isinstance(node, list):
            for v in node:
                walk(v)
    walk(probe["body"])
    return out


@pytest.fixture(scope="module", params=["6.1", "6.12"])
def kctx(request):
    return passes.kernel_context(resolve(request.param))


@pytest.fixture(scope="module")
def loop_ko(kctx) -> Path:
    return kernels.module_debug_file(kctx.release, "loop")


# -- the module's debug file and its relocation ------------------------------
@pytest.mark.kernel
def test_debug_module_is_cached_relocatable_dwarf(kctx, loop_ko):
    assert loop_ko == kernels.kernel_root(kctx.release) / "dbg-modules" / "loop.ko"
    with ElfImage(loop_ko) as img:
        assert is_relocatable(img)
        assert ".rela.debug_info" in img.sections
        bases = section_bases(img)
        # .text and .text.unlikely/.init.text both start at 0 in the object:
        # the synthetic layout keeps them apart.
        starts = sorted(bases.values())
        assert len(set(starts)) == len(starts) and starts[0] > 0
    # Asking again is a cache hit: no extraction, same file.
    assert kernels.module_debug_file(kctx.release, "loop") == loop_ko
    with pytest.raises(kernels.NoSuchModule):
        kernels.module_debug_file(kctx.release, "stapbuild_no_such_module")


@pytest.mark.kernel
def test_extraction_from_the_dbg_package(monkeypatch, tmp_path):
    """A fresh cache that shares the image part and the downloaded .debs:
    the real extraction runs (~50 s), clears a killed run's temp dir, and
    leaves only the finished file, the same bytes as the main cache's."""
    release = resolve("6.1")
    real = kernels.module_debug_file(release, "loop")
    root = tmp_path / "kernels" / release
    root.mkdir(parents=True)
    (root / "image").symlink_to(kernels.kernel_root(release) / "image")
    (tmp_path / "downloads").mkdir()
    (tmp_path / "downloads" / release).symlink_to(kernels.downloads_dir(release))
    stale = root / "dbg-modules" / ".tmp-loop-killed"
    stale.mkdir(parents=True)
    (stale / "half.ko").write_bytes(b"\x7fELF")
    monkeypatch.setenv("STAPBUILD_CACHE", str(tmp_path))
    got = kernels.module_debug_file(release, "loop")
    assert got == root / "dbg-modules" / "loop.ko"
    assert sorted(p.name for p in got.parent.iterdir()) == ["loop.ko"]
    assert got.read_bytes() == real.read_bytes()


@pytest.mark.kernel
def test_module_index_maps_functions_to_their_cu(loop_ko):
    idx = build_module_index(loop_ko)
    (e,) = idx.lookup("loop_configure")
    assert isinstance(e, FunctionEntry) and e.size > 100
    assert idx.cu_for_address(e.address) == e.cu_offset
    assert "loop_set_status" in idx.match("loop_set_*")
    assert not any(n.startswith("__pfx_") for n in idx.functions)


# -- probes ------------------------------------------------------------------
@pytest.mark.kernel
def test_entry_params_members_and_pp(kctx):
    ir = elaborate(kctx, 'probe module("loop").function("loop_configure") '
                         '{ printf("%d %d %d %s\\n", $lo->lo_number, $lo->lo_offset, '
                         '$config->info->lo_offset, $$parms) }')
    (p,) = ir["probes"]
    assert p["family"] == "kprobe"
    assert p["params"]["symbol"] == "loop:loop_configure"
    assert p["pp"].startswith('module("loop").function("loop_configure@drivers/block/loop.c:')
    line = int(p["pp"].rsplit(":", 1)[1].rstrip('")'))
    assert 900 < line < 1100, p["pp"]
    t = target_infos(p)
    # struct loop_device { int lo_number; loff_t lo_offset; ... }: lo is
    # the first argument (rdi), config the fourth (rcx).
    assert t["$lo->lo_number"]["base"] == {"kind": "reg", "reg": "di"}
    assert t["$lo->lo_number"]["steps"] == [] and t["$lo->lo_number"]["final"]["size"] == 4
    assert t["$lo->lo_offset"]["steps"] == [{"n": 8, "op": "add"}]
    assert t["$lo->lo_offset"]["final"] == {"kind": "load", "signed": True, "size": 8}
    # struct loop_config { __u32 fd; __u32 block_size; struct loop_info64 info; }
    # and loop_info64's lo_offset follows three __u64s.
    cfg = t["$config->info.lo_offset"]
    assert cfg["base"] == {"kind": "reg", "reg": "cx"}
    assert cfg["steps"] == [{"n": 8, "op": "add"}, {"n": 24, "op": "add"}]
    assert cfg["final"] == {"kind": "load", "signed": False, "size": 8}
    parms = t["$$parms"]
    assert parms["access"] == "vars"
    assert [(i["name"], i["base"]["reg"]) for i in parms["items"]] == \
        [("lo", "di"), ("mode", "si"), ("bdev", "dx"), ("config", "cx")]


@pytest.mark.kernel
def test_return_probe_types_return_value(kctx):
    ir = elaborate(kctx, 'probe module("loop").function("loop_set_status").return '
                         '{ printf("%d %s %d\\n", $return, $$return, @entry($info->lo_offset)) }')
    ret = [p for p in ir["probes"] if p["family"] == "kprobe"]
    (p,) = ret
    assert p["params"]["is_return"] is True
    assert p["pp"].endswith('").return') and "loop_set_status@drivers/block/loop.c:" in p["pp"]
    t = target_infos(p)
    assert t["$return"]["base"] == {"kind": "return"}
    assert t["$return"]["final"] == {"kind": "value", "signed": True, "size": 4}
    assert t["$return"]["type"] == "int"


@pytest.mark.kernel
def test_wildcard_and_listing(kctx):
    ir = elaborate(kctx, 'probe module("loop").function("loop_set_status*") { next }')
    pps = sorted(p["pp"] for p in ir["probes"])
    assert any('function("loop_set_status@' in pp for pp in pps), pps
    assert any('function("loop_set_status_old@' in pp for pp in pps), pps
    in_file = [p["pp"] for p in elaborate(
        kctx, 'probe module("loop").function("*@drivers/block/loop.c") { next }')["probes"]]
    assert len(in_file) > 20 and all("@drivers/block/loop.c:" in pp for pp in in_file), in_file
    lines = listing.list_points('module("loop").function("loop_set_status")', kctx, True)
    (line,) = lines
    assert line.startswith('module("loop").function("loop_set_status@drivers/block/loop.c:')
    assert line.endswith("$lo:struct loop_device* $info:struct loop_info64*"), line
    ret = listing.list_points('module("loop").function("loop_configure").return', kctx, True)
    assert ret[0].endswith(" $return:int"), ret


@pytest.mark.kernel
def test_unknown_module_is_a_no_match_error(kctx):
    msg = error(kctx, 'probe module("nosuch").function("x") {}')
    assert msg.startswith(f'semantic error: no match for probe point module("nosuch")'
                          f'.function("x") in kernel {kctx.release}'), msg
    assert "string 'nosuch' at t.stp:1:7" in msg, msg
    assert "        source: probe module(\"nosuch\").function(\"x\") {}\n" \
           "                      ^" in msg, msg


@pytest.mark.kernel
def test_missing_function_in_module_is_a_no_match_error(kctx):
    msg = error(kctx, 'probe module("loop").function("stapbuild_nosuch") {}')
    assert msg.startswith('semantic error: no match for probe point module("loop")'
                          f'.function("stapbuild_nosuch") in kernel {kctx.release}'), msg
    assert "string 'stapbuild_nosuch' at t.stp:1:22" in msg, msg
    # Optional: no error, no probe.
    ir = elaborate(kctx, 'probe module("loop").function("stapbuild_nosuch") ? {} '
                         'probe begin { exit() }')
    assert [p["family"] for p in ir["probes"]] == ["begin"]


@pytest.mark.kernel
def test_unknown_parameter_names_the_alternatives(kctx):
    msg = error(kctx, 'probe module("loop").function("loop_configure") { println($nosuch) }')
    assert "unable to find local 'nosuch'" in msg and "$lo $mode $bdev $config" in msg, msg


def cast_info(kctx, expr: str) -> dict:
    """The resolved access of the one @cast in `expr`, read in vfs_read."""
    (p,) = elaborate(kctx, f'probe kernel.function("vfs_read") {{ println({expr}) }}')["probes"]
    (info,) = [n["info"] for n in iter_nodes(p["body"])
               if n.get("k") == "AtOp" and n.get("op") == "cast"]
    return info


@pytest.mark.kernel
def test_cast_to_a_module_type(kctx):
    """@cast(p, "type", "module"): the layout comes from that module's
    DWARF (struct loop_device is defined only in loop.ko), in any probe;
    a ':' list is searched in order, kernel first here."""
    lo = cast_info(kctx, '@cast($file, "struct loop_device", "loop")->lo_offset')
    f = cast_info(kctx, '@cast($file, "struct file", "kernel:loop")->f_pos')
    assert lo["base"] == {"kind": "expr"} and lo["steps"] == [{"n": 8, "op": "add"}], lo
    assert lo["final"] == {"kind": "load", "signed": True, "size": 8}, lo
    assert f["final"]["size"] == 8 and f["steps"][0]["op"] == "add", f


@pytest.mark.kernel
def test_cast_module_errors(kctx):
    msg = error(kctx, 'probe begin { println(@cast(0, "struct loop_device")->lo_number) }')
    assert "type definition 'struct loop_device' not found in the kernel's debug info" in msg, msg
    msg = error(kctx, 'probe begin { println(@cast(0, "struct nosuch_t", "loop")->x) }')
    assert "type definition 'struct nosuch_t' not found in 'loop'" in msg, msg
    msg = error(kctx, 'probe begin { println(@cast(0, "struct file", "nosuchmod")->f_pos) }')
    assert msg.startswith("semantic error: @cast type lookup in module 'nosuchmod':"), msg


@pytest.mark.kernel
def test_module_statement_lines(kctx):
    """module("m").statement("fn@file:*"): one kprobe per line with code,
    each "loop:fn" plus the line's offset inside the function, with the
    variables in scope there (tests/test_module_probes_boot.py reads them)."""
    ir = elaborate(kctx, 'probe module("loop").statement("loop_configure@drivers/block/'
                         'loop.c:*") { println($$vars) }')
    probes = ir["probes"]
    assert len(probes) > 20
    for p in probes:
        assert p["params"]["symbol"] == "loop:loop_configure" and p["params"]["statement"]
        assert p["params"]["module"] == "loop"
        assert re.fullmatch(r'module\("loop"\)\.statement\("loop_configure@drivers/block/'
                            r'loop\.c:\d+"\)', p["pp"]), p["pp"]
        assert 0 <= p["params"]["offset"] < 4096     # loop_configure is ~1.5 KB
    assert min(p["params"]["offset"] for p in probes) == 0      # the first line: the entry
    assert len({p["params"]["offset"] for p in probes}) > 10


@pytest.mark.kernel
def test_module_statement_errors(kctx):
    msg = error(kctx, 'probe module("loop").statement("loop_configure@drivers/block/'
                      'loop.c:1") {}')
    assert msg.startswith("semantic error: no line records for drivers/block/loop.c:1"), msg
    msg = error(kctx, 'probe module("loop").statement(0x7fffffff) {}')
    assert 'no function contains address 0x7fffffff in module "loop"' in msg, msg
    msg = error(kctx, 'probe module("nosuch").statement("f@x.c:1") {}')
    assert 'no match for probe point module("nosuch").statement("f@x.c:1")' in msg, msg


def loop_facts(kctx):  # type: ignore[no-untyped-def]
    from codegen.kernel_facts import make_kernel_facts
    return make_kernel_facts(kctx.release, kctx.kernel, kctx.index_file).modules.facts("loop")


def text_offset(kctx, fn: str) -> int:
    """Where fn starts relative to loop.ko's .text (the module-relative
    address stap's module("m").statement(ADDR) takes)."""
    facts = loop_facts(kctx)
    return facts.function(fn)["address"] - facts.section_base(".text")


@pytest.mark.kernel
def test_module_statement_by_address(kctx):
    off = text_offset(kctx, "loop_configure")
    (p,) = elaborate(kctx, f'probe module("loop").statement({off:#x}) {{ println($lo) }}')["probes"]
    assert p["pp"] == f'module("loop").statement({off:#x})'
    assert p["params"]["symbol"] == "loop:loop_configure" and p["params"]["offset"] == 0
    msg = error(kctx, f'probe module("loop").statement({off + 1:#x}) {{}}')
    assert f"semantic error: address {off + 1:#x} does not match the beginning of a " \
           f"statement (try {off:#x} or " in msg, msg


@pytest.mark.kernel
def test_module_labels(kctx):
    ir = elaborate(kctx, 'probe module("loop").function("loop_configure").label("out_*") {}')
    labels = {p["pp"].rsplit('"', 2)[1]: p for p in ir["probes"]}
    assert {"out_putf", "out_unlock", "out_bdev"} <= set(labels), sorted(labels)
    for p in labels.values():
        assert p["params"]["symbol"] == "loop:loop_configure" and p["params"]["offset"] > 0
    msg = error(kctx, 'probe module("loop").function("loop_configure").label("nosuch") {}')
    assert 'no match for probe point module("loop").function("loop_configure")' \
           '.label("nosuch")' in msg, msg


@pytest.mark.kernel
def test_relative_statements(kctx):
    """statement("fn").relative(N): N bytes past the entry, on a statement."""
    (p,) = elaborate(kctx, 'probe kernel.statement("vfs_read").relative(0) '
                           '{ println($file) }')["probes"]
    assert p["pp"].startswith('kernel.statement("vfs_read@fs/read_write.c:')
    assert p["pp"].endswith('").relative(0x0)') and p["params"]["offset"] == 0
    msg = error(kctx, 'probe kernel.statement("vfs_read").relative(1) {}')
    assert msg.startswith("semantic error: address 0x1 does not match the beginning of a "
                          "statement (try 0x0 or 0x"), msg
    msg = error(kctx, 'probe kernel.statement("vfs_read@fs/read_write.c:1").relative(0) {}')
    assert ".relative(OFFSET) counts from a function's entry" in msg, msg
    msg = error(kctx, 'probe kernel.statement("vfs_read").relative(0x100000) {}')
    assert "offset 0x100000 is outside vfs_read" in msg, msg
    # in a module: a later statement of loop_configure, by its offset
    lines = elaborate(kctx, 'probe module("loop").statement("loop_configure@drivers/block/'
                            'loop.c:*") {}')["probes"]
    later = sorted({q["params"]["offset"] for q in lines})[2]
    (m,) = elaborate(kctx, f'probe module("loop").statement("loop_configure")'
                           f'.relative({later}) {{ println($lo) }}')["probes"]
    assert m["params"]["symbol"] == "loop:loop_configure" and m["params"]["offset"] == later


@pytest.mark.kernel
def test_init_functions_are_left_out(kctx):
    """A module's .init.text (init_module, __init functions) is freed once
    it has loaded: wildcards leave those functions out, naming one says why."""
    ir = elaborate(kctx, 'probe module("loop").function("*@drivers/block/loop.c") {}')
    names = {p["pp"].split('"')[3].split("@")[0] for p in ir["probes"]}
    assert "loop_configure" in names and "loop_exit" in names
    assert not {"loop_init", "init_module"} & names
    msg = error(kctx, 'probe module("loop").function("loop_init") {}')
    assert "(loop_init is in .init.text, freed once the module has loaded)" in msg, msg
