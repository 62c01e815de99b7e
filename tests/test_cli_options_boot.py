"""stap's run options, booted: -x, -c/target(), -o with strftime, -G, -t,
-s, -w, --json and the run's exit status, on both kernel series.

Modules are built by the ``stapbuild`` command (-p4, so -t, -s and -D go
through the command line as a user gives them). All runs of one series
share one guest boot: each is the exact command ``stapbuild --guest`` runs
in the guest (launch.guest_command of the same RunOptions), and the guest
reports each run's status, timing and output.
"""
from __future__ import annotations

import base64
import json
import os
import re
import shlex
import subprocess
import sys
import time
from pathlib import Path

import pytest

from stapbuild import guest, kernels, launch
from stapbuild.run5 import RunOptions, expand_output_name
from tests.bootlib import ROOT, resolve

DD5 = "dd if=/dev/zero of=/dev/null bs=1 count=5 status=none"
FLOOD = 'probe begin { for (i = 0; i < 12000; i++) printf("%0100d\\n", i); exit() }'


def cli_build(release: str, script: str, *opts: str) -> Path:
    """Passes 1-4 through the stapbuild command; the .ko path it prints."""
    env = {**os.environ, "SYSTEMTAP_DIR": "/nonexistent-stapbuild-test-dir"}
    r = subprocess.run([sys.executable, "-m", "stapbuild.cli", "-p4", "-r", release, *opts,
                        "-e", script], cwd=ROOT, env=env, capture_output=True, text=True,
                       timeout=900)
    assert r.returncode == 0, r.stderr
    return Path(r.stdout.strip())


def _case_shell(name: str, command: str, extra: str = "true") -> str:
    """One run in the guest, reported between markers (base64: any bytes)."""
    return (f"printf '=====case %s\\n' {shlex.quote(name)}\n"
            "s=$(date +%s.%N)\n"
            f"{command} >/tmp/sb.out 2>/tmp/sb.err\n"
            "rc=$?\n"
            "e=$(date +%s.%N)\n"
            "printf 'rc=%s start=%s end=%s\\n' $rc $s $e\n"
            "echo -----stdout; base64 -w0 /tmp/sb.out; echo\n"
            "echo -----stderr; base64 -w0 /tmp/sb.err; echo\n"
            f"echo -----extra; ( {extra} ) 2>&1 | base64 -w0; echo\n")


def _parse(stdout: str) -> dict[str, dict]:
    out: dict[str, dict] = {}
    for block in stdout.split("=====case ")[1:]:
        lines = block.split("\n")
        m = re.match(r"rc=(\d+) start=([\d.]+) end=([\d.]+)", lines[1])
        assert m, block[:400]

        def section(tag: str) -> str:
            return base64.b64decode(lines[lines.index(tag) + 1]).decode("utf-8", "replace")

        out[lines[0]] = {"rc": int(m.group(1)), "seconds": float(m.group(3)) - float(m.group(2)),
                         "stdout": section("-----stdout"), "stderr": section("-----stderr"),
                         "extra": section("-----extra")}
    return out


@pytest.fixture(scope="module", params=["6.1", "6.12"])
def runs(request):
    release = resolve(request.param)
    kos = {
        "target": cli_build(release, 'probe begin { printf("target=%d\\n", target()); exit() }'),
        "c": cli_build(release, 'global hits; probe kernel.function("vfs_read") '
                                '{ if (pid() == target()) hits++ } '
                                'probe end { printf("hits=%d target_set=%d\\n", hits, target() > 0) }'),
        "out": cli_build(release, 'probe begin { printf("to file\\n"); exit() }'),
        "G": cli_build(release, 'global n = 1, s = "default"; '
                                'probe begin { printf("n=%d s=%s\\n", n, s); exit() }'),
        "t": cli_build(release, 'global n; probe kernel.function("vfs_read") { n++ } '
                                'probe end { printf("n=%d\\n", n) }', "-t"),
        "s_big": cli_build(release, FLOOD, "-s", "2", "-D", "MAXACTION=100000"),
        "s_default": cli_build(release, FLOOD, "-D", "MAXACTION=100000"),
        "json": cli_build(release, 'probe begin { printf("a\\nb\\npartial"); warn("careful"); '
                                   'exit() }'),
        "error": cli_build(release, 'probe begin { error("bad thing") }'),
    }
    pattern = "/tmp/sbout-%Y-%m.txt"
    cases = [
        ("x", "target", RunOptions(target_pid=1), "true"),
        ("c", "c", RunOptions(workload=DD5, duration=120), "true"),
        ("o", "out", RunOptions(output=pattern), "cat /tmp/sbout-$(date +%Y-%m).txt"),
        ("o_relay", "out", RunOptions(), "true"),
        ("G", "G", RunOptions(globals=["n=42", "s=hello"]), "true"),
        ("G_default", "G", RunOptions(), "true"),
        ("G_bad", "G", RunOptions(globals=["nosuch=1"]), "true"),
        ("t", "t", RunOptions(workload=DD5), "true"),
        ("s_big", "s_big", RunOptions(), "true"),
        ("s_default", "s_default", RunOptions(), "true"),
        ("json", "json", RunOptions(json=True), "true"),
        ("json_error", "error", RunOptions(json=True), "true"),
        ("w", "json", RunOptions(suppress_warnings=True), "true"),
        ("no_w", "json", RunOptions(), "true"),
        ("error", "error", RunOptions(), "true"),
    ]
    def command(ko: str, opts: RunOptions) -> str:
        cmd = launch.guest_command(kos[ko], opts)
        # -o on a host that loads the module itself: run5 writes the file
        # (launch.guest_command leaves -o to the host, which cannot be
        # written from a guest).
        return cmd + (f" --output {shlex.quote(opts.output)}" if opts.output else "")

    script = "".join(_case_shell(name, command(ko, opts), extra)
                     for name, ko, opts, extra in cases)
    k = kernels.provision(release, {"image"})
    res = guest.run_in_guest(k, script, timeout=1500)
    got = _parse(res.stdout)
    assert len(got) == len(cases), (res.returncode, res.stderr, res.console[-3000:])
    return release, got


