"""Scale-out through a real Dask cluster (issue 10): a scheduler and two
worker processes on 127.0.0.1 (stapbuild.dask_local), started and stopped
by each test.

- 2 probes x 3 kernels built through the cluster are byte-identical, pass by
  pass, to a local build; the client has no kernel at all (an empty cache):
  the workers provision into caches of their own and build there.
- Killing a worker in the middle of a matrix cell: the matrix still
  completes, and the report names the retried cell; both with Dask's
  default allowed-failures (Dask re-runs the task) and with 0 (stapbuild
  resubmits it).

The workers' caches link the .debs and the DWARF vmlinux of the host's
cache (its extraction and index take minutes); they unpack the headers
themselves. Client, workers and the local reference build all run one
snapshot of the checkout (the workers get its path), so that edits made to
the tree while the tests run cannot make the two builds differ.
"""
from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from stapbuild import kernels
from stapbuild.dask_local import LoopbackCluster, seed_cache
from stapbuild.kbuild import modinfo_vermagic
from stapbuild.store import project_root

ROOT = project_root()
PROBES = ["iotop", "hz"]
SERIES = ["6.1", "6.12", "6.12-rt"]
PASSES = ["parse", "elaborate", "translate", "compile"]


def doit(env: dict[str, str], *args: str, check: bool = True) -> subprocess.CompletedProcess:
    r = subprocess.run([sys.executable, "-m", "doit", *args], cwd=env["PYTHONPATH"], env=env,
                       capture_output=True, text=True, timeout=900)
    if check:
        assert r.returncode == 0, r.stdout[-4000:] + r.stderr[-8000:]
    return r


def base_env(checkout: Path, artifacts: Path, cache: Path | None = None) -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(checkout)
    for var in ("STAPBUILD_TAPSETS", "STAPBUILD_PROBES", "STAPBUILD_EXECUTOR", "STAPBUILD_JSON"):
        env.pop(var, None)
    env["STAPBUILD_ARTIFACTS"] = str(artifacts)
    env["PYTHONUNBUFFERED"] = "1"
    if cache is not None:
        env["STAPBUILD_CACHE"] = str(cache)
    return env


@pytest.fixture(scope="module")
def checkout(tmp_path_factory) -> Path:
    """A snapshot of the sources a build reads (the tree may be edited meanwhile)."""
    snap = tmp_path_factory.mktemp("checkout")
    for d in ("codegen", "runtime_c", "stapbuild", "tapsets", "probes"):
        shutil.copytree(ROOT / d, snap / d, ignore=shutil.ignore_patterns("__pycache__"))
    for f in ("dodo.py", "pyproject.toml"):
        shutil.copy2(ROOT / f, snap / f)
    return snap


@pytest.fixture(scope="module")
def releases() -> list[str]:
    return [kernels.resolve_release(s) for s in SERIES]


@pytest.fixture(scope="module")
def local_build(tmp_path_factory, checkout, releases) -> Path:
    """The reference: the same matrix built here, without an executor (this
    also provisions any kernel the host's cache lacks)."""
    artifacts = tmp_path_factory.mktemp("local-artifacts")
    doit(base_env(checkout, artifacts), "-n", "1", "build", "probes=" + ",".join(PROBES),
         "kernels=" + ",".join(releases))
    return artifacts


@pytest.fixture(scope="module")
def worker_caches(tmp_path_factory, releases, local_build) -> list[Path]:
    base = tmp_path_factory.mktemp("worker-caches")
    return [seed_cache(base / f"worker-{i}", releases) for i in range(2)]


@pytest.fixture
def client_cache(tmp_path) -> Path:
    """A client that has provisioned nothing: only apt's list of releases."""
    d = tmp_path / "client-cache"
    d.mkdir()
    src = kernels.cache_root() / "releases.json"
    if src.exists():
        shutil.copyfile(src, d / "releases.json")
    return d


def cluster(checkout: Path, worker_caches: list[Path], tmp_path: Path, **kw) -> LoopbackCluster:
    return LoopbackCluster(2, worker_env=[{"STAPBUILD_CACHE": str(c)} for c in worker_caches],
                           workdir=tmp_path / "dask", root=checkout, **kw)


def ref(artifacts: Path, probe: str, release: str, kind: str) -> dict:
    return json.loads((artifacts / "refs" / probe / release / f"{kind}.json").read_text())


