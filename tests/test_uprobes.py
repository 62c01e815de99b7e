"""process(...) probes without booting (issue 9): ELF offsets, prologue
skipping, library lookup, pass 2 resolution and its errors, and the C that
pass 3 emits.  tests/test_uprobes_boot.py runs them booted."""
from __future__ import annotations

import os
import re
import subprocess
import time
from pathlib import Path

import pytest

from codegen.debuginfo.user_elf import (UserBinary, UserElfError, find_executable,
                                        ld_so_conf_dirs, resolve_library)
from codegen.translate import translate
from stapbuild import passes
from tests.bootlib import ROOT, resolve
from tests.pass2lib import elaborate, error

DEMO_SRC = ROOT / "tests" / "c" / "uprobe_demo.c"


def _line_of(text: str) -> int:
    return DEMO_SRC.read_text().splitlines().index(text) + 1


def _gcc(out: Path, *flags: str) -> Path:
    subprocess.run(["gcc", *flags, "-o", str(out), str(DEMO_SRC)], check=True, cwd=ROOT)
    return out


@pytest.fixture(scope="module")
def demo(tmp_path_factory) -> Path:
    return _gcc(tmp_path_factory.mktemp("uprobes") / "uprobe_demo", "-g")


def _nm(path: Path) -> dict[str, int]:
    out = subprocess.run(["nm", str(path)], check=True, capture_output=True, text=True).stdout
    return {parts[2]: int(parts[0], 16) for parts in (l.split() for l in out.splitlines())
            if len(parts) == 3 and parts[1] in "Tt"}


def _load_segments(path: Path) -> list[tuple[int, int, int]]:
    """(vaddr, offset, filesz) of each LOAD segment, from readelf."""
    out = subprocess.run(["readelf", "-lW", str(path)], check=True, capture_output=True,
                         text=True).stdout
    segs = []
    for line in out.splitlines():
        f = line.split()
        if f and f[0] == "LOAD":
            segs.append((int(f[2], 16), int(f[1], 16), int(f[4], 16)))
    return segs


# -- ELF ---------------------------------------------------------------------
@pytest.mark.parametrize("flags", [["-g"], ["-g", "-no-pie"]])
def test_symbol_offsets_follow_the_load_segments(tmp_path, flags):
    binary = _gcc(tmp_path / "demo", *flags)
    nm = _nm(binary)
    with UserBinary(str(binary)) as b:
        syms = b.symbols()
        for name in ("add", "point_sum", "greet", "main"):
            assert syms[name].value == nm[name]
            (vaddr, off, _), = [s for s in _load_segments(binary)
                                if s[0] <= nm[name] < s[0] + s[2]]
            assert syms[name].offset == nm[name] - vaddr + off
            # the bytes there are the function's first instruction bytes
            with open(binary, "rb") as f:
                f.seek(syms[name].offset)
                assert f.read(4) == b.read_at(nm[name], 4)
    if "-no-pie" in flags:
        # link address 0x40xxxx, file offset much smaller: really converted
        assert syms["add"].value - syms["add"].offset == 0x400000


def test_prologue_skipped_at_O0_and_params_found_from_the_frame_pointer(demo):
    with UserBinary(str(demo)) as b:
        f = b.function("add")
        assert f.prologue_skipped
        assert b.read_at(f.symbol.value, 4) == bytes.fromhex("554889e5")
        # the second line-table row: after the two argument stores
        rows = subprocess.run(["objdump", "--dwarf=decodedline", str(demo)],
                              capture_output=True, text=True, check=True).stdout
        addrs = [int(m.group(1), 16) for m in re.finditer(r"uprobe_demo\.c\s+\d+\s+(0x[0-9a-f]+)",
                                                           rows)]
        after = sorted(a for a in addrs if a > f.symbol.value)[0]
        assert f.probe_offset == b.file_offset(after)
        assert [(p.name, p.type.name, p.entry_location) for p in f.info.params] == [
            ("a", "int", {"kind": "bpcfa", "offset": -20}),
            ("b", "int", {"kind": "bpcfa", "offset": -24})]
        assert f.info.return_type.name == "int"
        assert f.info.decl_line == _line_of("int add(int a, int b)")
        assert f.info.decl_file == "tests/c/uprobe_demo.c"


