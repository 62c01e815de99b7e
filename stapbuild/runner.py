"""Pass 5: load a stapbuild module, run it, relay its output, unload it.

This is our stapio. It runs on the host when the host can load the module,
and inside a virtme-ng guest otherwise (the guest sees the host filesystem
over 9p, so ``python3 -m stapbuild.runner`` works there unchanged).

Protocol (runtime_c/stp_runtime.h): /proc/stapbuild-<mod>/ctl and .../data.
Exit status follows stapio: 1 if any "ERROR: " line arrived on the stderr
channel (or the module could not be run at all), else 0. The workload's own
exit status is not ours.
"""

from __future__ import annotations

import argparse
import ctypes
import errno
import os
import signal
import struct
import subprocess
import sys
import time
from pathlib import Path
from typing import BinaryIO

POLL_INTERVAL = 0.02       # seconds between data/ctl polls
STOP_TIMEOUT = 30.0        # how long end probes may take to reach "stopped"
RMMOD_TIMEOUT = 10.0       # EBUSY/EAGAIN retries while kprobes wind down
_HDR = struct.Struct("<IHH")  # struct stp_record_hdr {u32 len; u16 channel; u16 flags}
CHAN_STDOUT, CHAN_STDERR = 1, 2

# x86_64 syscall numbers; init_module/delete_module have no libc wrappers.
_SYS_FINIT_MODULE = 313
_SYS_DELETE_MODULE = 176


class RunnerError(Exception):
    """Loading/unloading failed; the message is printed as an ERROR: line."""


def host_can_load(release: str) -> bool:
    """True if this process can load a module built for `release` right here."""
    if os.geteuid() != 0 or os.uname().release != release:
        return False
    try:
        return Path("/proc/sys/kernel/modules_disabled").read_text().strip() == "0"
    except OSError:
        # No such sysctl: kernel built without module support.
        return False


# --------------------------------------------------------------------------
# module load/unload through syscalls (no kmod binary needed in the guest)
# --------------------------------------------------------------------------

def _libc() -> ctypes.CDLL:
    return ctypes.CDLL(None, use_errno=True)


def _modinfo_section(ko: Path) -> bytes:
    """Raw .modinfo of an ELF64 little-endian .ko, read with struct.

    Not pyelftools: this code also runs inside a TCG guest where importing
    pyelftools over 9p costs ~4 s, more than the whole probe run.
    """
    data = ko.read_bytes()
    if data[:6] != b"\x7fELF\x02\x01":
        raise RunnerError(f"{ko.name}: not an ELF64 little-endian file")
    shoff, = struct.unpack_from("<Q", data, 0x28)
    shentsize, shnum, shstrndx = struct.unpack_from("<HHH", data, 0x3A)

    def shdr(i: int) -> tuple[int, int, int]:
        name, _type, _flags, _addr, off, size = struct.unpack_from("<IIQQQQ", data, shoff + i * shentsize)
        return name, off, size

    _, stroff, _ = shdr(shstrndx)
    for i in range(shnum):
        name, off, size = shdr(i)
        end = data.index(b"\0", stroff + name)
        if data[stroff + name : end] == b".modinfo":
            return data[off : off + size]
    return b""


def module_name_of(ko: Path) -> str:
    """The name the kernel will use: .modinfo name=, else the file stem."""
    name = None
    for entry in _modinfo_section(ko).split(b"\0"):
        if entry.startswith(b"name="):
            name = entry[5:].decode()
            break
    return (name or ko.name.removesuffix(".ko")).replace("-", "_")


def load_module(ko: Path, params: str = "") -> None:
    with open(ko, "rb") as f:
        r = _libc().syscall(_SYS_FINIT_MODULE, f.fileno(), params.encode(), 0)
    if r == 0:
        return
    err = ctypes.get_errno()
    if err == errno.ENOSYS:  # very old kernel: let insmod do init_module
        res = subprocess.run(["insmod", str(ko)] + ([params] if params else []),
                             capture_output=True, text=True)
        if res.returncode == 0:
            return
        raise RunnerError(f"insmod {ko.name} failed: {res.stderr.strip()}")
    hint = {
        errno.EEXIST: " (a module of that name is already loaded)",
        errno.ENOEXEC: " (wrong kernel or corrupt .ko; see dmesg)",
        errno.EPERM: " (not root, or module loading disabled / lockdown)",
        errno.EKEYREJECTED: " (module signature required)",
    }.get(err, "")
    raise RunnerError(f"cannot load {ko.name}: {os.strerror(err)}{hint}")


