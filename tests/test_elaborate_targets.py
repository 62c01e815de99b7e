"""Pass 2 against both kernels' DWARF: $target chains, @cast, @defined,
$$parms, @entry and the messages for what does not resolve.

These elaborate only (no kbuild, no boot); tests/test_boot_targets.py runs
the same constructs in booted kernels."""
from __future__ import annotations

import pytest

from codegen import ast
from codegen.elaborate import iter_nodes
from stapbuild import passes
from tests.bootlib import resolve
from tests.pass2lib import elaborate, error

pytestmark = pytest.mark.kernel


@pytest.fixture(scope="module", params=["6.1", "6.12"])
def kctx(request):
    return passes.kernel_context(resolve(request.param))


def infos(ir: dict, probe: int = 0) -> list[dict]:
    """The info of every target node of a probe, in source order."""
    nodes = [n for n in iter_nodes(ir["probes"][probe]["body"])
             if n.get("k") in ("TargetSymbol", "AtOp") and n.get("info")]
    return sorted((n["info"] for n in nodes), key=lambda i: str(i))


# The offsets differ between the series; the DWARF says where things are.
F_PATH = {"6.1": 16, "6.12": 64}


def test_dentry_name_chain(kctx):
    ir = elaborate(kctx, 'probe kernel.function("vfs_read") '
                         '{ println(kernel_string($file->f_path->dentry->d_name->name)) }')
    node = next(n for n in iter_nodes(ir["probes"][0]["body"]) if n.get("k") == "TargetSymbol")
    info = node["info"]
    assert info["base"] == {"kind": "reg", "reg": "di"} and info["start"] == "val"
    f_path = F_PATH[kctx.kernel.series]
    # file->f_path.dentry (+8) is a pointer: load it; d_name (+32) is an
    # embedded qstr, its name (+8) a pointer read as a number.
    assert info["steps"] == [{"op": "add", "n": f_path}, {"op": "add", "n": 8},
                             {"op": "deref"}, {"op": "add", "n": 32}, {"op": "add", "n": 8}]
    assert info["final"] == {"kind": "load", "size": 8, "signed": False}
    assert info["type"] == "unsigned char*"
    assert "kernel_string" in {f["name"] for f in ir["functions"]}


def test_param_value_index_address_and_array(kctx):
    ir = elaborate(kctx, 'probe kernel.function("vfs_read") { '
                         'a = $count; b = &$file->f_pos; c = $file->f_path->dentry->d_iname; '
                         'd = $file->f_path->dentry->d_iname[2]; e = $pos[0] }')
    by_type = {i["type"]: i for i in infos(ir)}
    assert by_type["size_t"]["final"] == {"kind": "value", "size": 8, "signed": False}
    assert by_type["loff_t*"]["final"] == {"kind": "addr"}          # &$file->f_pos
    arr = next(i for i in infos(ir) if i["type"].startswith("unsigned char[")
               or i["type"].startswith("char["))
    assert arr["final"] == {"kind": "addr"}                          # an array decays
    elem = [i for i in infos(ir) if i["steps"] and i["steps"][-1].get("op") == "index"]
    assert {i["steps"][-1]["size"] for i in elem} == {1, 8}          # d_iname[2], $pos[0]
    assert all(i["final"]["kind"] == "load" for i in elem)


def test_cast_and_bitfield(kctx):
    ir = elaborate(kctx, 'probe begin { p = 0; '
                         'println(@cast(p, "sk_buff")->pkt_type, @cast(p, "struct file")->f_pos, '
                         '@cast(p, "file", "kernel")->f_path->dentry) }')
    by_type = {i["type"]: i for i in infos(ir)}
    assert by_type["__u8"]["final"]["kind"] == "bits" and by_type["__u8"]["final"]["bits"] == 3
    assert by_type["loff_t"]["final"] == {"kind": "load", "size": 8, "signed": True}
    assert by_type["struct dentry*"]["base"] == {"kind": "expr"}