def test_optimised_code_is_probed_at_entry_with_register_params(tmp_path):
    binary = _gcc(tmp_path / "demo", "-g", "-O2", "-fno-inline")
    with UserBinary(str(binary)) as b:
        f = b.function("point_sum")
        assert not f.prologue_skipped and f.probe_offset == f.symbol.offset
        locs = {p.name: p.entry_location for p in f.info.params}
        assert locs["p"]["kind"] == "reg" and locs["p"]["reg"] == "di"
        assert locs["scale"]["kind"] == "reg" and locs["scale"]["reg"] == "si"


def test_wildcards_and_stripped_symbols(demo, tmp_path):
    with UserBinary(str(demo)) as b:
        assert b.match("gr*") == ["greet"]
        assert b.match("add") == ["add"] and b.match("nope") == []
    stripped = tmp_path / "stripped"
    subprocess.run(["strip", "-o", str(stripped), str(demo)], check=True)
    with UserBinary(str(stripped)) as b:
        assert "add" not in b.symbols()          # no .symtab, and add is not exported
    libc = resolve_library(UserBinary(str(demo)), "libc")[0]
    with UserBinary(libc) as b:      # .dynsym of a library without debug info
        f = b.function("malloc")
        assert f.info is None and f.probe_offset == f.symbol.offset


def test_not_an_elf(tmp_path):
    p = tmp_path / "x.sh"
    p.write_text("#!/bin/sh\n")
    with pytest.raises(UserElfError, match="not an ELF"):
        UserBinary(str(p))


def test_library_lookup(demo, tmp_path):
    b = UserBinary(str(demo))
    assert b.needed() == ["libc.so.6"]
    fake = tmp_path / "libs"
    fake.mkdir()
    real = tmp_path / "libc-real.so"
    real.write_bytes(b"")
    (fake / "libc.so.6").symlink_to(real)
    for name in ("libc", "libc.so.6", "libc.so*"):
        assert resolve_library(b, name, search=[str(fake)]) == [str(real)]
    assert resolve_library(b, "libm", search=[str(fake)]) == []
    assert resolve_library(b, str(real)) == [str(real)]
    assert resolve_library(b, "/no/such/lib.so") == []
    assert find_executable("sh") is not None and find_executable("/x/y") == "/x/y"


def test_ld_so_conf_includes(tmp_path):
    (tmp_path / "conf.d").mkdir()
    (tmp_path / "conf.d" / "a.conf").write_text("/opt/a/lib  # comment\n")
    (tmp_path / "conf.d" / "b.conf").write_text("/opt/b/lib\n")
    (tmp_path / "ld.so.conf").write_text("include conf.d/*.conf\n/usr/local/lib\n")
    assert ld_so_conf_dirs(str(tmp_path / "ld.so.conf")) == [
        "/opt/a/lib", "/opt/b/lib", "/usr/local/lib"]


# -- pass 2 and 3 -------------------------------------------------------------
@pytest.fixture(scope="module")
def kctx():
    return passes.kernel_context(resolve("6.1"))


def _walk(node):  # type: ignore[no-untyped-def]
    if isinstance(node, dict):
        yield node
        for v in node.values():
            yield from _walk(v)
    elif isinstance(node, list):
        for v in node:
            yield from _walk(v)


