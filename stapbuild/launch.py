"""Pass 5 dispatch: run a built module where it can run.

On a host that runs the target kernel (and lets root load modules) the
runner loads the module right here. Everywhere else (CI, containers, a
laptop building for a fleet) the target kernel is booted under QEMU with
virtme-ng and the very same runner runs inside the guest.

stap's run options (-c, -T, -o, -x, -G, -w, --json) travel as a
``run5.RunOptions``: applied here on a host, forwarded on the guest's
command line (``python3 -m stapbuild.run5``) otherwise, so that both
places behave alike.
"""
from __future__ import annotations

import json
import shlex
import sys
from pathlib import Path
from typing import Optional

from stapbuild import guest, jsonout, kernels, run5, runner
from stapbuild.run5 import RunOptions

# A guest boots in ~15 s under TCG; leave room for slow CI machines.
GUEST_BOOT_ALLOWANCE = 240.0


def guest_command(ko: Path, opts: RunOptions) -> str:
    """The guest's command line for `ko` with `opts`. The guest sees the host
    read-only, so -o is not forwarded: the output comes back on the guest's
    stdout and the host writes the file (see run_module)."""
    fwd = RunOptions(**{**opts.__dict__, "output": None})
    # -S: the runner needs only the stdlib and this checkout (PYTHONPATH);
    # skipping site-packages saves ~2 s of 9p reads per run under TCG.
    argv = [sys.executable, "-S", "-m", "stapbuild.run5", "--module", str(Path(ko).resolve()),
            *fwd.argv()]
    return shlex.join(argv)


def run_module(ko: Path, release: str, workload: Optional[str] = None,
               duration: Optional[float] = None, output: Optional[Path] = None,
               force_guest: bool = False, timeout: Optional[float] = None,
               opts: Optional[RunOptions] = None) -> int:
    """Run ``ko`` for ``release``; returns the runner's exit status.
    `opts` carries stap's run options; without it, workload/duration/output
    are used (the doit tasks' form)."""
    if opts is None:
        opts = RunOptions(workload=workload, duration=duration,
                          output=str(output) if output is not None else None)
    if not force_guest and runner.host_can_load(release):
        return run5.run(ko, opts)
    k = kernels.provision(release, {"image"})
    budget = timeout or (GUEST_BOOT_ALLOWANCE + (opts.duration or 60.0))
    # Expanded now, on the host, when the run starts (stapio does it then).
    out_name = run5.expand_output_name(opts.output) if opts.output is not None else None
    result = guest.run_in_guest(k, guest_command(ko, opts), timeout=budget)
    relay_guest_output(result.stdout, result.stderr, opts, out_name)
    return result.returncode


def relay_guest_output(stdout: str, stderr: str, opts: RunOptions,
                       out_name: Optional[str]) -> None:
    """Hand the guest's streams to the user as a host run would have."""
    out_file = open(out_name, "w") if out_name is not None else None
    try:
        if not opts.json:
            (out_file or sys.stdout).write(stdout)
            sys.stdout.flush()
            sys.stderr.write(stderr)
            sys.stderr.flush()
            return
        # JSON lines from the guest's run5: output objects go to -o's file
        # when there is one, everything else to stdout.
        for line in stdout.splitlines():
            try:
                is_output = json.loads(line).get("type") == "output"
            except (ValueError, AttributeError):
                is_output = False
            target = out_file if (is_output and out_file is not None) else sys.stdout
            target.write(line + "\n")
        sys.stdout.flush()
        # What the guest said outside the runner (a timeout, a boot failure).
        jsonout.JsonLines(sys.stdout).text(stderr, 5)
    finally:
        if out_file is not None:
            out_file.close()
