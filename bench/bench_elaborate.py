"""Pass-2 speed: elaborating iotop against each kernel's debug info, and
`stapbuild -L 'kernel.function("vfs_*")'`.

    python bench/bench_elaborate.py [--repeat N] [--kernels 6.1,6.12]

Every figure is measured in a fresh process (so no in-process memo helps)
and is the best of --repeat runs, all in this one run of the script:

* warm:       the kernel's index (symtab + aranges) and facts cache
              (resolved functions, SQLite) exist, as on any build after the
              first for that kernel; pass 2 reads no DWARF at all.
* warm index: the index exists but nothing was resolved yet (a script that
              probes functions no earlier script probed): one CU per function.
* cold:       nothing cached: the index is built from the vmlinux first.
* -L warm / -L cold: the listing, with and without the facts cache.

Pass 2 here is what `elaborate_pass` does minus the artifact store: load the
kernel facts, expand aliases, resolve $targets, infer types, emit the IR.
stap 5.6 takes 2.2 s for iotop's pass 2 on this machine; the target is
under 10% of that (0.22 s) with a warm index.
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

STAP_S = 2.2
TARGET_S = 0.22


def _child(mode: str, release: str, cache_dir: str) -> dict:
    """Runs in a fresh interpreter: one timed measurement."""
    import io

    from codegen.elaborate import elaborate
    from codegen.kernel_facts import DwarfKernelFacts
    from stapbuild import passes
    from stapbuild.listing import list_points

    kctx = passes.kernel_context(release)
    index_file = Path(cache_dir) / "dwarf-index.json.gz"
    if mode.startswith("pass2"):
        script = ROOT / "probes" / "iotop.stp"
        parsed = passes.parse_pass(script, script.read_text(), kctx)
        files = passes.load_parse_tree(parsed.artifact)      # pass 1's output
        t0 = time.perf_counter()
        facts = DwarfKernelFacts(release, kctx.kernel.vmlinux, index_file)
        t1 = time.perf_counter()
        ir = elaborate(files, facts)
        t2 = time.perf_counter()
        return {"seconds": t2 - t0, "index_s": t1 - t0, "probes": len(ir["probes"])}

    class Ctx(passes.KernelContext):
        @property
        def index_file(self) -> Path:   # the bench's own caches
            return index_file
    ctx = Ctx(kctx.release, kctx.kernel)
    t0 = time.perf_counter()
    lines = list_points('kernel.function("vfs_*")', ctx, True)
    out = io.StringIO()
    out.write("\n".join(lines))
    return {"seconds": time.perf_counter() - t0, "lines": len(lines)}


def measure(mode: str, release: str, cache_dir: Path, fresh: bool) -> dict:
    if fresh:           # nothing cached: a new, empty cache directory
        for p in cache_dir.glob("*"):
            p.unlink()
    res = subprocess.run([sys.executable, __file__, "--child", mode, release, str(cache_dir)],
                         capture_output=True, text=True, cwd=ROOT)
    if res.returncode != 0:
        raise SystemExit(f"child {mode} {release} failed:\n{res.stderr}")
    return json.loads(res.stdout.strip().splitlines()[-1])


def best(runs: list[dict]) -> dict:
    return min(runs, key=lambda r: r["seconds"])


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--kernels", default="6.1,6.12")
    ap.add_argument("--child", nargs=3, help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.child:
        print(json.dumps(_child(*a.child)))
        return 0

    from stapbuild import kernels
    print(f"pass 2 of probes/iotop.stp and -L 'kernel.function(\"vfs_*\")', best of "
          f"{a.repeat}, each in a fresh process (stap 5.6: {STAP_S:.1f} s for iotop's "
          f"pass 2; target with a warm index: < {TARGET_S:.2f} s)")
    ok = True
    for series in a.kernels.split(","):
        release = kernels.resolve_release(series)
        with tempfile.TemporaryDirectory(prefix="stapbuild-bench-elab-") as tmp:
            cache = Path(tmp)
            cold = best([measure("pass2", release, cache, fresh=True)
                         for _ in range(a.repeat)])
            # The index now exists (built by the last cold run): drop the
            # facts only.
            warm_index = []
            for _ in range(a.repeat):
                for p in cache.glob("dwarf-facts*"):
                    p.unlink()
                warm_index.append(measure("pass2", release, cache, fresh=False))
            warm_index_b = best(warm_index)
            warm = best([measure("pass2", release, cache, fresh=False)
                         for _ in range(a.repeat)])
            list_cold = []
            for _ in range(a.repeat):
                for p in cache.glob("dwarf-facts*"):
                    p.unlink()
                list_cold.append(measure("list", release, cache, fresh=False))
            list_cold_b = best(list_cold)
            list_warm = best([measure("list", release, cache, fresh=False)
                              for _ in range(a.repeat)])
        verdict = "ok" if warm["seconds"] < TARGET_S else "OVER TARGET"
        ok = ok and warm["seconds"] < TARGET_S
        print(f"\n{release}")
        print(f"  pass 2 iotop, warm (index + facts cached):  {warm['seconds']:6.3f} s   "
              f"{warm['seconds'] / STAP_S * 100:5.1f}% of stap  [{verdict}]")
        print(f"  pass 2 iotop, warm index, facts resolved:   {warm_index_b['seconds']:6.3f} s")
        print(f"  pass 2 iotop, cold (index built first):     {cold['seconds']:6.3f} s   "
              f"(index {cold['index_s']:.3f} s)")
        print(f"  -L 'kernel.function(\"vfs_*\")' warm:         {list_warm['seconds']:6.3f} s   "
              f"({list_warm['lines']} lines)")
        print(f"  -L 'kernel.function(\"vfs_*\")' cold facts:   {list_cold_b['seconds']:6.3f} s")
    return 0 if ok else 1


if __name__ == "__main__":
    os.environ.setdefault("PYTHONHASHSEED", "0")
    sys.exit(main())