def test_ir_and_c(kctx, demo):
    ir = elaborate(kctx, f'''
probe process("{demo}").function("add") {{ printf("%d %d\\n", $a, $b) }}
probe process("{demo}").function("point_sum") {{ println($p->y) }}
probe process("{demo}").function("point_sum").return {{ println($return) }}
probe process("{demo}").library("libc.so.6").function("mallo[c]") {{ println(ulong_arg(1)) }}
''')
    ps = {p["pp"]: p for p in ir["probes"]}
    with UserBinary(str(demo)) as b:
        add = b.function("add")
        ps_off = b.function("point_sum")
    add_line = _line_of("int add(int a, int b)")
    sum_line = _line_of("long point_sum(struct point *p, int scale)")
    call = ps[f'process("{demo}").function("add@tests/c/uprobe_demo.c:{add_line}")']
    assert call["family"] == "uprobe" and call["params"]["offset"] == add.probe_offset
    ret = ps[f'process("{demo}").function("point_sum@tests/c/uprobe_demo.c:{sum_line}").return']
    assert ret["params"]["is_return"] and ret["params"]["offset"] == ps_off.symbol.offset
    lib = [p for p in ir["probes"] if ".library(" in p["pp"]][0]
    assert lib["params"]["exe"] == str(demo) and lib["params"]["path"].endswith("libc.so.6")
    chains = [n["info"] for n in _walk(call["body"])
              if isinstance(n.get("info"), dict) and n["info"].get("access") == "chain"]
    assert [c["base"] for c in chains] == [{"kind": "bpcfa", "offset": -20},
                                            {"kind": "bpcfa", "offset": -24}]
    assert all(c["user"] for c in chains)
    c = translate(ir, "stap_t")
    assert "static struct stp_uprobe_desc stpg_uprobes[]" in c
    assert f".offset = {add.probe_offset}," in c
    # $p->y: a nofault user read, never a kernel one, from the frame pointer
    assert "stp_utarget_read(c" in c and "c->regs->bp + 16 + (-24)" in c
    assert ".exe_path = " in c


@pytest.mark.parametrize("probe, message", [
    ('process("@BIN@").function("nosuch")',
     r'no match for probe point process\(".*"\)\.function\("nosuch"\)'),
    ('process("/no/such/prog").function("f")', "cannot find executable '/no/such/prog'"),
    ('process("@BIN@").library("libnothere").function("f")',
     r"cannot find library 'libnothere' for .* \(DT_NEEDED: libc.so.6\)"),
    ('process("@BIN@").funktion("add")', "probe point mismatch"),
    ('process("@BIN@").function("add").retrun', "probe point mismatch"),
    ('process(999999999).function("add")',
     r"cannot find executable of process 999999999: no such process"),
    ('process(-3).begin', r"process\(-3\): a process ID is a positive number"),
    ('process("@BIN@").thread.end.now', "probe point mismatch"),
    ('process.syscall.entry', "probe point mismatch"),
    ('process.begin.thread', "probe point mismatch"),
    ('process.thread.middle', "probe point mismatch"),
    ('process.begin(3)', "probe point mismatch"),
])
def test_bad_probe_points_are_semantic_errors(kctx, demo, probe, message):
    text = f"probe {probe.replace('@BIN@', str(demo))} {{ }}\n"
    out = error(kctx, text)
    assert out.startswith("semantic error: "), out
    assert re.search(message, out), out
    assert "t.stp:1:" in out and "source: probe process" in out and "^" in out, out
    assert "Traceback" not in out


def test_target_variable_errors(kctx, demo):
    out = error(kctx, f'probe process("{demo}").function("add").return {{ println($nope) }}')
    assert f"unable to find local 'nope' in function 'add' of {demo}" in out, out
    out = error(kctx, f'probe process("{demo}").plt("fork").return {{ println($x) }}')
    assert "has no debug info for 'fork'" in out, out
    out = error(kctx, f'probe process("{demo}").library("libc").function("malloc") '
                      f'{{ println($bytes) }}')
    assert "has no debug info for 'malloc'" in out and "^" in out, out
    out = error(kctx, f'probe process("{demo}").function("add") {{ println($nope) }}')
    assert f"unable to find local 'nope' in function 'add' of {demo}" in out, out
    assert "$a $b" in out, out


def _return_with_params(ir: dict, name: str) -> tuple[dict, dict]:
    ret = [p for p in ir["probes"] if f'function("{name}@' in p["pp"]
           and p["family"] == "uprobe"][0]
    entry = [p for p in ir["probes"] if p["family"] == "kretprobe_entry"
             and p["name"] == ret["params"]["entry_probe"]][0]
    return ret, entry