def cluster_events(stderr: str) -> list[dict]:
    """The executor's progress lines: 'stapbuild: cluster task=... state=...'."""
    out = []
    for line in stderr.splitlines():
        if line.startswith("stapbuild: cluster "):
            out.append(dict(re.findall(r"(\w+)=(\S+)", line)))
    return out


@pytest.mark.kernel
def test_cluster_build_is_byte_identical_to_local(checkout, local_build, worker_caches,
                                                  client_cache, releases, tmp_path):
    artifacts = tmp_path / "artifacts"
    env = base_env(checkout, artifacts, client_cache)
    build = ["build", "probes=" + ",".join(PROBES), "kernels=" + ",".join(releases)]
    with cluster(checkout, worker_caches, tmp_path) as c:
        r = doit(env, "-n", "2", *build, f"executor={c.url}")
        events = cluster_events(r.stderr)
        # doit stays the planner: a second run finds everything up to date
        # and sends nothing to the cluster.
        again = doit(env, "-n", "2", *build, f"executor={c.url}")
    assert not re.findall(r"^\.  ", again.stdout, re.M), again.stdout
    assert "stapbuild: cluster" not in again.stderr

    # Every pass of every cell: same key, same bytes.
    for probe in PROBES:
        for release in releases:
            for kind in PASSES:
                mine, theirs = ref(artifacts, probe, release, kind), ref(local_build, probe, release, kind)
                assert mine["key"] == theirs["key"], (probe, release, kind)
                assert ((artifacts / mine["artifact"]).read_bytes()
                        == (local_build / theirs["artifact"]).read_bytes()), (probe, release, kind)
            ko = artifacts / ref(artifacts, probe, release, "compile")["artifact"]
            assert ko.suffix == ".ko" and ko.with_name(ko.name + ".sha256").exists()

    # The work ran on the workers: both did some, the client provisioned and
    # compiled nothing, and each worker unpacked the headers into its own cache.
    done = [e for e in events if e.get("state") == "done"]
    assert {e["task"].split(":")[0] for e in done} == {"kernel", "elaborate", "compile"}
    assert len(done) == len(releases) + 2 * len(PROBES) * len(releases)
    assert len({e["worker"] for e in done}) == 2
    assert not (client_cache / "kernels").exists() and not (client_cache / "kbuild").exists()
    for cache in worker_caches:
        provisioned = [r for r in releases
                       if (cache / "kernels" / r / "headers" / ".stapbuild-complete").exists()]
        assert provisioned, f"{cache}: the worker provisioned no kernel"
    assert "stapbuild: cluster state=summary" in r.stderr


