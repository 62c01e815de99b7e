"""Scale-out: the heavy per-kernel work of stale doit tasks on a Dask cluster.

``doit build … executor=dask://HOST:PORT`` (or ``executor = "dask://…"``
under ``[tool.stapbuild]``, or ``$STAPBUILD_EXECUTOR``). doit stays the
planner: it decides from content hashes what is stale, exactly as without an
executor. Only the actions of the stale tasks change:

    kernel:K       a worker provisions K into its own cache and builds its
                   DWARF index; the client keeps K's identities and .config
    parse:P@K      here (cheap; reads this checkout's tapsets, and K's .config)
    elaborate:P@K  a worker (the parse tree goes there as bytes)
    translate:P@K  here (cheap)
    compile:P@K    a worker (the C goes there as bytes)
    cell:P@K       a worker runs passes 2-4 of the matrix cell in one go

Results come back as bytes with their sha256; the client checks the hash on
arrival and only then stores them (atomic write + digest sidecar), so
nothing half-written or altered enters the store, and refs are written
after their artifacts. Keys are the same as in a local build, and so are the
bytes (kbuild maps build and kernel paths away).

Failures are per task: a worker that dies, or a build that fails, is
retried once, on another worker when there is one, and then reported (a
doit failure, or a failed cell whose report says it was retried). With
Dask's default ``distributed.scheduler.allowed-failures`` (3) the scheduler
itself also re-runs a task whose worker died; stapbuild sees the second
start and reports it as the retry. Start the scheduler with
``DASK_DISTRIBUTED__SCHEDULER__ALLOWED_FAILURES=0`` to make "retried once"
exact.

Each doit action submits and waits, so ``doit -n N`` keeps N tasks in
flight; with an executor, doit runs its parallel tasks in threads (one
Client per process).
"""
from __future__ import annotations

import atexit
import json
import os
import threading
import time
import uuid
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Optional

from doit.exceptions import TaskFailed

from stapbuild import dask_worker, kernels, passes, progress, store
from stapbuild.dask_worker import TransferError, check_blob, code_identity

CONNECT_TIMEOUT = "30s"
WORKER_WAIT = 120.0          # seconds to wait for a first worker to join


class ExecutorError(Exception):
    """The executor setting or the cluster is unusable."""


# ------------------------------------------------------------------ settings
def scheduler_address(spec: Optional[str]) -> Optional[str]:
    """executor= value -> a Dask scheduler address, or None for local work.
    ``dask://HOST:PORT`` means Dask's tcp://HOST:PORT; tcp://, tls:// and
    other Dask addresses pass through."""
    spec = (spec or "").strip()
    if spec in ("", "local", "none"):
        return None
    if spec.startswith("dask://"):
        rest = spec[len("dask://"):].rstrip("/")
        if not rest:
            raise ExecutorError("executor=dask:// needs HOST:PORT (e.g. dask://127.0.0.1:8786)")
        return "tcp://" + rest
    if "://" in spec:
        return spec
    raise ExecutorError(f"executor={spec!r}: expected dask://HOST:PORT or 'local'")


def configured(var: Optional[str] = None) -> Optional[str]:
    """The doit variable if given, else $STAPBUILD_EXECUTOR, else pyproject."""
    if var is None:
        var = os.environ.get("STAPBUILD_EXECUTOR")
    if var is None:
        from stapbuild.config import load_settings
        var = load_settings().executor
    return scheduler_address(var)


# ------------------------------------------------------------------ kernels, client side
def _kernel_dir(release: str) -> Path:
    return store.artifacts_root() / "kernels" / release


def _stamp(release: str, what: str) -> Path:
    return _kernel_dir(release) / f"{what}.id"


def config_path(release: str) -> Path:
    """The kernel's .config as a worker reported it, laid out as a build
    dir so that pass 1's preprocessor reads it the way it reads a real one."""
    return _kernel_dir(release) / "build-config" / ".config"


