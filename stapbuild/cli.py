"""The ``stapbuild`` command: stap's command line over the same passes and cache.

    stapbuild [-v] [-p 1-5] [-r KREL] [-m NAME] [-o FILE] [-c CMD | -x PID]
              [-T SECS] [-g] [-u] [-w] [-W] [-k] [-t] [-s MB] [-E SCRIPT]
              [-I DIR] [-R DIR] [-D NAME=VAL] [-B NAME=VAL] [-G VAR=VAL]
              [--json] [--guest] (-e SCRIPT | FILE) [ARGS...]

It stops after pass N like ``stap -pN`` and prints what stap prints: the
parse tree (1), the resolved script (2), the C (3), the .ko path (4);
pass 5 runs the module here or in a QEMU guest of the target kernel.
"""
from __future__ import annotations

import argparse
import os
import re
import sys
from pathlib import Path
from typing import NoReturn, Optional, Sequence

from codegen.errors import StapError, StapErrors, register_source
from codegen.printer import print_file
from stapbuild import jsonout, kernels, passes, rcfile
from stapbuild.config import load_settings

PASS_FAILED = {
    1: "Pass 1: parse failed.  [man error::pass1]",
    2: "Pass 2: analysis failed.  [man error::pass2]",
    3: "Pass 3: translation failed.  [man error::pass3]",
    4: "Pass 4: compilation failed.  [man error::pass4]",
    5: "Pass 5: run failed.  [man error::pass5]",
}


class Usage(Exception):
    pass


class StapArgumentParser(argparse.ArgumentParser):
    """argparse that reports a bad command line as stap does: a message and
    exit status 1 (argparse's own default is status 2 and its usage text)."""

    def error(self, message: str) -> "NoReturn":  # type: ignore[override]
        raise Usage(f"{message}\nTry '{self.prog} --help' for more information.")


