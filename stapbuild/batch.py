"""Run many modules in one boot: the in-guest driver for tests and matrices.

A guest boot costs 10-30 s under TCG, so tests and kernel matrices batch
every module for one kernel into one boot. The host writes a plan (JSON
list of cases), boots the kernel with ``python3 -S -m stapbuild.batch PLAN``,
and reads back one JSON document: per case the runner's status, stdout,
stderr, whether the module was left loaded, and new kernel warnings.

Every case result is also printed as soon as the case ends, so a guest that
panics or times out half-way still reports the cases before, and names the
one it died in. A last pseudo-case, ``__boot__``, sums up the whole batch:
kernel trouble in the log since the batch started, taint flags, leftovers.

Cases are ``{name, ko, workload?, duration?}`` plus optional torture knobs:

    mode: "run" (default) | "repeat" | "sigkill" | "sigint"
    repeat: N, warmup: W          load/run/unload N times (after W warm-up
    memory: true, memory_every: K runs); with memory, /proc/meminfo,
                                  /proc/slabinfo and vmalloc snapshots
                                  before the N and after every K of them
    trace_allocs: true            pair every allocation and free made from
                                  module code during the N (AllocTrace)
    fault_after: S                sigkill/sigint: seconds after state=running
    check_access: true            record ctl/data modes while loaded and try
                                  them as an unprivileged user
    stdout_limit: BYTES           keep only the head and tail of stdout
    digest: "module:function"     summarise stdout in the guest (function(str)
                                  -> JSON-able), before it is cut
    budget: SECONDS               how long the case may take (default
                                  CASE_BUDGET); past it the watchdog reports
                                  the case as hung, with the kernel and
                                  Python stacks, and ends the batch

Only the standard library is imported, so the guest's Python starts fast.
"""
from __future__ import annotations

import io
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from stapbuild import runner

BEGIN_MARK = "=====stapbuild-batch-results====="
END_MARK = "=====stapbuild-batch-end====="
CASE_MARK = "=====stapbuild-case====="
BOOT = "__boot__"
# What a healthy run must never leave in the kernel log.
KERNEL_TROUBLE = re.compile(r"\b(BUG|WARNING|Oops|general protection|lockdep|"
                            r"possible circular locking|stack-protector|"
                            r"soft lockup|hard LOCKUP|detected stalls?|rcu.*stall|"
                            r"NMI backtrace|INFO: task|hung_task|"
                            r"blocked for more than|Call Trace|UBSAN|KASAN|kmemleak|"
                            r"refcount_t|list_add corruption|list_del corruption|"
                            r"segfault|Kernel panic)\b")
# /proc/sys/kernel/tainted bits a healthy run must never set: W (a WARN),
# D (an oops), L (a soft lockup), S (unsafe SMP/forced).
BAD_TAINT = {9: "W", 7: "D", 14: "L", 2: "S"}


def trouble_context(log: list[str]) -> list[str]:
    """The whole story around the first kernel trouble line, not only the
    matching lines: a "Call Trace:" line says nothing without the report
    above it and the frames below."""
    first = next((i for i, l in enumerate(log) if KERNEL_TROUBLE.search(l)), None)
    return [] if first is None else log[max(0, first - 20):first + 60]


_FRAME = re.compile(r"[\s:](\??\s*[A-Za-z_][\w.]*\+0x[0-9a-f]+/0x[0-9a-f]+)")


def trouble_frames(log: list[str], limit: int = 16) -> list[str]:
    """The symbolic frames (RIP first) of the first report in `log`, so that
    a one-line problem summary already says where the kernel was."""
    frames: list[str] = []
    for line in trouble_context(log):
        m = _FRAME.search(line)
        if m and "RIP" in line:
            frames.insert(0, "RIP " + m.group(1).strip())
        elif m:
            frames.append(m.group(1).strip())
        if len(frames) >= limit:
            break
    return frames


def _dmesg() -> list[str]:
    try:
        out = subprocess.run(["dmesg"], capture_output=True, text=True, timeout=10).stdout
    except (OSError, subprocess.TimeoutExpired):
        return []
    return out.splitlines()


def _loaded(modname: str) -> bool:
    try:
        return any(line.split()[0] == modname
                   for line in Path("/proc/modules").read_text().splitlines())
    except OSError:
        return False


