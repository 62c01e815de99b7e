"""Target variables in booted kernels (both series, one boot each):
$p->a->b chains read with kernel_string(), $count, $return, .return probes
reading entry values, $$parms/$$return, and nofault reads of bad pointers."""
from __future__ import annotations

import re

import pytest

from stapbuild import passes
from tests.bootlib import ROOT, build_module, case, resolve, run_batch

SCRIPTS = ROOT / "tests" / "boot_scripts"
DD_FILE = ("printf 'hello world!' > /tmp/stapbuild-target-file; "
           "dd if=/tmp/stapbuild-target-file of=/dev/null bs=4096 count=1 status=none; "
           "rm -f /tmp/stapbuild-target-file")


def build_btf_only(script, release):
    """passes 1-4 with BTF from the image, never the -dbg package's DWARF."""
    kctx = passes.kernel_context_btf(release)
    parsed = passes.parse_pass(script, script.read_text(), kctx)
    elab = passes.elaborate_pass(parsed.artifact, kctx)
    name = passes.module_name_for(script.stem + "_btf", elab.artifact.key)
    c = passes.translate_pass(elab.artifact, name)
    return passes.compile_pass(c.artifact, name, kctx).artifact.path


@pytest.fixture(scope="module", params=["6.1", "6.12"])
def results(request):
    release = resolve(request.param)
    cases = [
        case("targets_vfs", build_module(SCRIPTS / "targets_vfs.stp", release), workload=DD_FILE),
        case("targets_vfs_btf", build_btf_only(SCRIPTS / "targets_vfs.stp", release),
             workload=DD_FILE),
        case("targets_fault", build_module(SCRIPTS / "targets_fault.stp", release),
             duration=0.2),
        case("global_display", build_module(SCRIPTS / "global_display.stp", release),
             duration=5),
        case("tracepoints", build_module(SCRIPTS / "tracepoints.stp", release),
             workload="sleep 0.2; /bin/true; sleep 0.2"),
        case("tracepoints_btf", build_btf_only(SCRIPTS / "tracepoints_btf.stp", release),
             workload="sleep 0.2; /bin/true; sleep 0.2"),
    ]
    return release, run_batch(release, cases)


@pytest.mark.boot
@pytest.mark.parametrize("name", ["targets_vfs", "targets_vfs_btf"])
def test_vfs_read_chain_count_return(results, name):
    _, res = results
    r = res[name]
    assert r["rc"] == 0 and not r["left_loaded"] and not r["kernel_trouble"], r
    lines = r["stdout"].splitlines()
    assert lines[0] == "entry name=stapbuild-target-file count=4096 first=s", r["stdout"]
    assert re.fullmatch(r"parms file=0x[0-9a-f]{16} buf=0x[0-9a-f]+ count=0x1000 "
                        r"pos=0x[0-9a-f]{16}", lines[1]), lines[1]
    # 12 bytes read; $count and the @entry expression are entry values
    assert lines[2] == ("return name=stapbuild-target-file ret=12 count=4096 entry=4097 "
                        "return=0xc"), r["stdout"]
    assert len(lines) == 3, r["stdout"]


@pytest.mark.boot
def test_bad_pointer_is_a_script_error(results):
    _, res = results
    r = res["targets_fault"]
    assert not r["kernel_trouble"] and not r["left_loaded"], r
    assert r["stdout"].startswith("caught: kernel string copy fault at 0x0000000000000000"), r
    assert "not reached" not in r["stdout"]
    assert re.search(r"ERROR: kernel read fault at 0x00000000003e80[0-9a-f]{2} near operator "
                     r"'@cast' at .*targets_fault.stp:9:", r["stderr"]), r["stderr"]


@pytest.mark.boot
def test_unread_globals_displayed_at_end(results):
    _, res = results
    r = res["global_display"]
    assert r["rc"] == 0 and not r["kernel_trouble"], r
    assert r["stdout"] == ('count=42\nnames["b",2]=7\nnames["a",1]=5\n'
                           "st @count=2 @min=3 @max=5 @sum=8 @avg=4\nmsg=\"hello\"\n")


@pytest.mark.boot
def test_tracepoint_arguments(results):
    _, res = results
    r = res["tracepoints"]
    assert r["rc"] == 0 and not r["kernel_trouble"] and not r["left_loaded"], r
    assert r["stdout"] == ("sched:sched_process_exec comm=true filename=/bin/true\n"
                           "switched=1\n"), r


@pytest.mark.boot
def test_tracepoint_btf_only(results):
    _, res = results
    r = res["tracepoints_btf"]
    assert r["rc"] == 0 and not r["kernel_trouble"], r
    assert r["stdout"] == "sched_process_exec comm=true filename=/bin/true\n", r
