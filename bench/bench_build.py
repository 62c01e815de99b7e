"""Build times of one probe on one kernel, cold and warm (no assertions).

    python bench/bench_build.py [KERNEL] [PROBE]      (defaults: 6.1 iotop)

The kernel must already be provisioned (packages cached). Everything is
built into a fresh temporary artifacts dir (STAPBUILD_ARTIFACTS), so the
project's ./artifacts is untouched and every pass really runs:

- cold, per pass: the pass functions of stapbuild.passes, timed in-process;
- no-op `doit build` on the tree that a cold `doit build` just made;
- `stapbuild -p4` warm: a cache hit on that same store.

The subprocess figures include Python start-up and imports. All figures and
ratios come from the same run.
"""
from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def timed(fn):
    start = time.perf_counter()
    result = fn()
    return result, time.perf_counter() - start


def run(cmd: list[str], env: dict[str, str]) -> tuple[str, float]:
    start = time.perf_counter()
    proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True)
    elapsed = time.perf_counter() - start
    if proc.returncode != 0:
        sys.exit(f"{' '.join(cmd)} failed:\n{proc.stdout}{proc.stderr}")
    return proc.stdout, elapsed


def main() -> None:
    series = sys.argv[1] if len(sys.argv) > 1 else "6.1"
    probe = sys.argv[2] if len(sys.argv) > 2 else "iotop"
    with tempfile.TemporaryDirectory(prefix="stapbuild-bench-") as tmp:
        env = dict(os.environ, STAPBUILD_ARTIFACTS=str(Path(tmp) / "passes"))
        os.environ["STAPBUILD_ARTIFACTS"] = env["STAPBUILD_ARTIFACTS"]
        from stapbuild import kernels, passes
        from stapbuild.config import probe_script

        release = kernels.resolve_release(series)
        name, script = probe_script(probe)
        kctx = passes.kernel_context(release)       # cached: no download
        rows: list[tuple[str, float]] = []

        parsed, t = timed(lambda: passes.parse_pass(script, script.read_text(), kctx))
        rows.append(("parse (pass 1)", t))
        elab, t = timed(lambda: passes.elaborate_pass(parsed.artifact, kctx))
        rows.append(("elaborate (pass 2)", t))
        module = passes.module_name_for(name, elab.artifact.key)
        tr, t = timed(lambda: passes.translate_pass(elab.artifact, module))
        rows.append(("translate (pass 3)", t))
        comp, t = timed(lambda: passes.compile_pass(tr.artifact, module, kctx))
        rows.append(("compile (pass 4)", t))
        assert not (parsed.cached or elab.cached or tr.cached or comp.cached)
        cold_passes = sum(t for _, t in rows)

        # doit, in another fresh store: cold, then no-op.
        env["STAPBUILD_ARTIFACTS"] = str(Path(tmp) / "doit")
        doit = [sys.executable, "-m", "doit", "build", f"probe={probe}", f"kernels={series}"]
        _, doit_cold = run(doit, env)
        out, doit_noop = run(doit, env)
        executed = [line for line in out.splitlines() if line.startswith(".  ")]
        cli = [sys.executable, "-m", "stapbuild.cli", "-p4", "-r", series, str(script)]
        ko, cli_warm = run(cli, env)

    print(f"{name} on {release}\n")
    print(f"{'step':<34}{'seconds':>9}{'% / x':>10}")
    for label, t in rows:
        print(f"{'cold ' + label:<34}{t:9.3f}{100 * t / cold_passes:9.1f}%")
    print(f"{'cold passes 1-4, total':<34}{cold_passes:9.3f}{100.0:9.1f}%")
    print(f"{'cold doit build (subprocess)':<34}{doit_cold:9.3f}")
    print(f"{'no-op doit build':<34}{doit_noop:9.3f}"
          f"{doit_cold / doit_noop:9.1f}x faster than cold doit")
    print(f"{'warm stapbuild -p4 (cache hit)':<34}{cli_warm:9.3f}"
          f"{doit_cold / cli_warm:9.1f}x faster than cold doit")
    print(f"\nno-op doit executed {len(executed)} task(s); "
          f"stapbuild -p4 printed {Path(ko.strip()).name}")


if __name__ == "__main__":
    main()
