"""Tests for codegen.debuginfo.

Unit tests compile a small C program with the host gcc (-g -O2) so they are
always runnable; `kernel`-marked tests need a Debian dbg vmlinux, located by
STAPBUILD_TEST_VMLINUX_61 / STAPBUILD_TEST_VMLINUX_612.
"""

from __future__ import annotations

import gzip
import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from codegen.debuginfo import (FunctionInfo, load_btf, load_or_build_index, lookup_function,
                               lookup_function_btf, lookup_functions, lookup_struct_member)
from codegen.debuginfo.__main__ import main as cli_main
from codegen.debuginfo.elf_symbols import ElfImage, read_function_symbols
from codegen.debuginfo.kernel_index import parse_aranges

DEMO_C = r"""
#include <stddef.h>
typedef long my_ssize_t;
typedef long long my_loff_t;
struct inner { int a; };
struct io_acct {
	union { void *p; long l; };          /* anonymous, like struct file's */
	int pid;
	char comm[16];
	const volatile unsigned long *read_bytes;
	struct inner node;
	unsigned flags:3, prio:5;
};
void sink(const void *p) { __asm__ volatile("" :: "r"(p) : "memory"); }
__attribute__((noinline)) my_ssize_t account_io(struct io_acct *acct, const char *buf,
                                                size_t count, my_loff_t *pos)
{
	sink(acct); sink(buf);
	acct->pid += count; *pos += count;
	sink(pos);
	return count + acct->pid;
}
/* g and h are passed on the stack */
__attribute__((noinline)) int many(int a, int b, int c, int d, int e, int f, int g, int h)
{
	sink(&a);
	return a + b + c + d + e + f + g + h;
}
/* constant second argument: GCC makes helper.constprop.0 (or .isra.0) */
static __attribute__((noinline)) int helper(int x, int unused)
{
	sink(&x);
	return x * 3;
}
int use_helper(int y) { return helper(y, 5) + helper(y + 1, 5); }
void nothing(void) { sink(0); }
int main(void)
{
	struct io_acct a = {0}; my_loff_t pos = 0;
	account_io(&a, "x", 1, &pos);
	nothing();
	return many(1, 2, 3, 4, 5, 6, 7, 8) + use_helper(3);
}
"""

needs_gcc = pytest.mark.skipif(shutil.which("gcc") is None, reason="gcc not installed")


def _compile(tmp: Path, *flags: str, obj: bool = False) -> Path:
    src = tmp / "demo.c"
    src.write_text(DEMO_C)
    out = tmp / ("demo.o" if obj else "demo")
    # -fno-pie: symtab addresses match the DWARF ones without a load bias
    # (either way works, this just keeps numbers readable when debugging).
    subprocess.run(["gcc", "-g", "-O2", "-fno-pie", "-no-pie", *flags,
                    *(["-c"] if obj else []), "-o", str(out), str(src)],
                   check=True, cwd=tmp)
    return out


@pytest.fixture(scope="module", params=["-gdwarf-5", "-gdwarf-4"])
def demo(request, tmp_path_factory) -> tuple[Path, object]:
    tmp = tmp_path_factory.mktemp("demo" + request.param.replace("-", "_"))
    if shutil.which("gcc") is None:
        pytest.skip("gcc not installed")
    exe = _compile(tmp, request.param)
    idx = load_or_build_index(exe, tmp / "index.json.gz")
    return exe, idx


def _nm(exe: Path) -> dict[str, int]:
    out = subprocess.run(["nm", str(exe)], capture_output=True, text=True, check=True).stdout
    return {parts[2]: int(parts[0], 16) for parts in (l.split() for l in out.splitlines())
            if len(parts) == 3 and parts[1] in "tT"}


# ------------------------------------------------------------------ symtab / index

@needs_gcc
def test_symtab_matches_nm(demo):
    exe, _ = demo
    with ElfImage(exe) as img:
        syms = read_function_symbols(img)
        assert img.build_id()  # gcc/ld on Debian emit --build-id by default
    nm = _nm(exe)
    for name in ("account_io", "many", "main", "use_helper"):
        (addr, size), = syms.lookup(name)
        assert addr == nm[name] and size > 0
        assert syms.containing(addr + size - 1)[0] == name
    assert syms.containing(0) is None


