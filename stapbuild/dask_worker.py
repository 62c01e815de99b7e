"""What a Dask worker runs for stapbuild (see stapbuild.executor).

The client ships plain data: a parse tree or a C file as bytes with its
sha256, a kernel release, the kernel identities the client planned with,
and the identity of its code. A worker

- provisions the kernel into its *own* cache (``$STAPBUILD_CACHE`` or
  ``~/.cache/stapbuild`` of the worker's host), under a lock, once;
- checks that its kernel has the identities the client planned with, and
  that it runs the same compiler, runtime and key code as the client;
- runs the pass functions of stapbuild.passes against a scratch store of
  its own (``$STAPBUILD_WORKER_STORE``, else the worker's local directory),
  never against the client's store;
- returns the artifacts as bytes with their sha256, which the client checks
  on arrival before they enter its store.

These functions never raise for a failed build: a result says ok or not,
with the message a user would read (StapError and BuildError do not survive
pickling anyway). Functions are shipped by reference, so a worker must run
the same checkout (same host: start it with the checkout on PYTHONPATH, or
``pip install -e``); the code identity check makes a mismatch an error
rather than a silently different module.
"""
from __future__ import annotations

import fcntl
import hashlib
import os
import tempfile
import threading
import time
import traceback
from contextlib import contextmanager
from functools import lru_cache
from pathlib import Path
from typing import Any, Callable, Iterator, Optional

from stapbuild import kernels, passes, store

TOPIC = "stapbuild"          # Dask event topic: task starts and ends, for progress
BUILD_PARTS = frozenset({"headers", "dbg"})   # a worker builds; it never boots
EXTS = {"parse": "json", "elaborate": "json", "translate": "c", "compile": "ko"}


class TransferError(Exception):
    """Bytes that do not hash to what their sender said."""


# ------------------------------------------------------------------ identity
@lru_cache(maxsize=None)
def code_identity() -> str:
    """What decides the bytes of passes 2-4: the compiler (codegen/), the C
    runtime, and the stapbuild modules that compute keys, identities and
    builds. Client and workers must agree on it."""
    root = store.project_root()
    own = [root / "stapbuild" / n for n in ("passes.py", "store.py", "kbuild.py", "kernels.py")]
    return store.key_of({"compiler": passes.compiler_id(), "runtime": passes.runtime_id(),
                         "stapbuild": {p.name: store.sha256_file(p) for p in own}})


# ------------------------------------------------------------------ blobs
def blob(art: store.Artifact) -> dict:
    """An artifact as plain data: kind, key, ext, sha256 and the bytes."""
    data = art.path.read_bytes()
    return {"kind": art.kind, "key": art.key, "ext": art.path.suffix.lstrip("."),
            "sha256": hashlib.sha256(data).hexdigest(), "data": data}


def check_blob(b: dict) -> None:
    """Reject anything that is not a well-formed artifact whose bytes hash to
    the digest that came with them (and, for parse trees, which are stored
    by content, to their key)."""
    kind, key, ext = b.get("kind"), b.get("key"), b.get("ext")
    if EXTS.get(kind) != ext or not (isinstance(key, str) and len(key) == 64
                                     and all(c in "0123456789abcdef" for c in key)):
        raise TransferError(f"not an artifact: kind={kind!r} key={key!r} ext={ext!r}")
    digest = hashlib.sha256(b["data"]).hexdigest()
    if digest != b["sha256"]:
        raise TransferError(f"{kind} artifact {key[:12]}: received bytes hash to "
                            f"{digest[:12]}, sender said {b['sha256'][:12]}")
    if kind == "parse" and digest != key:
        raise TransferError(f"parse tree {key[:12]} is stored by content but hashes to {digest[:12]}")


def receive(b: dict) -> store.Artifact:
    """Check a blob and store it in *this* process's store (atomic, sealed)."""
    check_blob(b)
    return store.put_bytes(b["kind"], b["key"], b["ext"], b["data"])


# ------------------------------------------------------------------ worker setup
_SETUP = threading.Lock()
_READY: dict[str, tuple[str, str]] = {}        # release -> (debuginfo id, build id)
_THREAD_LOCKS: dict[str, threading.Lock] = {}


def _worker():
    try:
        from distributed import get_worker
        return get_worker()
    except (ImportError, ValueError):
        return None


def worker_store() -> Path:
    """The worker's scratch store; also made this process's artifacts root,
    so that the pass functions read and write there and never in a store
    that a client on the same host may be using."""
    with _SETUP:
        root = os.environ.get("STAPBUILD_WORKER_STORE")
        if not root:
            w = _worker()
            base = w.local_directory if w is not None else tempfile.gettempdir()
            root = os.path.join(base, f"stapbuild-store-{os.getpid()}")
            os.environ["STAPBUILD_WORKER_STORE"] = root
        os.environ["STAPBUILD_ARTIFACTS"] = root
        Path(root).mkdir(parents=True, exist_ok=True)
        return Path(root)


