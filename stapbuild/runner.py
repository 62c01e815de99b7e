"""Pass 5: load a stapbuild module, run it, relay its output, unload it.

This is our stapio. It runs on the host when the host can load the module,
and inside a virtme-ng guest otherwise (the guest sees the host filesystem
over 9p, so ``python3 -m stapbuild.runner`` works there unchanged).

Protocol (runtime_c/stp_runtime.h): /proc/stapbuild-<mod>/ctl and .../data.
Exit status follows stapio: 1 if any "ERROR: " line arrived on the stderr
channel (or the module could not be run at all), else 0. The workload's own
exit status is not ours.

Ownership: before loading, the runner records itself as the module's owner
in a root-only runtime directory (/run/stapbuild, else /tmp/stapbuild-run-UID).
A runner that was SIGKILLed cannot unload its module; the next runner to start
finds the record, sees that its owner is dead, and stops and unloads the
orphan (its end probes run; their output is discarded).

Integrity: the module is read once, checked against an expected sha256 (the
caller's, or the store's ``.sha256`` sidecar beside it) and loaded from those
same bytes through a memfd, so what was checked is what the kernel gets.
"""

from __future__ import annotations

import argparse
import ctypes
import errno
import fcntl
import hashlib
import json
import os
import signal
import stat
import struct
import subprocess
import sys
import threading
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


def load_module(ko: Path, params: str = "", data: bytes | None = None) -> None:
    """Load `ko`; with `data`, load exactly those bytes (already verified)."""
    if data is not None:
        f = os.fdopen(os.memfd_create(f"stapbuild-{ko.name}", os.MFD_CLOEXEC), "w+b")
        f.write(data)
        f.flush()
        f.seek(0)
    else:
        f = open(ko, "rb")
    with f:
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


def read_verified(ko: Path, expect_sha256: str | None = None) -> bytes:
    """The module's bytes, checked against `expect_sha256`, else against the
    artifact store's sidecar (``<ko>.sha256``) when there is one."""
    data = ko.read_bytes()
    expected = expect_sha256
    source = "the expected digest"
    if expected is None:
        side = ko.with_name(ko.name + ".sha256")
        try:
            expected = side.read_text().split()[0]
            source = side.name
        except (OSError, IndexError):
            return data
    actual = hashlib.sha256(data).hexdigest()
    if actual != expected.lower():
        raise RunnerError(f"{ko.name}: sha256 {actual[:16]}... does not match {source} "
                          f"({expected[:16]}...); refusing to load it")
    return data


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
# ownership records and orphans
# --------------------------------------------------------------------------

def _usable_private_dir(d: Path) -> bool:
    """An existing or new directory that only we can write: not a symlink,
    owned by our euid, no group/other access (a /tmp path can be planted)."""
    try:
        d.mkdir(mode=0o700, exist_ok=True)
        st = os.lstat(d)
    except OSError:
        return False
    return (stat.S_ISDIR(st.st_mode) and st.st_uid == os.geteuid()
            and stat.S_IMODE(st.st_mode) & 0o077 == 0)


def runtime_dir() -> Path | None:
    """Where owner records live: $STAPBUILD_RUNTIME_DIR, /run/stapbuild, or
    /tmp/stapbuild-run-UID; None if none of them is safe to use."""
    env = os.environ.get("STAPBUILD_RUNTIME_DIR")
    candidates = [Path(env)] if env else [Path("/run/stapbuild"),
                                          Path(f"/tmp/stapbuild-run-{os.geteuid()}")]
    for d in candidates:
        if _usable_private_dir(d):
            return d
    return None