@needs_gcc
def test_index_cache_roundtrip_and_wildcards(demo, tmp_path):
    exe, idx = demo
    cache = tmp_path / "i.json.gz"
    a = load_or_build_index(exe, cache)
    mtime = cache.stat().st_mtime_ns
    b = load_or_build_index(exe, cache)           # from cache: not rewritten
    assert cache.stat().st_mtime_ns == mtime
    assert a.to_json() == b.to_json()
    assert a.build_id and a.lookup("account_io")[0].cu_offset == 0
    assert idx.match("acc*") == ["account_io"]
    assert "helper.constprop.0" not in idx.match("*")   # clones hidden, like stap
    assert any(c.startswith("helper.") for c in idx.clones["helper"])
    # A stale cache (different build-id) is rebuilt, not trusted.
    with gzip.open(cache, "rt") as f:
        d = json.load(f)
    d["build_id"] = "00"
    with gzip.open(cache, "wt") as f:
        json.dump(d, f)
    assert load_or_build_index(exe, cache).build_id == a.build_id


def test_parse_aranges_synthetic():
    import struct
    body = struct.pack("<HIBB", 2, 0x1234, 8, 0) + b"\0" * 4          # header + pad to 16
    body += struct.pack("<QQ", 0x1000, 0x20) + struct.pack("<QQ", 0x2000, 0x10) + b"\0" * 16
    data = struct.pack("<I", len(body)) + body
    assert parse_aranges(data) == [(0x1000, 0x1020, 0x1234), (0x2000, 0x2010, 0x1234)]


# ------------------------------------------------------------------ functions

@needs_gcc
def test_account_io_params_types_locations(demo):
    exe, idx = demo
    fi = lookup_function(exe, idx, "account_io")
    assert fi is not None and fi.probeable
    assert fi.address == _nm(exe)["account_io"]
    assert (fi.decl_file, fi.decl_line) == ("demo.c", 15)
    assert fi.return_type.name == "my_ssize_t" and fi.return_type.kind == "int"
    assert fi.return_type.signed is True and fi.return_type.size == 8
    assert [(p.index, p.name, p.type.name) for p in fi.params] == [
        (1, "acct", "struct io_acct*"), (2, "buf", "char*"),
        (3, "count", "size_t"), (4, "pos", "my_loff_t*")]
    assert [p.entry_location for p in fi.params] == [
        {"kind": "reg", "reg": r} for r in ("di", "si", "dx", "cx")]
    acct = fi.params[0].type
    assert acct.kind == "pointer" and acct.target.kind == "struct" and acct.target.size == 48
    assert fi.params[2].type.signed is False
    assert fi.stap_listing() == ('kernel.function("account_io@demo.c:15") $acct:struct io_acct* '
                                 '$buf:char* $count:size_t $pos:my_loff_t*')
    # JSON round trip
    again = FunctionInfo.from_json(json.loads(json.dumps(fi.to_json())))
    assert again == fi


@needs_gcc
def test_stack_params_are_fbreg(demo):
    exe, idx = demo
    fi = lookup_function(exe, idx, "many")
    locs = [p.entry_location for p in fi.params]
    assert locs[:6] == [{"kind": "reg", "reg": r} for r in ("di", "si", "dx", "cx", "r8", "r9")]
    # 7th/8th ints live above the return address: CFA+0, CFA+8.
    assert [(l["kind"], l["offset"]) for l in locs[6:]] == [("fbreg", 0), ("fbreg", 8)]
    assert locs[6].get("frame_base") == "cfa"


@needs_gcc
def test_void_and_clones(demo):
    exe, idx = demo
    fi = lookup_function(exe, idx, "nothing")
    assert fi.return_type is None and fi.params == []
    h = lookup_function(exe, idx, "helper")          # only exists as a clone
    assert h is not None and not h.probeable and h.symbol.startswith("helper.")
    assert h.params[0].name == "x"                   # names via abstract_origin
    assert lookup_functions(exe, idx, "*help*") == [lookup_function(exe, idx, "use_helper")]
    assert lookup_function(exe, idx, "no_such_function") is None


@needs_gcc
def test_struct_members_flatten_and_bitfields(demo):
    exe, idx = demo
    m = lookup_struct_member(exe, idx, "io_acct", "l")          # inside anonymous union
    assert (m.offset, m.type.name) == (0, "long int")
    assert lookup_struct_member(exe, idx, "struct io_acct", "pid").offset == 8
    comm = lookup_struct_member(exe, idx, "io_acct", "comm")
    assert (comm.offset, comm.type.kind, comm.type.count, comm.type.name) == (12, "array", 16, "char[16]")
    rb = lookup_struct_member(exe, idx, "io_acct", "read_bytes")
    assert rb.type.name == "long unsigned int*" and rb.offset == 32
    assert lookup_struct_member(exe, idx, "io_acct", "node.a").offset == 40
    prio = lookup_struct_member(exe, idx, "io_acct", "prio")
    assert (prio.bit_offset, prio.bit_size) == (44 * 8 + 3, 5)
    assert lookup_struct_member(exe, idx, "io_acct", "nope") is None


