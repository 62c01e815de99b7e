"""Pass 5 dispatch: run a built module where it can run.

On a host that runs the target kernel (and lets root load modules) the
runner loads the module right here. Everywhere else (CI, containers, a
laptop building for a fleet) the target kernel is booted under QEMU with
virtme-ng and the very same runner runs inside the guest.
"""
from __future__ import annotations

import sys
from pathlib import Path
from typing import Optional

from stapbuild import guest, kernels, runner

# A guest boots in ~15 s under TCG; leave room for slow CI machines.
GUEST_BOOT_ALLOWANCE = 240.0


def run_module(ko: Path, release: str, workload: Optional[str] = None,
               duration: Optional[float] = None, output: Optional[Path] = None,
               force_guest: bool = False, timeout: Optional[float] = None) -> int:
    """Run ``ko`` for ``release``; returns the runner's exit status."""
    if not force_guest and runner.host_can_load(release):
        if output is None:
            return runner.run(ko, workload=workload, duration=duration)
        with open(output, "wb") as f:
            return runner.run(ko, workload=workload, duration=duration, output=f)
    k = kernels.provision(release, {"image"})
    budget = timeout or (GUEST_BOOT_ALLOWANCE + (duration or 60.0))
    # The guest sees the host filesystem read-only, so its output comes back
    # to us and we write the -o file here.
    result = guest.run_in_guest(k, guest.runner_command(ko, workload, duration),
                                timeout=budget)
    if output is not None:
        Path(output).write_text(result.stdout)
    else:
        sys.stdout.write(result.stdout)
        sys.stdout.flush()
    sys.stderr.write(result.stderr)
    sys.stderr.flush()
    return result.returncode