def _proc_start_time(pid: int) -> str | None:
    """Field 22 of /proc/PID/stat (start time in ticks): a pid plus its start
    time names a process even after the pid is reused."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return text[text.rindex(")") + 2:].split()[19]


def _alive(pid: int, start: str | None) -> bool:
    now = _proc_start_time(pid)
    return now is not None and (start is None or now == start)


def _module_loaded(modname: str) -> bool:
    return Path("/sys/module", modname).exists()


class Ownership:
    """This runner's record for the module it loads (written before loading)."""

    def __init__(self, modname: str):
        self.modname = modname
        self.dir = runtime_dir()
        self.path = self.dir / f"{modname}.owner" if self.dir else None
        self._lock_fd: int | None = None

    def __enter__(self) -> "Ownership":
        if self.dir is not None:
            self._lock_fd = os.open(self.dir / ".lock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
            fcntl.flock(self._lock_fd, fcntl.LOCK_EX)
        return self

    def __exit__(self, *exc: object) -> None:
        if self._lock_fd is not None:
            os.close(self._lock_fd)
            self._lock_fd = None

    def claim(self) -> None:
        """Record us as the owner (call with the lock held, after reaping)."""
        if self.path is None:
            return
        try:
            prev = json.loads(self.path.read_text())
            if _alive(int(prev["pid"]), prev.get("start")):
                raise RunnerError(f"module {self.modname} is already being run by pid {prev['pid']}")
        except (OSError, ValueError, KeyError, TypeError):
            pass
        doc = {"pid": os.getpid(), "start": _proc_start_time(os.getpid()),
               "module": self.modname, "since": time.time()}
        tmp = self.path.with_name(f".{self.path.name}.{os.getpid()}")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
        with os.fdopen(fd, "w") as f:
            json.dump(doc, f)
        os.replace(tmp, self.path)

    def release(self) -> None:
        if self.path is None:
            return
        try:
            doc = json.loads(self.path.read_text())
            if doc.get("pid") == os.getpid():
                self.path.unlink()
        except (OSError, ValueError):
            pass


def _stop_and_unload(modname: str, timeout: float = STOP_TIMEOUT) -> None:
    """Stop a module nobody reads (end probes run, output discarded), unload it."""
    sess = ModuleSession(modname, _Discard(), _Discard())
    if sess.ctl():
        stopper = threading.Thread(target=_quiet_command, args=(sess, "stop"), daemon=True)
        stopper.start()
        deadline = time.monotonic() + timeout
        while stopper.is_alive() and time.monotonic() < deadline:
            sess.drain()
            time.sleep(POLL_INTERVAL)
        stopper.join(max(0.0, deadline - time.monotonic()))
        sess.drain()
    unload_module(modname)


def _quiet_command(sess: "ModuleSession", word: str) -> None:
    try:
        sess.command(word)
    except OSError:
        pass


class _Discard:
    def write(self, data: bytes) -> int:
        return len(data)

    def flush(self) -> None:
        pass


def reap_orphans(say=None) -> list[str]:
    """Stop and unload every module whose recorded owner is dead; returns
    their names. Records of modules no longer loaded are dropped."""
    say = say or (lambda msg: None)
    d = runtime_dir()
    if d is None:
        return []
    reaped = []
    for rec in sorted(d.glob("*.owner")):
        try:
            doc = json.loads(rec.read_text())
            pid, start, modname = int(doc["pid"]), doc.get("start"), str(doc["module"])
        except (OSError, ValueError, KeyError, TypeError):
            rec.unlink(missing_ok=True)
            continue
        if _alive(pid, start):
            continue
        if _module_loaded(modname):
            try:
                _stop_and_unload(modname)
            except RunnerError as e:
                say(f"WARNING: orphaned module {modname} (runner pid {pid} is gone) "
                    f"could not be unloaded: {e}")
                continue
            say(f"WARNING: unloaded orphaned module {modname} (its runner, pid {pid}, is gone)")
            reaped.append(modname)
        rec.unlink(missing_ok=True)
    return reaped


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

    def drain(self, max_reads: int = 64) -> int:
        """Read and relay the available records, at most `max_reads` reads
        (16 MiB); returns payload bytes seen. The bound matters: a probe on
        the read path (vfs_read, ksys_read) prints a line for every read we
        make, so under a flood "until empty" may never come, and the caller
        must get back to checking for signals and deadlines."""
        try:
            fd = os.open(self.dir / "data", os.O_RDONLY | os.O_NONBLOCK)
        except OSError:
            return 0
        total = 0
        try:
            for _ in range(max_reads):
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
        """Relay the whole records in `chunk`. Consecutive records of one
        channel go out in one write (a flood is thousands of records per
        read; a write and flush per record would be the bottleneck)."""
        buf = self.pending + chunk
        pos = n = 0
        run: list[bytes] = []
        run_channel = None
        while len(buf) - pos >= _HDR.size:
            length, channel, _flags = _HDR.unpack_from(buf, pos)
            if len(buf) - pos - _HDR.size < length:
                break
            payload = buf[pos + _HDR.size : pos + _HDR.size + length]
            pos += _HDR.size + length
            n += length
            if channel != CHAN_STDERR:
                channel = CHAN_STDOUT   # unknown channels: keep the data
            if channel != run_channel and run:
                self._emit(run_channel, b"".join(run))
                run = []
            run_channel = channel
            run.append(payload)
        if run:
            self._emit(run_channel, b"".join(run))
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
        else:
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
        return subprocess.Popen(["/bin/sh", "-c", workload], start_new_session=True)
    r, w = os.pipe()
    try:
        proc = subprocess.Popen(["/bin/sh", "-c", f'read _ <&{r}; exec /bin/sh -c "$1"',
                                 "sh", workload], pass_fds=(r,), start_new_session=True)
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
    """End the workload and everything it started: it runs in its own
    process group (start_new_session), and a shell's background jobs
    would otherwise outlive the shell and load the machine."""
    if proc is None:
        return
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(proc.pid, sig)
        except (ProcessLookupError, PermissionError):
            break
        try:
            proc.wait(2)
        except subprocess.TimeoutExpired:
            continue
        try:   # the shell is gone: its children get the same signal
            os.killpg(proc.pid, sig)
        except (ProcessLookupError, PermissionError):
            break
        time.sleep(0.05)
    try:
        proc.wait(5)
    except subprocess.TimeoutExpired:
        pass


def run(ko: Path, workload: str | None = None, duration: float | None = None,
        output: BinaryIO | None = None, errout: BinaryIO | None = None,
        expect_sha256: str | None = None, params: str = "") -> int:
    """Load, start, relay, stop, unload. Returns the stapio-style status.
    params: module parameters for the load (stap -x's stp_target, -G's
    globals), "name=value" words separated by spaces."""
    sigs = _Signals()  # first: a signal from now on means "stop cleanly"
    out = output or sys.stdout.buffer
    err = errout or sys.stderr.buffer

    def say(msg: str) -> None:
        err.write(f"{msg}\n".encode())
        err.flush()

    try:
        modname = module_name_of(ko)
        data = read_verified(ko, expect_sha256)
    except (OSError, ValueError, struct.error, RunnerError) as e:
        sigs.restore()
        say(f"ERROR: {e}" if isinstance(e, RunnerError) else f"ERROR: {ko}: cannot read module: {e}")
        return 1
    sess = ModuleSession(modname, out, err)
    proc: subprocess.Popen | None = None
    loaded = False
    own = Ownership(modname)

    try:
        with own:
            reap_orphans(say)
            own.claim()
        load_module(ko, params, data=data)
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
        failed_state = False
        while True:
            sess.drain()
            st = sess.ctl()
            failed_state = failed_state or st.get("state") == "error"
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

        # Orderly stop: "stop" disarms the probes, runs the end probes and
        # emits the summary, all inside the write(). exit() leaves the module
        # in "stopping" with probes still armed: only "stop" disarms them.
        # The write happens in a thread while this one keeps draining, so a
        # ring filled by a flood (or a long end probe) never makes the end
        # probes' output drop.
        if sess.ctl().get("state") != "stopped":
            failure: list[OSError] = []

            def stop() -> None:
                try:
                    sess.command("stop")
                except OSError as e:
                    failure.append(e)

            stopper = threading.Thread(target=stop, daemon=True)
            stopper.start()
            while stopper.is_alive():
                if sess.drain() == 0:
                    stopper.join(POLL_INTERVAL)
            if failure:
                say(f"WARNING: stop failed: {failure[0].strerror}")
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
        if failed_state and not sess.saw_error:
            # A required probe that cannot be registered fails the session
            # with only a WARNING from the module (SystemTap's wording);
            # stap's run fails then, and so must ours, not exit 0 having
            # probed nothing.
            say("ERROR: probe registration failed; no probe of this session ran")
            sess.saw_error = True
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
            else:
                own.release()
        else:
            own.release()   # only removes a record that names us
        sigs.restore()
    return 1 if sess.saw_error else 0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python3 -m stapbuild.runner",
                                 description="Load a stapbuild module, relay its output, unload it.")
    ap.add_argument("--module", required=True, type=Path, help="the .ko to run")
    ap.add_argument("--workload", help="shell command to run while the probes are armed")
    ap.add_argument("--duration", type=float, help="stop after this many seconds")
    ap.add_argument("--output", type=Path, help="write the stdout channel here instead")
    ap.add_argument("--sha256", help="refuse to load the module unless its sha256 is this")
    args = ap.parse_args(argv)
    if not args.module.exists():
        print(f"ERROR: {args.module}: no such file", file=sys.stderr)
        return 1
    if args.output:
        with open(args.output, "wb") as f:
            return run(args.module, args.workload, args.duration, output=f,
                       expect_sha256=args.sha256)
    return run(args.module, args.workload, args.duration, expect_sha256=args.sha256)


if __name__ == "__main__":
    sys.exit(main())
