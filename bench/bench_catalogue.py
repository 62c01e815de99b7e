"""Build time of the whole probes/ catalogue on both kernel series.

    python bench/bench_catalogue.py [KERNELS] [JOBS]     (defaults: 6.1,6.12 and 2)

Runs ``doit -n JOBS build probe=all kernels=KERNELS`` twice in a fresh
artifacts dir (STAPBUILD_ARTIFACTS): cold (every pass of every tool on
every kernel really runs; the kernels must already be provisioned), then
again as a no-op (every task up to date). Prints both times, the number of
modules, and the cold time per module. No assertions.

Run it in a checkout nobody is editing (e.g. a fresh `git clone`): every
parse task depends on the compiler's own files, so an edit to codegen/
during the cold run makes the second run rebuild everything.

Measured 2026-11-28 in a clean clone on the 2-core dev machine (shared
with other work): cold 392.6 s (7.0 s a module), no-op 1.35 s (0 tasks).
"""
from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def doit(args: list[str], env: dict[str, str]) -> tuple[str, float]:
    start = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "doit", *args], cwd=ROOT, env=env,
                          capture_output=True, text=True)
    elapsed = time.perf_counter() - start
    if proc.returncode != 0:
        sys.exit(f"doit {' '.join(args)} failed:\n{proc.stdout[-3000:]}{proc.stderr[-3000:]}")
    return proc.stdout, elapsed


def main() -> None:
    kernels = sys.argv[1] if len(sys.argv) > 1 else "6.1,6.12"
    jobs = sys.argv[2] if len(sys.argv) > 2 else "2"
    tools = sorted(p.stem for p in (ROOT / "probes").glob("*.stp"))
    nkernels = len(kernels.split(","))
    with tempfile.TemporaryDirectory(prefix="stapbuild-bench-catalogue-") as tmp:
        env = dict(os.environ, STAPBUILD_ARTIFACTS=str(Path(tmp) / "artifacts"))
        args = ["-n", jobs, "build", "probe=all", f"kernels={kernels}"]
        cold_out, cold = doit(args, env)
        noop_out, noop = doit(args, env)
    ran = [l for l in noop_out.splitlines() if l.startswith(".  ")]
    modules = len(tools) * nkernels
    print(f"catalogue: {len(tools)} tools x {nkernels} kernels ({kernels}) = {modules} modules, "
          f"doit -n {jobs}\n")
    print(f"{'cold doit build probe=all':<34}{cold:9.1f} s")
    print(f"{'  per module':<34}{cold / modules:9.2f} s")
    print(f"{'no-op doit build probe=all':<34}{noop:9.2f} s{cold / noop:9.1f}x faster")
    print(f"\nno-op run executed {len(ran)} task(s)")


if __name__ == "__main__":
    main()
