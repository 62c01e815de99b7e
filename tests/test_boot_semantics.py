"""The semantic table (tests/semantics/cases.py) in real kernels: every case
is built as a module for each kernel series and the whole batch runs in
one guest boot per series, through the same runner users run. The
expected output is the same as in user space, byte for byte."""
from __future__ import annotations

import fnmatch
import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from stapbuild import passes
from tests.bootlib import case as batch_case, resolve, run_batch
from tests.semantics.cases import CASES, Case

# STAPBUILD_SEMANTICS=hist_* runs only the matching cases (while developing).
_ONLY = os.environ.get("STAPBUILD_SEMANTICS", "*")
KERNEL_CASES = [c for c in CASES if c.kernel and fnmatch.fnmatch(c.name, _ONLY)]


def build(c: Case, kctx: passes.KernelContext) -> Path:
    """Passes 1-4 as ``stap -e`` would run them (the script is <input>)."""
    parsed = passes.parse_pass(None, c.script, kctx, name="<input>", guru=c.guru)
    elab = passes.elaborate_pass(parsed.artifact, kctx)
    name = passes.module_name_for("sem", elab.artifact.key)
    tr = passes.translate_pass(elab.artifact, name)
    return passes.compile_pass(tr.artifact, name, kctx, defines=list(c.defines)).artifact.path


def duration_of(c: Case) -> float:
    if c.duration is not None:
        return c.duration
    # Timer scripts exit() by themselves; begin-only ones are done once
    # "start" returns, so a short run is enough.
    return 20.0 if "timer." in c.script else 0.3


@pytest.fixture(scope="module", params=["6.1", "6.12"])
def results(request):
    release = resolve(request.param)
    kctx = passes.kernel_context(release)
    with ThreadPoolExecutor(max_workers=2) as pool:
        kos = dict(zip((c.name for c in KERNEL_CASES),
                       pool.map(lambda c: build(c, kctx), KERNEL_CASES)))
    batch = [batch_case(c.name, kos[c.name], duration=duration_of(c)) for c in KERNEL_CASES]
    return release, run_batch(release, batch, timeout=1800)


@pytest.mark.boot
def test_semantics_in_kernel(results):
    release, res = results
    wrong = []
    for c in KERNEL_CASES:
        r = res[c.name]
        got = (r["stdout"], r["stderr"], r["rc"])
        if got != (c.stdout, c.stderr, c.rc) or r["left_loaded"] or r["kernel_trouble"]:
            wrong.append(f"{c.name}: got {got!r} left_loaded={r['left_loaded']} "
                         f"trouble={r['kernel_trouble']}\n  want {(c.stdout, c.stderr, c.rc)!r}")
    assert not wrong, f"{len(wrong)} of {len(KERNEL_CASES)} cases differ in {release}:\n" + \
        "\n".join(wrong)