def kernel_ready(release: str) -> bool:
    """doit uptodate for kernel:K with an executor: the client needs only
    the identities and the .config; the packages live on the workers."""
    return all(p.exists() for p in (_stamp(release, "debuginfo"), _stamp(release, "build"),
                                    config_path(release)))


def remote_kernel_context(release: str) -> passes.KernelContext:
    """What pass 1 needs of a kernel the client has not provisioned."""
    d = _kernel_dir(release)
    return passes.KernelContext(release, kernels.Kernel(
        release=release, root=d, build_dir=config_path(release).parent,
        vmlinux=None, vmlinuz=None, modules_dir=None))


def _identity(release: str, what: str) -> str:
    try:
        return _stamp(release, what).read_text().strip()
    except OSError:
        raise OSError(f"kernel {release} has no {what} identity: run kernel:{release}") from None


# ------------------------------------------------------------------ the cluster
@dataclass
class Attempt:
    worker: str
    ok: bool
    error: str = ""
    seconds: float = 0.0


@dataclass
class Outcome:
    result: dict
    attempts: list[Attempt] = field(default_factory=list)
    value: Any = None

    @property
    def ok(self) -> bool:
        return bool(self.result.get("ok"))

    @property
    def worker(self) -> str:
        return self.attempts[-1].worker if self.attempts else ""

    def retry_note(self) -> str:
        """One line per failed attempt that was retried."""
        lines = []
        for n, a in enumerate(self.attempts[:-1], 1):
            first = (a.error.strip().splitlines() or ["failed"])[0]
            lines.append(f"attempt {n} on {a.worker}: {first}")
        return "\n".join(lines)

    def message(self) -> str:
        error = self.result.get("error") or "failed"
        if len(self.attempts) > 1:
            return (f"{error.rstrip()}\n(failed {len(self.attempts)} times; "
                    + "; ".join(self.retry_note().splitlines())
                    + f"; attempt {len(self.attempts)} on {self.worker})")
        return error


def _lost_text(e: BaseException, worker: str) -> str:
    name = type(e).__name__
    if name == "KilledWorker":
        return f"worker {worker} died while running it ({name})"
    return f"{name}: {e}" if str(e) else name


