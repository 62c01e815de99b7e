"""Pass 5 with stap's run options, on a host or inside a guest.

``stapbuild`` runs this in-process on a host that can load the module, and
as ``python3 -S -m stapbuild.run5 ...`` inside a QEMU guest of the target
kernel, so both places treat the options the same way:

- ``--target-pid PID`` (stap -x): the module's ``stp_target`` parameter;
- ``--global NAME=VALUE`` (stap -G): the global's module parameter;
- ``--workload CMD`` / ``--duration S`` (stap -c / -T);
- ``--output FILE`` (stap -o): strftime patterns expanded when the run
  starts, as stapio does;
- ``--suppress-warnings`` (stap -w): the module's WARNING: lines dropped;
- ``--json``: output and diagnostics as JSON lines (stapbuild.jsonout).

Only the standard library and stapbuild.runner/jsonout are imported: the
guest's Python starts without site-packages.
"""
from __future__ import annotations

import argparse
import re
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO, Optional

from stapbuild import jsonout, runner

# What stap accepts for -G (case-insensitive), checked again here because
# the words end up on a module load's parameter line.
GLOBAL_OPT_RE = re.compile(r"^[a-z_][a-z0-9_]*=[a-z0-9_.-]+$", re.I)


@dataclass
class RunOptions:
    """The pass-5 half of stap's command line."""
    workload: Optional[str] = None          # -c CMD
    duration: Optional[float] = None        # -T SECONDS
    output: Optional[str] = None            # -o FILE (may hold strftime patterns)
    target_pid: Optional[int] = None        # -x PID
    globals: list[str] = field(default_factory=list)   # -G NAME=VALUE
    suppress_warnings: bool = False         # -w
    json: bool = False                      # --json

    def argv(self) -> list[str]:
        """These options as run5's command line (the guest side)."""
        out: list[str] = []
        if self.workload is not None:
            out += ["--workload", self.workload]
        if self.duration is not None:
            out += ["--duration", repr(self.duration)]
        if self.output is not None:
            out += ["--output", self.output]
        if self.target_pid is not None:
            out += ["--target-pid", str(self.target_pid)]
        for g in self.globals:
            out += ["--global", g]
        if self.suppress_warnings:
            out.append("--suppress-warnings")
        if self.json:
            out.append("--json")
        return out


def expand_output_name(pattern: str, when: Optional[float] = None) -> str:
    """stap -o FILE: a name with % in it is a strftime(3) pattern, in local time."""
    if "%" not in pattern:
        return pattern
    return time.strftime(pattern, time.localtime(when))


def module_parameters(data: bytes) -> set[str]:
    """Parameter names a module declares (``parmtype=NAME:TYPE`` in .modinfo).
    A plain byte scan: the guest has no ELF library, and these strings are
    NUL-separated and unique to .modinfo."""
    return {m.group(1).decode() for m in re.finditer(rb"\0parmtype=([A-Za-z0-9_]+):", data)}


class ParamError(Exception):
    pass


def load_params(ko: Path, opts: RunOptions) -> str:
    """The parameter line for loading `ko` with these options."""
    try:
        declared = module_parameters(ko.read_bytes())
    except OSError:
        declared = set()        # the runner reports the unreadable module
    words: list[str] = []
    if opts.target_pid is not None and "stp_target" in declared:
        # A script that never calls target() has no such parameter: stap's
        # -x is then simply without effect.
        words.append(f"stp_target={opts.target_pid}")
    for g in opts.globals:
        if not GLOBAL_OPT_RE.match(g):
            raise ParamError(f"Safety pattern mismatch for -G parameter ('{g}' vs. "
                             f"'{GLOBAL_OPT_RE.pattern}') rc=1")
        name = g.split("=", 1)[0]
        if name not in declared or name.startswith("stp_"):
            raise ParamError(f"global '{name}' cannot be set with -G: the module has "
                             "no such scalar global")
        words.append(g)
    return " ".join(words)


def run(ko: Path, opts: RunOptions, stdout: Optional[BinaryIO] = None,
        stderr: Optional[BinaryIO] = None) -> int:
    """Run `ko` with `opts`; returns the runner's (stapio's) exit status."""
    raw_out = stdout if stdout is not None else sys.stdout.buffer
    raw_err = stderr if stderr is not None else sys.stderr.buffer
    out_file: Optional[BinaryIO] = None
    closers: list = []
    try:
        params = load_params(ko, opts)
        if opts.output is not None:
            out_file = open(expand_output_name(opts.output), "wb")
    except (ParamError, OSError) as e:
        msg = f"ERROR: {e}" if isinstance(e, ParamError) else \
            f"ERROR: cannot open output file {opts.output}: {e.strerror}"
        if opts.json:
            jsonout.JsonLines(raw_out).text(msg, 5)
        else:
            raw_err.write((msg + "\n").encode())
            raw_err.flush()
        return 1
    try:
        if opts.json:
            events = jsonout.JsonLines(raw_out)
            out_events = events if out_file is None else \
                jsonout.JsonLines(out_file)
            out: BinaryIO = jsonout.LineStream(out_events, "output")  # type: ignore[assignment]
            err: BinaryIO = jsonout.LineStream(events, "stderr",  # type: ignore[assignment]
                                               drop_warnings=opts.suppress_warnings)
            closers += [out, err]
        else:
            out = out_file if out_file is not None else raw_out
            err = raw_err
            if opts.suppress_warnings:
                err = jsonout.WarningFilter(raw_err)  # type: ignore[assignment]
                closers.append(err)
        return runner.run(ko, workload=opts.workload, duration=opts.duration,
                          output=out, errout=err, params=params)
    finally:
        for c in closers:
            c.close()
        if out_file is not None:
            out_file.close()


def main(argv: Optional[list[str]] = None) -> int:
    ap = argparse.ArgumentParser(prog="python3 -m stapbuild.run5",
                                 description="Run a stapbuild module with stap's run options.")
    ap.add_argument("--module", required=True, type=Path)
    ap.add_argument("--workload")
    ap.add_argument("--duration", type=float)
    ap.add_argument("--output")
    ap.add_argument("--target-pid", type=int)
    ap.add_argument("--global", dest="globals", action="append", default=[])
    ap.add_argument("--suppress-warnings", action="store_true")
    ap.add_argument("--json", action="store_true")
    a = ap.parse_args(argv)
    opts = RunOptions(workload=a.workload, duration=a.duration, output=a.output,
                      target_pid=a.target_pid, globals=a.globals,
                      suppress_warnings=a.suppress_warnings, json=a.json)
    return run(a.module, opts)


if __name__ == "__main__":
    sys.exit(main())
