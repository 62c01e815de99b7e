"""Issue 11, first slice: kernel.function("*@file") (every function of one
source file) and kernel.function(ADDR)[.return] (the function containing a
link-time address), resolved in pass 2 against both kernels' DWARF.

Elaboration only; tests/test_probe_forms_boot.py runs them booted."""
from __future__ import annotations

import pytest

from codegen.debuginfo.addresses import AddressMap
from codegen.debuginfo.elf_symbols import ElfImage, read_function_symbols
from codegen.debuginfo.kernel_index import FunctionEntry, KernelIndex
from stapbuild import passes
from tests.bootlib import resolve
from tests.pass2lib import elaborate, error


def symbol_span(kctx, name: str) -> tuple[int, int]:
    with ElfImage(kctx.kernel.vmlinux) as img:
        (span,) = read_function_symbols(img).lookup(name)
    return span


# -- no kernel: the address map ---------------------------------------------
def _index(rows):
    funcs: dict = {}
    for name, addr, size in rows:
        funcs.setdefault(name, []).append(FunctionEntry(name, addr, size, 0))
    return KernelIndex(None, 0, funcs)


def test_address_map_containing():
    m = AddressMap(_index([("a", 0x1000, 0x10), ("b", 0x1010, 0x20),
                           ("c.isra.0", 0x2000, 0x8), ("c", 0x2000, 0x8)]))
    assert m.containing(0x1000) == ("a", 0x1000, 0x10)
    assert m.containing(0x100f) == ("a", 0x1000, 0x10)
    assert m.containing(0x1010) == ("b", 0x1010, 0x20)
    assert m.containing(0x102f) == ("b", 0x1010, 0x20)
    assert m.containing(0x1030) is None          # past b's end: a gap
    assert m.containing(0x0fff) is None          # before the first symbol
    assert m.containing(0x2004) == ("c", 0x2000, 0x8)   # non-clone alias preferred


# -- both kernels ------------------------------------------------------------
@pytest.fixture(scope="module", params=["6.1", "6.12"])
def kctx(request):
    return passes.kernel_context(resolve(request.param))


@pytest.mark.kernel
def test_every_function_of_read_write_c(kctx):
    ir = elaborate(kctx, 'probe kernel.function("*@fs/read_write.c") { next }')
    pps = [p["pp"] for p in ir["probes"]]
    assert len(pps) > 50, pps
    assert all("@fs/read_write.c:" in pp for pp in pps), pps
    assert any(pp.startswith('kernel.function("vfs_read@fs/read_write.c:') for pp in pps)
    assert any(pp.startswith('kernel.function("vfs_write@fs/read_write.c:') for pp in pps)
    # Functions of other files are not there.
    assert not any("vfs_open" in pp for pp in pps)
    # Same set with a function pattern too.
    ir2 = elaborate(kctx, 'probe kernel.function("vfs_*@fs/read_write.c") { next }')
    sub = sorted(p["pp"] for p in ir2["probes"])
    assert sub and set(sub) <= set(pps)
    assert all('kernel.function("vfs_' in pp for pp in sub)


@pytest.mark.kernel
def test_function_address_resolves_to_containing_function(kctx):
    start, size = symbol_span(kctx, "vfs_read")
    for addr in (start, start + 1, start + size - 1):
        ir = elaborate(kctx, f"probe kernel.function({addr:#x}) {{ next }}")
        (p,) = ir["probes"]
        assert p["params"]["symbol"] == "vfs_read"
        assert p["params"]["is_return"] is False
        assert p["pp"].startswith('kernel.function("vfs_read@fs/read_write.c:'), p["pp"]
    ir = elaborate(kctx, f"probe kernel.function({start + 7:#x}).return {{ println($return) }}")
    (p,) = ir["probes"]
    assert p["params"]["symbol"] == "vfs_read"
    assert p["params"]["is_return"] is True
    assert p["pp"].endswith(".return")


@pytest.mark.kernel
def test_function_address_reads_parameters(kctx):
    start, _ = symbol_span(kctx, "vfs_read")
    ir = elaborate(kctx, f"probe kernel.function({start + 3:#x}) {{ println($count) }}")
    assert ir["probes"][0]["params"]["symbol"] == "vfs_read"


@pytest.mark.kernel
def test_function_address_outside_functions(kctx):
    msg = error(kctx, "probe kernel.function(0x10) { next }")
    assert "no function contains address 0x10" in msg, msg


@pytest.mark.kernel
def test_listing_the_new_forms(kctx):
    from stapbuild.listing import list_points
    lines = list_points('kernel.function("*@fs/read_write.c")', kctx, False)
    assert len(lines) > 50
    assert any(l.startswith('kernel.function("vfs_read@fs/read_write.c:') for l in lines)
    start, _ = symbol_span(kctx, "vfs_read")
    (line,) = list_points(f"kernel.function({start + 2:#x}).return", kctx, True)
    assert line.startswith('kernel.function("vfs_read@fs/read_write.c:'), line
    assert ".return " in line and "$count:" in line and "$return:" in line, line


# -- .exported (issue 4) -----------------------------------------------------
def test_read_exported_takes_vmlinux_exports_only(tmp_path):
    from codegen.kernel_facts import read_exported
    symvers = tmp_path / "Module.symvers"
    symvers.write_text("0x1\tkernel_read\tvmlinux\tEXPORT_SYMBOL\t\n"
                       "0x2\tusb_get_dev\tdrivers/usb/core/usbcore\tEXPORT_SYMBOL_GPL\t\n"
                       "0x3\tcrypto_alg\tvmlinux\tEXPORT_SYMBOL_GPL\tCRYPTO_INTERNAL\n")
    assert read_exported(symvers) == {"kernel_read", "crypto_alg"}


def test_exported_keeps_only_exported_functions(kctx):
    """Module.symvers of the kernel's headers decides: kernel_read is
    exported, vfs_read is not; .exported combines with .return."""
    ir = elaborate(kctx, 'probe kernel.function("*_read").exported { }\n'
                         'probe kernel.function("kernel_read").return.exported { }\n')
    from codegen.kernel_facts import make_kernel_facts
    facts = make_kernel_facts(kctx.release, kctx.kernel, kctx.index_file)
    syms = [p["params"]["symbol"] for p in ir["probes"]]
    exported = facts.exported()
    assert syms and all(s in exported for s in syms)
    assert "kernel_read" in syms and "vfs_read" not in syms
    assert facts.match_functions("vfs_read") == ["vfs_read"]
    last = ir["probes"][-1]
    assert last["params"]["is_return"] and last["pp"].endswith(".exported.return"), last["pp"]
    out = error(kctx, 'probe kernel.function("vfs_read").exported { }')
    assert 'no match for probe point kernel.function("vfs_read").exported' in out, out
    out = error(kctx, 'probe kernel.function(0x1).exported { }')
    assert "probe point mismatch" in out or "no function contains" in out, out


def test_init_text_functions_are_left_out(kctx):
    """__init code is freed after boot: *@init/main.c leaves start_kernel
    out, and naming it is a no-match that says why."""
    ir = elaborate(kctx, 'probe kernel.function("*@init/main.c") {}')
    names = {p["pp"].split('"')[1].split("@")[0] for p in ir["probes"]}
    assert "rest_init" in names and "start_kernel" not in names, names
    msg = error(kctx, 'probe kernel.function("start_kernel") {}')
    assert "(start_kernel is in .init.text, freed after boot)" in msg, msg