class Cluster:
    """One Dask client per process and scheduler, shared by doit's threads."""

    def __init__(self, address: str) -> None:
        try:
            from distributed import Client
        except ImportError:
            raise ExecutorError("executor=dask://… needs the 'distributed' package: "
                                "pip install 'stapbuild[dask]'") from None
        self.address = address
        try:
            self.client = Client(address, timeout=CONNECT_TIMEOUT, set_as_default=False)
        except OSError as e:
            raise ExecutorError(f"cannot reach the Dask scheduler at {address}: {e}") from None
        try:
            self.client.wait_for_workers(1, timeout=WORKER_WAIT)
        except TimeoutError:
            self.client.close()
            raise ExecutorError(f"no Dask worker joined {address} within {WORKER_WAIT:.0f} s") from None
        self._lock = threading.Lock()
        self.state: dict[str, str] = {}          # key -> queued | running
        self.labels: dict[str, str] = {}         # key -> task label
        self.running: dict[str, str] = {}        # key -> worker
        self.starts: dict[str, list[str]] = {}   # key -> workers that started it
        self.done = self.failed = self.retried = 0
        self.n_workers = len(self.client.nthreads())
        self.client.subscribe_topic(dask_worker.TOPIC, self._on_event)

    # -- progress
    def _emit(self, label: str, state: str, worker: str = "") -> None:
        """Called with self._lock held."""
        busy = len(set(self.running.values()))
        fields: dict[str, Any] = {"task": label, "state": state}
        if worker:
            fields["worker"] = worker
        fields.update(done=self.done, running=sum(s == "running" for s in self.state.values()),
                      queued=sum(s == "queued" for s in self.state.values()),
                      failed=self.failed, retried=self.retried,
                      busy=f"{busy}/{max(self.n_workers, busy)}")
        progress.event("cluster", **fields)

    def _on_event(self, event: tuple) -> None:
        """Worker task starts and ends (Dask events; runs on the client's loop)."""
        _, msg = event
        if not isinstance(msg, dict):
            return
        key, worker = msg.get("key"), msg.get("worker", "")
        with self._lock:
            if key not in self.state:
                return                            # finished already, or another client's
            if msg.get("state") == "start":
                seen = self.starts.setdefault(key, [])
                seen.append(worker)
                self.state[key] = "running"
                self.running[key] = worker
                if len(seen) > 1:                  # Dask re-ran it after losing a worker
                    self.retried += 1
                    self._emit(self.labels[key], "retry", worker)
                else:
                    self._emit(self.labels[key], "running", worker)
            elif msg.get("state") == "end":
                self.running.pop(key, None)

    # -- work
    def run(self, what: str, label: str, fn: Callable[..., dict], args: tuple,
            accept: Optional[Callable[[dict], Any]] = None) -> Outcome:
        """Submit fn(*args), wait, and run accept(result) here (it stores what
        came back; a TransferError there counts as a failed attempt). A
        failure is retried once, preferably on a worker not tried yet."""
        label = f"{what}:{label}"          # as doit names the task
        attempts: list[Attempt] = []
        tried: list[str] = []
        res: dict = {}
        value = None
        for n in (1, 2):
            others = None
            if tried:
                try:
                    alive = list(self.client.nthreads())
                    self.n_workers = len(alive)
                    others = [w for w in alive if w not in tried] or None
                except Exception:   # noqa: BLE001 - a scheduler hiccup: let Dask pick
                    others = None
            key = f"stapbuild-{label}-attempt{n}-{uuid.uuid4().hex[:8]}"
            with self._lock:
                self.state[key], self.labels[key] = "queued", label
                if n > 1:
                    self.retried += 1
                    self._emit(label, "retry")
            fut = None
            try:
                # loose restrictions: another worker if one is alive, else any
                where = {"workers": others, "allow_other_workers": True} if others else {}
                fut = self.client.submit(fn, *args, key=key, pure=False, **where)
                res = fut.result()
            except Exception as e:  # noqa: BLE001 - KilledWorker, lost scheduler, ...
                with self._lock:
                    seen = list(self.starts.get(key, []))
                last = getattr(getattr(e, "last_worker", None), "address", None)
                worker = last or (seen[-1] if seen else "?")
                res = {"ok": False, "error": _lost_text(e, worker), "worker": worker, "seconds": 0.0}
            finally:
                if fut is not None:
                    fut.release()
            if res.get("ok") and accept is not None:
                try:
                    value = accept(res)
                except (TransferError, OSError) as e:
                    res = dict(res, ok=False, error=f"ERROR: {e}")
            with self._lock:
                seen = self.starts.pop(key, [])
                self.state.pop(key, None)
                self.labels.pop(key, None)
                self.running.pop(key, None)
            ran_on = list(seen)
            if res.get("worker") and (not ran_on or ran_on[-1] != res["worker"]):
                ran_on.append(res["worker"])
            for w in ran_on[:-1]:
                attempts.append(Attempt(w, False, f"worker {w} died while running it; "
                                        "Dask ran it again"))
            attempts.append(Attempt(ran_on[-1] if ran_on else "?", bool(res.get("ok")),
                                    res.get("error", ""), float(res.get("seconds", 0.0))))
            tried += ran_on
            if res.get("ok") or res.get("final") or len(attempts) > 1:
                break       # done, the script's own error, or already retried
        with self._lock:
            if res.get("ok"):
                self.done += 1
            else:
                self.failed += 1
            if n == 1 and len(attempts) > 1 and len(seen) < 2:
                self.retried += 1       # Dask re-ran it; its start event never came
            self._emit(label, "done" if res.get("ok") else "failed", attempts[-1].worker)
        return Outcome(res, attempts, value)

    def close(self) -> None:
        with self._lock:
            if self.done or self.failed:
                progress.event("cluster", state="summary", done=self.done, failed=self.failed,
                               retried=self.retried)
        try:
            self.client.close(timeout=10)
        except Exception:   # noqa: BLE001 - exiting anyway
            pass


