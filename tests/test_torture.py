"""The torture suite in booted kernels (stapbuild.torture): one 2-vCPU boot
per series runs every case, and each case's check looks at the exact
SystemTap messages; after each one the module must be gone, nothing left in
/proc or the kprobes list, and the kernel log free of BUG/WARNING/Oops/
lockdep lines. The cases and their checks live in stapbuild/torture.py so
that bench/bench_torture.py reports the same suite."""
from __future__ import annotations

import warnings

import pytest

from stapbuild import batch, torture

CASE_NAMES = [c.name for c in torture.CASES]


@pytest.fixture(scope="module", params=["6.1", "6.12"])
def suite(request) -> torture.SuiteResult:
    res = torture.run_suite(request.param)
    for w in res.wedges:
        # Never silent: a guest that died and whose cases ran again.
        warnings.warn(f"{res.release}: the guest died in {w['died_in']!r} ({w['step']}); "
                      f"the cases from "
                      f"there on ran again in a fresh boot. Kernel: {w['trouble'][:2]} at "
                      f"{' < '.join(w['frames']) or '?'}; {w['guest_stderr'][-300:]}")
    return res


def _report(s: torture.SuiteResult, name: str) -> str:
    r = dict(s.results.get(name, {}))
    for k in ("stdout", "stderr"):
        if isinstance(r.get(k), str) and len(r[k]) > 1500:
            r[k] = r[k][:1500] + "..."
    if isinstance(r.get("console"), str):
        r["console"] = "..." + r["console"][-3000:]
    if "extra" in r:
        r["extra"] = {k: v for k, v in r["extra"].items() if k != "mem_series"}
        r["memory"] = torture.memory_table(s.results[name]["extra"])
    return f"{s.release} {name}: {s.problems.get(name)}\n{r}"


@pytest.mark.boot
@pytest.mark.parametrize("name", CASE_NAMES)
def test_case(suite, name):
    assert suite.problems[name] == [], _report(suite, name)


@pytest.mark.boot
def test_generated_programs_run_clean(suite):
    fuzz = [n for n in suite.problems if n.startswith("fuzz")]
    assert len(fuzz) >= 3, f"only {len(fuzz)} generated programs were built"
    bad = {n: suite.problems[n] for n in fuzz if suite.problems[n]}
    assert not bad, "\n".join(_report(suite, n) for n in bad)


@pytest.mark.boot
def test_whole_boot_clean(suite):
    """Nothing in the kernel log since the batch began, no bad taint, no
    module, /proc entry or kprobe left, every case reported."""
    assert suite.problems[batch.BOOT] == [], _report(suite, batch.BOOT)
    assert suite.splats == 0


@pytest.mark.boot
def test_a_hung_case_is_reported_and_the_guest_powers_off(tmp_path):
    """The batch watchdog in a real guest: a case that overruns its budget
    (here a workload that outlasts it) is reported as hung with the driver's
    stacks, the cases after it do not run, and the guest powers itself off
    instead of waiting for the host's timeout."""
    from tests.bootlib import build_module, resolve
    release = resolve("6.1")
    script = tmp_path / "idle.stp"
    script.write_text("global n\nprobe timer.ms(100) { n++ }\n")
    ko = build_module(script, release)
    res = batch.run_cases(release, [
        {"name": "overrun", "ko": ko, "workload": "sleep 600", "budget": 5},
        {"name": "after", "ko": ko, "duration": 0.1},
    ], timeout=900)
    r = res["overrun"]
    assert r.get("hung") == 5, r
    assert "_stop_workload" in r["python_stacks"] or "run" in r["python_stacks"], r
    assert "after" not in res
    boot = res[batch.BOOT]
    assert boot["died_in"] == "overrun" and not boot["complete"], boot
    assert "timed out" not in boot.get("guest_stderr", ""), boot
    # powered off by the watchdog (a task stuck in the kernel could not exit)
    assert "sysrq: Power Off" in boot.get("console", ""), boot.get("console", "")[-2000:]
    assert "stapbuild batch watchdog: case 'overrun' still running" in boot["console"]


@pytest.mark.boot
def test_a_soft_lockup_ends_the_guest_at_once_and_a_repeat_fails():
    """softlockup_panic in a real guest: a guru-mode probe that spins in
    the kernel for a minute ends the boot within seconds of the lockup
    report (not at the host's timeout), the suite names the case and our
    module's frames, reruns it once in a fresh boot, and since it wedges
    again the case after it never gets a result: a wedge that repeats is
    a failure, never hidden."""
    from stapbuild import passes
    from tests.bootlib import build_module, resolve
    release = resolve("6.1")
    script = torture.SCRIPTS / "lockup.stp"
    kctx = passes.kernel_context(release)
    parsed = passes.parse_pass(script, script.read_text(), kctx, guru=True)
    elab = passes.elaborate_pass(parsed.artifact, kctx)
    name = passes.module_name_for("lockup", elab.artifact.key)
    ko = passes.compile_pass(passes.translate_pass(elab.artifact, name).artifact,
                             name, kctx).artifact.path
    after = build_module(torture.SCRIPTS / "cycle.stp", release)
    results, wedges = torture._run_with_one_reboot(
        release, [{"name": "lockup", "ko": ko}, {"name": "after", "ko": after, "duration": 0.1}],
        timeout=600)
    assert [w["died_in"] for w in wedges] == ["lockup", "lockup"], wedges
    for w in wedges:
        assert any("soft lockup" in t for t in w["trouble"]), w
        # stuck in our probe (the embedded-C function is inlined into it)
        assert w["frames"][0].startswith("RIP stpg_probe_"), w
        assert any(f.startswith("stp_run_probe+") for f in w["frames"]), w
        assert any("Kernel panic - not syncing: softlockup" in t for t in w["trouble"]), w
        assert "timed out" not in w["guest_stderr"], w
        assert w["step"] == "case lockup", w
    assert "after" not in results
    assert not results[batch.BOOT]["complete"]
