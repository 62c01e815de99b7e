"""Pass 2 against both kernels' DWARF: pretty-printed target variables
(codegen.pretty's print ops) and kernel.function(...).inline probes.

tests/test_pretty_inline_boot.py runs the same constructs in booted
kernels."""
from __future__ import annotations

import pytest

from codegen.elaborate import iter_nodes
from codegen.pretty import MAX_VALUES
from stapbuild import passes
from tests.bootlib import resolve
from tests.pass2lib import elaborate, error

pytestmark = pytest.mark.kernel

F_PATH = {"6.1": 16, "6.12": 64}     # offsetof(struct file, f_path), per series
D_INAME = {"6.1": 32, "6.12": 40}    # DNAME_INLINE_LEN


@pytest.fixture(scope="module", params=["6.1", "6.12"])
def kctx(request):
    return passes.kernel_context(resolve(request.param))


def pretty_infos(ir: dict, probe: int = 0) -> list[dict]:
    """The info of every pretty-printed target of a probe, in source order."""
    nodes = [n for n in iter_nodes(ir["probes"][probe]["body"])
             if n.get("k") in ("TargetSymbol", "AtOp")
             and (n.get("info") or {}).get("access") == "pretty"]
    return [n["info"] for n in sorted(nodes, key=lambda n: n["loc"][1:])]


def text_of(ops: list[dict]) -> str:
    """The ops with every read shown as <op>: the shape of the output."""
    return "".join(o["text"] if o["op"] == "lit" else f"<{o['op']}>" for o in ops)


def test_struct_member_one_level_and_deep(kctx):
    ir = elaborate(kctx, 'probe kernel.function("vfs_read") '
                         '{ println($file->f_path$, $file->f_path$$) }')
    shallow, deep = pretty_infos(ir)
    for info in (shallow, deep):
        assert info["base"] == {"kind": "reg", "reg": "di"} and info["start"] == "val"
        assert info["steps"] == [{"op": "add", "n": F_PATH[kctx.kernel.series]}]
        assert info["final"] == {"kind": "addr"}
        assert info["ops"] == [
            {"op": "lit", "text": "{.mnt="},
            {"op": "load", "off": 0, "size": 8, "signed": False, "fmt": "x"},
            {"op": "lit", "text": ", .dentry="},
            {"op": "load", "off": 8, "size": 8, "signed": False, "fmt": "x"},
            {"op": "lit", "text": "}"}]


def test_top_pointer_to_struct_is_followed(kctx):
    ir = elaborate(kctx, 'probe kernel.function("vfs_read") { println($file$) }')
    (info,) = pretty_infos(ir)
    # $file is in a register: its value is the struct's address, no load
    assert info["steps"] == [] and info["final"] == {"kind": "addr"}
    shape = text_of(info["ops"])
    assert shape.startswith("{.") and shape.endswith("}")
    for part in (".f_path={...}", ".f_inode=<load>", ".f_op=<load>", ".f_count={...}"):
        assert part in shape
    assert "{.mnt=" not in shape          # one level only


def test_deep_stops_after_32_values(kctx):
    ir = elaborate(kctx, 'probe kernel.function("vfs_read") { println($file$$) }')
    (info,) = pretty_infos(ir)
    reads = [o for o in info["ops"] if o["op"] != "lit"]
    assert len(reads) == MAX_VALUES
    shape = text_of(info["ops"])
    assert ".f_path={.mnt=<load>, .dentry=<load>}" in shape
    assert shape.endswith(", ...}")


