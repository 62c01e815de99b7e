"""User-space probes in booted kernels (issue 9): one boot per series runs
every case.

The test program (tests/c/uprobe_demo.c) is built with `gcc -g` into a
directory under /tmp, which the guest sees over 9p at the same path; the
uprobes are registered on that file's inode and fire when the workload
runs it.
"""
from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

import pytest

from tests.bootlib import ROOT, build_module, case, ok, resolve, run_batch

DEMO_SRC = ROOT / "tests" / "c" / "uprobe_demo.c"
THREADS_SRC = ROOT / "tests" / "c" / "uprobe_threads.c"
PID_SRC = ROOT / "tests" / "c" / "uprobe_pid.c"
SDT_SRC = ROOT / "tests" / "c" / "uprobe_sdt.c"

FUNC = r'''
probe process("@BIN@").function("add") {
	printf("add a=%d b=%d parms=[%s]\n", $a, $b, $$parms)
}
probe process("@BIN@").function("add").return {
	printf("add returned %d\n", $return)
}
probe process("@BIN@").function("point_sum") {
	printf("point_sum x=%d y=%d label=%s scale=%d\n", $p->x, $p->y,
	       user_string($p->label), $scale)
}
probe process("@BIN@").function("point_sum").return {
	printf("point_sum returned %d\n", $return)
}
probe process("@BIN@").function("gree*").return {
	printf("%s returned %s\n", ppfunc(), user_string($return))
}
# parameters in .return: saved at entry (after the prologue), found again
# by the frame's CFA, so recursion gets each call's own values
probe process("@BIN@").function("add").return {
	printf("ret add(%d, %d) = %d parms=[%s] entry=%d\n", $a, $b, $return, $$parms,
	       @entry($a * 100 + $b))
}
probe process("@BIN@").function("point_sum").return {
	printf("ret point_sum x=%d label=%s scale=%d = %d\n", $p->x,
	       user_string(@entry($p->label)), $scale, $return)
}
probe process("@BIN@").function("fact").return {
	printf("ret fact(%d) = %d\n", $n, $return)
}
'''

MALLOC = r'''
global sizes
probe process("@BIN@").library("libc").function("malloc") {
	if (ulong_arg(1) == 4242)
		printf("malloc(%d) in %s\n", ulong_arg(1), execname())
	sizes[ulong_arg(1)] <<< 1
}
global plt
probe process("@BIN@").plt("fork") {
	plt[$$name, pid()] <<< 1
}
probe end {
	printf("malloc calls of 4242 bytes: %d\n", @count(sizes[4242]))
	foreach ([name, p] in plt)
		printf("plt %s calls=%d by target %s\n", name, @count(plt[name, p]),
		       p == target() ? "yes" : "no")
}
'''

TARGET = r'''
global mine, all
probe process("@BIN@").function("add") {
	all <<< $a
	if (pid() == target())
		mine <<< $a
}
probe end {
	printf("target adds=%d sum=%d all adds=%d\n", @count(mine), @sum(mine), @count(all))
}
'''

LIFECYCLE = r'''
global child
probe process.begin {
	if (ppid() == target()) {
		child = pid()
		printf("begin: child of the target, %s, own pid %s\n", execname(),
		       pid() != target() ? "yes" : "no")
	}
}
probe process("@BIN@").begin {
	if (pid() == target())
		printf("exec begin: target runs %s\n", execname())
}
probe process.end {
	if (pid() == target())
		printf("end: target %s\n", execname())
	else if (child && pid() == child)
		printf("end: the child, %s\n", execname())
}
probe process("@BIN@").end {
	printf("path end: %s %s\n", pid() == target() ? "target" :
	       child && pid() == child ? "child" : "other", execname())
}
probe process("@THREADS@").end {
	printf("wrong path end: %d %s\n", pid(), execname())
}
'''

SYSCALL = r'''
global child, clone_ret
probe process.begin {
	if (ppid() == target())
		child = pid()
}
probe process.syscall {
	if (pid() == target() && $syscall == 1 && $arg1 == 1)
		printf("write fd=%d len=%d\n", $arg1, $arg3)
}
probe process("@BIN@").syscall.return {
	# glibc's fork() is the clone system call (56)
	if (pid() == target() && $syscall == 56)
		clone_ret = $return
}
probe end {
	printf("clone returned the child's pid: %s\n",
	       child && clone_ret == child ? "yes" : "no")
}
'''

