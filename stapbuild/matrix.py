"""Kernel matrices: build every (probe, kernel) cell, boot-test each kernel
once with all its cells, and report in HTML, Markdown and JUnit XML.

A cell that fails to build is recorded and skipped at run time; it never
stops the other cells. Each probe may declare its smoke test in its header:

    # smoke: dd if=/dev/zero of=/dev/null bs=4k count=100 status=none
    # smoke-duration: 3
    # smoke-expect: dd

(``smoke-expect`` is a regular expression the output must contain.)
Without a declaration the probe simply runs for two seconds.

The doit tasks (stapbuild.tasks: cell, boot, matrix) call these functions;
cell and boot results are JSON files under artifacts/matrix/, so every step
is a file and ``doit -n 2`` can run kernels side by side.
"""
from __future__ import annotations

import html
import json
import re
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Optional
from xml.sax.saxutils import escape as xml_escape

from stapbuild import progress, store

DEFAULT_SMOKE_SECONDS = 2.0
EXCERPT_LINES = 12


@dataclass
class Smoke:
    workload: Optional[str] = None
    duration: Optional[float] = None
    expect: Optional[str] = None


def smoke_of(script: Path) -> Smoke:
    s = Smoke()
    for line in script.read_text().splitlines()[:60]:
        m = re.match(r"\s*#\s*smoke(-duration|-expect)?:\s*(.*?)\s*$", line)
        if not m:
            continue
        kind, value = m.group(1), m.group(2)
        if kind is None:
            s.workload = value
        elif kind == "-duration":
            s.duration = float(value)
        else:
            s.expect = value
    if s.workload is None and s.duration is None:
        s.duration = DEFAULT_SMOKE_SECONDS
    return s


@dataclass
class Cell:
    probe: str
    release: str
    script: str
    build: str = "pending"              # ok | failed
    build_seconds: float = 0.0
    build_error: str = ""
    ko: str = ""
    module: str = ""
    run: str = "not run"                # passed | failed | not run
    run_seconds: float = 0.0
    rc: Optional[int] = None
    output: str = ""
    errors: str = ""
    smoke: dict = field(default_factory=dict)
    attempts: int = 1                   # 2: retried (its worker died, or the build failed)
    worker: str = ""                    # the Dask worker that built it (executor=dask://)
    retried: str = ""                   # why: one line per failed attempt

    @property
    def name(self) -> str:
        return f"{self.probe}@{self.release}"


def matrix_dir() -> Path:
    return store.artifacts_root() / "matrix"


def cell_file(probe: str, release: str) -> Path:
    return matrix_dir() / "cells" / f"{probe}@{release}.json"


def boot_file(release: str) -> Path:
    return matrix_dir() / "boots" / f"{release}.json"


def save(path: Path, doc: Any) -> None:
    store.atomic_write(path, (json.dumps(doc, indent=1, sort_keys=True) + "\n").encode())


# ------------------------------------------------------------------ build
def build_cell(probe: str, script: Path, release: str) -> Cell:
    """Passes 1-4 for one cell; any failure is recorded, never raised."""
    from codegen.errors import StapError, StapErrors
    from stapbuild import passes
    from stapbuild.kbuild import BuildError
    from stapbuild.kernels import KernelNotFound, ProvisionError

    cell = Cell(probe, release, str(script), smoke=asdict(smoke_of(script)))
    start = time.monotonic()
    try:
        built = passes.build_script(script, release)
        cell.build, cell.ko, cell.module = "ok", str(built.ko), built.module
    except (StapError, StapErrors) as e:
        cell.build, cell.build_error = "failed", e.render()
    except BuildError as e:
        cell.build, cell.build_error = "failed", str(e)
    except (KernelNotFound, ProvisionError, OSError) as e:
        cell.build, cell.build_error = "failed", f"ERROR: {e}"
    except Exception:  # noqa: BLE001 - one cell's compiler bug must not stop the matrix
        import traceback
        cell.build = "failed"
        cell.build_error = "internal error:\n" + traceback.format_exc(limit=8)
    cell.build_seconds = round(time.monotonic() - start, 3)
    save(cell_file(probe, release), asdict(cell))
    progress.event("cell", probe=probe, kernel=release, build=cell.build,
                   seconds=cell.build_seconds)
    return cell


