"""doit task generators: one task per pass per (probe, kernel).

``dodo.py`` only re-exports these. Each task reads files and writes one
small *ref* (see stapbuild.store); doit's file_dep/target chain orders the
passes and its md5 checks give early cutoff. Actions are module-level
functions with plain arguments, so ``doit -n N -P process`` can pickle them.

    kernel:K            provision K, build its DWARF index, write identity stamps
    parse:P@K           script + the tapsets it links          -> parse tree
    elaborate:P@K       parse tree + K's debug-info identity   -> IR
    translate:P@K       IR + templates + runtime               -> C
    compile:P@K         C + runtime_c/ + K's build identity    -> .ko
    build:P@K           all of the above
    pass5               pass 5 (`doit run`) for probe= kernel= (workload=, duration=)
"""
from __future__ import annotations

import functools
import json
import os
import sys
from pathlib import Path
from typing import Iterator, Optional

from doit import get_var
from doit.exceptions import TaskFailed

from codegen.errors import StapError, StapErrors
from stapbuild import kernels, passes, store
from stapbuild.config import all_probes, load_settings, probe_script

DOIT_CONFIG = {
    # sqlite3: one row per task, so an interrupted or concurrent run cannot
    # corrupt the state of unrelated tasks (dbm.dumb can).
    "backend": "sqlite3",
    "dep_file": str(store.artifacts_root() / ".doit.db"),
    "default_tasks": ["build"],
    "verbosity": 1,
}


# ------------------------------------------------------------------ selection
def selected_kernels() -> list[str]:
    spec = get_var("kernels", None) or get_var("kernel", None)
    settings = load_settings()
    wanted = settings.expand(spec.split(",")) if spec else settings.kernels
    try:
        return [kernels.resolve_release(k.strip()) for k in wanted if k.strip()]
    except kernels.KernelNotFound as e:
        # Raised while doit loads tasks: a traceback would bury the message.
        sys.stderr.write(f"ERROR: {e}\n")
        raise SystemExit(2)


def selected_probes() -> list[tuple[str, Path]]:
    spec = get_var("probe", None) or get_var("probes", None)
    names = spec.split(",") if spec and spec != "all" else all_probes()
    return [probe_script(n.strip()) for n in names if n.strip()]


def stamp(release: str, what: str) -> Path:
    return store.artifacts_root() / "kernels" / release / f"{what}.id"


def selected_executor() -> Optional[str]:
    """The Dask scheduler that stale tasks send their heavy work to
    (executor=dask://HOST:PORT, $STAPBUILD_EXECUTOR or [tool.stapbuild]
    executor; see stapbuild.executor), or None: everything runs here."""
    from stapbuild import executor
    try:
        return executor.configured(get_var("executor", None))
    except executor.ExecutorError as e:
        sys.stderr.write(f"ERROR: {e}\n")
        raise SystemExit(2)


def _on(address: Optional[str], action, args: list) -> tuple:
    """An action here, or its stapbuild.executor twin that runs it on the cluster."""
    if address is None:
        return (action, args)
    from stapbuild import executor
    return (getattr(executor, action.__name__), [*args, address])


def _kctx(release: str, remote: bool = False) -> passes.KernelContext:
    """Pass 1's view of a kernel: the provisioned one, or with an executor
    the .config a worker reported (the client need not provision kernels)."""
    if remote:
        from stapbuild.executor import remote_kernel_context
        return remote_kernel_context(release)
    return passes.KernelContext(release, kernels.kernel_info(release))


def _label(probe: str, release: str) -> str:
    return f"{probe}@{release}"


def _failed(e: BaseException) -> TaskFailed:
    """Show stap-style diagnostics, never a Python traceback."""
    if isinstance(e, (StapError, StapErrors)):
        return TaskFailed(e.render().rstrip())
    return TaskFailed(f"{type(e).__name__ if not str(e) else ''}{e}")


_EXPECTED = (StapError, StapErrors, kernels.KernelNotFound, kernels.ProvisionError, OSError)


