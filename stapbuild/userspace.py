"""The user-space runtime: run a script as an ordinary process.

SystemTap has ``--runtime=dyninst``; we have ``--runtime=user``. Passes 1-3
are the same as for a kernel module; pass 4 compiles the same C with the
host's gcc and ``-DSTP_USER``, which swaps the kernel headers for a small
shim (``runtime_c/user/``): one CPU, locks that never contend, a timer loop
instead of hrtimers, and stdout/stderr instead of the /proc transport.
begin, end, error and timer probes run; kernel probes are refused at start.

With virtual time (the default for :func:`run_script`) the clock jumps to
the next timer instead of sleeping, so ``timer.s(10)`` fires at once and a
whole timer-driven script runs in milliseconds, deterministically.

The binary is cached in the artifact store, keyed by the C text, the
runtime, the -D defines and the compiler, like a .ko.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Iterable, Optional

from stapbuild import passes, store
from stapbuild.store import Artifact, key_of

USER_SCHEMA = "stapbuild.user/1"
_CFLAGS = ["-std=gnu11", "-O1", "-g0", "-fwrapv", "-fno-strict-aliasing", "-DSTP_USER", "-Wall", "-Werror",
           "-Wno-unused", "-Wno-unused-function", "-Wno-unused-parameter",
           "-Wno-format-truncation", "-Wno-stringop-truncation",
           # the script's own expression shapes: see stapbuild.kbuild
           "-Wno-tautological-compare", "-Wno-bool-compare", "-Wno-bool-operation",
           "-Wno-int-in-bool-context"]

# A script with timers and no exit() would run forever; in virtual time the
# clock is free, so cap it (virtual seconds) unless the caller says otherwise.
DEFAULT_VIRTUAL_SECONDS = 3600.0


class UserBuildError(Exception):
    """gcc failed on the generated C (a translator or runtime bug)."""

    def __init__(self, output: str):
        self.output = output
        super().__init__(output)

    def __str__(self) -> str:
        lines = [l for l in self.output.splitlines() if "error" in l][:12]
        return "user-space build failed:\n  " + "\n  ".join(lines or self.output.splitlines()[-12:])


@dataclass
class UserResult:
    rc: int
    stdout: str
    stderr: str


@lru_cache(maxsize=None)
def _cc() -> tuple[str, str]:
    cc = shutil.which("gcc") or shutil.which("cc")
    if cc is None:
        raise UserBuildError("no C compiler (gcc) on PATH")
    version = subprocess.run([cc, "--version"], capture_output=True, text=True).stdout
    return cc, version.splitlines()[0] if version else cc


def compile_user(c_art: Artifact, defines: Iterable[str] = ()) -> Artifact:
    """The executable for a translated script (cached)."""
    defines = list(defines)
    cc, cc_version = _cc()
    key = key_of({"schema": USER_SCHEMA, "c": c_art.key, "runtime": passes.runtime_id(),
                  "defines": defines, "cc": cc_version, "cflags": _CFLAGS})
    hit = store.lookup("user", key, "bin")
    if hit is not None:
        return hit
    out = store.artifact_path("user", key, "bin")
    out.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{out.name}.", dir=out.parent)
    os.close(fd)
    flags = list(_CFLAGS) + [d if d.startswith("-") else f"-D{d}" for d in defines]
    cmd = [cc, *flags, f"-I{passes.runtime_dir()}", f"-I{passes.runtime_dir() / 'user' / 'include'}",
           "-x", "c", str(c_art.path), "-o", tmp]
    res = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, "LC_ALL": "C"})
    if res.returncode != 0:
        os.unlink(tmp)
        raise UserBuildError(res.stdout + res.stderr)
    os.chmod(tmp, 0o755)
    os.replace(tmp, out)
    return Artifact("user", key, out)


def build_script(text: str, *, name: str = "<input>", defines: Iterable[str] = (),
                 guru: bool = False, args: Iterable[str] = ()) -> Path:
    """Passes 1-3, then gcc: the path of the executable."""
    parsed = passes.parse_pass(None, text, None, name=name, guru=guru, args=list(args))
    elab = passes.elaborate_pass(parsed.artifact, None)
    module = passes.module_name_for("user", elab.artifact.key)
    c = passes.translate_pass(elab.artifact, module)
    return compile_user(c.artifact, defines).path


def run_binary(exe: Path, *, duration: Optional[float] = None, virtual_time: bool = True,
               timeout: float = 60.0) -> UserResult:
    argv = [str(exe)]
    if virtual_time:
        argv.append("--virtual-time")
        if duration is None:
            duration = DEFAULT_VIRTUAL_SECONDS
    if duration is not None:
        argv += ["-T", repr(float(duration))]
    try:
        res = subprocess.run(argv, capture_output=True, timeout=timeout, stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired as e:
        out = (e.stdout or b"").decode("utf-8", "replace")
        err = (e.stderr or b"").decode("utf-8", "replace")
        return UserResult(124, out, err + f"stapbuild: timed out after {timeout:.0f}s\n")
    return UserResult(res.returncode, res.stdout.decode("utf-8", "replace"),
                      res.stderr.decode("utf-8", "replace"))


def run_script(text: str, *, name: str = "<input>", defines: Iterable[str] = (),
               duration: Optional[float] = None, virtual_time: bool = True,
               guru: bool = False, args: Iterable[str] = (),
               timeout: float = 60.0) -> UserResult:
    """Translate, build and run a script in user space: (rc, stdout, stderr).

    Compile-time errors (parse, semantic) raise StapError/StapErrors like
    the other passes do; a gcc failure raises UserBuildError.
    """
    exe = build_script(text, name=name, defines=defines, guru=guru, args=args)
    return run_binary(exe, duration=duration, virtual_time=virtual_time, timeout=timeout)


def run_foreground(exe: Path, *, duration: Optional[float] = None,
                   virtual_time: bool = False, output: Optional[Path] = None) -> int:
    """Run the program with our stdout/stderr (or -o FILE): the user's
    session, like staprun. Ctrl-C stops it cleanly (end probes run)."""
    import signal
    argv = [str(exe)]
    if virtual_time:
        argv.append("--virtual-time")
    if duration is not None:
        argv += ["-T", repr(float(duration))]
    out = open(output, "wb") if output else None
    try:
        proc = subprocess.Popen(argv, stdout=out, stdin=subprocess.DEVNULL)
        while True:
            try:
                return proc.wait()
            except KeyboardInterrupt:
                proc.send_signal(signal.SIGINT)
    finally:
        if out:
            out.close()


def main(argv: Optional[list[str]] = None) -> int:
    """``python -m stapbuild.userspace``: stap's options for a user-space run
    (what ``stapbuild --runtime=user`` does)."""
    import argparse
    import sys

    from codegen.errors import StapError, StapErrors, register_source

    ap = argparse.ArgumentParser(prog="stapbuild --runtime=user",
                                 description="Run a SystemTap script as a process "
                                             "(begin, end, error and timer probes).")
    ap.add_argument("-e", dest="script", metavar="SCRIPT")
    ap.add_argument("-D", dest="defines", action="append", default=[], metavar="NAME=VALUE")
    ap.add_argument("-T", dest="timeout", type=float, metavar="SECONDS")
    ap.add_argument("-g", dest="guru", action="store_true")
    ap.add_argument("-o", dest="output", metavar="FILE")
    ap.add_argument("-p", type=int, dest="last_pass", default=5, metavar="NUM")
    ap.add_argument("--virtual-time", action="store_true",
                    help="timers fire back to back (the clock jumps to the next one)")
    ap.add_argument("args", nargs="*", metavar="FILE [ARGS]")
    opts = ap.parse_args(argv)
    args = list(opts.args)
    if opts.script is not None:
        text, name = opts.script, "<input>"
    elif args:
        path = Path(args.pop(0))
        text, name = path.read_text(), passes.rel(path)
    else:
        ap.error("a script must be specified (FILE or -e SCRIPT)")
    register_source(name, text)
    try:
        exe = build_script(text, name=name, defines=opts.defines, guru=opts.guru, args=args)
    except (StapError, StapErrors) as e:
        sys.stderr.write(e.render())
        sys.stderr.write("Pass 2: analysis failed.  [man error::pass2]\n")
        return 1
    except UserBuildError as e:
        sys.stderr.write(f"{e}\nPass 4: compilation failed.  [man error::pass4]\n")
        return 1
    if opts.last_pass < 5:
        print(exe)
        return 0
    rc = run_foreground(exe, duration=opts.timeout, virtual_time=opts.virtual_time,
                        output=Path(opts.output) if opts.output else None)
    if rc != 0:
        sys.stderr.write("Pass 5: run failed.  [man error::pass5]\n")
    return rc


if __name__ == "__main__":
    raise SystemExit(main())