# ------------------------------------------------------------------ boot
def boot_kernel(release: str, cells: list[Cell]) -> list[Cell]:
    """One guest boot runs every cell of this kernel that built."""
    from stapbuild.batch import BatchError, run_cases
    runnable = [c for c in cells if c.build == "ok"]
    cases = [{"name": c.probe, "ko": c.ko, "workload": c.smoke.get("workload"),
              "duration": c.smoke.get("duration")} for c in runnable]
    results: dict[str, dict] = {}
    failure = ""
    if cases:
        progress.event("boot", kernel=release, state="start", cells=len(cases))
        try:
            results = run_cases(release, cases)
        except BatchError as e:
            failure = str(e)
    for c in runnable:
        r = results.get(c.probe)
        if r is None:
            c.run, c.errors = "failed", failure or "no result from the guest"
            continue
        c.rc, c.run_seconds = r["rc"], r["seconds"]
        c.output, c.errors = r["stdout"], r["stderr"]
        problems = []
        if r["rc"] != 0:
            problems.append(f"exit status {r['rc']}")
        if r["left_loaded"]:
            problems.append("module left loaded")
        if r["kernel_trouble"]:
            problems.append("kernel log: " + "; ".join(r["kernel_trouble"][:3]))
        expect = c.smoke.get("expect")
        if expect and not re.search(expect, r["stdout"]):
            problems.append(f"output lacks /{expect}/")
        c.run = "failed" if problems else "passed"
        if problems:
            c.errors = (c.errors + "\n" + "; ".join(problems)).strip()
        progress.event("run", probe=c.probe, kernel=release, run=c.run, seconds=c.run_seconds)
    save(boot_file(release), [asdict(c) for c in cells])
    return cells


def load_cells(probes: list[str], releases: list[str]) -> list[Cell]:
    """The latest result of every cell: the boot record, else the build record."""
    by_name: dict[str, Cell] = {}
    for release in releases:
        try:
            for d in json.loads(boot_file(release).read_text()):
                by_name[f"{d['probe']}@{d['release']}"] = Cell(**d)
        except (OSError, ValueError):
            pass
    out = []
    for probe in probes:
        for release in releases:
            cell = by_name.get(f"{probe}@{release}")
            if cell is None:
                try:
                    cell = Cell(**json.loads(cell_file(probe, release).read_text()))
                except (OSError, ValueError):
                    cell = Cell(probe, release, "", build="missing")
            out.append(cell)
    return out


# ------------------------------------------------------------------ reports
def status(c: Cell) -> str:
    if c.build != "ok":
        return "build failed" if c.build == "failed" else c.build
    return c.run


def excerpt(text: str, lines: int = EXCERPT_LINES) -> str:
    rows = text.splitlines()
    if len(rows) > lines:
        rows = rows[:lines] + [f"... ({len(rows) - lines} more lines)"]
    return "\n".join(rows)


def render_markdown(cells: list[Cell], probes: list[str], releases: list[str]) -> str:
    grid = {(c.probe, c.release): c for c in cells}
    out = ["# stapbuild matrix", "",
           "| probe | " + " | ".join(releases) + " |",
           "|---|" + "---|" * len(releases)]
    for p in probes:
        row = []
        for r in releases:
            c = grid[(p, r)]
            mark = {"passed": "✅", "failed": "❌", "build failed": "🔨❌"}.get(status(c), "⚪")
            row.append(f"{mark} {status(c)} (build {c.build_seconds:.1f}s, "
                       f"run {c.run_seconds:.1f}s)"
                       + (f" ↻ retried ({c.attempts} attempts)" if c.attempts > 1 else ""))
        out.append(f"| {p} | " + " | ".join(row) + " |")
    passed = sum(status(c) == "passed" for c in cells)
    out += ["", f"{passed} of {len(cells)} cells passed."]
    for c in cells:
        if status(c) != "passed":
            out += ["", f"## {c.name}: {status(c)}", "", "```",
                    excerpt(c.build_error or c.errors or c.output), "```"]
    retried = [c for c in cells if c.attempts > 1]
    if retried:
        out += ["", f"## Retried cells ({len(retried)})", ""]
        out += [f"- {c.name}: {c.attempts} attempts, {status(c)}"
                + (f", last on {c.worker}" if c.worker else "") + ": "
                + "; ".join(c.retried.splitlines()) for c in retried]
    return "\n".join(out) + "\n"


def _retried_html(c: Cell) -> str:
    if c.attempts <= 1:
        return ""
    return f"<br>↻ retried, {c.attempts} attempts: {html.escape(c.retried)}"


