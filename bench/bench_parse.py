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

"Lazy" is what ``stapbuild`` really pays for pass 1 now
(``passes.parse_pass``): the library index (stapbuild/library_index.py)
names the files that may define what the script uses, and only those are
parsed or loaded; the .stpm macros and the script are parsed every time.
Cold: an empty store, so the index is built (a token scan of every library
file) and the selected files are parsed; warm: index, trees and the parse
artifact are in the store, as in a new process (in-process memos cleared).
It is measured on tapsets/ and on the synthetic library plus tapsets/ (so
that the library defines what iotop uses: vfs.*, execname(), pid()), for
iotop and for a ``syscall.*`` script, the wildcard that reaches every
sysc_*.stp file.
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


def _fresh_process() -> None:
    """Forget what this process memoised, as a new stapbuild run would."""
    from stapbuild import library_index, passes, store
    store._FILE_DIGESTS.clear()
    library_index._MEMO.clear()
    passes.compiler_id.cache_clear()


def lazy_pass1(script: Path, text: str, lib_dir: Path, store_dir: Path) -> dict:
    """One pass 1 as ``stapbuild`` runs it, with this library and store:
    CPU and wall ms, and what was selected and linked."""
    from stapbuild import passes
    selected: list[str] = []
    real = passes.lazy_library

    def spy(users, pp, dirs, macros, refs=None):  # type: ignore[no-untyped-def]
        lib, catalogue = real(users, pp, dirs, macros, refs)
        selected[:] = list(lib)
        return lib, catalogue

    old = {k: os.environ.get(k) for k in ("STAPBUILD_TAPSETS", "STAPBUILD_ARTIFACTS")}
    os.environ["STAPBUILD_TAPSETS"] = str(lib_dir)
    os.environ["STAPBUILD_ARTIFACTS"] = str(store_dir)
    passes.lazy_library = spy
    try:
        _fresh_process()
        w, c = time.perf_counter(), time.process_time()
        r = passes.parse_pass(script, text, None)
        cpu, wall = time.process_time() - c, time.perf_counter() - w
    finally:
        passes.lazy_library = real
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
    return {"cpu": cpu * 1000, "wall": wall * 1000, "selected": sorted(selected),
            "linked": r.library_files}


def _lines(path: Path) -> int:
    return path.read_text().count("\n")


def lazy_report(title: str, lib_dir: Path, script: Path, text: str, repeat: int) -> None:
    lib_files = sorted(lib_dir.rglob("*.stp")) + sorted(lib_dir.rglob("*.stpm"))
    lib_lines = sum(map(_lines, lib_files))
    stpm_lines = sum(_lines(p) for p in lib_files if p.suffix == ".stpm")
    cold, warm = [], []
    for _ in range(repeat):
        with tempfile.TemporaryDirectory() as tmp:
            cold.append(lazy_pass1(script, text, lib_dir, Path(tmp)))
            for _ in range(repeat):
                warm.append(lazy_pass1(script, text, lib_dir, Path(tmp)))
    sel = cold[0]["selected"]
    parsed_lines = text.count("\n") + stpm_lines + sum(
        _lines(Path(n) if os.path.isabs(n) else ROOT / n) for n in sel)
    print(f"lazy pass 1, {script.name} on {title}: "
          f"library {len(lib_files)} files, {lib_lines:,} lines")
    print(f"  parsed or loaded: the script, {sum(p.suffix == '.stpm' for p in lib_files)} .stpm, "
          f"{len(sel)} selected .stp = {parsed_lines:,} lines; {cold[0]['linked']} linked")
    for label, runs in (("cold (index built)", cold), ("warm (index cached)", warm)):
        cpu = min(r["cpu"] for r in runs)
        wall = min(r["wall"] for r in runs)
        print(f"  {label:20s} {cpu:7.1f} ms   {cpu * 1000 / max(parsed_lines, 1):6.2f} ms per "
              f"1,000 parsed lines, {cpu * 1000 / lib_lines:5.2f} per 1,000 library lines;  "
              f"{cpu / STAP_MS:5.2f} x stap's {STAP_MS:.0f} ms ({_versus(cpu)})"
              f"   (wall {wall:.1f} ms)")