def unload_module(name: str, timeout: float = RMMOD_TIMEOUT) -> None:
    deadline = time.monotonic() + timeout
    libc = _libc()
    while True:
        if libc.syscall(_SYS_DELETE_MODULE, name.encode(), os.O_NONBLOCK) == 0:
            return
        err = ctypes.get_errno()
        if err == errno.ENOENT:
            return  # already gone
        if err not in (errno.EBUSY, errno.EAGAIN) or time.monotonic() > deadline:
            raise RunnerError(f"cannot unload {name}: {os.strerror(err)}")
        time.sleep(0.1)


# --------------------------------------------------------------------------
# the proc interface
# --------------------------------------------------------------------------

class ModuleSession:
    """ctl/data files of one loaded module, and record decoding."""

    def __init__(self, modname: str, out: BinaryIO, err: BinaryIO):
        self.dir = Path("/proc") / f"stapbuild-{modname}"
        self.out, self.err = out, err
        self.pending = b""        # a partial record (should not happen: whole records)
        self.err_line = b""       # channel-2 text not yet ended by '\n'
        self.saw_error = False

    def wait_ready(self, timeout: float = 5.0) -> None:
        deadline = time.monotonic() + timeout
        while not (self.dir / "ctl").exists():
            if time.monotonic() > deadline:
                raise RunnerError(f"{self.dir}/ctl did not appear after loading")
            time.sleep(0.01)

    def ctl(self) -> dict[str, str]:
        try:
            text = (self.dir / "ctl").read_text()
        except OSError:
            return {}
        pairs = (tok.partition("=") for tok in text.split())
        return {k: v for k, sep, v in pairs if sep}

    def command(self, word: str) -> None:
        fd = os.open(self.dir / "ctl", os.O_WRONLY)
        try:
            os.write(fd, word.encode())
        finally:
            os.close(fd)

    def drain(self) -> int:
        """Read and relay all available records; returns payload bytes seen."""
        try:
            fd = os.open(self.dir / "data", os.O_RDONLY | os.O_NONBLOCK)
        except OSError:
            return 0
        total = 0
        try:
            while True:
                try:
                    chunk = os.read(fd, 1 << 18)
                except BlockingIOError:
                    break
                if not chunk:
                    break
                total += self._feed(chunk)
        finally:
            os.close(fd)
        return total

    def _feed(self, chunk: bytes) -> int:
        buf = self.pending + chunk
        pos = n = 0
        while len(buf) - pos >= _HDR.size:
            length, channel, _flags = _HDR.unpack_from(buf, pos)
            if len(buf) - pos - _HDR.size < length:
                break
            payload = buf[pos + _HDR.size : pos + _HDR.size + length]
            pos += _HDR.size + length
            n += length
            self._emit(channel, payload)
        self.pending = buf[pos:]
        return n

    def _emit(self, channel: int, payload: bytes) -> None:
        if channel == CHAN_STDERR:
            self.err.write(payload)
            self.err.flush()
            # stapio's rule: any "ERROR: " line means failure. Lines can be
            # split across records, so scan whole lines only.
            text = self.err_line + payload
            *lines, self.err_line = text.split(b"\n")
            if any(l.startswith(b"ERROR: ") for l in lines):
                self.saw_error = True
        else:  # stdout, and unknown channels rather than dropping data
            self.out.write(payload)
            self.out.flush()

    def finish(self) -> None:
        if self.err_line.startswith(b"ERROR: "):
            self.saw_error = True


# --------------------------------------------------------------------------
# the run loop
# --------------------------------------------------------------------------

class _Signals:
    """SIGINT/SIGTERM ask for an orderly stop instead of killing us."""

    def __init__(self) -> None:
        self.caught: int | None = None
        self._old = {s: signal.signal(s, self._handler) for s in (signal.SIGINT, signal.SIGTERM)}

    def _handler(self, signum, frame) -> None:
        self.caught = signum

    def restore(self) -> None:
        for s, h in self._old.items():
            signal.signal(s, h)


def _start_workload(workload: str, modname: str) -> subprocess.Popen:
    """Run the workload with ``sh -c``. A module that uses target() has the
    stp_target parameter: the workload's pid is written there before the
    workload runs (its shell waits on a pipe until then, then execs the
    workload in the same process), as stap -c does."""
    param = Path(f"/sys/module/{modname}/parameters/stp_target")
    if not param.exists():
        return subprocess.Popen(["/bin/sh", "-c", workload])
    r, w = os.pipe()
    try:
        proc = subprocess.Popen(["/bin/sh", "-c", f'read _ <&{r}; exec /bin/sh -c "$1"',
                                 "sh", workload], pass_fds=(r,))
        try:
            param.write_text(f"{proc.pid}\n")
        except OSError:
            pass
        os.write(w, b"\n")
    finally:
        os.close(r)
        os.close(w)
    return proc