def _tainted() -> int:
    try:
        return int(Path("/proc/sys/kernel/tainted").read_text())
    except (OSError, ValueError):
        return 0


def bad_taint(value: int) -> list[str]:
    return [flag for bit, flag in sorted(BAD_TAINT.items()) if value >> bit & 1]


def leftovers() -> list[str]:
    """stapbuild procfs dirs, modules and kprobes that are still there."""
    found = [f"/proc/{p.name}" for p in Path("/proc").glob("stapbuild-*")]
    try:
        found += [f"module {line.split()[0]}"
                  for line in Path("/proc/modules").read_text().splitlines()
                  if line.startswith("stap_")]
    except OSError:
        pass
    try:
        found += [f"kprobe {line.strip()}"
                  for line in Path("/sys/kernel/debug/kprobes/list").read_text().splitlines()
                  if "[stap_" in line]
    except OSError:
        pass
    return found


# ------------------------------------------------------------------ memory
def _slabs() -> dict[str, dict[str, int]]:
    slabs = {}
    try:
        for line in Path("/proc/slabinfo").read_text().splitlines()[2:]:
            f = line.split()
            slabs[f[0]] = {"active": int(f[1]), "total": int(f[2]), "size": int(f[3])}
    except OSError:
        pass
    return slabs


def _shrink_slabs() -> None:
    # SLUB counts objects free in per-CPU slabs as active; shrinking every
    # cache flushes those, so active objects are live objects.
    for shrink in Path("/sys/kernel/slab").glob("*/shrink"):
        try:
            shrink.write_text("1\n")
        except OSError:
            pass


def memory_snapshot(settle: float = 3.0) -> dict[str, Any]:
    """What a leak would grow: meminfo, every slab cache's live objects,
    the number of vmalloc areas. Caches are dropped first; then, since
    dropping them frees inodes and dentries through RCU, the slab counts
    are read again every half second until two reads agree (at most
    `settle` seconds), so that what is counted is what is really live."""
    subprocess.run(["sync"], capture_output=True)
    try:
        Path("/proc/sys/vm/drop_caches").write_text("3\n")
    except OSError:
        pass
    deadline = time.monotonic() + settle
    _shrink_slabs()
    slabs = _slabs()
    stable = False
    while time.monotonic() < deadline:
        time.sleep(0.5)
        _shrink_slabs()
        now = _slabs()
        if {k: v["active"] for k, v in now.items()} == {k: v["active"] for k, v in slabs.items()}:
            stable = True
            break
        slabs = now
    meminfo = {}
    for line in Path("/proc/meminfo").read_text().splitlines():
        key, _, rest = line.partition(":")
        meminfo[key] = int(rest.split()[0])
    try:
        vmalloc = Path("/proc/vmallocinfo").read_text().splitlines()
    except OSError:
        vmalloc = []
    # "0x...-0x... SIZE CALLER ...": CALLER is symbol+off/size [module]
    # while the caller's module is loaded; an area still there after its
    # module is gone shows a bare address: allocated by an unloaded module
    # and never freed.
    orphans = [l for l in vmalloc if len(l.split()) > 2 and re.fullmatch(r"0x[0-9a-f]+", l.split()[2])]
    return {"meminfo": meminfo, "slabs": {k: v["active"] for k, v in slabs.items()},
            "stable": stable, "vmalloc_areas": len(vmalloc),
            "vmalloc_module_areas": sum(1 for l in vmalloc if "[stap_" in l),
            "vmalloc_orphans": orphans[:20], "vmalloc_orphan_count": len(orphans)}


# ------------------------------------------------------------------ allocation trace
TRACING = (Path("/sys/kernel/tracing"), Path("/sys/kernel/debug/tracing"))
ALLOC_EVENTS = ("kmem/kmalloc", "kmem/kfree", "kmem/kmem_cache_alloc", "kmem/kmem_cache_free",
                "percpu/percpu_alloc_percpu", "percpu/percpu_free_percpu")
# Module space on x86-64 with KASLR (Debian): the kernel image lives below.
MODULE_SPACE = 0xFFFFFFFFC0000000