def _reported(action):
    """A task action whose expected failures (bad scripts, unknown kernels,
    provisioning) become a TaskFailed with SystemTap-style text instead of
    a traceback. Keeps the name, so doit can still pickle the action."""
    @functools.wraps(action)
    def wrapper(*args):
        try:
            return action(*args)
        except _EXPECTED as e:
            return _failed(e)
    return wrapper


# ------------------------------------------------------------------ actions
@_reported
def prepare_kernel(release: str) -> Optional[TaskFailed]:
    from codegen.debuginfo.kernel_index import load_or_build_index
    kctx = passes.kernel_context(release, frozenset(kernels.ALL_PARTS))
    load_or_build_index(kctx.kernel.vmlinux, kctx.index_file)
    store.write_if_changed(stamp(release, "debuginfo"),
                           (kernels.debuginfo_identity(kctx.kernel) + "\n").encode())
    store.write_if_changed(stamp(release, "build"),
                           (kernels.build_identity(kctx.kernel) + "\n").encode())
    return None


def kernel_ready(release: str) -> bool:
    k = kernels.kernel_info(release)
    return (all(k.has(p) for p in kernels.ALL_PARTS)
            and (k.root / "dwarf-index.json.gz").exists()
            and stamp(release, "debuginfo").exists() and stamp(release, "build").exists())


@_reported
def do_parse(probe: str, script: str, release: str,
             remote: bool = False) -> Optional[TaskFailed]:
    kctx = _kctx(release, remote)
    path = Path(script)
    r = passes.parse_pass(path, path.read_text(), kctx)
    store.write_ref(probe, release, r.artifact, r.inputs, check={"catalogue": r.catalogue})
    return None


@_reported
def do_elaborate(probe: str, release: str) -> Optional[TaskFailed]:
    parse = _input(probe, release, "parse")
    kctx = passes.KernelContext(release, kernels.kernel_info(release))
    r = passes.elaborate_pass(parse, kctx, stamp(release, "debuginfo").read_text().strip())
    store.write_ref(probe, release, r.artifact, {})
    return None


@_reported
def do_translate(probe: str, release: str) -> Optional[TaskFailed]:
    ir = _input(probe, release, "elaborate")
    name = passes.module_name_for(probe, ir.key)
    r = passes.translate_pass(ir, name)
    store.write_ref(probe, release, r.artifact, {}, {"module": name})
    return None


def do_compile(probe: str, release: str) -> Optional[TaskFailed]:
    from stapbuild.kbuild import BuildError
    try:
        c = _input(probe, release, "translate")
        name = json.loads(store.ref_path(probe, release, "translate").read_text())["module"]
        kctx = passes.KernelContext(release, kernels.kernel_info(release))
        r = passes.compile_pass(c, name, kctx, stamp(release, "build").read_text().strip())
        store.write_ref(probe, release, r.artifact, {}, {"module": name})
    except BuildError as e:
        return TaskFailed(f"Pass 4: compilation failed.  [man error::pass4]\n{e}")
    except _EXPECTED as e:
        return _failed(e)
    return None


def do_run(probe: str, release: str, workload: Optional[str],
           duration: Optional[str]) -> Optional[TaskFailed]:
    from stapbuild.launch import run_module
    ko = _input(probe, release, "compile")
    rc = run_module(ko.path, release, workload=workload,
                    duration=float(duration) if duration else None)
    if rc != 0:
        return TaskFailed(f"Pass 5: run failed.  [man error::pass5] (exit {rc})")
    return None


def no_pass5() -> TaskFailed:
    return TaskFailed("pass 5 needs a probe (probe=NAME) and a kernel (kernel=K)")


def _input(probe: str, release: str, kind: str) -> store.Artifact:
    art = store.read_ref(store.ref_path(probe, release, kind))
    if art is None:
        raise OSError(f"missing {kind} artifact for {probe} on {release}: rebuild")
    return art