@needs_gcc
def test_cli(demo, capsys):
    exe, _ = demo
    assert cli_main([str(exe), "--index", str(exe.parent / "cli.json.gz"), "many", "acc*"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith('kernel.function("many@demo.c:')
    assert out[1].startswith('kernel.function("account_io@demo.c:15") $acct:struct io_acct*')


# ------------------------------------------------------------------ BTF

@needs_gcc
def test_btf_from_gcc_object(tmp_path):
    try:
        obj = _compile(tmp_path, "-gbtf", obj=True)
    except subprocess.CalledProcessError:
        pytest.skip("this gcc cannot emit BTF (-gbtf)")
    fi = lookup_function_btf(obj, "account_io")
    assert fi.source == "btf" and fi.decl_file is None
    assert [(p.name, p.type.name, p.entry_location["reg"]) for p in fi.params] == [
        ("acct", "struct io_acct*", "di"), ("buf", "char*", "si"),
        ("count", "size_t", "dx"), ("pos", "my_loff_t*", "cx")]
    many = lookup_function_btf(obj, "many")
    assert [p.entry_location["kind"] for p in many.params][5:] == ["reg", "unknown", "unknown"]
    btf = load_btf(obj)
    prio = btf.member("io_acct", "prio")
    assert (prio.bit_offset, prio.bit_size) == (44 * 8 + 3, 5)
    assert btf.member("io_acct", "l").offset == 0


def test_btf_host_kernel():
    p = Path("/sys/kernel/btf/vmlinux")
    if not p.exists():
        pytest.skip("no /sys/kernel/btf/vmlinux on this host")
    fi = lookup_function_btf(p, "vfs_read")
    assert fi is not None
    assert [p.type.name for p in fi.params] == ["struct file*", "char*", "size_t", "loff_t*"]


# ------------------------------------------------------------------ real kernels

EXPECTED = {
    "vfs_read": ("fs/read_write.c", ["$file:struct file*", "$buf:char*", "$count:size_t", "$pos:loff_t*"]),
    "vfs_write": ("fs/read_write.c", ["$file:struct file*", "$buf:char*", "$count:size_t", "$pos:loff_t*"]),
    "do_sys_openat2": ("fs/open.c", ["$dfd:int", "$filename:char*", "$how:struct open_how*"]),
}
# f_pos moved between the series; both values agree with the kernels' BTF.
F_POS = {"61": 104, "612": 112}


def _kernel(series: str) -> Path:
    env = f"STAPBUILD_TEST_VMLINUX_{series}"
    v = os.environ.get(env)
    if not v:
        pytest.skip(f"{env} not set (path to a Debian dbg vmlinux for the {series[0]}.{series[1:]} series)")
    if not Path(v).is_file():
        pytest.skip(f"{env}={v}: no such file")
    return Path(v)


@pytest.mark.kernel
@pytest.mark.parametrize("series", ["61", "612"])
def test_kernel_functions(series, tmp_path_factory):
    vmlinux = _kernel(series)
    cache = tmp_path_factory.getbasetemp() / f"kidx{series}.json.gz"
    idx = load_or_build_index(vmlinux, cache)
    assert len(idx.functions) > 40000 and idx.build_id
    for name, (file, args) in EXPECTED.items():
        fi = lookup_function(vmlinux, idx, name)
        assert fi is not None and fi.probeable, name
        assert fi.decl_file == file and fi.decl_line
        assert [f"${p.name}:{p.type.name}" for p in fi.params] == args
        assert [p.entry_location for p in fi.params] == [
            {"kind": "reg", "reg": r} for r in ("di", "si", "dx", "cx")[:len(args)]]
        assert fi.stap_listing().startswith(f'kernel.function("{name}@{file}:{fi.decl_line}") ')
        # The BTF fallback agrees on the prototype.
        b = lookup_function_btf(vmlinux, name)
        assert [f"${p.name}:{p.type.name}" for p in b.params] == args
        assert b.address == fi.address
    assert {f for f in idx.match("vfs_rea*")} >= {"vfs_read", "vfs_readv"}
    m = lookup_struct_member(vmlinux, idx, "file", "f_pos")
    assert m.offset == F_POS[series] and m.type.name == "loff_t"
    assert load_btf(vmlinux).member("file", "f_pos").offset == m.offset