def test_strings_scalars_and_cast(kctx):
    ir = elaborate(kctx, 'probe kernel.function("vfs_read") { '
                         'println($buf$, $count$, $file->f_path->dentry->d_name$$, '
                         '$file->f_path->dentry->d_name$, $file->f_path->dentry->d_iname$, '
                         '@cast($file, "struct file")->f_path->dentry->d_name$) }')
    buf, count, qstr_deep, qstr, iname, cast = pretty_infos(ir)
    assert buf["ops"] == [{"op": "valstr"}] and buf["final"]["kind"] == "value"
    assert count["ops"] == [{"op": "val", "fmt": "u"}] and count["final"] == {"kind": "value", "size": 8,
                                                                 "signed": False}
    # struct qstr: the anonymous union's members in place; its name is a
    # string only under $$
    assert text_of(qstr_deep["ops"]) == "{.hash=<load>, .len=<load>, .hash_len=<load>, " \
                                        ".name=<str>}"
    assert text_of(qstr["ops"]) == "{.hash=<load>, .len=<load>, .hash_len=<load>, " \
                                   ".name=<load>}"
    assert iname["ops"][0]["op"] == "chars" and iname["ops"][0]["len"] == D_INAME[kctx.kernel.series]
    assert cast["base"] == {"kind": "expr"} and cast["ops"] == qstr["ops"]


def test_pretty_in_return_probe_is_read_at_entry(kctx):
    ir = elaborate(kctx, 'probe kernel.function("vfs_read").return '
                         '{ println($file->f_path$, " ", $return) }')
    assert ir["probes"]


@pytest.mark.parametrize("text, msg", [
    ('probe kernel.function("vfs_read") { print($file->nope$) }',
     "unable to find member 'nope' for struct file (alternatives: "),
    ('probe kernel.function("vfs_read") { print($nope$$) }',
     "unable to find local 'nope' in kernel function 'vfs_read'"),
    ('probe kernel.function("vfs_read") { print($file$ + 1) }',
     "type mismatch"),
])
def test_pretty_messages(kctx, text, msg):
    assert msg in error(kctx, text)


# ------------------------------------------------------------------ .inline

# file_ppos() is a static inline of fs/read_write.c with no out-of-line
# copy in either series: ksys_read/ksys_write/do_readv/do_writev inline it.
INLINE_FILE_PPOS = 'kernel.function("file_ppos@fs/read_write.c").inline'


def test_inline_probes_every_instance(kctx):
    ir = elaborate(kctx, f'probe {INLINE_FILE_PPOS} {{ println($file->f_pos, " ", $file$) }}')
    probes = ir["probes"]
    hosts = sorted(p["params"]["symbol"] for p in probes)
    assert hosts == ["do_readv", "do_writev", "ksys_read", "ksys_write"]
    for p in probes:
        assert p["params"]["inline"] and not p["params"]["is_return"]
        # inside its host, after that function's entry
        assert p["params"]["offset"] > 0
        assert p["pp"].startswith('kernel.function("file_ppos@fs/read_write.c:') and \
            p["pp"].endswith('").inline')
        chains = [n["info"] for n in iter_nodes(p["body"])
                  if n.get("k") == "TargetSymbol" and n["info"].get("access") == "chain"]
        # $file is where DWARF puts it at the instance's entry: a register
        assert chains and chains[0]["base"]["kind"] == "reg"


def test_plain_function_keeps_out_of_line_copies(kctx):
    assert "no match for probe point" in error(
        kctx, 'probe kernel.function("file_ppos@fs/read_write.c") { print(1) }')


@pytest.mark.parametrize("suffix, token", [
    (".inline.return", "identifier 'return'"),
    (".return.inline", "identifier 'return'"),
    (".inline.call", "identifier 'call'"),
])
def test_inline_return_is_a_mismatch(kctx, suffix, token):
    msg = error(kctx, f'probe kernel.function("file_ppos@fs/read_write.c"){suffix} '
                      '{ print(1) }')
    assert f"semantic error: probe point mismatch: {token} at t.stp:1:" in msg, msg
    assert "source: probe kernel.function" in msg and "^" in msg


def test_inline_without_instances(kctx):
    msg = error(kctx, 'probe kernel.function("vfs_read").inline { print(1) }')
    assert ('no match for probe point kernel.function("vfs_read").inline in kernel '
            f'{kctx.release}') in msg