class ParseUpToDate:
    """The parse task is current when its recorded inputs (script and the
    tapset files it linked) are unchanged and the tapset catalogue defines
    the same names: editing a tapset a probe does not use leaves it alone."""

    def __init__(self, probe: str, release: str, remote: bool = False) -> None:
        self.probe, self.release, self.remote = probe, release, remote

    def __call__(self) -> bool:
        ref = store.ref_path(self.probe, self.release, "parse")
        if not store.ref_inputs_unchanged(ref):
            return False
        recorded = store.read_inputs(ref).get("catalogue")
        return recorded == _current_catalogue(self.release, self.remote)


_CATALOGUES: dict[str, str] = {}


def _current_catalogue(release: str, remote: bool = False) -> str:
    # From the library index (both branches of every conditional), as
    # parse_pass records it: the same for every kernel.
    if release not in _CATALOGUES:
        _CATALOGUES[release] = passes.library_catalogue()
    return _CATALOGUES[release]


# ------------------------------------------------------------------ tasks
def task_kernel() -> Iterator[dict]:
    """Provision a kernel: headers, image, DWARF vmlinux, index, identities."""
    address = selected_executor()
    for k in selected_kernels():
        if address is not None:     # a worker provisions it; we keep identities and .config
            from stapbuild import executor
            yield {"name": k, "actions": [(executor.do_kernel, [k, address])],
                   "targets": [str(stamp(k, "debuginfo")), str(stamp(k, "build")),
                               str(executor.config_path(k))],
                   "uptodate": [(executor.kernel_ready, [k])], "verbosity": 2}
            continue
        yield {"name": k, "actions": [(prepare_kernel, [k])],
               "targets": [str(stamp(k, "debuginfo")), str(stamp(k, "build"))],
               "uptodate": [(kernel_ready, [k])], "verbosity": 2}


def _pairs() -> Iterator[tuple[str, Path, str]]:
    for probe, script in selected_probes():
        for k in selected_kernels():
            yield probe, script, k


def _files(paths: list[Path]) -> list[str]:
    return [str(p) for p in paths]


def task_parse() -> Iterator[dict]:
    """Pass 1: parse the script and link the tapsets it needs."""
    # The compiler too: the parse key includes it (a parser change must
    # reparse; the content-keyed tree then cuts off if nothing changed).
    compiler = _files(passes.compiler_files())
    remote = selected_executor() is not None
    for probe, script, k in _pairs():
        yield {"name": _label(probe, k),
               "actions": [(do_parse, [probe, str(script), k] + ([True] if remote else []))],
               "file_dep": [str(script), str(stamp(k, "build"))] + compiler,
               "uptodate": [ParseUpToDate(probe, k, remote)],
               "targets": [str(store.ref_path(probe, k, "parse"))]}


def task_elaborate() -> Iterator[dict]:
    """Pass 2: resolve symbols, types and probe points against the kernel."""
    compiler = _files(passes.compiler_files())
    address = selected_executor()
    for probe, _, k in _pairs():
        yield {"name": _label(probe, k), "actions": [_on(address, do_elaborate, [probe, k])],
               "file_dep": [str(store.ref_path(probe, k, "parse")),
                            str(stamp(k, "debuginfo"))] + compiler,
               "uptodate": [(store.ref_intact, [str(store.ref_path(probe, k, "elaborate"))])],
               "targets": [str(store.ref_path(probe, k, "elaborate"))]}


def task_translate() -> Iterator[dict]:
    """Pass 3: generate the module's C."""
    compiler = _files(passes.compiler_files())
    runtime = _files(passes.runtime_files())
    for probe, _, k in _pairs():
        yield {"name": _label(probe, k), "actions": [(do_translate, [probe, k])],
               "file_dep": [str(store.ref_path(probe, k, "elaborate"))] + compiler + runtime,
               "uptodate": [(store.ref_intact, [str(store.ref_path(probe, k, "translate"))])],
               "targets": [str(store.ref_path(probe, k, "translate"))]}


def task_compile() -> Iterator[dict]:
    """Pass 4: build the .ko with the kernel's kbuild."""
    runtime = _files(passes.runtime_files())
    kbuild_py = str(Path(passes.kbuild.__file__))
    address = selected_executor()
    for probe, _, k in _pairs():
        yield {"name": _label(probe, k), "actions": [_on(address, do_compile, [probe, k])],
               "file_dep": [str(store.ref_path(probe, k, "translate")),
                            str(stamp(k, "build")), kbuild_py] + runtime,
               "uptodate": [(store.ref_intact, [str(store.ref_path(probe, k, "compile"))])],
               "targets": [str(store.ref_path(probe, k, "compile"))]}