def build_parser() -> argparse.ArgumentParser:
    ap = StapArgumentParser(
        prog="stapbuild", add_help=True,
        description="Build and run SystemTap scripts as kernel modules, cached per kernel.",
        epilog="Options are read first from $SYSTEMTAP_DIR/rc (default ~/.systemtap/rc). "
               "See README.md for the table of stap options and their support.")
    ap.add_argument("-V", "--version", action="store_true", help="print the version and exit")
    ap.add_argument("-v", action="count", default=0, help="more verbose; per-pass lines")
    ap.add_argument("--vp", dest="verbose_passes", metavar="ABCDE",
                    help="verbosity per pass: one digit per pass, 1 to 5 digits")
    ap.add_argument("-p", dest="last_pass", default="5", metavar="NUM",
                    help="stop after pass NUM (1-5)")
    ap.add_argument("-r", dest="release", metavar="KREL",
                    help="kernel release or series (6.1, 6.12, 6.1.0-56-amd64)")
    ap.add_argument("-m", dest="module", metavar="NAME", help="module name")
    ap.add_argument("-o", dest="output", metavar="FILE",
                    help="send script output to FILE (strftime patterns expanded at the start)")
    ap.add_argument("-c", dest="command", metavar="CMD",
                    help="run CMD while the probes are armed, target() = its pid; stop when it exits")
    ap.add_argument("-x", dest="target_pid", metavar="PID", help="set target() to PID")
    ap.add_argument("-T", dest="timeout", type=float, metavar="SECONDS",
                    help="stop after SECONDS")
    ap.add_argument("-g", dest="guru", action="store_true", help="guru mode (embedded C)")
    ap.add_argument("-e", dest="script", metavar="SCRIPT", help="run the script given inline")
    ap.add_argument("-E", dest="extra_scripts", action="append", default=[], metavar="SCRIPT",
                    help="extra script text, parsed beside the main script (repeatable)")
    ap.add_argument("-I", dest="include", action="append", default=[], metavar="DIR",
                    help="also search DIR for tapsets (after the default library)")
    ap.add_argument("-R", dest="runtime_dir", metavar="DIR",
                    help="runtime C sources from DIR instead of runtime_c/")
    ap.add_argument("--btf", action="store_true",
                    help="resolve kernel facts from the image's BTF, without the -dbg "
                         "package (entry parameters, $return, struct members, @cast)")
    ap.add_argument("-u", dest="unoptimized", action="store_true",
                    help="unoptimized: keep unused functions and variables, no elision warnings")
    ap.add_argument("-w", dest="no_warnings", action="store_true", help="suppress warnings")
    ap.add_argument("--compatible", metavar="VERSION",
                    help="accept the script language of that SystemTap release "
                         "(%%( systemtap_v %%) tests and the grammar's version gates)")
    ap.add_argument("-W", dest="warnings_are_errors", action="store_true",
                    help="treat warnings as errors")
    ap.add_argument("-k", dest="keep", action="store_true",
                    help="keep the build directory (in $TMPDIR) and say where; bypasses the cache")
    ap.add_argument("--tmpdir", metavar="DIR", help="where -k's directory is made (default $TMPDIR)")
    ap.add_argument("--example", action="store_true",
                    help="FILE names a script of the catalogue (probes/NAME.stp)")
    ap.add_argument("-s", dest="buffer_mb", metavar="MB", help="output buffer size (1-4095 MB)")
    ap.add_argument("-t", dest="timing", action="store_true",
                    help="per-probe hit counts and cycles in the end report")
    ap.add_argument("-l", dest="list_points", metavar="PROBE",
                    help="list the probe points PROBE matches (wildcards allowed), then exit")
    ap.add_argument("-L", dest="list_vars", metavar="PROBE",
                    help="like -l, with the variables each probe point offers ($var:type)")
    ap.add_argument("--dump-probe-types", action="store_true",
                    help="list the probe point forms the translator resolves")
    ap.add_argument("--dump-functions", action="store_true",
                    help="list the tapset library's public functions")
    ap.add_argument("--dump-probe-aliases", action="store_true",
                    help="list the tapset library's probe aliases")
    ap.add_argument("--guest", action="store_true",
                    help="always run pass 5 in a QEMU guest, even if the host could load it")
    ap.add_argument("-D", dest="defines", action="append", default=[], metavar="NAME=VALUE",
                    help="define a C macro for the module (MAXACTION=..., MAXSTRINGLEN=...)")
    ap.add_argument("-B", dest="make_vars", action="append", default=[], metavar="NAME=VALUE",
                    help="pass NAME=VALUE to kbuild's make")
    ap.add_argument("-G", dest="set_globals", action="append", default=[], metavar="VAR=VALUE",
                    help="set a scalar global's initial value when the module is loaded")
    ap.add_argument("--disable-cache", action="store_true",
                    help="neither read nor write the artifact store (a private store for this run)")
    ap.add_argument("--poison-cache", action="store_true",
                    help="rebuild every pass (never read the store), still write the results")
    ap.add_argument("--clean-cache", action="store_true",
                    help="shrink the artifact store to its size limit, then exit")
    ap.add_argument("--json", action="store_true",
                    help="output, diagnostics and pass timings as JSON lines on stdout")
    ap.add_argument("--runtime", choices=("kernel", "user"), default="kernel",
                    help="user: run begin/end/timer probes as a process, no module "
                         "(like stap --runtime=dyninst); see stapbuild.userspace")
    ap.add_argument("args", nargs="*", metavar="FILE [ARGS]")
    return ap


def default_release() -> str:
    """$SYSTEMTAP_RELEASE; else the running kernel when we can build for it;
    else the project default."""
    env = os.environ.get("SYSTEMTAP_RELEASE")
    if env:
        return env
    running = os.uname().release
    if (Path("/lib/modules") / running / "build" / "Makefile").exists():
        return running
    return load_settings().default_kernel


