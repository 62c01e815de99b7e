"""kernel.trace probes in pass 2, both kernels: names, systems, argument
names and types from the __traceiter_* functions' DWARF (or BTF)."""
from __future__ import annotations

import io

import pytest

from codegen.elaborate import iter_nodes
from codegen.errors import StapError, StapErrors
from stapbuild import passes
from stapbuild.listing import run_listing
from tests.bootlib import resolve

pytestmark = pytest.mark.kernel


@pytest.fixture(scope="module", params=["6.1", "6.12"])
def release(request):
    return resolve(request.param)


def elaborate(kctx, text: str) -> dict:
    parsed = passes.parse_pass(None, text, kctx, name="t.stp")
    return passes.elaborate_pass(parsed.artifact, kctx).artifact.read_json()


def test_sched_switch_args(release):
    ir = elaborate(passes.kernel_context(release),
                   'probe kernel.trace("sched:sched_switch") { println($prev->pid, $next_x) }'
                   .replace(", $next_x", ", $prev_state"))
    p = ir["probes"][0]
    assert p["family"] == "tracepoint" and p["pp"] == 'kernel.trace("sched:sched_switch")'
    assert [(a["name"], a["type"]["name"]) for a in p["params"]["args"]] == [
        ("preempt", "bool"), ("prev", "struct task_struct*"), ("next", "struct task_struct*"),
        ("prev_state", "unsigned int")]
    chains = [n["info"] for n in iter_nodes(p["body"]) if n.get("k") == "TargetSymbol"]
    bases = sorted(i["base"]["index"] for i in chains)
    assert bases == [1, 3]
    state = next(i for i in chains if i["base"]["index"] == 3)
    assert state["final"] == {"kind": "value", "size": 4, "signed": False}


def test_wildcards_and_listing(release):
    ir = elaborate(passes.kernel_context(release), 'probe kernel.trace("sched_*") { }')
    names = {p["params"]["tracepoint"] for p in ir["probes"] if p["family"] == "tracepoint"}
    assert {"sched_switch", "sched_wakeup", "sched_process_exec"} <= names
    assert {p["params"]["system"] for p in ir["probes"] if p["family"] == "tracepoint"} == {"sched"}
    out = io.StringIO()
    assert run_listing('kernel.trace("sched:sched_process_exec")', release, True, out=out) == 0
    assert out.getvalue() == ('kernel.trace("sched:sched_process_exec") $p:struct task_struct* '
                              '$old_pid:pid_t $bprm:struct linux_binprm*\n')


def test_btf_tracepoints(release):
    ir = elaborate(passes.kernel_context_btf(release),
                   'probe kernel.trace("sched:sched_switch") { println($next->pid) }')
    assert ir["probes"][0]["pp"] == 'kernel.trace("sched_switch")'
    with pytest.raises((StapError, StapErrors)) as ei:
        elaborate(passes.kernel_context_btf(release),
                  'probe kernel.trace("sched_switch") { println($$system) }')
    assert "system is not known without DWARF" in ei.value.render()


def test_unknown_tracepoint_and_arg(release):
    kctx = passes.kernel_context(release)
    with pytest.raises((StapError, StapErrors)) as ei:
        elaborate(kctx, 'probe kernel.trace("no_such_tracepoint") { }')
    assert f'no match for probe point kernel.trace("no_such_tracepoint") in kernel {release}' \
        in ei.value.render()
    with pytest.raises((StapError, StapErrors)) as ei:
        elaborate(kctx, 'probe kernel.trace("sched_switch") { print($nope) }')
    assert "unable to find tracepoint variable '$nope' (alternatives: $preempt $prev $next " \
        "$prev_state)" in ei.value.render()