class AllocTrace:
    """Every kmalloc/kmem_cache/percpu allocation and free whose call site
    is in module space, through the kmem and percpu trace events. When the
    trace is read after the modules are unloaded, the call sites of our
    modules no longer resolve to a symbol (they print as bare addresses);
    an allocation by one of them with no matching free is a leak, exactly,
    whatever else the system allocates meanwhile."""

    def __init__(self) -> None:
        self.root = next((t for t in TRACING if (t / "tracing_on").exists()), None)
        self.error = None if self.root else "no tracefs"

    def _w(self, rel: str, text: str) -> None:
        (self.root / rel).write_text(text)

    def start(self) -> None:
        if self.root is None:
            return
        try:
            self._w("tracing_on", "0\n")
            self._w("trace", "\n")
            self._w("buffer_size_kb", "16384\n")
            for ev in ALLOC_EVENTS:
                d = self.root / "events" / ev
                if not d.exists():
                    continue
                if (d / "format").read_text().find("call_site") >= 0:
                    (d / "filter").write_text(f"call_site >= {MODULE_SPACE:#x}\n")
                (d / "enable").write_text("1\n")
            self._w("tracing_on", "1\n")
        except OSError as e:
            self.error = f"cannot set up tracing: {e}"

    def stop(self) -> dict[str, Any]:
        if self.root is None or self.error:
            return {"error": self.error}
        self._w("tracing_on", "0\n")
        for ev in ALLOC_EVENTS:
            d = self.root / "events" / ev
            if d.exists():
                (d / "enable").write_text("0\n")
                try:
                    (d / "filter").write_text("0\n")
                except OSError:
                    pass
        overrun = 0
        for stats in self.root.glob("per_cpu/cpu*/stats"):
            m = re.search(r"overrun: (\d+)", stats.read_text())
            overrun += int(m.group(1)) if m else 0
        text = (self.root / "trace").read_text(errors="replace")
        self._w("trace", "\n")
        live: dict[str, str] = {}
        ours = frees = 0
        for line in text.splitlines():
            m = re.search(r" (kmalloc|kmem_cache_alloc|kfree|kmem_cache_free|percpu_alloc_percpu|"
                          r"percpu_free_percpu): (.*)", line)
            if not m:
                continue
            ev, body = m.groups()
            site = re.search(r"call_site=(\S+)", body)
            ptr = re.search(r"\bptr=(\S+)", body)
            if not ptr:
                continue
            unresolved = bool(site and re.fullmatch(r"0x[0-9a-f]+", site.group(1)))
            if ev in ("kmalloc", "kmem_cache_alloc", "percpu_alloc_percpu"):
                if unresolved:
                    ours += 1
                    live[ptr.group(1)] = line.strip()[-200:]
                else:
                    live.pop(ptr.group(1), None)   # a live module's; reused address
            else:
                if live.pop(ptr.group(1), None) is not None:
                    frees += 1
        return {"module_allocs": ours, "module_frees": frees, "overrun": overrun,
                "unfreed": list(live.values())[:20], "unfreed_count": len(live)}


# ------------------------------------------------------------------ cases
def _cut(text: str, limit: int | None) -> tuple[str, int]:
    if limit is None or len(text) <= limit:
        return text, len(text)
    half = limit // 2
    return text[:half] + f"\n[... {len(text) - limit} bytes cut ...]\n" + text[-half:], len(text)


def _digest(spec: str | None, stdout: str) -> Any:
    if not spec:
        return None
    import importlib
    modname, _, func = spec.partition(":")
    return getattr(importlib.import_module(modname), func)(stdout)


def _access_probe(modname: str, result: dict[str, Any], stop: threading.Event) -> None:
    """While the module is loaded: modes of ctl/data, and what an
    unprivileged user (nobody) gets when opening them."""
    d = Path("/proc") / f"stapbuild-{modname}"
    while not stop.is_set() and not (d / "ctl").exists():
        time.sleep(0.01)
    if stop.is_set():
        return
    try:
        info = {}
        for name in ("ctl", "data"):
            st = os.stat(d / name)
            info[name] = {"mode": oct(st.st_mode & 0o7777), "uid": st.st_uid, "gid": st.st_gid}
        info["nobody"] = _try_as_nobody([(str(d / "ctl"), os.O_RDONLY),
                                         (str(d / "ctl"), os.O_WRONLY),
                                         (str(d / "data"), os.O_RDONLY)])
        result["access"] = info
    except Exception as e:  # noqa: BLE001 - report, never break the batch
        result["access"] = {"error": repr(e)}