class Reporter:
    """Where the command's words go: stap's text on stdout/stderr, or, with
    --json, JSON lines on stdout (schema in stapbuild.jsonout)."""

    def __init__(self, json_mode: bool = False):
        self.json = json_mode
        self.events = jsonout.JsonLines(sys.stdout) if json_mode else None

    def say(self, text: str, pass_no: Optional[int] = None) -> None:
        """Diagnostics (what stap prints on stderr)."""
        if self.events is not None:
            self.events.text(text, pass_no)
            return
        sys.stderr.write(text if text.endswith("\n") else text + "\n")
        sys.stderr.flush()

    def error(self, text: str) -> None:
        """A command-line error: stap's message, an "error" object in JSON."""
        if self.events is not None:
            self.events.emit("error", text=text)
            return
        self.say(text)

    def out(self, text: str) -> None:
        """What a pass prints on stdout (-p1..-p4, listings, dumps)."""
        if self.events is not None:
            for line in text.splitlines():
                self.events.emit("output", text=line)
            return
        sys.stdout.write(text)
        sys.stdout.flush()

    def pass_done(self, n: int, t: "passes.PassTimer", ok: bool, cached: Optional[bool] = None) -> None:
        if self.events is None:
            return
        usr, sys_, real = (int(x) for x in re.findall(r"(\d+)", t.text())[:3])
        extra = {"cached": cached} if cached is not None else {}
        self.events.emit("pass", **{"pass": n}, name=jsonout.PASS_NAMES[n], ok=ok,
                         usr_ms=usr, sys_ms=sys_, real_ms=real, **extra)

    def finish(self, rc: int) -> int:
        if self.events is not None:
            self.events.emit("exit", status=rc)
        return rc


def say(text: str) -> None:
    sys.stderr.write(text if text.endswith("\n") else text + "\n")
    sys.stderr.flush()


def _before_dashdash(argv: list[str]) -> list[str]:
    return argv[:argv.index("--")] if "--" in argv else argv