def _stop_workload(proc: subprocess.Popen | None) -> None:
    if proc is None or proc.poll() is not None:
        return
    proc.terminate()
    try:
        proc.wait(2)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def run(ko: Path, workload: str | None = None, duration: float | None = None,
        output: BinaryIO | None = None, errout: BinaryIO | None = None,
        params: str = "") -> int:
    """Load, start, relay, stop, unload. Returns the stapio-style status.
    params: module parameters for the load (stap -x's stp_target, -G's
    globals), "name=value" words separated by spaces."""
    sigs = _Signals()  # first: a signal from now on means "stop cleanly"
    out = output or sys.stdout.buffer
    err = errout or sys.stderr.buffer
    try:
        modname = module_name_of(ko)
    except (OSError, ValueError, struct.error, RunnerError) as e:
        sigs.restore()
        err.write(f"ERROR: {ko}: cannot read module: {e}\n".encode())
        return 1
    sess = ModuleSession(modname, out, err)
    proc: subprocess.Popen | None = None
    loaded = False

    def say(msg: str) -> None:
        err.write(f"{msg}\n".encode())
        err.flush()

    try:
        load_module(ko, params)
        loaded = True
        sess.wait_ready()
        try:
            sess.command("start")
        except OSError as e:  # begin probes/registration failed
            say(f"ERROR: starting {modname} failed: {e.strerror}")
            sess.saw_error = True
        else:
            if workload is not None:
                # After "start": the probes are armed when the workload runs.
                proc = _start_workload(workload, modname)
        started = time.monotonic()
        while True:
            sess.drain()
            st = sess.ctl()
            if st.get("exit_requested") == "1" or st.get("state") in ("error", "stopped", "stopping"):
                break
            if sigs.caught is not None:
                break
            if duration is not None and time.monotonic() - started >= duration:
                break
            # -c: the run ends when the command does, with or without -T.
            if proc is not None and proc.poll() is not None:
                break
            if not st:  # proc files vanished: module gone under us
                say(f"ERROR: {sess.dir} disappeared")
                sess.saw_error = True
                break
            time.sleep(POLL_INTERVAL)

        # Orderly stop: end probes run, then the summary; keep draining so a
        # full ring never blocks them.
        # exit() leaves the module in "stopping" with probes still armed:
        # only "stop" disarms them and runs the end probes.
        if sess.ctl().get("state") != "stopped":
            try:
                sess.command("stop")
            except OSError as e:
                say(f"WARNING: stop failed: {e.strerror}")
        deadline = time.monotonic() + STOP_TIMEOUT
        while True:
            got = sess.drain()
            st = sess.ctl()
            if (st.get("state") == "stopped" or not st) and got == 0:
                break
            if time.monotonic() > deadline:
                say(f"WARNING: {modname} did not reach state=stopped in {STOP_TIMEOUT:.0f}s")
                break
            if got == 0:
                time.sleep(POLL_INTERVAL)
        sess.drain()
        sess.finish()
    except RunnerError as e:
        say(f"ERROR: {e}")
        sess.saw_error = True
    finally:
        _stop_workload(proc)
        if loaded:
            try:
                unload_module(modname)
            except RunnerError as e:
                say(f"ERROR: {e}")
                sess.saw_error = True
        sigs.restore()
    return 1 if sess.saw_error else 0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python3 -m stapbuild.runner",
                                 description="Load a stapbuild module, relay its output, unload it.")
    ap.add_argument("--module", required=True, type=Path, help="the .ko to run")
    ap.add_argument("--workload", help="shell command to run while the probes are armed")
    ap.add_argument("--duration", type=float, help="stop after this many seconds")
    ap.add_argument("--output", type=Path, help="write the stdout channel here instead")
    args = ap.parse_args(argv)
    if not args.module.exists():
        print(f"ERROR: {args.module}: no such file", file=sys.stderr)
        return 1
    if args.output:
        with open(args.output, "wb") as f:
            return run(args.module, args.workload, args.duration, output=f)
    return run(args.module, args.workload, args.duration)


if __name__ == "__main__":
    sys.exit(main())
