"""Build scripts for one kernel and run them all in a single guest boot.

A boot costs 10-30 s under TCG, so every boot test batches its modules:
``build_module`` runs passes 1-4 (cached in the artifact store like any
build), and ``run_batch`` boots the kernel once and runs each case with
the same runner users run (stapbuild.batch inside the guest).
"""
from __future__ import annotations

import json
import shlex
import sys
import tempfile
from pathlib import Path
from typing import Any, Optional

from stapbuild import batch, guest, kernels, passes

ROOT = Path(__file__).resolve().parent.parent


def build_module(script: Path, release: str) -> Path:
    kctx = passes.kernel_context(release)
    parsed = passes.parse_pass(script, script.read_text(), kctx)
    elab = passes.elaborate_pass(parsed.artifact, kctx)
    name = passes.module_name_for(script.stem, elab.artifact.key)
    c = passes.translate_pass(elab.artifact, name)
    return passes.compile_pass(c.artifact, name, kctx).artifact.path


def run_batch(release: str, cases: list[dict[str, Any]],
              timeout: float = 900) -> dict[str, dict[str, Any]]:
    """cases: {name, ko, workload?, duration?}; returns results by name."""
    k = kernels.provision(release, {"image"})
    with tempfile.NamedTemporaryFile("w", suffix=".json", prefix="stapbuild-plan-",
                                     dir="/tmp", delete=False) as f:
        json.dump([{**c, "ko": str(c["ko"])} for c in cases], f)
        plan = Path(f.name)
    try:
        cmd = shlex.join([sys.executable, "-S", "-m", "stapbuild.batch", str(plan)])
        res = guest.run_in_guest(k, cmd, timeout=timeout)
    finally:
        plan.unlink()
    try:
        results = batch.parse_results(res.stdout)
    except ValueError:
        raise AssertionError(f"guest failed (rc {res.returncode}):\n{res.stderr}\n"
                             f"{res.console[-3000:]}") from None
    return {r["name"]: r for r in results}


def resolve(series: str) -> str:
    return kernels.resolve_release(series)


def case(name: str, ko: Path, workload: Optional[str] = None,
         duration: Optional[float] = None) -> dict[str, Any]:
    return {"name": name, "ko": ko, "workload": workload, "duration": duration}
