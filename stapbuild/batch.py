"""Run many modules in one boot: the in-guest driver for tests and matrices.

A guest boot costs 10-30 s under TCG, so tests and kernel matrices batch
every module for one kernel into one boot. The host writes a plan (JSON
list of cases), boots the kernel with ``python3 -S -m stapbuild.batch PLAN``,
and reads back one JSON document: per case the runner's status, stdout,
stderr, whether the module was left loaded, and new kernel warnings.

Only the standard library is imported, so the guest's Python starts fast.
"""
from __future__ import annotations

import io
import json
import re
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from stapbuild import runner

BEGIN_MARK = "=====stapbuild-batch-results====="
END_MARK = "=====stapbuild-batch-end====="
# What a healthy run must never leave in the kernel log.
KERNEL_TROUBLE = re.compile(r"\b(BUG|WARNING|Oops|general protection|lockdep|"
                            r"possible circular locking|stack-protector)\b")


def _dmesg() -> list[str]:
    try:
        out = subprocess.run(["dmesg"], capture_output=True, text=True, timeout=10).stdout
    except (OSError, subprocess.TimeoutExpired):
        return []
    return out.splitlines()


def _loaded(modname: str) -> bool:
    try:
        return any(line.split()[0] == modname
                   for line in Path("/proc/modules").read_text().splitlines())
    except OSError:
        return False


def run_case(case: dict[str, Any]) -> dict[str, Any]:
    ko = Path(case["ko"])
    out, err = io.BytesIO(), io.BytesIO()
    before = len(_dmesg())
    start = time.monotonic()
    rc = runner.run(ko, workload=case.get("workload"), duration=case.get("duration"),
                    output=out, errout=err)
    seconds = time.monotonic() - start
    log = _dmesg()[before:]
    trouble = [line for line in log if KERNEL_TROUBLE.search(line)]
    return {"name": case["name"], "rc": rc, "seconds": round(seconds, 3),
            "stdout": out.getvalue().decode("utf-8", "replace"),
            "stderr": err.getvalue().decode("utf-8", "replace"),
            "left_loaded": _loaded(runner.module_name_of(ko)),
            "kernel_trouble": trouble}


def main(argv: list[str]) -> int:
    plan = json.loads(Path(argv[0]).read_text())
    results = [run_case(c) for c in plan]
    sys.stdout.write(f"{BEGIN_MARK}\n{json.dumps(results)}\n{END_MARK}\n")
    return 0


def parse_results(stdout: str) -> list[dict[str, Any]]:
    """The host side: pull the results document out of the guest's stdout."""
    m = re.search(re.escape(BEGIN_MARK) + r"\n(.*)\n" + re.escape(END_MARK), stdout, re.S)
    if m is None:
        raise ValueError("guest printed no batch results")
    return json.loads(m.group(1))


class BatchError(Exception):
    """The guest ended without reporting results (panic, timeout, no boot)."""


def run_cases(release: str, cases: list[dict[str, Any]],
              timeout: float = 900) -> dict[str, dict[str, Any]]:
    """Boot ``release`` once and run every case in it (host side).

    cases: {name, ko, workload?, duration?}; returns results by name.
    """
    import shlex
    import tempfile

    from stapbuild import guest, kernels
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
        results = parse_results(res.stdout)
    except ValueError:
        raise BatchError(f"guest of {release} reported no results (rc {res.returncode}):\n"
                         f"{res.stderr}\n{res.console[-3000:]}") from None
    return {r["name"]: r for r in results}


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
