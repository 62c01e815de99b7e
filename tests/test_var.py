"""@var("name@file.c") in pass 2, against both kernel series: the
variable's link-time address and type from the DWARF of the CUs compiled
from file.c (or the probed function's own CU), and SystemTap-style errors.
tests/test_probe_forms_boot.py reads them in booted guests."""
from __future__ import annotations

import pytest

from codegen.debuginfo.variables import object_symbols
from codegen.elaborate import iter_nodes
from stapbuild import kernels, passes
from tests.bootlib import resolve
from tests.pass2lib import elaborate, error

pytestmark = pytest.mark.kernel


@pytest.fixture(scope="module", params=["6.1", "6.12"])
def kctx(request):
    return passes.kernel_context(resolve(request.param))


def var_info(kctx, expr: str) -> dict:
    (p,) = elaborate(kctx, f"probe begin {{ println({expr}) }}")["probes"]
    (info,) = [n["info"] for n in iter_nodes(p["body"])
               if n.get("k") == "AtOp" and n.get("op") == "var"]
    return info


def test_global_int_at_its_symbol_address(kctx):
    info = var_info(kctx, '@var("nr_threads@kernel/fork.c")')
    vmlinux = kernels.kernel_info(kctx.release).vmlinux
    assert info["base"]["kind"] == "kaddr"
    assert [info["base"]["link"]] == object_symbols(vmlinux, "nr_threads")
    assert info["final"] == {"kind": "load", "signed": True, "size": 4} and info["type"] == "int"


def test_struct_member_chain(kctx):
    comm = var_info(kctx, '@var("init_task@init/init_task.c")->comm')
    pid = var_info(kctx, '@var("init_task@init/init_task.c")->pid')
    assert comm["type"] == "char[16]" and comm["final"] == {"kind": "addr"}
    assert pid["final"]["size"] == 4 and pid["type"] == "pid_t"
    assert comm["base"] == pid["base"]
    assert 0 < pid["steps"][0]["n"] < comm["steps"][0]["n"] < 8192   # pid before comm


def test_errors(kctx):
    msg = error(kctx, 'probe begin { println(@var("nosuchvar_xyz@kernel/fork.c")) }')
    assert msg.startswith("semantic error: unable to find global 'nosuchvar_xyz' in the "
                          "compilation units of kernel/fork.c: operator '@var' at t.stp:1:23"), msg
    msg = error(kctx, 'probe begin { println(@var("nr_threads")) }')
    assert '@var("nr_threads") here needs its file: @var("nr_threads@FILE.c")' in msg, msg
    msg = error(kctx, 'probe begin { println(@var("x@no/such/file.c")) }')
    assert "no compilation unit of the kernel matches 'no/such/file.c'" in msg, msg
    msg = error(kctx, 'probe begin { println(@var("x", "loop")) }')
    assert "@var in module 'loop' is not supported yet" in msg, msg