@pytest.mark.kernel
@pytest.mark.parametrize("allowed_failures", [None, 0], ids=["dask-reruns", "stapbuild-resubmits"])
def test_killed_worker_cells_are_retried_and_reported(checkout, worker_caches, client_cache,
                                                      releases, tmp_path, allowed_failures):
    artifacts = tmp_path / "artifacts"
    env = base_env(checkout, artifacts, client_cache)
    killed: dict[str, str] = {}
    with cluster(checkout, worker_caches, tmp_path, allowed_failures=allowed_failures) as c:
        with open(tmp_path / "doit.out", "w") as out:
            proc = subprocess.Popen(
                [sys.executable, "-m", "doit", "-n", "2", "cell", "probes=" + ",".join(PROBES),
                 "kernels=" + ",".join(releases), f"executor={c.url}"],
                cwd=checkout, env=env, stdout=out, stderr=subprocess.PIPE, text=True)
            lines = []
            deadline = time.monotonic() + 600
            for line in proc.stderr:
                lines.append(line)
                ev = cluster_events(line)
                if (not killed and ev and ev[0].get("state") == "running"
                        and ev[0]["task"].startswith("cell:")):
                    time.sleep(1.0)              # well into passes 2-4 (about 4 s)
                    c.kill(ev[0]["worker"])
                    killed = {"cell": ev[0]["task"].split(":", 1)[1], "worker": ev[0]["worker"]}
                assert time.monotonic() < deadline, "".join(lines)
            rc = proc.wait(timeout=60)
    stderr = "".join(lines)
    assert rc == 0, (tmp_path / "doit.out").read_text()[-3000:] + stderr[-6000:]
    assert killed, stderr

    from stapbuild import matrix
    old = os.environ.get("STAPBUILD_ARTIFACTS")
    os.environ["STAPBUILD_ARTIFACTS"] = str(artifacts)
    try:
        cells = {c.name: c for c in matrix.load_cells(PROBES, releases)}
        report = subprocess.run([sys.executable, "-m", "stapbuild.matrix", "report",
                                 "--probes", ",".join(PROBES), "--kernels", ",".join(releases)],
                                cwd=checkout, env=env, capture_output=True, text=True)
    finally:
        if old is None:
            del os.environ["STAPBUILD_ARTIFACTS"]
        else:
            os.environ["STAPBUILD_ARTIFACTS"] = old

    # The matrix completed: every cell built, the killed one on the survivor.
    assert all(c.build == "ok" for c in cells.values()), {n: c.build_error for n, c in cells.items()}
    victim = cells[killed["cell"]]
    assert victim.attempts == 2, victim
    assert killed["worker"] in victim.retried and "died" in victim.retried, victim.retried
    assert victim.worker != killed["worker"]
    assert [n for n, c in cells.items() if c.attempts > 1] == [killed["cell"]]
    # ... into a whole module for its kernel, sealed in the client's store.
    ko = Path(victim.ko)
    assert ko.is_relative_to(artifacts / "store" / "compile")
    assert hashlib.sha256(ko.read_bytes()).hexdigest() == \
        ko.with_name(ko.name + ".sha256").read_text().strip()
    assert modinfo_vermagic(ko).startswith(victim.release + " ")

    # The report shows it (the cells were built, not booted: "not run").
    md = (artifacts / "matrix" / "report.md").read_text()
    assert "## Retried cells (1)" in md, report.stdout + report.stderr + md
    assert f"- {killed['cell']}: 2 attempts" in md and killed["worker"] in md
    assert "↻ retried (2 attempts)" in md
    assert "↻ retried, 2 attempts" in (artifacts / "matrix" / "report.html").read_text()
    retry_lines = [e for e in cluster_events(stderr) if e.get("state") == "retry"]
    assert [e["task"] for e in retry_lines] == [f"cell:{killed['cell']}"], stderr


# ------------------------------------------------------------------ no cluster needed
def test_executor_setting(tmp_path, monkeypatch):
    from stapbuild.config import load_settings
    from stapbuild.executor import ExecutorError, configured, scheduler_address
    assert scheduler_address("dask://10.0.0.5:8786") == "tcp://10.0.0.5:8786"
    assert scheduler_address("tls://sched:8786") == "tls://sched:8786"
    assert scheduler_address("") is None and scheduler_address("local") is None
    for bad in ("dask://", "sched:8786"):
        with pytest.raises(ExecutorError):
            scheduler_address(bad)
    (tmp_path / "pyproject.toml").write_text('[tool.stapbuild]\nexecutor = "dask://h:1"\n')
    assert load_settings(tmp_path).executor == "dask://h:1"
    assert load_settings(tmp_path.parent / "nowhere").executor == ""
    monkeypatch.setenv("STAPBUILD_EXECUTOR", "dask://e:2")
    assert configured(None) == "tcp://e:2"          # the environment, else pyproject
    assert configured("local") is None               # executor=local wins over both


def test_arrivals_are_hash_checked_before_the_store(tmp_path, monkeypatch):
    from stapbuild import store
    from stapbuild.dask_worker import TransferError, blob
    from stapbuild.executor import accept_blob
    monkeypatch.setenv("STAPBUILD_ARTIFACTS", str(tmp_path / "a"))
    data = b"\x7fELF not really a module"
    key = "ab" * 32
    good = {"kind": "compile", "key": key, "ext": "ko", "data": data,
            "sha256": hashlib.sha256(data).hexdigest()}
    for bad in (dict(good, data=data[:-1]),                  # truncated on the way
                dict(good, kind="compile", ext="json"),      # not what a pass stores
                dict(good, key="../../etc/passwd"),
                dict(good, kind="parse", ext="json")):       # parse trees are keyed by content
        with pytest.raises(TransferError):
            accept_blob(bad)
        assert not (tmp_path / "a" / "store").exists() or not list((tmp_path / "a").rglob("*.ko"))
    with pytest.raises(TransferError):
        accept_blob(good, "elaborate")
    art = accept_blob(good, "compile")
    assert art.path == store.artifact_path("compile", key, "ko") and art.path.read_bytes() == data
    assert store.verify(art.path)                            # sealed: digest sidecar written
    assert blob(art) == good


