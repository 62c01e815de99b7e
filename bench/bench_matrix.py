"""Cold matrix time with doit -n 1 and -n 2, measured in one run.

Each run uses a fresh artifact store, so every cell is compiled and every
kernel is booted; kernel packages come from the cache (provisioned once).

    python bench/bench_matrix.py [--probes iotop,hz] [--kernels 6.1,6.12,6.12-rt]
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def run(jobs: int, probes: str, kernels: str) -> tuple[float, str]:
    with tempfile.TemporaryDirectory(prefix="stapbuild-bench-matrix-") as tmp:
        env = dict(os.environ, STAPBUILD_ARTIFACTS=tmp)
        start = time.monotonic()
        r = subprocess.run([sys.executable, "-m", "doit", "-n", str(jobs), "matrix",
                            f"probes={probes}", f"kernels={kernels}"],
                           cwd=ROOT, env=env, capture_output=True, text=True)
        seconds = time.monotonic() - start
        summary = [l for l in r.stdout.splitlines() if "cells passed" in l]
        return seconds, summary[-1] if summary else f"doit exit {r.returncode}"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--probes", default="iotop,hz")
    ap.add_argument("--kernels", default="6.1,6.12,6.12-rt")
    args = ap.parse_args()
    # Kernels and their DWARF indexes first, so neither run pays for them.
    subprocess.run([sys.executable, "-m", "doit", "kernel", f"kernels={args.kernels}"],
                   cwd=ROOT, check=True, capture_output=True)
    t1, s1 = run(1, args.probes, args.kernels)
    t2, s2 = run(2, args.probes, args.kernels)
    print(f"matrix {args.probes} x {args.kernels} (cold store, cached packages)")
    print(f"  doit -n 1 : {t1:7.1f} s   {s1}")
    print(f"  doit -n 2 : {t2:7.1f} s   {s2}")
    print(f"  speed-up  : {t1 / t2:7.2f}x")


if __name__ == "__main__":
    main()
