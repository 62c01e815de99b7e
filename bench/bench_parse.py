"""Pass-1 speed: cold parse and warm (cached tree) load, per 1,000 lines.

    python bench/bench_parse.py [--repeat N]

Two inputs:

* the project's own library: every file under tapsets/ plus probes/iotop.stp
  (what ``stapbuild`` parses for iotop);
* a synthetic library of SystemTap 5.6's size, 486 files (see
  bench/corpus.py for how it is sized), plus iotop. SystemTap parses its
  486 library files and a script in about 190 ms here; the target is 5x
  faster, under 40 ms.

"Cold" lexes, preprocesses and parses every file (.stpm library macros
first, as stap does). "Warm" is what a cached run pays: for every file,
read its tree's JSON (as stapbuild/passes.py ``_parse_cached`` stores it)
and rebuild the nodes (``ast.loads``: json.loads + from_json, GC paused).
Each figure is the best of ``--repeat`` runs, as CPU time of this process
(the machine may be shared; wall time is printed beside it).
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from codegen import ast  # noqa: E402
from codegen.parser import parse_file, parse_stpm  # noqa: E402
from corpus import library  # noqa: E402

STAP_MS = 190.0          # stap 5.6 pass 1, 486 library files + a script, on this machine
TARGET_MS = 40.0


def project_inputs() -> list[tuple[str, str]]:
    files = sorted(p for p in (ROOT / "tapsets").rglob("*") if p.suffix in (".stp", ".stpm"))
    out = [(str(p.relative_to(ROOT)), p.read_text()) for p in files]
    out.sort(key=lambda f: not f[0].endswith(".stpm"))
    iotop = ROOT / "probes" / "iotop.stp"
    out.append((str(iotop.relative_to(ROOT)), iotop.read_text()))
    return out


def parse_all(files: list[tuple[str, str]]) -> list[ast.File]:
    """Cold pass 1: library macros, then every .stp (the last file is the script)."""
    macros: dict = {}
    trees = []
    for i, (name, text) in enumerate(files):
        if name.endswith(".stpm"):
            macros.update(parse_stpm(name, text, library_macros=macros))
        else:
            user = i == len(files) - 1
            trees.append(parse_file(name, text, tapset=not user, library_macros=macros))
    return trees


def store_json(trees: list[ast.File], into: Path) -> list[Path]:
    paths = []
    for i, tree in enumerate(trees):
        p = into / f"{i}.json"
        p.write_text(json.dumps(ast.to_json(tree)))
        paths.append(p)
    return paths


def load_all(paths: list[Path]) -> list[ast.File]:
    return [ast.loads(p.read_bytes()) for p in paths]


def best(fn, repeat: int) -> tuple[float, float, object]:  # type: ignore[no-untyped-def]
    """(CPU ms, wall ms, result) of the fastest of repeat runs."""
    cpu, wall = [], []
    result = None
    for _ in range(repeat):
        result = None
        w, c = time.perf_counter(), time.process_time()
        result = fn()
        cpu.append(time.process_time() - c)
        wall.append(time.perf_counter() - w)
    return min(cpu) * 1000, min(wall) * 1000, result


def report(title: str, files: list[tuple[str, str]], repeat: int) -> None:
    lines = sum(t.count("\n") for _, t in files)
    size = sum(len(t) for _, t in files)
    cold, cold_wall, trees = best(lambda: parse_all(files), repeat)
    with tempfile.TemporaryDirectory() as tmp:
        paths = store_json(trees, Path(tmp))  # type: ignore[arg-type]
        del trees
        json_mb = sum(p.stat().st_size for p in paths) / 1e6
        warm, warm_wall, _ = best(lambda: load_all(paths), repeat)
    per_k = 1000.0 / max(lines, 1)
    print(f"{title}: {len(files)} files, {lines:,} lines, {size / 1e6:.2f} MB source")
    print(f"  cold parse    {cold:8.1f} ms   {cold * per_k:6.2f} ms per 1,000 lines"
          f"   (wall {cold_wall:.1f} ms)")
    print(f"  warm (cache)  {warm:8.1f} ms   {warm * per_k:6.2f} ms per 1,000 lines"
          f"   (wall {warm_wall:.1f} ms; {json_mb:.1f} MB of JSON trees)")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=3)
    opts = ap.parse_args()
    report("tapsets/ + probes/iotop.stp", project_inputs(), opts.repeat)
    synthetic = library() + [project_inputs()[-1]]
    report("synthetic stap-5.6-sized library + iotop", synthetic, opts.repeat)
    lines = sum(t.count("\n") for _, t in synthetic)
    print(f"  stap 5.6: {STAP_MS:.0f} ms ({STAP_MS * 1000 / lines:.2f} ms per 1,000 lines); "
          f"target {TARGET_MS:.0f} ms ({TARGET_MS * 1000 / lines:.2f} ms per 1,000 lines)")


if __name__ == "__main__":
    main()
