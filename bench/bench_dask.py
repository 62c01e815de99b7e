"""Matrix build time here and through a Dask cluster, and the scheduling
overhead per task.

    python bench/bench_dask.py [--probes iotop,hz] [--kernels 6.1,6.12,6.12-rt]

Every run builds the matrix's cells (`doit cell`, the build half of `doit
matrix`) into a fresh artifact store, so every cell is elaborated and
compiled; kernel packages come from the host's cache. `doit kernel` runs
first and is not timed (kernel identities; through the cluster it also
readies the workers' kernels). Cluster runs start a fresh `dask scheduler`
and two `dask worker` processes (one thread each) on 127.0.0.1
(stapbuild.dask_local), so the workers' stores are cold too.

    overhead per task = (cluster wall time - sum of cell build times) / cells

A cell's build time is what it records: pass 1 (client) plus passes 2-4 as
timed on the worker. Through the cluster with -n 1 one cell is in flight at
a time, so the figure is the cost of dispatch, transfer, hash check and
store (plus doit's own start-up spread over the cells, which the local -n 1
line shows for comparison). With -n 2 on two workers the builds overlap
and the same formula goes negative by the parallel gain.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from stapbuild.dask_local import LoopbackCluster  # noqa: E402


def cells_of(store: Path) -> list[dict]:
    return [json.loads(p.read_text()) for p in sorted((store / "matrix" / "cells").glob("*.json"))]


def run(jobs: int, probes: str, kernels: str, executor: str = "") -> dict:
    with tempfile.TemporaryDirectory(prefix="stapbuild-bench-dask-") as tmp:
        env = dict(os.environ, STAPBUILD_ARTIFACTS=tmp)
        env.pop("STAPBUILD_EXECUTOR", None)
        extra = [f"executor={executor}"] if executor else []
        subprocess.run([sys.executable, "-m", "doit", "kernel", f"kernels={kernels}", *extra],
                       cwd=ROOT, env=env, check=True, capture_output=True)
        start = time.monotonic()
        r = subprocess.run([sys.executable, "-m", "doit", "-n", str(jobs), "cell",
                            f"probes={probes}", f"kernels={kernels}", *extra],
                           cwd=ROOT, env=env, capture_output=True, text=True)
        wall = time.monotonic() - start
        if r.returncode != 0:
            sys.exit(f"doit failed:\n{r.stdout[-3000:]}\n{r.stderr[-3000:]}")
        cells = cells_of(Path(tmp))
        bad = [f"{c['probe']}@{c['release']}" for c in cells if c["build"] != "ok"]
        if bad:
            sys.exit(f"cells failed to build: {', '.join(bad)}")
        return {"wall": wall, "sum": sum(c["build_seconds"] for c in cells), "n": len(cells),
                "workers": len({c.get("worker") for c in cells if c.get("worker")}),
                "retried": sum(c.get("attempts", 1) > 1 for c in cells)}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--probes", default="iotop,hz")
    ap.add_argument("--kernels", default="6.1,6.12,6.12-rt")
    args = ap.parse_args()
    # Kernels and their DWARF indexes first, in the host's cache.
    with tempfile.TemporaryDirectory() as tmp:
        subprocess.run([sys.executable, "-m", "doit", "kernel", f"kernels={args.kernels}"],
                       cwd=ROOT, check=True, capture_output=True,
                       env=dict(os.environ, STAPBUILD_ARTIFACTS=tmp))

    rows = [("here, doit -n 1", run(1, args.probes, args.kernels)),
            ("here, doit -n 2", run(2, args.probes, args.kernels))]
    for jobs in (1, 2):
        with LoopbackCluster(2) as c:
            rows.append((f"2 Dask workers, doit -n {jobs}", run(jobs, args.probes, args.kernels, c.url)))

    n = rows[0][1]["n"]
    print(f"matrix {args.probes} x {args.kernels}: {n} cells, cold store, cached kernel "
          f"packages, {os.cpu_count()} cores")
    print(f"  {'':30} {'wall s':>8} {'sum build s':>12} {'(wall-sum)/cell':>16}")
    for name, r in rows:
        note = f"  ({r['workers']} workers used)" if r["workers"] else ""
        note += f"  {r['retried']} retried" if r["retried"] else ""
        print(f"  {name:30} {r['wall']:8.1f} {r['sum']:12.1f} {(r['wall'] - r['sum']) / r['n']:16.2f}{note}")
    local1, dask1, dask2 = rows[0][1], rows[2][1], rows[3][1]
    print(f"  speed-up, 2 Dask workers -n 2 vs here -n 1: {local1['wall'] / dask2['wall']:.2f}x")
    print(f"  scheduling overhead per task (cluster -n 1): "
          f"{(dask1['wall'] - dask1['sum']) / dask1['n']:.2f} s "
          f"(here -n 1, doit alone: {(local1['wall'] - local1['sum']) / local1['n']:.2f} s)")


if __name__ == "__main__":
    main()