def task_build() -> Iterator[dict]:
    """Passes 1-4 for probe= (default: all probes) on kernels= (default: pyproject)."""
    for probe, _, k in _pairs():
        yield {"name": _label(probe, k), "actions": None,
               "task_dep": [f"compile:{_label(probe, k)}"]}


def do_run_bundle(path: str, probe: Optional[str], release: Optional[str],
                  workload: Optional[str], duration: Optional[str]) -> Optional[TaskFailed]:
    """Run a bundle here, or (kernel=K on a host that runs another kernel)
    in a guest of K, the way a fleet host would run it."""
    from stapbuild import bundle, guest, runner
    secs = float(duration) if duration else None
    if release is None or runner.host_can_load(release):
        rc = bundle.run_bundle(Path(path), probe, workload, secs)
    else:
        import shlex
        argv = [sys.executable, "-S", "-m", "stapbuild.bundle", "run", str(Path(path).resolve())]
        for flag, value in (("--probe", probe), ("--workload", workload), ("--duration", duration)):
            if value:
                argv += [flag, value]
        res = guest.run_in_guest(kernels.provision(release, {"image"}), shlex.join(argv),
                                 timeout=240 + (secs or 60))
        sys.stdout.write(res.stdout)
        sys.stderr.write(res.stderr)
        rc = res.returncode
    return TaskFailed(f"bundle run failed (exit {rc})") if rc else None


def task_pass5() -> dict:
    """Pass 5: doit run probe=P kernel=K [workload='CMD'] [duration=SECONDS], or bundle=B."""
    path = get_var("bundle", None)
    if path:
        spec = get_var("kernel", None)
        release = kernels.resolve_release(spec) if spec else None
        args = [path, get_var("probe", None), release, get_var("workload", None),
                get_var("duration", None)]
        return {"actions": [(do_run_bundle, args)],
                "uptodate": [False], "verbosity": 2}
    probes = selected_probes()
    selected = selected_kernels()
    if not probes or not selected:
        return {"actions": [no_pass5], "uptodate": [False]}
    probe = probes[0][0]
    # kernel=K, else the default kernel if it is among kernels=, else the
    # first of kernels=: always one whose compile task exists (doit refuses
    # to load a task graph with a dangling task_dep, even for `doit build`).
    release = selected[0]
    if not get_var("kernel", None):
        default = kernels.resolve_release(load_settings().default_kernel)
        release = default if default in selected else selected[0]
    return {"actions": [(do_run, [probe, release, get_var("workload", None),
                                  get_var("duration", None)])],
            "task_dep": [f"compile:{_label(probe, release)}"],
            "uptodate": [False], "verbosity": 2}


# ------------------------------------------------------------------ fleets
def bundle_path(probes: list[str]) -> Path:
    out = get_var("out", None)
    if out:
        return Path(out).resolve()
    return store.artifacts_root() / "bundles" / ("+".join(probes) + ".stpbundle")


def do_bundle(probes: list[str], releases: list[str], out: str,
              sign: Optional[list[str]] = None) -> Optional[TaskFailed]:
    from stapbuild.bundle import BundleError, write_bundle
    try:
        keys = (Path(sign[0]), Path(sign[1])) if sign else None
        path = write_bundle(probes, releases, Path(out), sign=keys)
    except BundleError as e:
        return TaskFailed(f"ERROR: {e}")
    except _EXPECTED as e:
        return _failed(e)
    print(f"bundle: {path} ({len(probes)} probe(s) x {len(releases)} kernel(s))")
    return None