_CLUSTERS: dict[tuple[int, str], Cluster] = {}
_UNUSABLE: dict[tuple[int, str], str] = {}
_CLUSTERS_LOCK = threading.Lock()


def cluster(address: str) -> Cluster:
    """The process's client for a scheduler (doit threads share it). A
    scheduler that could not be used is not tried again by every task."""
    with _CLUSTERS_LOCK:
        me = (os.getpid(), address)
        if me in _UNUSABLE:
            raise ExecutorError(_UNUSABLE[me])
        c = _CLUSTERS.get(me)
        if c is None:
            try:
                c = _CLUSTERS[me] = Cluster(address)
            except ExecutorError as e:
                _UNUSABLE[me] = str(e)
                raise
            atexit.register(c.close)
        return c


# ------------------------------------------------------------------ arrivals
def accept_blob(b: dict, kind: Optional[str] = None) -> store.Artifact:
    """Store one artifact that came back: hash checked first, then an atomic
    write and its digest sidecar (store.put_bytes)."""
    check_blob(b)
    if kind is not None and b["kind"] != kind:
        raise TransferError(f"expected a {kind} artifact, got {b['kind']}")
    return store.put_bytes(b["kind"], b["key"], b["ext"], b["data"])


def _failed(text: str) -> TaskFailed:
    return TaskFailed(text.rstrip())


def _guard(fn: Callable[[], Optional[TaskFailed]]) -> Optional[TaskFailed]:
    try:
        return fn()
    except ExecutorError as e:
        return _failed(f"ERROR: {e}")
    except OSError as e:
        return _failed(f"ERROR: {e}")


# ------------------------------------------------------------------ doit actions
def do_kernel(release: str, address: str) -> Optional[TaskFailed]:
    """kernel:K on the cluster: a worker provisions it; the client records
    the identities (the stamps the pass tasks depend on) and the .config."""
    def accept(res: dict) -> None:
        # .config first: the stamps are what doit checks, so they come last.
        store.write_if_changed(config_path(release), res["config"])
        store.write_if_changed(_stamp(release, "debuginfo"), (res["debuginfo"] + "\n").encode())
        store.write_if_changed(_stamp(release, "build"), (res["build"] + "\n").encode())

    def go() -> Optional[TaskFailed]:
        out = cluster(address).run("kernel", release, dask_worker.prepare_kernel,
                                   (release, code_identity()), accept)
        return None if out.ok else _failed(out.message())
    return _guard(go)


def do_elaborate(probe: str, release: str, address: str) -> Optional[TaskFailed]:
    from stapbuild.tasks import _input

    def go() -> Optional[TaskFailed]:
        parse = _input(probe, release, "parse")
        label = f"{probe}@{release}"
        out = cluster(address).run(
            "elaborate", label, dask_worker.elaborate,
            (dask_worker.blob(parse), release, _identity(release, "debuginfo"),
             code_identity(), label),
            lambda res: accept_blob(res["artifacts"][0], "elaborate"))
        if not out.ok:
            return _failed(out.message())
        store.write_ref(probe, release, out.value, {})
        return None
    return _guard(go)


def do_compile(probe: str, release: str, address: str) -> Optional[TaskFailed]:
    from stapbuild.tasks import _input

    def go() -> Optional[TaskFailed]:
        c = _input(probe, release, "translate")
        name = json.loads(store.ref_path(probe, release, "translate").read_text())["module"]
        label = f"{probe}@{release}"
        out = cluster(address).run(
            "compile", label, dask_worker.compile_c,
            (dask_worker.blob(c), name, release, _identity(release, "build"),
             code_identity(), label),
            lambda res: accept_blob(res["artifacts"][0], "compile"))
        if not out.ok:
            return _failed(out.message())
        store.write_ref(probe, release, out.value, {}, {"module": name})
        return None
    return _guard(go)