THREADS = r'''
global tb, te, pb, pe, nb, ne, both, ptb, pte
probe process.thread.begin { if (pid() == target()) tb[tid()] = 1 }
probe process.thread.end { if (pid() == target()) te[tid()] = 1 }
# By path: no pid test; only the threads of processes running @BIN@
probe process("@BIN@").thread.begin { ptb[tid()] = pid() }
probe process("@BIN@").thread.end { pte[tid()] = pid() }
probe process.begin { if (pid() == target()) pb++ }
probe process.end { if (pid() == target()) pe++ }
probe end {
	foreach (t in tb) {
		nb++
		both += (t in te) && t != target()
	}
	foreach (t in te)
		ne++
	printf("threads begun=%d ended=%d both=%d; process begin=%d end=%d\n",
	       nb, ne, both, pb, pe)
	nb = ne = both = 0
	foreach (t in ptb) {
		nb++
		both += ptb[t] == target() && t in te
	}
	foreach (t in pte)
		ne += pte[t] == target()
	printf("by path: threads begun=%d ended=%d of the target=%d\n", nb, ne, both)
}
'''

# process("PATH").statement: a line inside main's loop, with main's locals
STMT = r'''
probe process("@BIN@").statement("main@uprobe_demo.c:@LINE@") {
	printf("stmt i=%d total=%d n=%d\n", $i, $total, $n)
}
'''


# process(PID): @PID@ is a host process running @BIN@ when the script is
# translated; in the guest the workload makes a run of @BIN@ get that PID
# (through ns_last_pid) after a run with another PID, which must not fire.
PID = r'''
global hits, others
probe process(@PID@).function("add") {
	if (pid() == @PID@) hits++
	else others++
}
probe process(@PID@).end { printf("end of %d\n", pid()) }
probe end { printf("pid hits=%d others=%d\n", hits, others) }
'''


def pid_workload(binary: Path, pid: int) -> str:
    """Run `binary 5` under some PID, then `binary 3` as PID `pid`: the
    guest is quiet, so after ns_last_pid = pid - 1 the next fork gets it
    (a few tries, in case a kernel thread took it)."""
    return (f"echo 4194304 > /proc/sys/kernel/pid_max; {binary} 5; "
            f"for i in 1 2 3 4 5 6 7 8; do echo {pid - 1} > /proc/sys/kernel/ns_last_pid; "
            f"{binary} 3 & p=$!; wait $p; [ $p = {pid} ] && break; done")


SDT = r'''
probe process("@BIN@").mark("tick") {
	printf("%s:%s i=%d sq=%d name=%s parms=%s\n", $$provider, $$name, $arg1, $arg2,
	       user_string($arg3), $$parms == "" ? "empty" : "set")
}
probe process("@BIN@").provider("demo").mark("done") {
	printf("done total=%d semaphore=%d\n", $arg1, $arg2)
}
'''


def _script(tmp: Path, name: str, text: str, binary: Path,
            threads: Path | None = None) -> Path:
    p = tmp / f"{name}.stp"
    text = text.replace("@BIN@", str(binary))
    if threads is not None:
        text = text.replace("@THREADS@", str(threads))
    p.write_text(text)
    return p


