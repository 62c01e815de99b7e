"""The ``stapbuild`` command: stap's command line over the same passes and cache.

    stapbuild [-v] [-p 1-5] [-r KREL] [-m NAME] [-o FILE] [-c CMD] [-T SECS]
              [-g] (-e SCRIPT | FILE) [ARGS...]

It stops after pass N like ``stap -pN`` and prints what stap prints: the
parse tree (1), the resolved script (2), the C (3), the .ko path (4);
pass 5 runs the module here or in a QEMU guest of the target kernel.
"""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Optional, Sequence

from codegen.errors import StapError, StapErrors, register_source
from codegen.printer import print_file
from stapbuild import kernels, passes
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


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(
        prog="stapbuild", add_help=True,
        description="Build and run SystemTap scripts as kernel modules, cached per kernel.")
    ap.add_argument("-v", action="count", default=0, help="more verbose; per-pass lines")
    ap.add_argument("-p", type=int, dest="last_pass", default=5, metavar="NUM",
                    help="stop after pass NUM (1-5)")
    ap.add_argument("-r", dest="release", metavar="KREL",
                    help="kernel release or series (6.1, 6.12, 6.1.0-56-amd64)")
    ap.add_argument("-m", dest="module", metavar="NAME", help="module name")
    ap.add_argument("-o", dest="output", metavar="FILE", help="send script output to FILE")
    ap.add_argument("-c", dest="command", metavar="CMD",
                    help="run CMD while the probes are armed; stop when it exits")
    ap.add_argument("-T", dest="timeout", type=float, metavar="SECONDS",
                    help="stop after SECONDS")
    ap.add_argument("-g", dest="guru", action="store_true", help="guru mode (embedded C)")
    ap.add_argument("-e", dest="script", metavar="SCRIPT", help="run the script given inline")
    ap.add_argument("--btf", action="store_true",
                    help="resolve kernel facts from the image's BTF, without the -dbg "
                         "package (entry parameters, $return, struct members, @cast)")
    ap.add_argument("-u", dest="unoptimized", action="store_true",
                    help="unoptimized: keep unused functions and variables, no elision warnings")
    ap.add_argument("-l", dest="list_points", metavar="PROBE",
                    help="list the probe points PROBE matches (wildcards allowed), then exit")
    ap.add_argument("-L", dest="list_vars", metavar="PROBE",
                    help="like -l, with the variables each probe point offers ($var:type)")
    ap.add_argument("--guest", action="store_true",
                    help="always run pass 5 in a QEMU guest, even if the host could load it")
    ap.add_argument("args", nargs="*", metavar="FILE [ARGS]")
    return ap


def default_release() -> str:
    """The running kernel when we can build for it, else the project default."""
    running = os.uname().release
    if (Path("/lib/modules") / running / "build" / "Makefile").exists():
        return running
    return load_settings().default_kernel


def say(text: str) -> None:
    sys.stderr.write(text if text.endswith("\n") else text + "\n")
    sys.stderr.flush()


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
    ap = build_parser()
    opts = ap.parse_args(argv)
    try:
        return run(opts)
    except Usage as e:
        say(f"stapbuild: {e}")
        return 1
    except KeyboardInterrupt:
        return 130


