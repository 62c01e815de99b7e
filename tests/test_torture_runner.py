"""The runner's fault handling without a kernel: owner records and orphan
reaping, a private runtime directory, and modules that do not match their
digest are never loaded. (The same paths run for real in the booted
torture suite: SIGKILL of a runner, then the next runner unloads the orphan.)"""
from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from stapbuild import runner


@pytest.fixture
def rundir(tmp_path, monkeypatch):
    d = tmp_path / "run"
    monkeypatch.setenv("STAPBUILD_RUNTIME_DIR", str(d))
    return d


def dead_pid() -> int:
    p = subprocess.Popen([sys.executable, "-c", "pass"])
    p.wait()
    return p.pid


def write_record(d: Path, module: str, pid: int, start: str | None = None) -> Path:
    d.mkdir(mode=0o700, exist_ok=True)
    rec = d / f"{module}.owner"
    rec.write_text(json.dumps({"pid": pid, "start": start, "module": module}))
    return rec


def test_runtime_dir_is_private(tmp_path, monkeypatch):
    d = tmp_path / "open"
    d.mkdir()
    os.chmod(d, 0o777)
    monkeypatch.setenv("STAPBUILD_RUNTIME_DIR", str(d))
    assert runner.runtime_dir() is None            # others could plant records
    link = tmp_path / "link"
    link.symlink_to(tmp_path)
    monkeypatch.setenv("STAPBUILD_RUNTIME_DIR", str(link))
    assert runner.runtime_dir() is None            # a symlink is not ours
    monkeypatch.setenv("STAPBUILD_RUNTIME_DIR", str(tmp_path / "fresh"))
    d = runner.runtime_dir()
    assert d is not None and (d.stat().st_mode & 0o777) == 0o700


def test_orphan_of_a_dead_runner_is_stopped_and_unloaded(rundir, monkeypatch):
    rec = write_record(rundir, "stap_orphan_1", dead_pid())
    calls = []
    monkeypatch.setattr(runner, "_module_loaded", lambda m: True)
    monkeypatch.setattr(runner, "_stop_and_unload", lambda m: calls.append(m))
    said = []
    assert runner.reap_orphans(said.append) == ["stap_orphan_1"]
    assert calls == ["stap_orphan_1"] and not rec.exists()
    assert said and said[0].startswith("WARNING: unloaded orphaned module stap_orphan_1 "
                                       "(its runner, pid ")


def test_live_owner_is_left_alone(rundir, monkeypatch):
    me = os.getpid()
    rec = write_record(rundir, "stap_live_1", me, runner._proc_start_time(me))
    monkeypatch.setattr(runner, "_module_loaded", lambda m: True)
    monkeypatch.setattr(runner, "_stop_and_unload", lambda m: pytest.fail("reaped a live module"))
    assert runner.reap_orphans() == [] and rec.exists()
    # ... and a second runner may not claim its module
    with pytest.raises(runner.RunnerError, match="already being run by pid"):
        with runner.Ownership("stap_live_1") as own:
            own.claim()


def test_reused_pid_is_not_the_owner(rundir, monkeypatch):
    """A pid alone is not an identity: the record also holds its start time."""
    me = os.getpid()
    write_record(rundir, "stap_reused_1", me, "1")    # same pid, other process
    reaped = []
    monkeypatch.setattr(runner, "_module_loaded", lambda m: True)
    monkeypatch.setattr(runner, "_stop_and_unload", lambda m: reaped.append(m))
    assert runner.reap_orphans() == ["stap_reused_1"]


def test_stale_record_of_an_unloaded_module_is_dropped(rundir, monkeypatch):
    rec = write_record(rundir, "stap_gone_1", dead_pid())
    monkeypatch.setattr(runner, "_module_loaded", lambda m: False)
    monkeypatch.setattr(runner, "_stop_and_unload", lambda m: pytest.fail("not loaded"))
    assert runner.reap_orphans() == [] and not rec.exists()
    (rundir / "garbage.owner").write_text("{not json")
    runner.reap_orphans()
    assert not (rundir / "garbage.owner").exists()


def test_claim_and_release(rundir):
    with runner.Ownership("stap_mine_1") as own:
        own.claim()
    doc = json.loads((rundir / "stap_mine_1.owner").read_text())
    assert doc["pid"] == os.getpid() and doc["module"] == "stap_mine_1"
    assert (rundir / "stap_mine_1.owner").stat().st_mode & 0o777 == 0o600
    own.release()
    assert not (rundir / "stap_mine_1.owner").exists()