# ------------------------------------------------------------------ matrix cells
def _cell_memo(key: str) -> Path:
    return store.artifacts_root() / "store" / "cell-memo" / key[:2] / f"{key}.json"


def _memo_hit(key: str) -> Optional[dict]:
    """A cell built before from the same parse tree, kernel and code: its
    artifacts are still in the store, so the cluster has nothing to do."""
    try:
        doc = json.loads(_cell_memo(key).read_text())
    except (OSError, ValueError):
        return None
    for kind in ("elaborate", "translate", "compile"):
        if store.lookup(kind, doc.get(kind, ""), dask_worker.EXTS[kind]) is None:
            return None
    return doc


def build_cell(probe: str, script: Path, release: str, address: str):
    """stapbuild.matrix.build_cell through the cluster: pass 1 here, passes
    2-4 on a worker; the same Cell record, plus attempts and the worker."""
    from stapbuild.matrix import Cell, cell_file, save, smoke_of
    cell = Cell(probe, release, str(script), smoke=asdict(smoke_of(script)))
    start = time.monotonic()
    pass1_seconds, worker_seconds = 0.0, None
    try:
        kctx = remote_kernel_context(release)
        parsed = passes.parse_pass(script, script.read_text(), kctx)
        pass1_seconds = time.monotonic() - start
        debuginfo, build = _identity(release, "debuginfo"), _identity(release, "build")
        memo_key = store.key_of({"parse": parsed.artifact.key, "release": release,
                                 "debuginfo": debuginfo, "build": build, "code": code_identity()})
        doc = _memo_hit(memo_key)
        if doc is None:
            label = f"{probe}@{release}"
            out = cluster(address).run(
                "cell", label, dask_worker.build_cell,
                (dask_worker.blob(parsed.artifact), probe, release, debuginfo, build,
                 code_identity(), label),
                lambda res: {a.kind: a for a in (accept_blob(b) for b in res["artifacts"])})
            cell.attempts, cell.worker, cell.retried = len(out.attempts), out.worker, out.retry_note()
            worker_seconds = out.attempts[-1].seconds
            if out.ok:
                doc = {k: a.key for k, a in out.value.items()}
                doc["module"] = out.result["module"]
                store.atomic_write(_cell_memo(memo_key), (json.dumps(doc) + "\n").encode())
            else:
                cell.build, cell.build_error = "failed", out.result.get("error", "failed")
        if doc is not None:
            cell.build, cell.module = "ok", doc["module"]
            cell.ko = str(store.artifact_path("compile", doc["compile"], "ko"))
    except ExecutorError as e:
        cell.build, cell.build_error = "failed", f"ERROR: {e}"
    except Exception as e:  # noqa: BLE001 - one cell must not stop the matrix
        cell.build, cell.build_error = "failed", dask_worker.failure_text(e)
    # Build time as a local build reports it: pass 1 here plus the worker's
    # passes 2-4 (queueing and transfer are not build time; the bench
    # measures them as the scheduling overhead).
    if worker_seconds is None:
        cell.build_seconds = round(time.monotonic() - start, 3)
    else:
        cell.build_seconds = round(pass1_seconds + worker_seconds, 3)
    save(cell_file(probe, release), asdict(cell))
    progress.event("cell", probe=probe, kernel=release, build=cell.build,
                   seconds=cell.build_seconds, attempts=cell.attempts)
    return cell


def do_cell(probe: str, script: str, release: str, address: str) -> None:
    cell = build_cell(probe, Path(script), release, address)
    note = f" after {cell.attempts} attempts" if cell.attempts > 1 else ""
    print(f"{cell.name}: build {cell.build} in {cell.build_seconds:.1f}s on {cell.worker}{note}")