def _versus(ms: float) -> str:
    return f"{STAP_MS / ms:.1f}x faster" if ms < STAP_MS else f"{ms / STAP_MS:.1f}x slower"


def index_report(lib_dir: Path, repeat: int) -> None:
    """The library index alone (stapbuild/library_index.py load_or_build),
    as a new process pays for it: cold (empty store) with the full-lexer
    walk and with the sparse scan (stapbuild/library_scan.py), then warm
    after one file was edited (only that file is read and scanned again),
    and warm with nothing changed (no file is read: stats match)."""
    from stapbuild import library_index, passes
    old = {k: os.environ.get(k) for k in ("STAPBUILD_TAPSETS", "STAPBUILD_ARTIFACTS")}
    os.environ["STAPBUILD_TAPSETS"] = str(lib_dir)
    files = sorted(lib_dir.rglob("*.stp")) + sorted(lib_dir.rglob("*.stpm"))
    rows: dict[str, list[float]] = {}
    edited = files[len(files) // 2]
    original = edited.read_text()

    def timed(label: str, fn) -> None:  # type: ignore[no-untyped-def]
        _fresh_process()
        c = time.process_time()
        fn()
        rows.setdefault(label, []).append((time.process_time() - c) * 1000)

    try:
        for _ in range(repeat):
            for fast in (False, True):
                with tempfile.TemporaryDirectory() as tmp:
                    os.environ["STAPBUILD_ARTIFACTS"] = tmp
                    library_index.FAST_SCAN = fast
                    label = "cold, sparse scan" if fast else "cold, full-lexer walk (before)"
                    timed(label, passes.library_index)
                    if not fast:
                        continue
                    edited.write_text(original + "\nfunction bench_edit() { return 1 }\n")
                    timed("warm, one file edited", passes.library_index)
                    edited.write_text(original)
                    passes.library_index()
                    # Stats younger than RACY_NS are not trusted: let them age.
                    time.sleep(library_index.RACY_NS / 1e9 + 0.1)
                    passes.library_index()
                    timed("warm, nothing changed", passes.library_index)
    finally:
        library_index.FAST_SCAN = True
        edited.write_text(original)
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
    lines = sum(map(_lines, files))
    print(f"library index, {len(files)} files, {lines:,} lines (CPU ms, best of {repeat}):")
    before = min(rows["cold, full-lexer walk (before)"])
    for label, runs in rows.items():
        ms = min(runs)
        print(f"  {label:32s} {ms:7.1f} ms  {ms * 1000 / lines:5.2f} per 1,000 lines"
              f"  ({before / ms:4.1f}x the full-lexer walk's speed)")


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
    print()
    iotop = ROOT / "probes" / "iotop.stp"
    wildcard = Path("syscall-wildcard.stp")     # a display name only: the text is below
    wildcard_text = "global n\nprobe syscall.* { n[name] <<< 1 }\n"
    with tempfile.TemporaryDirectory() as tmp:
        synth = Path(tmp) / "lib"
        for name, text in library():
            (synth / name).parent.mkdir(parents=True, exist_ok=True)
            (synth / name).write_text(text)
        shutil.copytree(ROOT / "tapsets", synth / "ours")
        index_report(synth, opts.repeat)
        lazy_report("tapsets/", ROOT / "tapsets", iotop, iotop.read_text(), opts.repeat)
        lazy_report("synthetic + tapsets/", synth, iotop, iotop.read_text(), opts.repeat)
        lazy_report("synthetic + tapsets/", synth, wildcard, wildcard_text,
                    opts.repeat)
    print(f"  target: under {TARGET_MS:.0f} ms")


if __name__ == "__main__":
    main()
