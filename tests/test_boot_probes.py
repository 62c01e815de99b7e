"""Probe families in real kernels (one boot per series): never,
timer.profile on every CPU, kprobe.function without debug info (entry,
.return, optional and missing symbols) and procfs read/write files."""
from __future__ import annotations

import pytest

from tests.bootlib import ROOT, build_module, case, resolve, run_batch

SCRIPTS = ROOT / "tests" / "boot_scripts"
DD_SMALL = "dd if=/dev/zero of=/dev/null bs=4096 count=3 status=none"
PROCFS_WORKLOAD = ("d=$(echo /proc/systemtap/stap_*); echo hi > $d/msg; "
                   "cat $d/msg > $d/check; wc -c < $d/command > $d/check")


@pytest.fixture(scope="module", params=["6.1", "6.12"])
def results(request):
    release = resolve(request.param)
    names = ["probe_never", "timer_profile", "kprobe_raw", "kprobe_missing", "procfs_rw"]
    kos = {n: build_module(SCRIPTS / f"{n}.stp", release) for n in names}
    cases = [
        case("probe_never", kos["probe_never"], duration=0.3),
        case("timer_profile", kos["timer_profile"], duration=20),
        case("kprobe_raw", kos["kprobe_raw"], workload=DD_SMALL),
        case("kprobe_missing", kos["kprobe_missing"], duration=0.5),
        case("procfs_rw", kos["procfs_rw"], workload=PROCFS_WORKLOAD),
    ]
    return release, run_batch(release, cases)


def clean(r: dict) -> dict:
    assert not r["left_loaded"], r
    assert not r["kernel_trouble"], r
    return r


@pytest.mark.boot
def test_never_probe_never_runs(results):
    _, res = results
    r = clean(res["probe_never"])
    assert (r["stdout"], r["rc"]) == ("begin n=0\nend\n", 0), r


@pytest.mark.boot
def test_timer_profile_ticks_on_every_cpu(results):
    _, res = results
    r = clean(res["timer_profile"])
    # The guest has 2 vCPUs; each ticks HZ times a second.
    assert (r["stdout"], r["rc"]) == ("ticks>50 1 cpus-ticking 2\n", 0), r
    assert r["seconds"] < 15


@pytest.mark.boot
def test_kprobe_function_without_debuginfo(results):
    _, res = results
    r = clean(res["kprobe_raw"])
    assert (r["stdout"], r["stderr"], r["rc"]) == ("calls>=3 1 balanced 1\n", "", 0), r


@pytest.mark.boot
def test_kprobe_missing_symbol_fails_registration(results):
    _, res = results
    r = clean(res["kprobe_missing"])
    assert r["stdout"] == "begin\n", r
    assert r["stderr"].startswith('WARNING: probe kprobe.function("stapbuild_no_such_function") '
                                  "registration error [man warning::pass5] (rc "), r
    # The session failed: the run must say so and fail, as stap's does.
    assert "ERROR: probe registration failed" in r["stderr"], r
    assert r["rc"] == 1, r


@pytest.mark.boot
def test_procfs_read_and_write(results):
    _, res = results
    r = clean(res["procfs_rw"])
    assert (r["stdout"], r["stderr"], r["rc"]) == (
        "check: got: hi\ncheck: 1001\nreads=1\n", "", 0), r
