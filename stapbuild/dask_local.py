"""A real Dask cluster on 127.0.0.1: one ``dask scheduler`` process and N
``dask worker`` processes, for the tests, the benchmark, and for trying
``executor=dask://…`` on one machine.

    with LoopbackCluster(2) as c:
        subprocess.run(["doit", "-n", "2", "build", f"executor={c.url}"])

Workers run this checkout, or root= (put on their PYTHONPATH), one thread each,
without a nanny (a killed worker stays dead), each with its own local
directory and, if given, its own environment (STAPBUILD_CACHE=... gives a
worker its own kernel cache). Everything listens on loopback only and is
stopped on exit.
"""
from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Optional

from stapbuild.store import project_root

START_TIMEOUT = 60.0


class LoopbackCluster:
    def __init__(self, n_workers: int = 2, worker_env: Optional[list[dict[str, str]]] = None,
                 allowed_failures: Optional[int] = None, workdir: Optional[Path] = None,
                 nthreads: int = 1, root: Optional[Path] = None) -> None:
        # The checkout the workers import stapbuild from (same code as the client).
        self.root = Path(root or project_root())
        self.n_workers, self.nthreads = n_workers, nthreads
        self.worker_env = worker_env or [{} for _ in range(n_workers)]
        self.allowed_failures = allowed_failures
        self._own_dir = workdir is None
        self.workdir = Path(workdir or tempfile.mkdtemp(prefix="stapbuild-dask-"))
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.scheduler: Optional[subprocess.Popen] = None
        self.workers: list[subprocess.Popen] = []
        self.address = ""
        self.pids: dict[str, int] = {}          # worker address -> pid

    @property
    def url(self) -> str:
        """What executor= takes: dask://127.0.0.1:PORT."""
        return "dask://" + self.address.split("://", 1)[1]

    def _env(self, extra: dict[str, str]) -> dict[str, str]:
        env = dict(os.environ)
        # Workers keep their own scratch store (stapbuild.dask_worker).
        for var in ("STAPBUILD_ARTIFACTS", "STAPBUILD_WORKER_STORE", "STAPBUILD_JSON"):
            env.pop(var, None)
        env["PYTHONPATH"] = os.pathsep.join(
            [str(self.root)] + [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p])
        if self.allowed_failures is not None:
            env["DASK_DISTRIBUTED__SCHEDULER__ALLOWED_FAILURES"] = str(self.allowed_failures)
        env.update(extra)
        return env

    def _spawn(self, argv: list[str], log: str, env: dict[str, str]) -> subprocess.Popen:
        out = open(self.workdir / log, "ab")
        return subprocess.Popen(argv, cwd=self.root, env=env, stdout=out,
                                stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)

    def start(self) -> "LoopbackCluster":
        sched_file = self.workdir / "scheduler.json"
        self.scheduler = self._spawn(
            [sys.executable, "-m", "distributed.cli.dask_scheduler", "--host", "127.0.0.1",
             "--port", "0", "--no-dashboard", "--scheduler-file", str(sched_file)],
            "scheduler.log", self._env({}))
        deadline = time.monotonic() + START_TIMEOUT
        while True:
            try:
                self.address = json.loads(sched_file.read_text())["address"]
                break
            except (OSError, ValueError, KeyError):
                pass    # not written yet, or written half-way (dask writes in place)
            if self.scheduler.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"dask scheduler did not start: {self.log('scheduler.log')}")
            time.sleep(0.1)
        for i in range(self.n_workers):
            self.add_worker(i)
        self.wait_for_workers(self.n_workers)
        return self

    def add_worker(self, i: int) -> None:
        local = self.workdir / f"worker-{i}"
        local.mkdir(exist_ok=True)
        extra = self.worker_env[i] if i < len(self.worker_env) else {}
        self.workers.append(self._spawn(
            [sys.executable, "-m", "distributed.cli.dask_worker", self.address,
             "--host", "127.0.0.1", "--nthreads", str(self.nthreads), "--no-nanny",
             "--no-dashboard", "--name", f"stapbuild-{i}", "--local-directory", str(local),
             "--death-timeout", "60", "--memory-limit", "0"],
            f"worker-{i}.log", self._env(extra)))

    def wait_for_workers(self, n: int) -> None:
        from distributed import Client
        with Client(self.address, timeout="30s", set_as_default=False) as client:
            try:
                client.wait_for_workers(n, timeout=START_TIMEOUT)
            except TimeoutError:
                logs = "\n".join(self.log(f"worker-{i}.log") for i in range(len(self.workers)))
                self.stop()
                raise RuntimeError(f"{n} dask workers did not join:\n{logs}") from None
            self.pids = dict(client.run(os.getpid))

    def kill(self, worker_address: str) -> None:
        """SIGKILL one worker process, as a crashed machine would go."""
        os.kill(self.pids[worker_address], signal.SIGKILL)

    def log(self, name: str) -> str:
        try:
            return (self.workdir / name).read_text(errors="replace")[-4000:]
        except OSError:
            return ""

    def stop(self) -> None:
        procs = [p for p in self.workers + [self.scheduler] if p is not None]
        for p in procs:
            if p.poll() is None:
                p.terminate()
        for p in procs:
            try:
                p.wait(timeout=20)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
        self.workers, self.scheduler = [], None
        if self._own_dir:
            shutil.rmtree(self.workdir, ignore_errors=True)

    def __enter__(self) -> "LoopbackCluster":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def seed_cache(dst: Path, releases: list[str], src: Optional[Path] = None,
               parts: tuple[str, ...] = ("dbg",)) -> Path:
    """A worker cache for one host, without downloading again: the .debs
    and the given parts (the DWARF vmlinux, whose extraction and index take
    minutes) are linked from another cache; the worker provisions the rest
    (the headers) itself, with the usual code."""
    from stapbuild import kernels
    src = Path(src or kernels.cache_root())
    dst.mkdir(parents=True, exist_ok=True)
    if (src / "releases.json").exists():
        shutil.copyfile(src / "releases.json", dst / "releases.json")
    for release in releases:
        (dst / "downloads").mkdir(exist_ok=True)
        link = dst / "downloads" / release
        if not link.exists():
            link.symlink_to(src / "downloads" / release)
        root = dst / "kernels" / release
        root.mkdir(parents=True, exist_ok=True)
        for part in parts:
            if not (root / part).exists():
                (root / part).symlink_to(src / "kernels" / release / part)
        index = src / "kernels" / release / "dwarf-index.json.gz"
        if "dbg" in parts and index.exists() and not (root / index.name).exists():
            shutil.copyfile(index, root / index.name)
    return dst