def main(argv: Optional[Sequence[str]] = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    # Subcommands beyond stap's command line: the artifact store, and
    # running a prebuilt bundle on a fleet host.
    if argv[:1] == ["cache"]:
        from stapbuild import cache
        return cache.main(argv[1:])
    if argv[:1] == ["run"]:
        from stapbuild import bundle
        return bundle.main(argv)
    rep = Reporter("--json" in _before_dashdash(argv))
    try:
        # stap puts the rc file's options before the command line's.
        argv = rcfile.options() + argv
    except rcfile.RcError as e:
        rep.say(f"WARNING: ignoring {e}")
    rep = Reporter("--json" in _before_dashdash(argv))
    ap = build_parser()
    try:
        opts = ap.parse_args(argv)
        return rep.finish(run(opts, rep))
    except Usage as e:
        rep.error(f"stapbuild: {e}" if not str(e)[:1].isupper() else str(e))
        return rep.finish(1)
    except SystemExit as e:       # --help
        return int(e.code or 0)
    except KeyboardInterrupt:
        # Pass 5 takes ^C itself (an orderly stop, success as in stap);
        # one before it abandons the build.
        return rep.finish(1)


def check_options(opts: argparse.Namespace) -> None:
    """stap's checks of the command line (session.cxx), same messages."""
    if not re.fullmatch(r"[1-5]", str(opts.last_pass)):
        raise Usage("Invalid pass number (should be 1-5).")
    opts.last_pass = int(opts.last_pass)
    if opts.buffer_mb is not None:
        if not re.fullmatch(r"\d+", opts.buffer_mb) or not 1 <= int(opts.buffer_mb) <= 4095:
            raise Usage("Invalid buffer size (should be 1-4095).")
    if opts.target_pid is not None:
        if not re.fullmatch(r"\d+", opts.target_pid):
            raise Usage("Invalid target process ID number.")
        opts.target_pid = int(opts.target_pid)
    if opts.command == "":
        raise Usage("Empty CMD string invalid.")
    if opts.command is not None and opts.target_pid:
        raise Usage("You can't specify -c and -x together.")
    for d in opts.defines:
        _safety("-D parameter", d, r"^[a-z_][a-z_0-9]*(=-?[a-z_0-9]+)?$")
    for g in opts.set_globals:
        _safety("-G parameter", g, r"^[a-z_][a-z0-9_]*=[a-z0-9_.-]+$")
    if opts.module is not None:
        if opts.module.endswith(".ko"):
            opts.module = opts.module[:-3]
        if not opts.module:
            raise Usage("Module name cannot be empty.")
        _safety("-m parameter", opts.module, r"^[a-z0-9_]+$")
    lists = [x for x in (opts.list_points, opts.list_vars) if x] + \
        [x for x in (opts.dump_probe_types, opts.dump_functions, opts.dump_probe_aliases) if x]
    if len(lists) > 1:
        raise Usage("ERROR: only one of the -l/-L/--dump-* switches may be specified")
    if opts.script is not None and (opts.list_points or opts.list_vars):
        raise Usage("Only one script can be given on the command line.")
    if opts.keep:
        tmp = os.environ.get("TMPDIR")
        if tmp:
            _safety("TMPDIR", tmp, r"^[-/._0-9a-z]+$")
    if opts.compatible is not None and not re.fullmatch(r"\d+(\.\d+)*", opts.compatible):
        raise Usage(f"Invalid --compatible version '{opts.compatible}'.")
    if opts.verbose_passes is not None:
        if not re.fullmatch(r"\d{1,5}", opts.verbose_passes):
            raise Usage("Invalid --vp argument: it takes 1 to 5 digits.")
    opts.pass_verbosity = [opts.v + int(d) for d in (opts.verbose_passes or "").ljust(5, "0")]


def _safety(what: str, value: str, pattern: str) -> None:
    if not re.match(pattern, value, re.I):
        raise Usage(f"ERROR: Safety pattern mismatch for {what} ('{value}' vs. '{pattern}') rc=1")


def apply_environment(opts: argparse.Namespace) -> None:
    """The SystemTap environment variables, mapped onto stapbuild's own
    (the pass functions read those): SYSTEMTAP_TAPSET replaces the tapset
    library, SYSTEMTAP_RUNTIME (or -R, which wins) the runtime sources."""
    tapset = os.environ.get("SYSTEMTAP_TAPSET")
    if tapset:
        os.environ["STAPBUILD_TAPSETS"] = tapset
    runtime = opts.runtime_dir or os.environ.get("SYSTEMTAP_RUNTIME")
    if runtime:
        if not Path(runtime, "stp_runtime.h").is_file():
            raise Usage(f"ERROR: runtime directory {runtime} has no stp_runtime.h")
        os.environ["STAPBUILD_RUNTIME"] = str(Path(runtime).resolve())


def clean_cache(rep: Reporter, verbose: int) -> int:
    """--clean-cache: shrink the store to its limit, least recently used
    first. The limit is stap's cache_mb_limit file, kept in the store's root
    (default 256 MB, as stap's)."""
    from stapbuild import cache, store
    limit_mb = 256
    try:
        limit_mb = int((store.artifacts_root() / "cache_mb_limit").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        pass
    doc = cache.gc(limit_mb * 1024 * 1024)
    if verbose:
        rep.say(f"Cache cleaning: removed {doc['removed']} artifacts "
                f"({cache.human(doc['freed'])}), {cache.human(doc['remaining'])} remain "
                f"(limit {limit_mb} MB).")
    return 0


class PrivateStore:
    """--disable-cache / --poison-cache: the passes run against an empty
    store of their own (so nothing is read); with poison, what they wrote is
    copied over the real store's entries afterwards (so it is still written)."""

    def __init__(self, write_back: bool):
        import tempfile
        from stapbuild import store
        self.write_back = write_back
        self.real = store.artifacts_root()
        self.dir = Path(tempfile.mkdtemp(prefix="stapbuild-nocache-"))
        self._old = os.environ.get("STAPBUILD_ARTIFACTS")
        os.environ["STAPBUILD_ARTIFACTS"] = str(self.dir)

    def commit(self) -> None:
        """Copy the fresh artifacts into the real store (atomic writes)."""
        from stapbuild.store import atomic_write
        if not self.write_back:
            return
        for p in sorted((self.dir / "store").rglob("*")):
            if p.is_file() and not p.name.startswith("."):
                atomic_write(self.real / p.relative_to(self.dir), p.read_bytes())

    def close(self) -> None:
        import shutil
        if self._old is None:
            os.environ.pop("STAPBUILD_ARTIFACTS", None)
        else:
            os.environ["STAPBUILD_ARTIFACTS"] = self._old
        shutil.rmtree(self.dir, ignore_errors=True)


def run(opts: argparse.Namespace, rep: Optional[Reporter] = None) -> int:
    rep = rep or Reporter(False)
    if opts.version:
        from stapbuild.version import stapbuild_version
        rep.out(f"stapbuild {stapbuild_version()} (SystemTap's command line, "
                "rebuilt as a build pipeline)\n")
        return 0
    check_options(opts)
    apply_environment(opts)
    if opts.clean_cache:
        return clean_cache(rep, opts.v)
    tapset_dirs = [Path(d) for d in opts.include if Path(d).is_dir()]
    if opts.dump_probe_types or opts.dump_functions or opts.dump_probe_aliases:
        from stapbuild import dumps
        lines = (dumps.probe_types() if opts.dump_probe_types else
                 dumps.functions(tapset_dirs) if opts.dump_functions else
                 dumps.probe_aliases(tapset_dirs))
        rep.out("".join(l + "\n" for l in lines))
        return 0
    if opts.runtime == "user":
        from stapbuild import userspace
        argv = [*(["-e", opts.script] if opts.script is not None else []),
                *(["-T", str(opts.timeout)] if opts.timeout is not None else []),
                *(["-o", opts.output] if opts.output else []),
                *(["-g"] if opts.guru else []), "-p", str(opts.last_pass),
                *(f"-D{d}" for d in opts.defines), *opts.args]
        return userspace.main(argv)
    if opts.list_points or opts.list_vars:
        from stapbuild.listing import run_listing
        try:
            release = kernels.resolve_release(opts.release or default_release())
            return run_listing(opts.list_vars or opts.list_points, release,
                               with_vars=bool(opts.list_vars), btf=opts.btf)
        except kernels.KernelNotFound as e:
            rep.say(f"ERROR: {e}")
            return 1
    private = PrivateStore(write_back=opts.poison_cache) \
        if (opts.disable_cache or opts.poison_cache) else None
    try:
        return _passes(opts, rep, tapset_dirs, private)
    finally:
        if private is not None:
            private.close()


def _passes(opts: argparse.Namespace, rep: Reporter, tapset_dirs: list[Path],
            private: Optional[PrivateStore]) -> int:
    args = list(opts.args)
    if opts.script is not None:
        text, path, name = opts.script, None, "<input>"
        register_source(name, text)
        probe = "stap"
    else:
        if not args:
            raise Usage("A script must be specified (FILE or -e SCRIPT).")
        first = args.pop(0)
        if first == "-":
            # stap - : the script on stdin, named <input> as stap names it.
            text, path, name, probe = sys.stdin.read(), None, "<input>", "stap"
            register_source(name, text)
        else:
            if opts.example:
                from stapbuild.config import probe_script
                first = str(probe_script(first.removesuffix(".stp"))[1])
            path = Path(first)
            try:
                text = path.read_text()
            except OSError as e:
                raise Usage(f"cannot read script {path}: {e.strerror}")
            # Named as the doit tasks name it (relative to the checkout when
            # it is inside): the name is in the parse tree's locations, hence
            # in every key downstream, and both front ends must share the cache.
            name = passes.rel(path)
            register_source(name, text)
            probe = path.stem
    # -E scripts are named as stap names them: <input1>, <input2> ...
    extra = [(f"<input{i}>", t) for i, t in enumerate(opts.extra_scripts, 1)]
    for n, t in extra:
        register_source(n, t)
    # -v raises every pass's verbosity, --vp each one's; --json has its own
    # pass objects instead of the text lines.
    verbose = [False] + [v > 0 and not rep.json for v in opts.pass_verbosity]
    defines = list(opts.defines)
    if opts.buffer_mb is not None:
        # One output ring per module here (not one per CPU as in stap).
        defines.append(f"STP_BUFSIZE={int(opts.buffer_mb) * 1024 * 1024}")
    if opts.timing:
        defines.append("STP_TIMING=1")

    try:
        release = kernels.resolve_release(opts.release or default_release())
    except kernels.KernelNotFound as e:
        rep.say(f"ERROR: {e}")
        return 1

    stage = 0
    t = passes.PassTimer()
    try:
        # The kernel's headers and debug info are needed from pass 1 on
        # (%( kernel_v %) conditions, CONFIG_ tests, $target resolution).
        kctx = passes.kernel_context_btf(release) if opts.btf else passes.kernel_context(release)
        stage = 1
        with passes.PassTimer() as t:
            parsed = passes.parse_pass(path, text, kctx, name=name, guru=opts.guru, args=args,
                                       extra=extra, tapset_dirs=tapset_dirs,
                                       compatible=opts.compatible)
        rep.pass_done(1, t, True, parsed.cached)
        if verbose[1]:
            n = parsed.library_files
            rep.say(f"Pass 1: parsed user script and {n} library script{'s' if n != 1 else ''} "
                    f"using {passes.memory_text()}, in {t.text()}.")
        if opts.last_pass == 1:
            for f in passes.load_parse_tree(parsed.artifact)[:parsed.user_files]:
                rep.out("# parse tree dump\n" + print_file(f))
            return _done(private)

        stage = 2
        with passes.PassTimer() as t:
            elab = passes.elaborate_pass(parsed.artifact, kctx, unoptimized=opts.unoptimized)
        if not opts.no_warnings:
            for w in elab.warnings:
                rep.say(w, 2)
            if opts.warnings_are_errors and elab.warnings:
                # -W: a warning fails the pass it came from.
                rep.pass_done(2, t, False, elab.cached)
                rep.say(PASS_FAILED[2], 2)
                return 1
        ir = elab.artifact.read_json()
        global_params = _check_globals(ir, opts.set_globals)
        rep.pass_done(2, t, True, elab.cached)
        if verbose[2]:
            c = elab.counts
            rep.say(f"Pass 2: analyzed script: {_n(c['probes'], 'probe')}, "
                    f"{_n(c['functions'], 'function')}, {_n(c['embeds'], 'embed')}, "
                    f"{_n(c['globals'], 'global')} using {passes.memory_text()}, in {t.text()}.")
        if opts.last_pass == 2:
            rep.out(resolved_script(ir))
            return _done(private)

        stage = 3
        module = opts.module or passes.module_name_for(probe, elab.artifact.key)
        with passes.PassTimer() as t:
            tr = passes.translate_pass(elab.artifact, module)
        rep.pass_done(3, t, True, tr.cached)
        if verbose[3]:
            rep.say(f"Pass 3: translated to C into \"{tr.artifact.path}\" using "
                    f"{passes.memory_text()}, in {t.text()}.")
        keep_dir: Optional[Path] = None
        if opts.keep:
            import tempfile
            keep_dir = Path(tempfile.mkdtemp(prefix="stap", dir=opts.tmpdir))
        if opts.last_pass == 3:
            if keep_dir is not None:
                (keep_dir / f"{module}_src.c").write_bytes(tr.artifact.path.read_bytes())
                rep.say(f"Keeping temporary directory \"{keep_dir}\"")
            rep.out(tr.artifact.path.read_text())
            return _done(private)

        stage = 4
        with passes.PassTimer() as t:
            comp = passes.compile_pass(tr.artifact, module, kctx, defines=defines,
                                       make_vars=opts.make_vars, keep_dir=keep_dir)
        rep.pass_done(4, t, True, comp.cached)
        ko = comp.artifact.path
        if verbose[4]:
            rep.say(f"Pass 4: compiled C into \"{ko}\" in {t.text()}.")
        if keep_dir is not None:
            rep.say(f"Keeping temporary directory \"{keep_dir}\"")
        if private is not None:
            private.commit()
        if opts.last_pass == 4:
            rep.out(f"{ko}\n")
            return 0

        stage = 5
        from stapbuild.launch import run_module
        from stapbuild.run5 import RunOptions
        if verbose[5]:
            rep.say("Pass 5: starting run.")
        run_opts = RunOptions(workload=opts.command, duration=opts.timeout, output=opts.output,
                              target_pid=opts.target_pid, globals=global_params,
                              suppress_warnings=opts.no_warnings, json=rep.json)
        with passes.PassTimer() as t:
            rc = run_module(ko, release, force_guest=opts.guest, opts=run_opts)
        rep.pass_done(5, t, rc == 0)
        if verbose[5]:
            rep.say(f"Pass 5: run completed in {t.text()}.")
        if rc != 0:
            rep.say(PASS_FAILED[5], 5)
        return rc
    except (StapError, StapErrors) as e:
        if stage >= 1:
            rep.pass_done(max(stage, 1), t, False)
        rep.say(e.render(), max(stage, 1))
        rep.say(PASS_FAILED[max(stage, 1)], max(stage, 1))
        return 1
    except (kernels.ProvisionError, kernels.KernelNotFound) as e:
        rep.say(f"ERROR: {e}", stage or None)
        return 1
    except Exception as e:  # noqa: BLE001 - a user sees a message, not a traceback
        from stapbuild.kbuild import BuildError
        if isinstance(e, BuildError):
            rep.pass_done(4, t, False)
            rep.say(str(e), 4)
            rep.say(PASS_FAILED[4], 4)
            return 1
        if os.environ.get("STAPBUILD_DEBUG"):
            raise
        rep.say(f"ERROR: internal error in pass {stage}: {type(e).__name__}: {e} "
                "(set STAPBUILD_DEBUG=1 for a traceback)", stage or None)
        rep.say(PASS_FAILED.get(stage, PASS_FAILED[1]), stage or None)
        return 1


def _done(private: Optional[PrivateStore]) -> int:
    if private is not None:
        private.commit()
    return 0


def _check_globals(ir: dict, settings: list[str]) -> list[str]:
    """-G NAME=VALUE against the resolved script: NAME must be a scalar
    global the module can take as a parameter, VALUE must fit its type."""
    from codegen.translate import global_parameters
    params = {g["name"]: g for g in global_parameters(ir)}
    out = []
    for s in settings:
        name, _, value = s.partition("=")
        g = params.get(name)
        if g is None:
            raise StapError("semantic", f"-G {name}: no scalar global '{name}' in the script "
                            "(arrays, statistics and unused globals cannot be set)")
        if g["type"] == "long" and not re.fullmatch(r"-?(0x[0-9a-f]+|\d+)", value, re.I):
            raise StapError("semantic", f"-G {name}: '{value}' is not a number, and "
                            f"'{name}' is a long")
        out.append(s)
    return out


def _n(count: int, word: str) -> str:
    return f"{count} {word}{'s' if count != 1 else ''}"


def resolved_script(ir: dict) -> str:
    """What ``stap -p2`` prints: globals, functions, probes after elaboration."""
    out = ["# globals"]
    for g in ir["globals"]:
        keys = f" [{', '.join(k or 'unknown' for k in g['keys'])}]" if g["keys"] else ""
        out.append(f"{g['name']}:{g['type'] or 'unknown'}{keys}")
    out.append("# functions")
    for f in ir["functions"]:
        params = ", ".join(f"{p['name']}:{p['type'] or 'unknown'}" for p in f["params"])
        out.append(f"{f['name']}:{f['return_type'] or 'unknown'} ({params})")
        if f["locals"]:
            out.append("  # locals")
            out.extend(f"  {lv['name']}:{lv['type'] or 'unknown'}" for lv in f["locals"])
    out.append("# probes")
    for p in ir["probes"]:
        out.append(f"{p['pp']} /* <- {p['origin']} */")
        if p["locals"]:
            out.append("  # locals")
            out.extend(f"  {lv['name']}:{lv['type'] or 'unknown'}" for lv in p["locals"])
    return "\n".join(out) + "\n"


if __name__ == "__main__":
    sys.exit(main())