def test_defined_folds_and_guards(kctx):
    ir = elaborate(kctx, 'probe kernel.function("vfs_read") { '
                         'println(@defined($nope) ? $nope : 42, @defined($count), '
                         '@defined($file->no_member)) '
                         'if (@defined($nope->x)) println($nope->x) }')
    body = ir["probes"][0]["body"]
    assert not [n for n in iter_nodes(body) if n.get("k") == "TargetSymbol"]
    call = body["stmts"][0]["expr"]
    assert [a.get("value") for a in call["args"]] == [42, 1, 0]


def test_return_probe_reads_params_at_entry(kctx):
    ir = elaborate(kctx, 'probe kernel.function("vfs_read").return { '
                         'printf("%d %d %d %s %s\\n", $return, $count, @entry($count * 2), '
                         '$$parms, $$return) }')
    ret, entry = ir["probes"]
    assert entry["family"] == "kretprobe_entry" and entry["pp"] == ret["pp"]
    assert ret["params"]["entry_probe"] == entry["name"]
    # two longs ($count, $count * 2) and one string ($$parms) saved at entry
    assert ret["params"]["entry_data_size"] == "(16 + 1 * MAXSTRINGLEN)"
    loads = [n["info"] for n in iter_nodes(ret["body"]) if n.get("op") == "entry_load"]
    assert sorted((i["type"], i["index"]) for i in loads) == [
        ("long", 0), ("long", 1), ("string", 0)]
    returns = [n for n in iter_nodes(ret["body"]) if n.get("k") == "TargetSymbol"]
    assert {n["name"] for n in returns} == {"$return", "$$return"}


def test_vars_strings(kctx):
    ir = elaborate(kctx, 'probe kernel.function("vfs_read") { println($$parms, $$vars, $$parms$) }')
    items = [n["info"]["items"] for n in iter_nodes(ir["probes"][0]["body"])
             if n.get("k") == "TargetSymbol"]
    assert [[i["name"] for i in its] for its in items] == [["file", "buf", "count", "pos"]] * 3
    assert [any(i.get("string") for i in its) for its in items].count(True) == 1


@pytest.mark.parametrize("text, msg", [
    ('probe kernel.function("vfs_read") { print($file->nope) }',
     "unable to find member 'nope' for struct file (alternatives: "),
    ('probe kernel.function("vfs_read") { print($file->f_path) }',
     "struct/union 'path' is being accessed instead of a member of the struct/union"),
    ('probe kernel.function("vfs_read") { print($count->x) }',
     "'$count' is not a pointer (size_t); cannot access member 'x'"),
    ('probe kernel.function("vfs_read") { print($nope) }',
     "unable to find local 'nope' in kernel function 'vfs_read' at fs/read_write.c:"),
    ('probe kernel.function("vfs_read") { print($return) }',
     "$return is only valid in .return probes"),
    ('probe kernel.function("vfs_read") { print(@entry($count)) }',
     "@entry is only valid in .return probes"),
    ('function f() { return $count } probe kernel.function("vfs_read") { print(f()) }',
     "target variables can only be used in probes"),
    ('probe begin { print(@cast(0, "no_such_type_here")->x) }',
     "type definition 'no_such_type_here' not found"),
    ('probe begin { print($x) }', "unresolved target-symbol expression"),
    ('probe kernel.function("vfs_read") { $count = 1 }', "write to target variable not permitted; need stap -g"),
])
def test_messages(kctx, text, msg):
    assert msg in error(kctx, text)


def test_clone_only_function_explains(kctx):
    msg = error(kctx, 'probe kernel.function("do_execveat_common") { print(1) }')
    assert (f'no match for probe point kernel.function("do_execveat_common") in kernel '
            f'{kctx.release} (do_execveat_common.isra.0 is a GCC out-of-line copy') in msg


def test_optional_sufficient_and_condition(kctx):
    ir = elaborate(kctx, 'global on = 1\n'
                         'probe kernel.function("no_such_fn")?, kernel.function("vfs_read")!, '
                         'kernel.function("vfs_write") { print(1) }\n'
                         'probe kernel.function("vfs_write") if (on) { on = 0 }\n'
                         'probe kernel.function("no_such_fn2")? { print(2) }\n')
    assert [p["params"]["symbol"] for p in ir["probes"]] == ["vfs_read", "vfs_write"]
    assert ir["probes"][1]["condition"]["name"] == "on"