def _try_as_nobody(opens: list[tuple[str, int]]) -> dict[str, str]:
    """Open each path as uid/gid 65534 (no capabilities) in a forked child;
    'opened' or the error text per path."""
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # child: only raw syscalls, then _exit
        try:
            os.close(r)
            os.setgroups([])
            os.setgid(65534)
            os.setuid(65534)
            res = []
            for path, flags in opens:
                try:
                    os.close(os.open(path, flags))
                    res.append("opened")
                except OSError as e:
                    res.append(errno_name(e.errno))
            os.write(w, " ".join(res).encode())
        finally:
            os._exit(0)
    os.close(w)
    with os.fdopen(r, "rb") as f:
        words = f.read().decode().split()
    os.waitpid(pid, 0)
    keys = ["ctl_read", "ctl_write", "data_read"]
    return dict(zip(keys, words + ["?"] * (len(keys) - len(words))))


def errno_name(n: int) -> str:
    import errno
    return errno.errorcode.get(n, str(n))


def _run_once(case: dict[str, Any], ko: Path) -> tuple[int, str, str]:
    out, err = io.BytesIO(), io.BytesIO()
    rc = runner.run(ko, workload=case.get("workload"), duration=case.get("duration"),
                    output=out, errout=err)
    return rc, out.getvalue().decode("utf-8", "replace"), err.getvalue().decode("utf-8", "replace")


def _ctl_state(modname: str) -> dict[str, str]:
    try:
        text = (Path("/proc") / f"stapbuild-{modname}" / "ctl").read_text()
    except OSError:
        return {}
    return dict(tok.partition("=")[::2] for tok in text.split() if "=" in tok)


def _runner_process(case: dict[str, Any], ko: Path, tmp: Path) -> subprocess.Popen:
    argv = [sys.executable, "-S", "-m", "stapbuild.runner", "--module", str(ko)]
    if case.get("workload") is not None:
        argv += ["--workload", case["workload"]]
    if case.get("duration") is not None:
        argv += ["--duration", str(case["duration"])]
    return subprocess.Popen(argv, stdout=open(tmp / "stdout", "wb"),
                            stderr=open(tmp / "stderr", "wb"), stdin=subprocess.DEVNULL)


def _wait_running(modname: str, proc: subprocess.Popen, timeout: float = 60.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and proc.poll() is None:
        if _ctl_state(modname).get("state") == "running":
            return True
        time.sleep(0.02)
    return False


def _fault_case(case: dict[str, Any], ko: Path, modname: str) -> dict[str, Any]:
    """Start the runner as its own process, hit it with SIGKILL or SIGINT."""
    mode = case["mode"]
    extra: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="stapbuild-fault-") as t:
        tmp = Path(t)
        proc = _runner_process(case, ko, tmp)
        extra["reached_running"] = _wait_running(modname, proc)
        time.sleep(float(case.get("fault_after", 1.0)))
        extra["runner_alive_at_fault"] = proc.poll() is None
        os.kill(proc.pid, signal.SIGKILL if mode == "sigkill" else signal.SIGINT)
        try:
            rc = proc.wait(timeout=float(case.get("fault_timeout", 120)))
        except subprocess.TimeoutExpired:
            proc.kill()
            rc = proc.wait()
            extra["runner_hung"] = True
        stdout = (tmp / "stdout").read_text(errors="replace")
        stderr = (tmp / "stderr").read_text(errors="replace")
        if mode == "sigint":
            return {"rc": rc, "stdout": stdout, "stderr": stderr, "extra": extra}
        # SIGKILL: the module must still be there, with its owner record;
        # the next runner start must clean it up (here: the same module
        # again, which could not load while the orphan holds its name).
        extra["killed_rc"] = rc
        extra["loaded_after_kill"] = _loaded(modname)
        rdir = runner.runtime_dir()
        extra["owner_record_after_kill"] = bool(rdir and (rdir / f"{modname}.owner").exists())
        extra["killed_stdout_bytes"] = len(stdout)
        next_case = {**case, "workload": case.get("next_workload"),
                     "duration": case.get("next_duration", 0.2)}
        rc2, out2, err2 = _run_once(next_case, ko)
        extra["owner_record_after_next"] = bool(rdir and (rdir / f"{modname}.owner").exists())
        return {"rc": rc2, "stdout": out2, "stderr": err2, "extra": extra}