def test_worker_refuses_other_code(tmp_path, monkeypatch):
    from stapbuild import dask_worker
    monkeypatch.setenv("STAPBUILD_WORKER_STORE", str(tmp_path / "w"))
    monkeypatch.setenv("STAPBUILD_ARTIFACTS", str(tmp_path / "client"))
    out = dask_worker.prepare_kernel("6.1.0-0-amd64", "0" * 64)
    assert not out["ok"] and "runs other stapbuild code" in out["error"], out
    assert os.environ["STAPBUILD_ARTIFACTS"] == str(tmp_path / "w")   # never the client's store


def test_report_shows_retried_cells():
    from stapbuild.matrix import Cell, render_html, render_markdown
    cells = [Cell("iotop", "K1", "", build="ok", attempts=2, worker="tcp://b:2",
                  retried="attempt 1 on tcp://a:1: worker tcp://a:1 died while running it"),
             Cell("hz", "K1", "", build="failed", build_error="boom", attempts=2,
                  worker="tcp://a:1", retried="attempt 1 on tcp://b:2: boom"),
             Cell("iotop", "K2", "", build="ok")]
    cells.append(Cell("hz", "K2", "", build="ok"))
    md = render_markdown(cells, ["iotop", "hz"], ["K1", "K2"])
    assert "## Retried cells (2)" in md
    assert "- iotop@K1: 2 attempts, not run, last on tcp://b:2: attempt 1 on tcp://a:1" in md
    assert md.count("↻ retried (2 attempts)") == 2
    html = render_html(cells, ["iotop", "hz"], ["K1", "K2"])
    assert html.count("↻ retried, 2 attempts") == 2


def test_outcome_message_names_both_attempts():
    from stapbuild.executor import Attempt, Outcome
    out = Outcome({"ok": False, "error": "Pass 4: compilation failed.\nerror: x"},
                  [Attempt("tcp://a:1", False, "worker tcp://a:1 died while running it"),
                   Attempt("tcp://b:2", False, "Pass 4: compilation failed.\nerror: x")])
    msg = out.message()
    assert msg.startswith("Pass 4: compilation failed.\nerror: x")
    assert "failed 2 times; attempt 1 on tcp://a:1: worker tcp://a:1 died" in msg
    assert msg.rstrip().endswith("attempt 2 on tcp://b:2)")


class _StubFuture:
    def __init__(self, value: dict) -> None:
        self.value = value

    def result(self) -> dict:
        return self.value

    def release(self) -> None:
        pass


class _StubClient:
    """Runs the submitted function in place, counting submissions."""

    def __init__(self) -> None:
        self.submitted = 0

    def nthreads(self) -> dict:
        return {"tcp://a:1": 1, "tcp://b:2": 1}

    def submit(self, fn, *args, **kw) -> _StubFuture:
        self.submitted += 1
        return _StubFuture(fn(*args))


def _stub_cluster():
    import threading
    from stapbuild.executor import Cluster
    c = Cluster.__new__(Cluster)          # no scheduler: only the retry policy
    c.address, c.client, c._lock = "stub", _StubClient(), threading.Lock()
    c.state, c.labels, c.running, c.starts = {}, {}, {}, {}
    c.done = c.failed = c.retried = 0
    c.n_workers = 2
    return c


def test_script_errors_are_not_retried_but_other_failures_are():
    from stapbuild import dask_worker

    def semantic(out: dict) -> None:
        from codegen.errors import StapError
        raise StapError("semantic", "unresolved target-symbol expression")

    def flaky(out: dict) -> None:
        raise OSError("No space left on device")

    c = _stub_cluster()
    out = c.run("compile", "bad@K", lambda: dask_worker._run("compile", "bad@K", dask_worker.code_identity(), semantic), ())
    assert not out.result["ok"] and out.result["final"]
    assert c.client.submitted == 1 and len(out.attempts) == 1 and c.retried == 0
    assert "semantic error" in out.result["error"]
    c = _stub_cluster()
    out = c.run("compile", "disk@K", lambda: dask_worker._run("compile", "disk@K", dask_worker.code_identity(), flaky), ())
    assert not out.result["ok"] and not out.result["final"]
    assert c.client.submitted == 2 and len(out.attempts) == 2 and c.retried == 1