def run(opts: argparse.Namespace) -> int:
    if not 1 <= opts.last_pass <= 5:
        raise Usage("Invalid pass number (should be 1-5).")
    if opts.list_points or opts.list_vars:
        from stapbuild.listing import run_listing
        try:
            release = kernels.resolve_release(opts.release or default_release())
            return run_listing(opts.list_vars or opts.list_points, release,
                               with_vars=bool(opts.list_vars), btf=opts.btf)
        except kernels.KernelNotFound as e:
            say(f"ERROR: {e}")
            return 1
    args = list(opts.args)
    if opts.script is not None:
        text, path, name = opts.script, None, "<input>"
        register_source(name, text)
        probe = "stap"
    else:
        if not args:
            raise Usage("A script must be specified (FILE or -e SCRIPT).")
        path = Path(args.pop(0))
        try:
            text = path.read_text()
        except OSError as e:
            raise Usage(f"cannot read script {path}: {e.strerror}")
        # Named as the doit tasks name it (relative to the checkout when it is
        # inside): the name is in the parse tree's locations, hence in every
        # key downstream, and both front ends must share the cache.
        name = passes.rel(path)
        register_source(name, text)
        probe = path.stem
    verbose = opts.v

    try:
        release = kernels.resolve_release(opts.release or default_release())
    except kernels.KernelNotFound as e:
        say(f"ERROR: {e}")
        return 1

    stage = 0
    try:
        # The kernel's headers and debug info are needed from pass 1 on
        # (%( kernel_v %) conditions, CONFIG_ tests, $target resolution).
        kctx = passes.kernel_context_btf(release) if opts.btf else passes.kernel_context(release)
        stage = 1
        with passes.PassTimer() as t:
            parsed = passes.parse_pass(path, text, kctx, name=name, guru=opts.guru, args=args)
        if verbose:
            n = parsed.library_files
            say(f"Pass 1: parsed user script and {n} library script{'s' if n != 1 else ''} "
                f"using {passes.memory_text()}, in {t.text()}.")
        if opts.last_pass == 1:
            for f in passes.load_parse_tree(parsed.artifact)[:parsed.user_files]:
                sys.stdout.write("# parse tree dump\n" + print_file(f))
            return 0

        stage = 2
        with passes.PassTimer() as t:
            elab = passes.elaborate_pass(parsed.artifact, kctx, unoptimized=opts.unoptimized)
        for w in elab.warnings:
            sys.stderr.write(w)
        if verbose:
            c = elab.counts
            say(f"Pass 2: analyzed script: {_n(c['probes'], 'probe')}, "
                f"{_n(c['functions'], 'function')}, {_n(c['embeds'], 'embed')}, "
                f"{_n(c['globals'], 'global')} using {passes.memory_text()}, in {t.text()}.")
        if opts.last_pass == 2:
            sys.stdout.write(resolved_script(elab.artifact.read_json()))
            return 0

        stage = 3
        module = opts.module or passes.module_name_for(probe, elab.artifact.key)
        if module.endswith(".ko"):
            module = module[:-3]
        with passes.PassTimer() as t:
            tr = passes.translate_pass(elab.artifact, module)
        if verbose:
            say(f"Pass 3: translated to C into \"{tr.artifact.path}\" using "
                f"{passes.memory_text()}, in {t.text()}.")
        if opts.last_pass == 3:
            sys.stdout.write(tr.artifact.path.read_text())
            return 0

        stage = 4
        with passes.PassTimer() as t:
            comp = passes.compile_pass(tr.artifact, module, kctx)
        ko = comp.artifact.path
        if verbose:
            say(f"Pass 4: compiled C into \"{ko}\" in {t.text()}.")
        if opts.last_pass == 4:
            print(ko)
            return 0

        stage = 5
        from stapbuild.launch import run_module
        if verbose:
            say("Pass 5: starting run.")
        with passes.PassTimer() as t:
            rc = run_module(ko, release, workload=opts.command, duration=opts.timeout,
                            output=Path(opts.output) if opts.output else None,
                            force_guest=opts.guest)
        if verbose:
            say(f"Pass 5: run completed in {t.text()}.")
        if rc != 0:
            say(PASS_FAILED[5])
        return rc
    except (StapError, StapErrors) as e:
        sys.stderr.write(e.render())
        say(PASS_FAILED[max(stage, 1)])
        return 1
    except (kernels.ProvisionError, kernels.KernelNotFound) as e:
        say(f"ERROR: {e}")
        return 1
    except Exception as e:  # noqa: BLE001 - a user sees a message, not a traceback
        from stapbuild.kbuild import BuildError
        if isinstance(e, BuildError):
            say(str(e))
            say(PASS_FAILED[4])
            return 1
        if os.environ.get("STAPBUILD_DEBUG"):
            raise
        say(f"ERROR: internal error in pass {stage}: {type(e).__name__}: {e} "
            "(set STAPBUILD_DEBUG=1 for a traceback)")
        say(PASS_FAILED.get(stage, PASS_FAILED[1]))
        return 1


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
