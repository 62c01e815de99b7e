"""The end-to-end slice in real kernels: one boot per kernel series runs
iotop and the small scripts beside it, each through the user's runner."""
from __future__ import annotations

import re

import pytest

from tests.bootlib import ROOT, build_module, case, ok, resolve, run_batch

SCRIPTS = ROOT / "tests" / "boot_scripts"
DD_WRITE_READ = ("dd if=/dev/zero of=/tmp/stapbuild-iotop bs=64k count=200 2>/dev/null; "
                 "dd if=/tmp/stapbuild-iotop of=/dev/null bs=64k 2>/dev/null; "
                 "rm -f /tmp/stapbuild-iotop")
DD_SMALL = "dd if=/dev/zero of=/dev/null bs=4096 count=3 status=none"


@pytest.fixture(scope="module", params=["6.1", "6.12"])
def results(request):
    release = resolve(request.param)
    kos = {name: build_module(path, release) for name, path in [
        ("iotop", ROOT / "probes" / "iotop.stp"),
        ("begin_end", SCRIPTS / "begin_end.stp"),
        ("timer_exit", SCRIPTS / "timer_exit.stp"),
        ("kprobe_param", SCRIPTS / "kprobe_param.stp"),
        ("kretprobe_return", SCRIPTS / "kretprobe_return.stp"),
        ("exit_from_kprobe", SCRIPTS / "exit_from_kprobe.stp"),
        ("stats", SCRIPTS / "stats.stp"),
    ]}
    cases = [
        case("iotop", kos["iotop"], workload=DD_WRITE_READ),
        case("begin_end", kos["begin_end"], duration=0.2),
        case("timer_exit", kos["timer_exit"], duration=30),
        case("kprobe_param", kos["kprobe_param"], workload=DD_SMALL),
        case("kretprobe_return", kos["kretprobe_return"], workload=DD_SMALL),
        case("exit_from_kprobe", kos["exit_from_kprobe"],
             workload="sleep 0.5; " + DD_SMALL + "; sleep 30"),
        case("stats", kos["stats"], workload=DD_SMALL),
    ]
    return release, run_batch(release, cases)


@pytest.mark.boot
def test_iotop_shows_dd_kilobytes(results):
    release, res = results
    r = ok(res["iotop"])
    lines = r["stdout"].splitlines()
    assert re.match(r"\s+Process\s+PID\s+KB Read\s+KB Written$", lines[0]), r["stdout"]
    rows = [l.split() for l in lines[1:] if l.strip()]
    dd = [row for row in rows if row[0] == "dd"]
    # One dd writes 12800 KB (reading as much from /dev/zero), the other
    # reads those 12800 KB back (writing them to /dev/null).
    assert len(dd) == 2, r["stdout"]
    for _, pid, kb_read, kb_written in dd:
        assert 12800 <= int(kb_read) <= 12900, r["stdout"]
        assert int(kb_written) == 12800, r["stdout"]
    # Sorted by total I/O, descending.
    totals = [int(row[2]) + int(row[3]) for row in rows]
    assert totals == sorted(totals, reverse=True)


@pytest.mark.boot
def test_begin_end_order(results):
    _, res = results
    r = ok(res["begin_end"])
    assert r["stdout"] == "begin minus five\nbegin zero 0\nbegin ten\nend\n"


@pytest.mark.boot
def test_timer_counts_and_exit(results):
    _, res = results
    r = ok(res["timer_exit"])
    assert r["stdout"] == "ticks=5\n"
    assert r["seconds"] < 25          # exit() ended it, not the 30 s duration


@pytest.mark.boot
def test_kprobe_reads_parameter(results):
    _, res = results
    r = ok(res["kprobe_param"])
    assert "vfs_read count=4096 hits=3" in r["stdout"].splitlines(), r["stdout"]


@pytest.mark.boot
def test_kretprobe_reads_return(results):
    _, res = results
    r = ok(res["kretprobe_return"])
    assert r["stdout"] == "written=12288 calls=3\n"


@pytest.mark.boot
def test_exit_from_kprobe(results):
    _, res = results
    r = ok(res["exit_from_kprobe"])
    first, second = r["stdout"].splitlines()
    assert re.fullmatch(r"dd read \d+ bytes into 0x[0-9a-f]+", first), first
    assert second == "end after exit"
    assert r["seconds"] < 25          # exit() ended it, not the sleeping workload


@pytest.mark.boot
def test_statistics(results):
    _, res = results
    r = ok(res["stats"])
    lines = r["stdout"].splitlines()
    assert lines[0] == "count=3 sum=12288 min=4096 max=4096 avg=4096", r["stdout"]
    assert lines[1] == "dd writes=3 bytes=12288"