@contextmanager
def kernel_lock(release: str) -> Iterator[None]:
    """One provisioner of a release per cache: threads of this worker, and
    other worker processes sharing the host's cache."""
    with _SETUP:
        tlock = _THREAD_LOCKS.setdefault(release, threading.Lock())
    with tlock:
        d = kernels.cache_root() / "kernels"
        d.mkdir(parents=True, exist_ok=True)
        with open(d / f".{release}.lock", "w") as f:
            fcntl.flock(f, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(f, fcntl.LOCK_UN)


def ready_kernel(release: str) -> tuple[kernels.Kernel, str, str]:
    """Provision headers and debug info into this worker's cache and build
    the DWARF index, once per process; returns the kernel and its
    (debuginfo, build) identities."""
    from codegen.debuginfo.kernel_index import load_or_build_index
    if release not in _READY:
        with kernel_lock(release):
            k = kernels.provision(release, BUILD_PARTS)
            load_or_build_index(k.vmlinux, k.root / "dwarf-index.json.gz")
            _READY[release] = (kernels.debuginfo_identity(k), kernels.build_identity(k))
    return (kernels.kernel_info(release), *_READY[release])


def _context(release: str, debuginfo: Optional[str] = None,
             build: Optional[str] = None) -> passes.KernelContext:
    k, have_debuginfo, have_build = ready_kernel(release)
    if debuginfo is not None and debuginfo != have_debuginfo:
        raise kernels.ProvisionError(
            f"this worker's {release} has debug info build-id {have_debuginfo[:12]}, the client "
            f"planned with {debuginfo[:12]}: another build of the kernel under the same name")
    if build is not None and build != have_build:
        raise kernels.ProvisionError(
            f"this worker's {release} build tree differs from the client's "
            f"({have_build[:12]} != {build[:12]}): another build of the kernel under the same name")
    return passes.KernelContext(release, k)


# ------------------------------------------------------------------ tasks
def failure_text(e: BaseException) -> str:
    """The message a user reads, as stapbuild.matrix records a failed cell."""
    from codegen.errors import StapError, StapErrors
    from stapbuild.kbuild import BuildError
    if isinstance(e, (StapError, StapErrors)):
        return e.render()
    if isinstance(e, BuildError):
        return f"Pass 4: compilation failed.  [man error::pass4]\n{e}"
    if isinstance(e, (kernels.KernelNotFound, kernels.ProvisionError, OSError, TransferError)):
        return f"ERROR: {e}"
    return "internal error:\n" + traceback.format_exc(limit=8)


def _is_script_error(e: BaseException) -> bool:
    from codegen.errors import StapError, StapErrors
    return isinstance(e, (StapError, StapErrors))


def _event(state: str, what: str, label: str) -> None:
    w = _worker()
    if w is None:
        return
    try:
        w.log_event(TOPIC, {"state": state, "what": what, "label": label,
                            "key": str(w.get_current_task()), "worker": w.address})
    except Exception:   # noqa: BLE001 - progress must never fail a build
        pass


def _run(what: str, label: str, code: str, body: Callable[[dict], None]) -> dict:
    """Run one task body, which fills in the result; the result says ok, or
    carries the error text. Nothing is raised to Dask."""
    w = _worker()
    out: dict[str, Any] = {"ok": False, "error": "", "artifacts": [],
                           "worker": w.address if w is not None else f"pid {os.getpid()}",
                           "seconds": 0.0}
    start = time.monotonic()
    _event("start", what, label)
    try:
        worker_store()
        if code != code_identity():
            raise TransferError(
                f"worker {out['worker']} runs other stapbuild code than the client "
                f"({code_identity()[:12]} != {code[:12]}): start workers from the same checkout")
        body(out)
        out["ok"] = True
    except Exception as e:  # noqa: BLE001 - reported to the client, never raised
        out["ok"], out["error"], out["artifacts"] = False, failure_text(e), []
        # A parse or semantic error is the script's: every worker would say
        # the same, so the client reports it at once instead of retrying.
        out["final"] = _is_script_error(e)
    finally:
        out["seconds"] = round(time.monotonic() - start, 3)
        _event("end", what, label)
    return out


def prepare_kernel(release: str, code: str) -> dict:
    """Provision a kernel on this worker; returns its identities and .config
    (the client's pass 1 reads CONFIG_* for %( CONFIG_X == "y" %) conditionals)."""
    def body(out: dict) -> None:
        k, debuginfo, build = ready_kernel(release)
        out["debuginfo"], out["build"] = debuginfo, build
        try:
            out["config"] = (k.build_dir / ".config").read_bytes()
        except OSError:
            out["config"] = b""
    return _run("kernel", release, code, body)


def elaborate(parse: dict, release: str, debuginfo: str, code: str, label: str = "") -> dict:
    """Pass 2 of a parse tree against this worker's copy of the kernel."""
    def body(out: dict) -> None:
        kctx = _context(release, debuginfo=debuginfo)
        r = passes.elaborate_pass(receive(parse), kctx, debuginfo)
        out["artifacts"] = [blob(r.artifact)]
    return _run("elaborate", label or release, code, body)


def compile_c(c: dict, module: str, release: str, build: str, code: str,
              label: str = "") -> dict:
    """Pass 4 of a C file with this worker's kbuild tree of the kernel."""
    def body(out: dict) -> None:
        kctx = _context(release, build=build)
        r = passes.compile_pass(receive(c), module, kctx, build)
        out["artifacts"] = [blob(r.artifact)]
    return _run("compile", label or release, code, body)


def build_cell(parse: dict, probe: str, release: str, debuginfo: str, build: str,
               code: str, label: str = "") -> dict:
    """Passes 2-4 of a matrix cell in one round trip (pass 1 ran on the
    client, with the client's tapsets)."""
    def body(out: dict) -> None:
        kctx = _context(release, debuginfo=debuginfo, build=build)
        elab = passes.elaborate_pass(receive(parse), kctx, debuginfo)
        name = passes.module_name_for(probe, elab.artifact.key)
        c = passes.translate_pass(elab.artifact, name)
        ko = passes.compile_pass(c.artifact, name, kctx, build)
        out["module"] = name
        out["artifacts"] = [blob(elab.artifact), blob(c.artifact), blob(ko.artifact)]
    return _run("cell", label or f"{probe}@{release}", code, body)
