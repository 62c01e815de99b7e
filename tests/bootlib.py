"""Build scripts for one kernel and run them all in a single guest boot.

A boot costs 10-30 s under TCG, so every boot test batches its modules:
``build_module`` runs passes 1-4 (cached in the artifact store like any
build), and ``run_batch`` boots the kernel once and runs each case with
the same runner users run (stapbuild.batch inside the guest).
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Optional

from stapbuild import batch, kernels, passes

ROOT = Path(__file__).resolve().parent.parent


def build_module(script: Path, release: str, defines: tuple[str, ...] = ()) -> Path:
    return passes.build_script(script, release, defines=defines).ko


def run_batch(release: str, cases: list[dict[str, Any]],
              timeout: float = 900) -> dict[str, dict[str, Any]]:
    """cases: {name, ko, workload?, duration?}; returns results by name."""
    try:
        return batch.run_cases(release, cases, timeout)
    except batch.BatchError as e:
        raise AssertionError(str(e)) from None


def resolve(series: str) -> str:
    return kernels.resolve_release(series)


def case(name: str, ko: Path, workload: Optional[str] = None,
         duration: Optional[float] = None) -> dict[str, Any]:
    return {"name": name, "ko": ko, "workload": workload, "duration": duration}


def ok(r: dict[str, Any]) -> dict[str, Any]:
    """A case that ran cleanly: exit 0, its module unloaded, no kernel trouble."""
    assert r["rc"] == 0, r
    assert not r["left_loaded"], r
    assert not r["kernel_trouble"], r
    return r
