"""Pass 2 without DWARF: BTF pulled out of the image's vmlinuz serves entry
parameters, $return, members and @cast, with DWARF's answers."""
from __future__ import annotations

import pytest

from codegen.debuginfo.btf import load_btf
from codegen.debuginfo.vmlinuz import cached_btf
from codegen.elaborate import iter_nodes
from codegen.errors import StapError, StapErrors
from stapbuild import passes
from tests.bootlib import ROOT, resolve

pytestmark = pytest.mark.kernel

SCRIPT = ROOT / "tests" / "boot_scripts" / "targets_vfs.stp"


@pytest.fixture(scope="module", params=["6.1", "6.12"])
def contexts(request):
    release = resolve(request.param)
    return passes.kernel_context(release), passes.kernel_context_btf(release)


def elaborate(kctx, text: str, name: str = "t.stp") -> dict:
    parsed = passes.parse_pass(None, text, kctx, name=name)
    return passes.elaborate_pass(parsed.artifact, kctx).artifact.read_json()


def targets(ir: dict) -> list[dict]:
    return [n["info"] for p in ir["probes"] for n in iter_nodes(p["body"])
            if n.get("k") in ("TargetSymbol", "AtOp") and isinstance(n.get("info"), dict)
            and n["info"].get("access") == "chain"]


def test_vmlinuz_btf_is_the_dbg_btf(contexts, tmp_path):
    dwarf, btf = contexts
    assert btf.kernel.vmlinux is None
    blob = cached_btf(btf.kernel.vmlinuz, tmp_path)
    assert blob.read_bytes() == load_btf(dwarf.kernel.vmlinux)._data


def test_same_programs_as_dwarf(contexts):
    dwarf, btf = contexts
    text = SCRIPT.read_text()
    a, b = elaborate(dwarf, text), elaborate(btf, text)
    key = lambda i: (str(i["base"]), str(i["steps"]), str(i["final"]))  # noqa: E731
    assert sorted(map(key, targets(a))) == sorted(map(key, targets(b)))
    assert b["kernel"]["debuginfo"].startswith("btf:")
    assert [p["pp"] for p in b["probes"]] == ['kernel.function("vfs_read")'] + \
        ['kernel.function("vfs_read").return'] * 2
    cast = elaborate(btf, 'probe begin { println(@cast(0, "sk_buff")->pkt_type) }')
    assert targets(cast)[0]["final"]["kind"] == "bits"


def test_what_needs_dwarf_says_so(contexts):
    _, btf = contexts
    with pytest.raises((StapError, StapErrors)) as ei:
        elaborate(btf, 'probe kernel.function("vfs_read@fs/read_write.c") { print(1) }')
    assert "@file needs DWARF" in ei.value.render()