def test_params_in_return_probes_are_saved_at_entry(kctx, demo, tmp_path):
    ir = elaborate(kctx, f'''
probe process("{demo}").function("point_sum").return {{
    printf("%d %d %s %d %d\\n", $p->x, $scale, $$parms, @entry($scale * 2), $return)
}}
''')
    ret, entry = _return_with_params(ir, "point_sum")
    with UserBinary(str(demo)) as b:
        f = b.function("point_sum")
    # the uretprobe hooks the entry; the values are read at the .call point,
    # after the prologue, where the CFA is bp + 16
    assert ret["params"]["offset"] == f.symbol.offset
    assert ret["params"]["entry_offset"] == f.probe_offset != f.symbol.offset
    assert ret["params"]["entry_bp"] is True
    # $p->x, $scale and @entry(...) are longs, $$parms a string
    assert ret["params"]["entry_data_size"] == "(24 + 1 * MAXSTRINGLEN)"
    loads = [n["info"] for n in _walk(ret["body"])
             if isinstance(n.get("info"), dict) and n["info"].get("access") == "entry_load"]
    assert len(loads) == 4 and all(i["uentry"] for i in loads)
    saves = [n["info"] for n in _walk(entry["body"])
             if isinstance(n.get("info"), dict) and n["info"].get("access") == "entry_save"]
    assert len(saves) == 4
    # the chain read at entry is still a nofault user read
    assert all(n["info"]["user"] for n in _walk(entry["body"])
               if isinstance(n.get("info"), dict) and n["info"].get("access") == "chain")
    c = translate(ir, "stap_t")
    assert f".entry_offset = {f.probe_offset}, .entry_bp = true" in c
    assert "stp_uentry_data()" in c and "c->ri->data" not in c
    # optimised code: read at the entry itself (CFA = sp + 8), from registers
    o2 = _gcc(tmp_path / "demo_o2", "-g", "-O2", "-fno-inline")
    ir = elaborate(kctx, f'probe process("{o2}").function("point_sum").return '
                         f'{{ println($scale + $return) }}')
    ret, _ = _return_with_params(ir, "point_sum")
    with UserBinary(str(o2)) as b:
        f = b.function("point_sum")
    assert ret["params"]["entry_offset"] == ret["params"]["offset"] == f.symbol.offset
    assert ret["params"]["entry_bp"] is False
    # a .return probe that reads no parameter saves nothing
    ir = elaborate(kctx, f'probe process("{demo}").function("add").return '
                         f'{{ println($return) }}')
    assert "entry_probe" not in ir["probes"][0]["params"]
    assert not [p for p in ir["probes"] if p["family"] == "kretprobe_entry"]


def test_lifecycle_probes(kctx, demo):
    ir = elaborate(kctx, f'''
probe process.begin, process.thread.begin, process.end, process.thread.end {{ println(pid()) }}
probe process("{demo}").begin {{ println(pid()) }}
probe process("{demo}").end {{ println(pid()) }}
probe process("{demo}").thread.begin, process("{demo}").thread.end {{ println(tid()) }}
''')
    got = [(p["pp"], p["family"], p["params"]) for p in ir["probes"]]
    assert got == [
        ("process.begin", "procevent", {"kind": "begin", "exe": None}),
        ("process.thread.begin", "procevent", {"kind": "thread.begin", "exe": None}),
        ("process.end", "procevent", {"kind": "end", "exe": None}),
        ("process.thread.end", "procevent", {"kind": "thread.end", "exe": None}),
        (f'process("{demo}").begin', "procevent", {"kind": "begin", "exe": str(demo)}),
        (f'process("{demo}").end', "procevent", {"kind": "end", "exe": str(demo)}),
        (f'process("{demo}").thread.begin', "procevent",
         {"kind": "thread.begin", "exe": str(demo)}),
        (f'process("{demo}").thread.end', "procevent", {"kind": "thread.end", "exe": str(demo)}),
    ]
    c = translate(ir, "stap_t")
    assert "static struct stp_proc_desc stpg_procs[]" in c
    assert c.count(".kind = STP_PROC_BEGIN") == 2 and "STP_PROC_THREAD_END" in c
    assert c.count(".kind = STP_PROC_END") == 2
    assert f'.exe_path = "{demo}", .pid = 0, .kind = STP_PROC_END' in c
    assert f'.exe_path = "{demo}", .pid = 0, .kind = STP_PROC_THREAD_BEGIN' in c
    assert f'.exe_path = "{demo}", .pid = 0, .kind = STP_PROC_THREAD_END' in c