def fake_ko(path: Path, name: str = "stap_fake_1") -> Path:
    """The smallest ELF64 the runner's .modinfo reader accepts."""
    import struct
    shstr = b"\0.modinfo\0.shstrtab\0"
    modinfo = f"license=GPL\0name={name}\0".encode()
    data_off = 64
    shstr_off = data_off + len(modinfo)
    shoff = (shstr_off + len(shstr) + 7) & ~7
    hdr = bytearray(64)
    hdr[:6] = b"\x7fELF\x02\x01"
    struct.pack_into("<Q", hdr, 0x28, shoff)
    struct.pack_into("<HHH", hdr, 0x3A, 64, 3, 2)
    body = bytes(hdr) + modinfo + shstr
    body += b"\0" * (shoff - len(body))

    def sh(name_off, off, size):
        return struct.pack("<IIQQQQ", name_off, 1, 0, 0, off, size) + b"\0" * 24

    body += b"\0" * 64 + sh(1, data_off, len(modinfo)) + sh(10, shstr_off, len(shstr))
    path.write_bytes(body)
    return path


def test_module_not_matching_its_digest_is_never_loaded(tmp_path, rundir, monkeypatch):
    ko = fake_ko(tmp_path / "m.ko")
    assert runner.module_name_of(ko) == "stap_fake_1"
    monkeypatch.setattr(runner, "load_module", lambda *a, **k: pytest.fail("loaded it"))
    # the store's sidecar
    (tmp_path / "m.ko.sha256").write_text("0" * 64 + "\n")
    err = io.BytesIO()
    assert runner.run(ko, output=io.BytesIO(), errout=err) == 1
    assert b"ERROR: m.ko: sha256 " in err.getvalue()
    assert b"does not match m.ko.sha256" in err.getvalue()
    assert b"refusing to load it" in err.getvalue()
    # an explicit digest (what a bundle's manifest says)
    (tmp_path / "m.ko.sha256").unlink()
    err = io.BytesIO()
    assert runner.run(ko, output=io.BytesIO(), errout=err, expect_sha256="ab" * 32) == 1
    assert b"does not match the expected digest" in err.getvalue()
    assert not list(rundir.glob("*.owner"))


def test_module_matching_its_digest_is_loaded_from_the_checked_bytes(tmp_path, rundir, monkeypatch):
    import hashlib
    ko = fake_ko(tmp_path / "m.ko")
    (tmp_path / "m.ko.sha256").write_text(hashlib.sha256(ko.read_bytes()).hexdigest() + "\n")
    seen = {}

    def fake_load(path, params="", data=None):
        seen["data"] = data
        raise runner.RunnerError("stop here")

    monkeypatch.setattr(runner, "load_module", fake_load)
    err = io.BytesIO()
    assert runner.run(ko, output=io.BytesIO(), errout=err) == 1
    assert seen["data"] == ko.read_bytes()
    assert b"ERROR: stop here" in err.getvalue()
    assert not list(rundir.glob("*.owner"))         # a failed load releases its claim


def test_batch_watchdog_reports_a_hung_case_and_ends_the_batch(tmp_path):
    """A case stuck in a syscall (here: opening a FIFO nobody writes, as a
    module load stuck in the kernel would be) is reported as hung with the
    Python stacks of the driver, and the batch ends instead of eating the
    whole guest timeout; the case after it never starts."""
    from stapbuild import batch
    fifo = tmp_path / "stuck.ko"
    os.mkfifo(fifo)
    plan = tmp_path / "plan.json"
    plan.write_text(json.dumps([{"name": "stuck", "ko": str(fifo), "budget": 1.0},
                                {"name": "after", "ko": str(fifo)}]))
    proc = subprocess.run([sys.executable, "-S", "-m", "stapbuild.batch", str(plan)],
                          capture_output=True, text=True, timeout=60,
                          cwd=Path(__file__).resolve().parents[1])
    assert proc.returncode == batch.HUNG_STATUS, proc.stderr
    results = {r["name"]: r for r in batch.parse_results(proc.stdout)}
    assert set(results) == {"stuck", batch.BOOT}
    assert results["stuck"]["hung"] == 1.0
    assert "module_name_of" in results["stuck"]["python_stacks"]
    assert results[batch.BOOT]["died_in"] == "stuck"
    assert not results[batch.BOOT]["complete"]
    from stapbuild import torture
    assert any(p.startswith("hung: still running after 1s")
               for p in torture.common_problems(results["stuck"]))


