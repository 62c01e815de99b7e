"""Boot a provisioned kernel under QEMU (TCG) with virtme-ng and run one command.

Why virtme-ng: the guest gets the host's root filesystem read-only over 9p,
so the same Python, venv and checkout (and the .ko we just built) are visible
at the same paths, and no disk image has to be built.

Modules: `vng --run <cache>/kernels/K/image/boot/vmlinuz-K` makes virtme walk
up from the image to the first directory holding lib/modules
(<cache>/kernels/K/image) and use <that>/lib/modules/K. The guest gets a
tmpfs /lib/modules with a symlink to that tree, so nothing is written to the
host's /lib/modules and no mount namespace is needed.

Output: virtme only returns the command's exit status and separate
stdout/stderr when the guest can find its virtio-serial script ports, which
needs udevd inside the guest (i.e. on the host, since the guest runs the
host's userspace). Without udev it falls back to the console: status 255 and
output mixed with kernel messages. So we do not rely on either: the command
runs under a tiny wrapper that redirects stdout/stderr into files and writes
its status into a third file, in a host temp dir made writable with --rwdir.
"""

from __future__ import annotations

import os
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from .kernels import Kernel

REPO_ROOT = Path(__file__).resolve().parent.parent
TIMEOUT_STATUS = 124  # like timeout(1)
NO_STATUS = 125       # guest ended without the wrapper recording a status


class GuestError(Exception):
    """The guest could not be started at all (vng missing, kernel not provisioned)."""


@dataclass
class GuestResult:
    returncode: int
    stdout: str
    stderr: str
    seconds: float          # vng start to exit (boot + command + poweroff)
    console: str = ""       # vng's own output: boot log, kernel messages; for diagnostics


def _vng() -> str:
    exe = shutil.which("vng") or str(Path(sys.executable).with_name("vng"))
    if not os.access(exe, os.X_OK):
        raise GuestError("virtme-ng (vng) is not installed: pip install virtme-ng")
    return exe


def _wrapper(command: str, cwd: Path, io: Path) -> str:
    # stdin from /dev/null: a command reading stdin must not hang on the console.
    # PYTHONPATH: `python3 -m stapbuild.runner` must import this checkout in
    # the guest whatever the cwd (virtme does not pass our environment on).
    pythonpath = os.pathsep.join(p for p in (str(REPO_ROOT), os.environ.get("PYTHONPATH", "")) if p)
    return (
        f"export PYTHONPATH={shlex.quote(pythonpath)}\n"
        f"cd {shlex.quote(str(cwd))} || exit 126\n"
        f"/bin/sh -c {shlex.quote(command)} </dev/null "
        f">{shlex.quote(str(io / 'stdout'))} 2>{shlex.quote(str(io / 'stderr'))}\n"
        f"echo $? >{shlex.quote(str(io / 'rc'))}\n"
    )


def run_in_guest(kernel: Kernel, command: str, timeout: float = 600, cpus: int = 2,
                 memory: str = "1G", cwd: Path | None = None,
                 kernel_args: list[str] | None = None) -> GuestResult:
    """Boot `kernel` and run `command` (a /bin/sh command line) as root in it.
    kernel_args: extra boot parameters (e.g. slub_nomerge)."""
    if kernel.vmlinuz is None or not kernel.vmlinuz.exists():
        raise GuestError(f"kernel {kernel.release}: image not provisioned (provision(..., {{'image'}}))")
    vng = _vng()
    cwd = Path(cwd) if cwd else REPO_ROOT
    io = Path(tempfile.mkdtemp(prefix="stapbuild-guest-"))
    try:
        script = io / "cmd.sh"
        script.write_text(_wrapper(command, cwd, io))
        argv = [
            vng, "--run", str(kernel.vmlinuz),
            "--disable-kvm",       # no usable KVM here; TCG
            "--force-9p",          # virtiofsd is not needed/available
            "--disable-microvm",   # microvm lacks what script mode needs
            "--verbose",           # the kernel console: a hang or panic says why
            "--cpus", str(cpus), "--memory", memory,
            "--rwdir", str(io),    # the only host path the guest may write
            "--exec", f"/bin/sh {shlex.quote(str(script))}",
        ]
        for arg in kernel_args or ():
            argv += ["--append", arg]
        start = time.monotonic()
        # Own session: on timeout we kill vng *and* its qemu child by group.
        proc = subprocess.Popen(argv, cwd=io, stdin=subprocess.DEVNULL,
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                start_new_session=True)
        try:
            console, _ = proc.communicate(timeout=timeout)
            timed_out = False
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            console, _ = proc.communicate()
            timed_out = True
        seconds = time.monotonic() - start
        console_text = console.decode("utf-8", "replace")

        def read(name: str) -> str:
            try:
                return (io / name).read_text(errors="replace")
            except OSError:
                return ""

        stdout, stderr = read("stdout"), read("stderr")
        rc_text = read("rc").strip()
        if timed_out:
            rc = TIMEOUT_STATUS
            stderr += f"stapbuild: guest timed out after {timeout:.0f}s\n"
        elif rc_text.isdigit():
            rc = int(rc_text)
        else:
            # Kernel panic, OOM, vng failure before the command ran ...
            rc = NO_STATUS
            tail = "\n".join(console_text.strip().splitlines()[-15:])
            stderr += f"stapbuild: guest ended without a command status (vng exit {proc.returncode}):\n{tail}\n"
        return GuestResult(rc, stdout, stderr, seconds, console_text)
    finally:
        shutil.rmtree(io, ignore_errors=True)


def runner_command(ko: Path, workload: str | None = None, duration: float | None = None,
                   output: Path | None = None) -> str:
    """The guest command line that runs `ko` with stapbuild.runner."""
    # -S: the runner needs only the stdlib and this checkout (PYTHONPATH);
    # skipping site-packages saves ~2 s of 9p reads per run under TCG.
    argv = [sys.executable, "-S", "-m", "stapbuild.runner", "--module", str(Path(ko).resolve())]
    if workload is not None:
        argv += ["--workload", workload]
    if duration is not None:
        argv += ["--duration", str(duration)]
    if output is not None:
        argv += ["--output", str(output)]
    return shlex.join(argv)