def test_rebuilt_program_is_elaborated_again(kctx, tmp_path):
    """The pass-2 cache key covers the script, not the program: a rebuilt
    program at the same path must not reuse the old offsets."""
    binary = _gcc(tmp_path / "demo", "-g")
    text = f'probe process("{binary}").function("point_sum") {{ println($scale) }}'

    def offset() -> int:
        (p,) = elaborate(kctx, text)["probes"]
        return p["params"]["offset"]

    with UserBinary(str(binary)) as b:
        first = b.function("point_sum").probe_offset
    assert offset() == first
    _gcc(binary, "-g", "-O2", "-fno-inline")
    with UserBinary(str(binary)) as b:
        second = b.function("point_sum").probe_offset
    assert second != first and offset() == second
    _gcc(binary, "-g")          # back to the first build: the first IR again
    assert offset() == first


# -- SDT ----------------------------------------------------------------------
SDT_SRC = ROOT / "tests" / "c" / "uprobe_sdt.c"


def test_sdt_argument_forms():
    from codegen.debuginfo.sdt import SdtError, parse_arg, parse_args
    got = [(a.size, a.signed, a.kind, a.reg, a.value, a.symbol)
           for a in parse_args("-4@%eax 8@%r9 1@%dil -2@$-7 4@-12(%rbp) "
                               "8@0x10(%rsp) -8@counter+8(%rip) 8@%r10d")]
    assert got == [(4, True, "reg", "ax", 0, None), (8, False, "reg", "r9", 0, None),
                   (1, False, "reg", "di", 0, None), (2, True, "const", None, -7, None),
                   (4, False, "mem", "bp", -12, None), (8, False, "mem", "sp", 16, None),
                   (8, True, "rip", None, 8, "counter"), (8, False, "reg", "r10", 0, None)]
    for bad in ("3@%eax", "8@%xmm0", "8@(%rax,%rbx,2)"):
        with pytest.raises(SdtError):
            parse_arg(bad)
    assert parse_args("") == []


@pytest.mark.parametrize("opt", ["-O2", "-O0"])
def test_sdt_notes_and_semaphores(tmp_path, opt):
    from codegen.debuginfo.sdt import read_notes
    binary = tmp_path / "sdt"
    subprocess.run(["gcc", "-g", opt, "-o", str(binary), str(SDT_SRC)], check=True, cwd=ROOT)
    out = subprocess.run(["readelf", "-nW", str(binary)], check=True, capture_output=True,
                         text=True).stdout
    want = re.findall(r"Name: (\w+)\s+Location: (0x[0-9a-f]+), Base: 0x[0-9a-f]+, "
                      r"Semaphore: (0x[0-9a-f]+)\s+Arguments: ([^\n]*)", out)
    with UserBinary(str(binary)) as b:
        notes = read_notes(b.elf)
        assert [(n.name, n.pc, n.semaphore, n.arg_text) for n in notes] == [
            (name, int(loc, 16), int(sem, 16), args) for name, loc, sem, args in want]
        assert {n.provider for n in notes} == {"demo"}
        sems = {s.name: s["st_value"] for s in b.elf.get_section_by_name(".symtab")
                .iter_symbols() if s.name.endswith("_semaphore")}
        assert [n.semaphore for n in notes] == [sems["demo_tick_semaphore"],
                                                sems["demo_done_semaphore"]]
        assert all(len(n.args) == (3 if n.name == "tick" else 2) for n in notes)
        if opt == "-O0":
            assert any(a.kind == "mem" and a.reg == "bp" for n in notes for a in n.args)