@pytest.fixture(scope="module", params=["6.1", "6.12"])
def results(request, tmp_path_factory):
    release = resolve(request.param)
    tmp = tmp_path_factory.mktemp(f"uprobes-{request.param}")
    demo = tmp / "uprobe_demo"
    subprocess.run(["gcc", "-g", "-o", str(demo), str(DEMO_SRC)], check=True, cwd=ROOT)
    threads = tmp / "uprobe_threads"
    subprocess.run(["gcc", "-g", "-pthread", "-o", str(threads), str(THREADS_SRC)],
                   check=True, cwd=ROOT)
    kos = {name: build_module(_script(tmp, name, text, demo, threads), release)
           for name, text in (("func", FUNC), ("malloc", MALLOC), ("target", TARGET),
                              ("lifecycle", LIFECYCLE), ("syscall", SYSCALL))}
    # Threads begin and end on both vCPUs at once, each probe updating a
    # global: under TCG a vCPU holding an array's lock can be off the host
    # CPU far longer than SystemTap's default patience (MAXTRYLOCK), and a
    # probe that gives up is skipped, so this case waits longer, as the SMP
    # test does.
    kos["threads"] = build_module(_script(tmp, "threads", THREADS, threads), release,
                                  defines=("MAXTRYLOCK=100000",))
    loop_line = DEMO_SRC.read_text().splitlines().index("\t\ttotal += add(i, 10 * i);") + 1
    kos["stmt"] = build_module(_script(tmp, "stmt", STMT.replace("@LINE@", str(loop_line)),
                                       demo), release)
    pidbin = tmp / "uprobe_pid"
    subprocess.run(["gcc", "-g", "-o", str(pidbin), str(PID_SRC)], check=True, cwd=ROOT)
    paused = subprocess.Popen([str(pidbin), "pause"])
    try:
        while os.path.realpath(f"/proc/{paused.pid}/exe") != str(pidbin.resolve()):
            time.sleep(0.01)
        kos["pid"] = build_module(_script(tmp, "pid", PID.replace("@PID@", str(paused.pid)),
                                          pidbin), release)
    finally:
        paused.kill()
        paused.wait()
    # USDT: -O2 passes the arguments in registers, -O0 in frame slots
    # ("-4@-12(%rbp)"), so both operand forms are read.
    sdt = {}
    for opt in ("O2", "O0"):
        sdt[opt] = tmp / f"uprobe_sdt_{opt}"
        subprocess.run(["gcc", "-g", f"-{opt}", "-o", str(sdt[opt]), str(SDT_SRC)],
                       check=True, cwd=ROOT)
        kos[f"sdt_{opt}"] = build_module(_script(tmp, f"sdt_{opt}", SDT, sdt[opt]), release)
    cases = [
        case("func", kos["func"], workload=f"{demo} 3"),
        case("malloc", kos["malloc"], workload=f"exec {demo} 2"),
        # The first run is not the target; `exec` makes the second one the
        # workload's own process, whose pid target() returns.
        case("target", kos["target"], workload=f"{demo} 7 >/dev/null; exec {demo} 4"),
        case("lifecycle", kos["lifecycle"], workload=f"exec {demo} 2"),
        case("syscall", kos["syscall"], workload=f"exec {demo} 2 >/dev/null"),
        case("threads", kos["threads"], workload=f"exec {threads} 3 >/dev/null"),
        case("pid", kos["pid"], workload=pid_workload(pidbin, paused.pid)),
        case("stmt", kos["stmt"], workload=f"{demo} 3 >/dev/null"),
        case("sdt_O2", kos["sdt_O2"], workload=f"{sdt['O2']} 3"),
        case("sdt_O0", kos["sdt_O0"], workload=f"{sdt['O0']} 3"),
    ]
    return release, run_batch(release, cases)


@pytest.mark.boot
def test_function_entry_and_return_read_params_and_return(results):
    _, res = results
    lines = ok(res["func"])["stdout"].splitlines()
    for i in (1, 2, 3):
        assert f"add a={i} b={10 * i} parms=[a={i:#x} b={10 * i:#x}]" in lines, lines
        assert f"add returned {11 * i}" in lines, lines
    assert "point_sum x=40 y=2 label=origin scale=3" in lines, lines
    assert "point_sum returned 126" in lines, lines
    assert "greet returned long" in lines, lines
    # entry before return, in call order
    adds = [l for l in lines if l.startswith("add ")]
    assert adds[:2] == ["add a=1 b=10 parms=[a=0x1 b=0xa]", "add returned 11"], adds


@pytest.mark.boot
def test_params_read_in_return_probes_are_saved_at_entry(results):
    _, res = results
    lines = ok(res["func"])["stdout"].splitlines()
    assert [l for l in lines if l.startswith("ret add(")] == [
        f"ret add({i}, {10 * i}) = {11 * i} parms=[a={i:#x} b={10 * i:#x}] "
        f"entry={100 * i + 10 * i}" for i in (1, 2, 3)], lines
    assert "ret point_sum x=40 label=origin scale=3 = 126" in lines, lines
    # recursion: the innermost call returns first, each with its own $n
    assert [l for l in lines if l.startswith("ret fact(")] == [
        "ret fact(1) = 1", "ret fact(2) = 2", "ret fact(3) = 6", "ret fact(4) = 24"], lines
    assert "ERROR" not in res["func"]["stdout"] + res["func"].get("stderr", ""), res["func"]