def render_html(cells: list[Cell], probes: list[str], releases: list[str]) -> str:
    grid = {(c.probe, c.release): c for c in cells}
    colour = {"passed": "#d4f4d4", "failed": "#f8d0d0", "build failed": "#f8d0d0"}
    head = "".join(f"<th>{html.escape(r)}</th>" for r in releases)
    rows = []
    for p in probes:
        tds = []
        for r in releases:
            c = grid[(p, r)]
            text = c.build_error or (c.output + ("\n" + c.errors if c.errors else ""))
            tds.append(
                f'<td style="background:{colour.get(status(c), "#eee")}">'
                f"<b>{html.escape(status(c))}</b><br>"
                f"build {c.build_seconds:.1f} s · run {c.run_seconds:.1f} s{_retried_html(c)}"
                f"<details><summary>output</summary><pre>{html.escape(excerpt(text))}</pre>"
                f"</details></td>")
        rows.append(f"<tr><th>{html.escape(p)}</th>{''.join(tds)}</tr>")
    passed = sum(status(c) == "passed" for c in cells)
    return (
        "<!DOCTYPE html>\n<html><head><meta charset='utf-8'><title>stapbuild matrix</title>"
        "<style>body{font-family:sans-serif}table{border-collapse:collapse}"
        "td,th{border:1px solid #999;padding:6px;vertical-align:top}"
        "pre{font-size:11px;max-width:40em;overflow:auto}</style></head><body>"
        f"<h1>stapbuild matrix</h1><p>{passed} of {len(cells)} cells passed.</p>"
        f"<table><tr><th>probe</th>{head}</tr>{''.join(rows)}</table></body></html>\n")


def render_junit(cells: list[Cell]) -> str:
    failures = sum(status(c) != "passed" for c in cells)
    total_time = sum(c.build_seconds + c.run_seconds for c in cells)
    cases = []
    for c in cells:
        attrs = (f'classname="stapbuild.matrix.{xml_escape(c.release)}" '
                 f'name="{xml_escape(c.probe)}" time="{c.build_seconds + c.run_seconds:.3f}"')
        st = status(c)
        if st == "passed":
            body = f"<system-out>{xml_escape(excerpt(c.output))}</system-out>"
        else:
            detail = c.build_error or c.errors or "not run"
            body = (f'<failure message="{xml_escape(st)}">{xml_escape(detail)}</failure>'
                    f"<system-out>{xml_escape(excerpt(c.output))}</system-out>")
        cases.append(f"  <testcase {attrs}>{body}</testcase>")
    return ('<?xml version="1.0" encoding="UTF-8"?>\n'
            f'<testsuite name="stapbuild.matrix" tests="{len(cells)}" '
            f'failures="{failures}" time="{total_time:.3f}">\n'
            + "\n".join(cases) + "\n</testsuite>\n")


def write_reports(probes: list[str], releases: list[str]) -> dict[str, Path]:
    cells = load_cells(probes, releases)
    out = matrix_dir()
    paths = {"html": out / "report.html", "md": out / "report.md", "junit": out / "junit.xml"}
    store.atomic_write(paths["html"], render_html(cells, probes, releases).encode())
    store.atomic_write(paths["md"], render_markdown(cells, probes, releases).encode())
    store.atomic_write(paths["junit"], render_junit(cells).encode())
    return paths


def main(argv: Optional[list[str]] = None) -> int:
    """``python -m stapbuild.matrix report --probes a,b --kernels K1,K2``:
    write the reports from cell and boot records that are already there,
    e.g. gathered from several CI jobs into one artifacts/matrix/."""
    import argparse
    ap = argparse.ArgumentParser(prog="python -m stapbuild.matrix")
    sub = ap.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("report")
    r.add_argument("--probes", required=True)
    r.add_argument("--kernels", required=True, help="full releases, comma-separated")
    args = ap.parse_args(argv)
    return 1 if report(args.probes.split(","), args.kernels.split(",")) else 0


def report(probes: list[str], releases: list[str]) -> list[str]:
    """Write the three reports, print where they are; returns failed cells."""
    paths = write_reports(probes, releases)
    cells = load_cells(probes, releases)
    bad = [c.name for c in cells if status(c) != "passed"]
    for kind, path in paths.items():
        print(f"matrix report ({kind}): {path}")
    print(f"{len(cells) - len(bad)} of {len(cells)} cells passed")
    return bad


if __name__ == "__main__":
    import sys
    sys.exit(main())