def test_sdt_probe_resolution(kctx, tmp_path):
    binary = tmp_path / "sdt"
    subprocess.run(["gcc", "-g", "-O0", "-o", str(binary), str(SDT_SRC)], check=True, cwd=ROOT)
    ir = elaborate(kctx, f'''
probe process("{binary}").mark("t*") {{ printf("%d %d %s\\n", $arg1, $arg2, $$parms) }}
probe process("{binary}").provider("demo").mark("done") {{ println($arg1) }}
''')
    tick, done = ir["probes"]
    assert tick["pp"] == f'process("{binary}").provider("demo").mark("tick")'
    with UserBinary(str(binary)) as b:
        from codegen.debuginfo.sdt import read_notes
        notes = {n.name: n for n in read_notes(b.elf)}
        assert tick["params"]["offset"] == b.file_offset(notes["tick"].pc)
        assert done["params"]["ref_ctr_offset"] == b.file_offset(notes["done"].semaphore)
    c = translate(ir, "stap_t")
    assert f".ref_ctr_offset = {done['params']['ref_ctr_offset']}," in c
    # -4@-12(%rbp): a signed 4-byte user read at bp - 12
    assert re.search(r"(f->t\d+) = \(stp_long\)c->regs->bp;\s+\1 \+= -12;\s+.*\s+"
                     r"if \(!stp_utarget_read\(c, \(u64\)\1, 4, true", c), c
    err = error(kctx, f'probe process("{binary}").mark("tick") {{ println($arg4) }}')
    assert "unable to find local 'arg4' in marker 'tick' (it has 3 arguments" in err, err
    err = error(kctx, f'probe process("{binary}").mark("nosuch") {{ }}')
    assert "semantic error: no match for probe point" in err and '.mark("nosuch")' in err
    assert "^" in err


# -- PLT ----------------------------------------------------------------------
def test_plt_stubs_match_objdump(demo):
    """Each stub is matched to its import through the GOT slot it jumps
    through; objdump names the stubs from the same relocations."""
    out = subprocess.run(["objdump", "-d", "-j", ".plt", str(demo)], check=True,
                         capture_output=True, text=True).stdout
    want = {m.group(2): int(m.group(1), 16)
            for m in re.finditer(r"^([0-9a-f]+) <(\w+)@plt>:", out, re.M)}
    with UserBinary(str(demo)) as b:
        assert b.plt_entries() == want
    assert {"malloc", "printf", "fork", "free"} <= set(want)


def test_plt_probe_points(kctx, demo):
    ir = elaborate(kctx, f'''
probe process("{demo}").plt("mall*") {{ println($$name) }}
probe process("{demo}").plt.return {{ println($$name) }}
''')
    with UserBinary(str(demo)) as b:
        plt = b.plt_entries()
        first, *rest = ir["probes"]
        assert first["pp"] == f'process("{demo}").plt("malloc")'
        assert first["params"]["offset"] == b.file_offset(plt["malloc"])
        assert sorted(p["params"]["symbol"] for p in rest) == sorted(plt)
        assert all(p["params"]["is_return"] for p in rest)
    c = translate(ir, "stap_t")
    assert '"malloc"' in c
    err = error(kctx, f'probe process("{demo}").plt("nosuch*") {{ }}')
    assert 'no match for probe point process("' in err and '.plt("nosuch*")' in err, err
    err = error(kctx, f'probe process("{demo}").plt("malloc") {{ println($bytes) }}')
    assert "has no debug info for 'malloc'" in err, err


def test_syscall_probes(kctx, demo):
    ir = elaborate(kctx, f'''
probe process.syscall {{ printf("%d %d %d\\n", $syscall, $arg1, $arg4) }}
probe process("{demo}").syscall.return {{ println($return) }}
''')
    enter, ret = ir["probes"]
    assert (enter["pp"], enter["params"]) == ("process.syscall",
                                              {"kind": "syscall", "exe": None})
    assert ret["params"] == {"kind": "syscall.return", "exe": str(demo)}
    bases = [n["info"]["base"] for n in _walk(enter["body"])
             if isinstance(n.get("info"), dict) and n["info"].get("access") == "chain"]
    # the 4th system call argument is in r10 (the C ABI's 4th is rcx)
    assert bases == [{"kind": "sc_nr"}, {"kind": "reg", "reg": "di"},
                     {"kind": "reg", "reg": "r10"}]
    c = translate(ir, "stap_t")
    assert ".kind = STP_PROC_SYSCALL }" in c and ".kind = STP_PROC_SYSCALL_RETURN }" in c
    assert "stp_syscall_ret()" in c
    err = error(kctx, 'probe process.syscall { println($return) }')
    assert "unable to find local 'return' in process.syscall" in err and "^" in err, err
    err = error(kctx, 'probe process.syscall { println($arg7) }')
    assert "alternatives: $syscall $arg1" in err, err


PID_SRC = ROOT / "tests" / "c" / "uprobe_pid.c"