def task_bundle() -> dict:
    """One archive with the module of probe= for every kernel of kernels=, and a manifest."""
    probes = [p for p, _ in selected_probes()]
    releases = selected_kernels()
    out = bundle_path(probes)
    # sign=KEY.pem,CERT.pem: sign every module with kbuild's sign-file.
    sign = get_var("sign", None)
    sign_args = [str(Path(x).resolve()) for x in sign.split(",")] if sign else None
    if sign_args is not None and len(sign_args) != 2:
        sys.stderr.write("ERROR: sign= takes KEY,CERT (PEM files)\n")
        raise SystemExit(2)
    return {"actions": [(do_bundle, [probes, releases, str(out), sign_args])],
            "task_dep": [f"compile:{_label(p, k)}" for p in probes for k in releases],
            "file_dep": [str(store.ref_path(p, k, "compile")) for p in probes for k in releases],
            "targets": [str(out)], "verbosity": 2}


def do_cell(probe: str, script: str, release: str) -> None:
    from stapbuild.matrix import build_cell
    cell = build_cell(probe, Path(script), release)
    print(f"{cell.name}: build {cell.build} in {cell.build_seconds:.1f}s")


def do_boot(probes: list[str], release: str) -> None:
    import json as _json

    from stapbuild.matrix import Cell, boot_kernel, cell_file
    cells = [Cell(**_json.loads(cell_file(p, release).read_text())) for p in probes]
    for c in boot_kernel(release, cells):
        print(f"{c.name}: {c.run}" + (f" ({c.errors.splitlines()[-1]})"
                                      if c.run == "failed" and c.errors else ""))


def do_report(probes: list[str], releases: list[str]) -> Optional[TaskFailed]:
    from stapbuild.matrix import report
    bad = report(probes, releases)
    return TaskFailed("failed cells: " + ", ".join(bad)) if bad else None


def task_cell() -> Iterator[dict]:
    """Matrix cell: passes 1-4 of one probe for one kernel; a failure is recorded, not fatal."""
    address = selected_executor()
    for probe, script, k in _pairs():
        yield {"name": _label(probe, k), "actions": [_on(address, do_cell, [probe, str(script), k])],
               "task_dep": [f"kernel:{k}"], "uptodate": [False], "verbosity": 2}


def task_boot() -> Iterator[dict]:
    """Matrix boot: one guest of a kernel runs every cell that built, with its smoke test."""
    probes = [p for p, _ in selected_probes()]
    for k in selected_kernels():
        yield {"name": k, "actions": [(do_boot, [probes, k])],
               "task_dep": [f"cell:{_label(p, k)}" for p in probes],
               "uptodate": [False], "verbosity": 2}


def task_matrix() -> dict:
    """doit matrix probes=a,b kernels=...: build and boot-test every cell, write reports."""
    probes = [p for p, _ in selected_probes()]
    releases = selected_kernels()
    return {"actions": [(do_report, [probes, releases])],
            "task_dep": [f"boot:{k}" for k in releases],
            "uptodate": [False], "verbosity": 2}


def default_tasks(argv: list[str]) -> list[str]:
    """``doit run probe=x`` means pass 5. doit reads "run" as its own command
    (which runs the default tasks), and no task may be named "run"; so a bare
    ``doit run`` selects the pass5 task as the default."""
    positional = [a for a in argv[1:] if not a.startswith("-") and "=" not in a]
    if positional == ["run"]:
        return ["pass5"]
    return ["build"]


def configure(argv: list[str] = sys.argv) -> dict:
    cfg = dict(DOIT_CONFIG)
    # doit opens its sqlite dep file before any task runs: a fresh artifacts
    # dir (STAPBUILD_ARTIFACTS, or a clean checkout) must exist by then.
    root = store.artifacts_root()
    root.mkdir(parents=True, exist_ok=True)
    cfg["dep_file"] = str(root / ".doit.db")
    cfg["default_tasks"] = default_tasks(argv)
    if selected_executor() is not None:
        # Actions submit to the cluster and wait: `doit -n N` keeps N tasks
        # in flight in threads that share one Dask client.
        cfg["par_type"] = "thread"
    if get_var("json", None) not in (None, "", "0"):
        # json=1: machine-readable progress for CI and log shippers.
        from stapbuild import progress
        os.environ["STAPBUILD_JSON"] = "1"
        cfg["reporter"] = progress.json_reporter()
    return cfg
