#!/usr/bin/env python3
"""Probe overhead per hit, in a booted guest, against a hand-written floor.

    python bench/bench_overhead.py [--kernel 6.1] [--calls 100000] [--rounds 5]

The target is getppid(2): a C loop (bench/getppid_loop.c) calls it --calls
times per round and reports the fastest round's nanoseconds per call. The
loop runs

  - bare (no probe);
  - under bench/floor_kprobe.c: a kprobe on __x64_sys_getppid whose handler
    only bumps a per-CPU counter, the cheapest useful probe (the floor);
  - under stapbuild modules on the same function:
      n++                          a global counter
      c[execname()] <<< $__unused      a statistic in an array keyed by a string
      printf per hit               one line of output per call

and prints each probe's cost per hit (ns over bare) and its ratio to the
floor's cost. Modules that print nothing per hit are started and stopped
through their ctl file from the shell, exactly as the floor is loaded, with
the same background poller; the printf module runs under the runner, which
drains its output as it does for users. The goal is <= 1.5x for n++ and <<<. Everything runs in one
boot; under TCG absolute numbers are those of an emulated CPU, but all
configurations pay the same emulation, so the ratios compare code paths.
"""
from __future__ import annotations

import argparse
import re
import shlex
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from stapbuild import guest, kbuild, kernels, passes, runner  # noqa: E402

SCRIPTS = {
    "n++": 'global n\nprobe kprobe.function("__x64_sys_getppid") { n++ }\n'
           'probe end { if (n < 0) println(n) }',
    "c[execname()] <<< $__unused":
        'global c\nprobe kernel.function("__x64_sys_getppid") { c[execname()] <<< $__unused }\n'
        'probe end { foreach (k in c) if (@count(c[k]) < 0) println(k) }',
    "printf per hit":
        'probe kprobe.function("__x64_sys_getppid") { printf("hit %d\\n", cpu()) }',
}


# Scripts that print nothing per hit: measured without the runner polling.
QUIET = {"n++", "c[execname()] <<< $__unused"}


def build_stap(text: str, kctx: passes.KernelContext, tag: str) -> Path:
    parsed = passes.parse_pass(None, text, kctx, name="<bench>")
    elab = passes.elaborate_pass(parsed.artifact, kctx)
    name = passes.module_name_for(tag, elab.artifact.key)
    tr = passes.translate_pass(elab.artifact, name)
    return passes.compile_pass(tr.artifact, name, kctx).artifact.path


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--kernel", default="6.1")
    ap.add_argument("--calls", type=int, default=100000)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--repeat", type=int, default=3,
                    help="measure every configuration this many times, interleaved")
    args = ap.parse_args(argv)

    release = kernels.resolve_release(args.kernel)
    kctx = passes.kernel_context(release)
    work = Path(tempfile.mkdtemp(prefix="stapbuild-bench-"))
    loop = work / "getppid_loop"
    subprocess.run(["gcc", "-O2", "-o", str(loop), str(ROOT / "bench" / "getppid_loop.c")],
                   check=True)
    floor = kbuild.compile_module(ROOT / "bench" / "floor_kprobe.c", "stapbuild_floor",
                                  kctx.kernel, passes.runtime_dir(), work / "floor.ko")
    mods = {label: build_stap(text, kctx, f"bench{i}") for i, (label, text)
            in enumerate(SCRIPTS.items())}

    run = f"{loop} {args.calls} {args.rounds}"
    py = shlex.join([sys.executable, "-S", "-m", "stapbuild.runner"])
    # While our modules run, stapbuild.runner polls their /proc files every
    # 20 ms on the other vCPU; bare and floor get the same background load
    # (a poller reading /proc files at the same rate), so that only the
    # probe differs between the rows.
    poller = shlex.join([sys.executable, "-S", "-c",
                         "import time\nwhile True:\n open('/proc/uptime').read();"
                         " open('/proc/loadavg').read(); time.sleep(0.02)"])
    lines = ["set -e", "exec 2>&1"]
    for r in range(args.repeat):
        lines.append(f"{poller} & POLL=$!")
        lines.append(f'echo "RESULT bare $({run})"')
        lines.append(f"insmod {floor}")
        lines.append(f'echo "RESULT floor $({run})"')
        lines.append("rmmod stapbuild_floor")
        lines.append("kill $POLL")
        for i, (label, ko) in enumerate(mods.items()):
            if label in QUIET:
                # No output until the end: drive the module through its
                # ctl file from the shell, under the same poller as bare and
                # floor, so that only the probe differs from the floor row.
                ctl = f"/proc/stapbuild-{runner.module_name_of(ko)}/ctl"
                lines.append(f"{poller} & POLL=$!")
                lines.append(f"insmod {ko}")
                lines.append(f"echo start > {ctl}")
                lines.append(f'echo "RESULT s{i} $({run})"')
                lines.append(f"echo stop > {ctl}")
                lines.append(f"rmmod {runner.module_name_of(ko)}")
                lines.append("kill $POLL")
            else:
                # printf per hit needs its output drained: the runner does
                # that, as it does for users.
                lines.append(f'echo "RESULT s{i} $({py} --module {ko} --output /dev/null '
                             f'--workload {shlex.quote(run)} | grep ns_per_call)"')
    script = work / "bench.sh"
    script.write_text("\n".join(lines) + "\n")
    k = kernels.provision(release, {"image"})
    res = guest.run_in_guest(k, f"/bin/sh {script}", timeout=3600)
    results: dict[str, list[float]] = {}
    for m in re.finditer(r"^RESULT (\S+) ns_per_call ([0-9.]+)$", res.stdout, re.M):
        results.setdefault(m.group(1), []).append(float(m.group(2)))
    if "bare" not in results or "floor" not in results:
        print(res.stdout, res.stderr, file=sys.stderr)
        return 1
    best = {k: min(v) for k, v in results.items()}
    bare, floor_cost = best["bare"], best["floor"] - best["bare"]
    print(f"kernel {release}, {args.calls} getppid() calls x {args.rounds} rounds "
          f"x {args.repeat}, fastest round (ns per call)")
    print(f"{'configuration':28} {'ns/call':>9} {'ns/hit':>9} {'x floor':>8}")
    print(f"{'bare':28} {bare:9.1f} {'':>9} {'':>8}")
    print(f"{'floor (counting kprobe)':28} {best['floor']:9.1f} {floor_cost:9.1f} {1.0:8.2f}")
    for i, label in enumerate(mods):
        key = f"s{i}"
        if key not in best:
            print(f"{label:28} {'failed':>9}")
            continue
        cost = best[key] - bare
        print(f"{label:28} {best[key]:9.1f} {cost:9.1f} {cost / floor_cost:8.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