@pytest.mark.boot
def test_x_sets_target(runs):
    _, r = runs
    assert r["x"]["rc"] == 0, r["x"]
    assert r["x"]["stdout"] == "target=1\n"


@pytest.mark.boot
def test_c_sets_target_and_ends_the_run(runs):
    _, r = runs
    c = r["c"]
    assert c["rc"] == 0, c
    m = re.fullmatch(r"hits=(\d+) target_set=1\n", c["stdout"])
    assert m, c["stdout"]
    assert int(m.group(1)) >= 5             # dd's five reads, at least
    assert c["seconds"] < 60                # the command's end, not -T 120


@pytest.mark.boot
def test_o_expands_strftime(runs, tmp_path):
    _, r = runs
    assert r["o"]["rc"] == 0 and r["o"]["stdout"] == "", r["o"]
    assert r["o"]["extra"] == "to file\n"
    # --guest: the host writes -o's file from what the guest printed.
    pattern = str(tmp_path / "out-%Y%m%d.txt")
    launch.relay_guest_output(r["o_relay"]["stdout"], "", RunOptions(output=pattern),
                              expand_output_name(pattern))
    assert (tmp_path / time.strftime("out-%Y%m%d.txt")).read_text() == "to file\n"


@pytest.mark.boot
def test_G_sets_globals_at_load(runs):
    _, r = runs
    assert r["G"]["rc"] == 0 and r["G"]["stdout"] == "n=42 s=hello\n", r["G"]
    assert r["G_default"]["stdout"] == "n=1 s=default\n", r["G_default"]
    assert r["G_bad"]["rc"] == 1
    assert "ERROR: global 'nosuch' cannot be set with -G" in r["G_bad"]["stderr"]


@pytest.mark.boot
def test_t_probe_hit_report(runs):
    _, r = runs
    t = r["t"]
    assert t["rc"] == 0, t
    lines = t["stdout"].splitlines()
    n = int(re.fullmatch(r"n=(\d+)", lines[0]).group(1))
    assert lines[1] == "----- probe hit report: "
    hit = re.compile(r'(?P<pp>.+), \((?P<loc>[^()]+:\d+:\d+)\), hits: (?P<hits>\d+), '
                     r'cycles: (?P<min>\d+)min/(?P<avg>\d+)avg/(?P<max>\d+)max, '
                     r'variance: \d+,(?P<from>.*), index: \d+')
    rows = {m["pp"]: m for m in map(hit.fullmatch, lines[2:]) if m}
    assert len(rows) == len(lines) - 2, lines
    vfs = next(m for pp, m in rows.items() if pp.startswith('kernel.function("vfs_read@'))
    assert int(vfs["hits"]) == n >= 5
    assert vfs["from"] == ' from: kernel.function("vfs_read")'
    assert int(vfs["min"]) <= int(vfs["avg"]) <= int(vfs["max"])
    assert rows["end"]["hits"] == "1"


@pytest.mark.boot
def test_s_sets_the_buffer(runs):
    _, r = runs
    big, small = r["s_big"], r["s_default"]
    assert big["rc"] == 0 and small["rc"] == 0
    assert len(big["stdout"].splitlines()) == 12000
    assert "transport failures" not in big["stderr"]
    # 1.2 MB printed in a begin probe, before anyone reads: the default
    # 1 MB buffer overflows.
    assert len(small["stdout"].splitlines()) < 12000
    assert re.search(r"WARNING: There were \d+ transport failures\.", small["stderr"])


@pytest.mark.boot
def test_json_run_output(runs):
    _, r = runs
    j = r["json"]
    assert j["rc"] == 0 and j["stderr"] == "", j
    objs = [json.loads(line) for line in j["stdout"].splitlines()]
    out = [(o["text"], o.get("partial", False)) for o in objs if o["type"] == "output"]
    assert out == [("a", False), ("b", False), ("partial", True)]
    assert [o["text"] for o in objs if o["type"] == "warning"] == ["WARNING: careful"]
    e = r["json_error"]
    assert e["rc"] == 1
    errors = [json.loads(line) for line in e["stdout"].splitlines()]
    assert any(o["type"] == "error" and o["text"].startswith("ERROR: bad thing") for o in errors)


@pytest.mark.boot
def test_w_and_exit_status(runs):
    _, r = runs
    assert "WARNING: careful" in r["no_w"]["stderr"]
    assert r["w"]["stderr"] == "" and r["w"]["rc"] == 0
    assert r["w"]["stdout"] == "a\nb\npartial"
    # stapio's rule: an ERROR: line makes the run fail.
    assert r["error"]["rc"] == 1 and "ERROR: bad thing" in r["error"]["stderr"]