@pytest.mark.boot
def test_library_malloc_and_plt(results):
    _, res = results
    out = ok(res["malloc"])["stdout"]
    # only the forked child mallocs 4242 bytes, once
    assert out.count("malloc(4242) in uprobe_demo") == 1, out
    assert "malloc calls of 4242 bytes: 1" in out, out
    # the program calls fork() once, through its PLT
    assert "plt fork calls=1 by target yes" in out, out


@pytest.mark.boot
def test_target_filter(results):
    _, res = results
    out = ok(res["target"])["stdout"]
    # target ran add(1..4): 4 calls, a summing to 10; all runs: 7 + 4 calls
    assert "target adds=4 sum=10 all adds=11" in out, out


@pytest.mark.boot
def test_process_begin_and_end_of_a_forked_child(results):
    _, res = results
    lines = ok(res["lifecycle"])["stdout"].splitlines()
    # the child's begin runs in the child: its own pid, its parent the target
    assert lines.count("begin: child of the target, uprobe_demo, own pid yes") == 1, lines
    assert lines.count("exec begin: target runs uprobe_demo") == 1, lines
    assert lines.count("end: the child, uprobe_demo") == 1, lines
    assert lines.count("end: target uprobe_demo") == 1, lines
    # the child ends before its parent, which waits for it
    assert lines.index("end: the child, uprobe_demo") < lines.index("end: target uprobe_demo")
    # process("PATH").end: both processes that ran PATH, and no other
    assert [l for l in lines if "path end" in l] == [
        "path end: child uprobe_demo", "path end: target uprobe_demo"], lines


@pytest.mark.boot
def test_thread_begin_and_end(results):
    _, res = results
    r = ok(res["threads"])
    out = r["stdout"]
    assert "skipped probes" not in r["stderr"], r["stderr"]
    # three threads begin and end in the target; the process itself began
    # before the session watched it (exec, not fork) and ends once
    assert "threads begun=3 ended=3 both=3; process begin=0 end=1" in out, out
    # process("PATH").thread.*: the same three threads, and nothing else
    # (the shell and the runner run other executables)
    assert "by path: threads begun=3 ended=3 of the target=3" in out, out


@pytest.mark.boot
def test_process_pid_fires_only_in_that_process(results):
    _, res = results
    out = ok(res["pid"])["stdout"]
    # three add() calls in the run with the PID, none from the other run;
    # its end once
    assert "pid hits=3 others=0" in out, out
    assert out.count("end of ") == 1, out


@pytest.mark.boot
def test_process_syscall_filtered_to_the_target(results):
    _, res = results
    lines = ok(res["syscall"])["stdout"].splitlines()
    # "long total=159\n" then, after the child ended, "child status=3\n"
    assert [l for l in lines if l.startswith("write ")] == ["write fd=1 len=15"] * 2, lines
    assert "clone returned the child's pid: yes" in lines, lines


@pytest.mark.boot
@pytest.mark.parametrize("opt", ["O2", "O0"])
def test_usdt_markers(results, opt):
    _, res = results
    lines = ok(res[f"sdt_{opt}"])["stdout"].splitlines()
    assert [l for l in lines if l.startswith("demo:tick")] == [
        f"demo:tick i={i} sq={i * i} name=tick parms=set" for i in (1, 2, 3)], lines
    # "done" is only reached while the kernel holds the semaphore up
    assert lines[-1] == "done total=14 semaphore=1", lines


@pytest.mark.boot
def test_process_statement_reads_locals(results):
    _, res = results
    lines = [l for l in ok(res["stmt"])["stdout"].splitlines() if l.startswith("stmt ")]
    # before iteration i, total holds add(j, 10j) = 11j summed over j < i
    assert lines == ["stmt i=1 total=0 n=3", "stmt i=2 total=11 n=3",
                     "stmt i=3 total=33 n=3"], lines