SOFT_LOCKUP_CONSOLE = """\
[  110.000000] some earlier line
[  140.621043] watchdog: BUG: soft lockup - CPU#1 stuck for 26s! [python:118]
[  140.622000] Modules linked in: stap_x(OE) 9p
[  140.623000] RIP: 0010:smp_call_function_many_cond+0x12f/0x3f0
[  140.623500] Code: 00 00 00
[  140.624199] Call Trace:
[  140.624199]  <TASK>
[  140.624199]  ? text_poke_memset+0x20/0x20
[  140.624199]  on_each_cpu_cond_mask+0x1e/0x30
[  140.624199]  stp_disarm+0x9c/0x230 [stap_x]
[  140.624199]  </TASK>
""".splitlines()


def test_a_console_lockup_is_summarised_with_where_the_kernel_was():
    """What CI prints for a guest that died: the matching lines alone said
    "Call Trace:" and nothing else; the problem line must name the frames."""
    from stapbuild import batch, torture
    ctx = batch.trouble_context(SOFT_LOCKUP_CONSOLE)
    assert ctx[0].endswith("some earlier line") and ctx[-1].endswith("</TASK>")
    assert batch.trouble_frames(ctx) == [
        "RIP smp_call_function_many_cond+0x12f/0x3f0", "? text_poke_memset+0x20/0x20",
        "on_each_cpu_cond_mask+0x1e/0x30", "stp_disarm+0x9c/0x230"]
    r = {"kernel_trouble": [l for l in SOFT_LOCKUP_CONSOLE if batch.KERNEL_TROUBLE.search(l)],
         "kernel_log": ctx}
    (problem,) = torture.common_problems(r)
    assert "soft lockup" in problem
    assert problem.endswith("at RIP smp_call_function_many_cond+0x12f/0x3f0 < "
                            "? text_poke_memset+0x20/0x20 < on_each_cpu_cond_mask+0x1e/0x30 < "
                            "stp_disarm+0x9c/0x230")
    assert batch.trouble_frames(["[ 1.0] all quiet"]) == []


def test_a_guest_that_dies_is_rerun_from_the_case_it_died_in(monkeypatch):
    """run_suite's one reboot: the cases that finished keep their results,
    the one the guest died in and all after it run in a fresh boot, and the
    death is returned as a wedge with the kernel's frames."""
    from stapbuild import batch, torture
    plans = []

    def fake_run_cases(release, plan, timeout, kernel_args):
        plans.append([c["name"] for c in plan])
        assert "softlockup_panic=1" in kernel_args
        if len(plans) == 1:
            return {"a": {"name": "a", "rc": 0},
                    batch.BOOT: {"name": batch.BOOT, "complete": False, "died_in": "b",
                                 "kernel_trouble": SOFT_LOCKUP_CONSOLE[1:2],
                                 "kernel_log": batch.trouble_context(SOFT_LOCKUP_CONSOLE)}}
        return {n: {"name": n, "rc": 0} for n in plan_names(plan)} | {
            batch.BOOT: {"name": batch.BOOT, "complete": True}}

    def plan_names(plan):
        return [c["name"] for c in plan]

    monkeypatch.setattr(batch, "run_cases", fake_run_cases)
    results, wedges = torture._run_with_one_reboot(
        "6.1.0-57-amd64", [{"name": n} for n in "abc"], 100)
    assert plans == [["a", "b", "c"], ["b", "c"]]
    assert sorted(results) == [batch.BOOT, "a", "b", "c"] and results[batch.BOOT]["complete"]
    (w,) = wedges
    assert w["died_in"] == "b" and "soft lockup" in w["trouble"][0]
    assert w["frames"][0] == "RIP smp_call_function_many_cond+0x12f/0x3f0"


def test_a_wedge_that_repeats_is_a_failure(monkeypatch):
    from stapbuild import batch, torture

    def always_dies(release, plan, timeout, kernel_args):
        return {batch.BOOT: {"name": batch.BOOT, "complete": False, "died_in": plan[0]["name"],
                             "kernel_trouble": [], "kernel_log": []}}

    monkeypatch.setattr(batch, "run_cases", always_dies)
    results, wedges = torture._run_with_one_reboot("6.1.0-57-amd64", [{"name": "x"}], 100)
    assert [w["died_in"] for w in wedges] == ["x", "x"]
    assert not results[batch.BOOT]["complete"] and "x" not in results