@pytest.fixture
def paused(tmp_path):
    """A running program with DWARF, waiting in pause(): what process(PID)
    names at translation."""
    binary = tmp_path / "uprobe_pid"
    subprocess.run(["gcc", "-g", "-o", str(binary), str(PID_SRC)], check=True)
    proc = subprocess.Popen([str(binary), "pause"])
    try:
        for _ in range(200):     # until the exec is done
            if os.path.realpath(f"/proc/{proc.pid}/exe") == str(binary.resolve()):
                break
            time.sleep(0.01)
        yield proc.pid, binary.resolve()
    finally:
        proc.kill()
        proc.wait()


def test_process_pid_probes(kctx, paused):
    """process(PID): the program through /proc/PID/exe, probes filtered to
    that process, and pp() in SystemTap's process(PID) spelling."""
    pid, binary = paused
    ir = elaborate(kctx, f'''
probe process({pid}).function("add") {{ println(pid()) }}
probe process({pid}).end, process({pid}).syscall {{ println(pid()) }}
''')
    got = [(p["pp"], p["family"], p["params"].get("pid"), p["params"].get("path"))
           for p in ir["probes"]]
    assert got[0][0].startswith(f'process({pid}).function("add@') and got[0][1:] == (
        "uprobe", pid, str(binary)), got
    assert got[1:] == [(f"process({pid}).end", "procevent", pid, None),
                       (f"process({pid}).syscall", "procevent", pid, None)], got
    assert ir["probes"][0]["params"]["pid_exe"] == str(binary)
    c = translate(ir, "stap_t")
    assert f".pid = {pid}, .is_return = false" in c
    assert c.count(f".pid = {pid}, .kind = ") == 2


def test_process_pid_reelaborates_when_the_pid_is_gone(kctx, paused, tmp_path):
    """A cached IR for process(PID) is only good while PID runs the same
    program: once it is gone, pass 2 runs again and says so."""
    pid, _ = paused
    text = f'probe process({pid}).function("add") {{ println(pid()) }}'
    elaborate(kctx, text)
    os.kill(pid, 9)
    os.waitpid(pid, 0)      # reaped: /proc/PID is gone
    out = error(kctx, text)
    assert f"cannot find executable of process {pid}: no such process" in out, out


def test_wildcard_keeps_to_dwarf_functions(kctx, demo):
    """process("PATH").function("*") on a -g binary: its DWARF functions,
    not the C runtime's symbol-only stubs; those stay reachable by name."""
    ir = elaborate(kctx, f'probe process("{demo}").function("*") {{ }}')
    names = {p["params"]["symbol"] for p in ir["probes"]}
    assert {"add", "point_sum", "fact", "greet", "main"} <= names, names
    assert not names & {"_start", "frame_dummy", "deregister_tm_clones", "_init"}, names
    ir = elaborate(kctx, f'probe process("{demo}").function("_start") {{ }}')
    assert [p["params"]["symbol"] for p in ir["probes"]] == ["_start"]


def test_process_statement(kctx, demo):
    """process("PATH").statement("FUNC@FILE:LINE"): the line's first
    address in the function, with the variables in scope there."""
    line = _line_of("\t\ttotal += add(i, 10 * i);")
    ir = elaborate(kctx, f'probe process("{demo}").statement("main@uprobe_demo.c:{line}") '
                         '{ printf("%d %d\\n", $i, $total) }')
    (p,) = ir["probes"]
    assert p["pp"] == f'process("{demo}").statement("main@uprobe_demo.c:{line}")'
    out = error(kctx, f'probe process("{demo}").statement("main@uprobe_demo.c:{line}") '
                      '{ println($nosuch) }')
    assert "unable to find local 'nosuch'" in out, out
    for name in ("$i", "$total", "$n", "$label", "$pt"):     # main's locals are in scope
        assert name in out.split("alternatives:")[1], out
    with UserBinary(str(demo)) as b:
        rows = [r for r in b.line_rows("main") if r[1] == line]
        assert p["params"]["offset"] == b.file_offset(min(r[0] for r in rows))
    out = error(kctx, f'probe process("{demo}").statement("main@uprobe_demo.c:1") {{ }}')
    assert "no line records for uprobe_demo.c:1" in out and "(try :" in out, out
    out = error(kctx, f'probe process("{demo}").statement("main") {{ }}')
    assert 'expected "FUNCTION@FILE:LINE"' in out, out