def _mark(text: str) -> None:
    """A progress line in the guest's kernel log (and so on its serial
    console), next to whatever the kernel reports: when a guest wedges, the
    console says which step of a long case it was in. Only in a batch guest."""
    if os.environ.get(POWEROFF_ENV) != "1":
        return
    try:
        with open("/dev/kmsg", "w") as f:
            f.write(f"stapbuild batch: {text}\n")
    except OSError:
        pass


def _repeat_case(case: dict[str, Any], ko: Path, modname: str) -> dict[str, Any]:
    n, warmup = int(case.get("repeat", 1)), int(case.get("warmup", 0))
    extra: dict[str, Any] = {"runs": 0, "failed_runs": 0, "stale_after_run": 0,
                             "stderr_variants": []}
    first_stdout = None
    rc_all = 0

    def once() -> None:
        nonlocal first_stdout, rc_all
        _mark(f"{case['name']} run {extra['runs'] + 1}")
        rc, out, err = _run_once(case, ko)
        extra["runs"] += 1
        if rc != 0:
            extra["failed_runs"] += 1
            rc_all = rc
        if first_stdout is None:
            first_stdout = out
        elif out != first_stdout:
            extra.setdefault("stdout_differs_at", extra["runs"])
        if err not in extra["stderr_variants"] and len(extra["stderr_variants"]) < 5:
            extra["stderr_variants"].append(err)
        if leftovers() or _loaded(modname):
            extra["stale_after_run"] += 1

    every = int(case.get("memory_every", 0)) if case.get("memory") else 0
    for _ in range(warmup):
        once()
    if every:
        _mark(f"{case['name']} memory snapshot")
        extra["mem_series"] = [[0, memory_snapshot()]]
    tracer = AllocTrace() if case.get("trace_allocs") else None
    if tracer:
        _mark(f"{case['name']} allocation trace on")
        tracer.start()
    for i in range(n):
        once()
        if every and (i + 1) % every == 0:
            _mark(f"{case['name']} memory snapshot")
            extra["mem_series"].append([i + 1, memory_snapshot()])
    if tracer:
        _mark(f"{case['name']} allocation trace off")
        extra["alloc_trace"] = tracer.stop()
    err_text = "".join(extra["stderr_variants"][:1])
    return {"rc": rc_all, "stdout": first_stdout or "", "stderr": err_text, "extra": extra}


def run_case(case: dict[str, Any]) -> dict[str, Any]:
    ko = Path(case["ko"])
    modname = runner.module_name_of(ko)
    before = len(_dmesg())
    start = time.monotonic()
    mode = case.get("mode", "run")
    access: dict[str, Any] = {}
    stop_probe = threading.Event()
    prober = None
    if case.get("check_access"):
        prober = threading.Thread(target=_access_probe, args=(modname, access, stop_probe),
                                  daemon=True)
        prober.start()
    try:
        if mode in ("sigkill", "sigint"):
            res = _fault_case(case, ko, modname)
        elif mode == "repeat":
            res = _repeat_case(case, ko, modname)
        else:
            rc, out, err = _run_once(case, ko)
            res = {"rc": rc, "stdout": out, "stderr": err}
    except Exception as e:  # noqa: BLE001 - one broken case must not end the batch
        import traceback
        res = {"rc": -1, "stdout": "", "stderr": f"batch driver: {e!r}\n{traceback.format_exc()}"}
    finally:
        stop_probe.set()
        if prober is not None:
            prober.join(5)
    seconds = time.monotonic() - start
    log = _dmesg()[before:]
    trouble = [line for line in log if KERNEL_TROUBLE.search(line)]
    stdout, stdout_bytes = _cut(res["stdout"], case.get("stdout_limit"))
    result = {"name": case["name"], "rc": res["rc"], "seconds": round(seconds, 3),
              "stdout": stdout, "stdout_bytes": stdout_bytes,
              "stderr": _cut(res["stderr"], 200_000)[0],
              "left_loaded": _loaded(modname),
              "kernel_trouble": trouble,
              "leftovers": leftovers(),
              "tainted": _tainted(),
              "bad_taint": bad_taint(_tainted())}
    if trouble:
        # The whole story, not only the matching lines (a "Call Trace:"
        # line says nothing without the report above and the frames below).
        result["kernel_log"] = trouble_context(log)
    if "extra" in res:
        result["extra"] = res["extra"]
    if case.get("check_access"):
        result["access"] = access.get("access", {"error": "module never showed its ctl"})
    if case.get("digest"):
        try:
            result["digest"] = _digest(case["digest"], res["stdout"])
        except Exception as e:  # noqa: BLE001
            result["digest"] = {"error": repr(e)}
    return result


