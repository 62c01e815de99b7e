"""The torture report: run the booted torture suite on both kernel series,
the pass-2-to-4 fuzzer, and the store fault checks, then print how many
cases passed, how many faults were injected, how many programs the fuzzer
ran, and the two numbers that must be zero: kernel splats and lost artifacts.

    python bench/bench_torture.py                 # everything (~20 min)
    python bench/bench_torture.py --fuzz 100 --series 6.12
    python bench/bench_torture.py --json report.json

Exit status 0 only if every case passed, the fuzzer found nothing, and
both must-be-zero numbers are zero.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from stapbuild import batch, kernels, stapfuzz, store, torture  # noqa: E402


def run_boot(series: list[str]) -> dict:
    out = {}
    for s in series:
        started = time.monotonic()
        try:
            res = torture.run_suite(s)
        except Exception as e:  # noqa: BLE001 - a dead guest is a result too
            out[s] = {"error": repr(e), "seconds": round(time.monotonic() - started)}
            continue
        out[s] = {"release": res.release, "seconds": round(time.monotonic() - started),
                  "cases": {n: p for n, p in res.problems.items()},
                  "faults": res.faults, "fuzz_cases": res.fuzz_cases,
                  "wedges": res.wedges,
                  "splats": res.splats,
                  "memory": torture.memory_table(res.results.get("cycle", {}).get("extra", {})),
                  "outload": res.results.get("outload", {}).get("digest"),
                  "transport_failures": {n: torture._transport_failures(res.results.get(n, {}))
                                         for n in ("outload", "outload_small", "sigint")}}
    return out


def run_fuzz(n: int) -> dict:
    ks = [kernels.provision(kernels.resolve_release(s), {"headers"}) for s in ("6.1", "6.12")]
    tmp = Path(tempfile.mkdtemp(prefix="stapbuild-fuzz-"))
    old = os.environ.get("STAPBUILD_ARTIFACTS")
    os.environ["STAPBUILD_ARTIFACTS"] = str(tmp)
    try:
        rep = stapfuzz.fuzz_passes(range(n), lambda seed: ks[seed % 2], full_every=10)
    finally:
        if old is None:
            os.environ.pop("STAPBUILD_ARTIFACTS", None)
        else:
            os.environ["STAPBUILD_ARTIFACTS"] = old
        shutil.rmtree(tmp, ignore_errors=True)
    return {**rep.summary(), "failures": [f"seed {s}: {m[:300]}" for s, m in rep.failures()][:10],
            "rejected": [f"seed {s}: {m.splitlines()[0]}" for s, m in
                         (rep.parse_rejected + rep.elaborate_rejected)][:10]}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--series", default="6.1,6.12")
    ap.add_argument("--fuzz", type=int, default=300, help="generated programs (0: none)")
    ap.add_argument("--no-boot", action="store_true")
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    series = [s for s in args.series.split(",") if s]
    started = time.monotonic()
    report = {"boot": {} if args.no_boot else run_boot(series),
              "fuzz": run_fuzz(args.fuzz) if args.fuzz else {},
              "store": torture.store_integrity(store.artifacts_root())}
    report["world_writable"] = torture.world_writable(store.artifacts_root(),
                                                      kernels.cache_root() / "kbuild")

    cases = passed = faults = splats = 0
    print(f"{'kernel':24} {'case':16} result")
    for s, r in report["boot"].items():
        if "error" in r:
            print(f"{s:24} {'(boot)':16} FAILED: {r['error']}")
            cases += 1
            continue
        for name, problems in r["cases"].items():
            cases += 1
            passed += not problems
            print(f"{r['release']:24} {name:16} {'pass' if not problems else 'FAIL: ' + '; '.join(problems)[:200]}")
        faults += r["faults"]
        splats += r["splats"]
    fz = report["fuzz"]
    lost = report["store"]["lost"]
    print()
    for s, r in report["boot"].items():
        if "memory" in r:
            print(f"{s}: {torture.CYCLES} load/unload cycles, growth: {r['memory']}")
            print(f"{s}: transport failures {r['transport_failures']}, outload {r['outload'] and r['outload'].get('lines')} lines")
        for w in r.get("wedges", []):
            print(f"{s}: WEDGE: the guest died in {w['died_in']!r} at {w['step']!r} (cases from there on rerun "
                  f"in a fresh boot): {w['trouble'][:2]} at {' < '.join(w['frames']) or '?'}")
    if fz:
        print(f"fuzzer: {fz}")
        for f in fz["failures"]:
            print("  FAIL", f)
    print()
    print(f"cases passed:        {passed}/{cases}")
    print(f"faults injected:     {faults}")
    print(f"fuzzer iterations:   {fz.get('programs', 0)} programs, {fz.get('compiled_syntax', 0)} "
          f"compiled against kernel headers ({fz.get('compiled_full', 0)} fully), "
          f"{sum(r.get('fuzz_cases', 0) for r in report['boot'].values())} run booted")
    print(f"kernel splats:       {splats}   (must be 0)")
    print(f"guest wedges:        {sum(len(r.get('wedges', [])) for r in report['boot'].values())}"
          f"   (each rerun in a fresh boot; see above)")
    print(f"lost artifacts:      {lost}   (must be 0; {report['store']['artifacts']} artifacts, "
          f"{report['store']['refs']} refs checked)")
    print(f"world-writable:      {len(report['world_writable'])}   (must be 0)")
    print(f"seconds:             {round(time.monotonic() - started)}")
    if args.json:
        args.json.write_text(json.dumps(report, indent=1, default=str))
    ok = (passed == cases and splats == 0 and lost == 0 and not fz.get("failures")
          and not report["world_writable"])
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