_emit_lock = threading.Lock()


def _emit(line: str) -> None:
    with _emit_lock:
        sys.stdout.write(line + "\n")
        sys.stdout.flush()


# A case that is still running after this long is hung, not slow: the
# slowest case (100 load/unload cycles under TCG on a loaded host) takes
# about 3 minutes. Without a watchdog one wedged case costs the whole guest
# timeout and says nothing about where it stuck.
CASE_BUDGET = 600.0
HUNG_STATUS = 75


POWEROFF_ENV = "STAPBUILD_BATCH_POWEROFF_ON_HANG"


def _in_virtme_guest() -> bool:
    """Only a virtme-ng guest may be powered off by the watchdog, never a
    host that runs the batch driver by hand."""
    try:
        return "virtme" in Path("/proc/cmdline").read_text()
    except OSError:
        return False


def _blocked_tasks() -> list[dict[str, str]]:
    """Every task in D state (or our own runner threads), with its kernel
    stack: where a hang sits in the kernel."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/task/[0-9]*/stat"):
        try:
            text = stat.read_text()
            comm = text[text.index("(") + 1:text.rindex(")")]
            state = text[text.rindex(")") + 2]
            if state != "D" and stat.parts[2] != str(os.getpid()):
                continue
            stack = (stat.parent / "stack").read_text(errors="replace")
        except (OSError, ValueError, IndexError):
            continue
        found.append({"task": f"{stat.parts[2]}/{stat.parts[4]} {comm} {state}",
                      "stack": stack[-2000:]})
    return found[:40]


def hang_report(name: str, budget: float) -> dict[str, Any]:
    """What the watchdog reports for a case that overran its budget."""
    import faulthandler
    with tempfile.TemporaryFile("w+") as f:
        faulthandler.dump_traceback(file=f, all_threads=True)
        f.seek(0)
        py_stacks = f.read()[-6000:]
    return {"name": name, "rc": -1, "stdout": "", "hung": budget,
            "stderr": f"batch watchdog: case {name!r} still running after {budget:.0f}s\n",
            "python_stacks": py_stacks, "blocked_tasks": _blocked_tasks(),
            "dmesg_tail": _dmesg()[-120:], "leftovers": leftovers(),
            "kernel_trouble": [], "left_loaded": False, "bad_taint": bad_taint(_tainted())}


REPORT_GRACE = 120.0   # how long the hang report may take before the power-off


def _sysrq(key: str) -> None:
    try:
        Path("/proc/sysrq-trigger").write_text(f"{key}\n")
    except OSError:
        pass


def _watchdog(name: str, budget: float) -> threading.Timer:
    def report() -> None:
        try:
            r = hang_report(name, budget)
        except Exception as e:  # noqa: BLE001 - the exit below must happen
            r = {"name": name, "rc": -1, "hung": budget, "stdout": "",
                 "stderr": f"batch watchdog: hang report failed: {e!r}\n"}
        _emit(f"{CASE_MARK} {json.dumps(r)}")
        try:
            os.fsync(sys.stdout.fileno())
        except OSError:
            pass

    def fire() -> None:
        # The main thread is stuck (often in a syscall); nothing after this
        # case can be trusted to run, so the batch ends here. In a guest the
        # serial console gets the story first, since the 9p files the report
        # goes to may be what is stuck: the kernel's blocked tasks (sysrq w)
        # and every CPU's backtrace (sysrq l). A task stuck in the kernel
        # cannot exit, and the guest would sit until the host's timeout, so
        # once the report is out (or after REPORT_GRACE) the guest powers off.
        in_guest = os.environ.get(POWEROFF_ENV) == "1" and _in_virtme_guest()
        if in_guest:
            try:
                Path("/dev/kmsg").write_text(
                    f"stapbuild batch watchdog: case {name!r} still running after {budget:.0f}s\n")
            except OSError:
                pass
            _sysrq("w")
            _sysrq("l")
        reporter = threading.Thread(target=report, daemon=True)
        reporter.start()
        reporter.join(REPORT_GRACE)
        if in_guest:
            _sysrq("o")
        os._exit(HUNG_STATUS)
    t = threading.Timer(budget, fire)
    t.daemon = True
    t.start()
    return t


def main(argv: list[str]) -> int:
    plan = json.loads(Path(argv[0]).read_text())
    start_log = len(_dmesg())
    results = []
    for c in plan:
        _emit(f"{CASE_MARK} starting {json.dumps(c['name'])}")
        _mark(f"case {c['name']}")
        dog = _watchdog(c["name"], float(c.get("budget", CASE_BUDGET)))
        r = run_case(c)
        dog.cancel()
        results.append(r)
        _emit(f"{CASE_MARK} {json.dumps(r)}")
    trouble = [l for l in _dmesg()[start_log:] if KERNEL_TROUBLE.search(l)]
    results.append({"name": BOOT, "kernel_trouble": trouble, "tainted": _tainted(),
                    "bad_taint": bad_taint(_tainted()), "leftovers": leftovers(),
                    "complete": True})
    _emit(f"{BEGIN_MARK}\n{json.dumps(results)}\n{END_MARK}")
    return 0


def parse_results(stdout: str) -> list[dict[str, Any]]:
    """The host side: pull the results document out of the guest's stdout.
    Without the final document (a panic, a timeout), the cases that finished
    are returned, and ``__boot__`` says which case was running."""
    m = re.search(re.escape(BEGIN_MARK) + r"\n(.*)\n" + re.escape(END_MARK), stdout, re.S)
    if m is not None:
        return json.loads(m.group(1))
    done, running = [], None
    for line in stdout.splitlines():
        if not line.startswith(CASE_MARK + " "):
            continue
        body = line[len(CASE_MARK) + 1:]
        if body.startswith("starting "):
            running = json.loads(body[len("starting "):])
        else:
            r = json.loads(body)
            done.append(r)
            running = r["name"] if r.get("hung") else None
    if not done and running is None:
        raise ValueError("guest printed no batch results")
    return done + [{"name": BOOT, "complete": False, "died_in": running,
                    "kernel_trouble": [], "leftovers": [], "bad_taint": []}]


class BatchError(Exception):
    """The guest ended without reporting results (panic, timeout, no boot)."""


def run_cases(release: str, cases: list[dict[str, Any]],
              timeout: float = 900, kernel_args: list[str] | None = None
              ) -> dict[str, dict[str, Any]]:
    """Boot ``release`` once and run every case in it (host side).

    cases: {name, ko, workload?, duration?, ...}; returns results by name,
    plus ``__boot__``. If the guest dies half-way, the cases that finished
    are returned and ``__boot__`` has complete=False, died_in and console.
    """
    import shlex

    from stapbuild import guest, kernels
    k = kernels.provision(release, {"image"})
    with tempfile.NamedTemporaryFile("w", suffix=".json", prefix="stapbuild-plan-",
                                     dir="/tmp", delete=False) as f:
        json.dump([{**c, "ko": str(c["ko"])} for c in cases], f)
        plan = Path(f.name)
    try:
        cmd = f"{POWEROFF_ENV}=1 " + shlex.join([sys.executable, "-S", "-m", "stapbuild.batch",
                                                 str(plan)])
        res = guest.run_in_guest(k, cmd, timeout=timeout, kernel_args=kernel_args)
    finally:
        plan.unlink()
    try:
        results = parse_results(res.stdout)
    except ValueError:
        raise BatchError(f"guest of {release} reported no results (rc {res.returncode}):\n"
                         f"{res.stderr}\n{res.console[-3000:]}") from None
    by_name = {r["name"]: r for r in results}
    if not by_name[BOOT].get("complete"):
        by_name[BOOT]["console"] = res.console[-30000:]
        by_name[BOOT]["guest_stderr"] = res.stderr[-3000:]
        console = res.console.splitlines()
        by_name[BOOT]["kernel_trouble"] = [l for l in console if KERNEL_TROUBLE.search(l)]
        by_name[BOOT]["kernel_log"] = trouble_context(console)
    return by_name


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
