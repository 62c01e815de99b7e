"""Generated, well-typed programs through passes 2-4 (stapbuild.stapfuzz):
whatever pass 2 accepts, pass 3 must translate and the C must compile
against both kernels' headers with kbuild's exact flags (-Werror
included). Most compile with -fsyntax-only (every front-end diagnostic);
every 10th goes through the whole compiler (-S: backend warnings such as
-Wframe-larger-than too), and a few through real kbuild, modpost and all.
STAPBUILD_FUZZ_N sets how many programs (default 300); the seeds are
fixed, so a failure names a seed that reproduces it:
``python -m stapbuild.stapfuzz SEED``.

The failures the fuzzer found are pinned below as regression tests with
their smallest reproducers."""
from __future__ import annotations

import os
import subprocess
import sys

import pytest

from codegen.errors import StapError, StapErrors
from stapbuild import kernels, passes, stapfuzz

N = int(os.environ.get("STAPBUILD_FUZZ_N", "300"))


@pytest.fixture(scope="module")
def both_kernels():
    return [kernels.provision(kernels.resolve_release(s), {"headers"}) for s in ("6.1", "6.12")]


@pytest.fixture
def private_store(tmp_path, monkeypatch):
    """Generated C stays out of the project's store."""
    monkeypatch.setenv("STAPBUILD_ARTIFACTS", str(tmp_path / "artifacts"))
    return tmp_path


def test_generator_is_deterministic_and_varied():
    assert stapfuzz.generate(7) == stapfuzz.generate(7)
    texts = {stapfuzz.generate(s) for s in range(50)}
    assert len(texts) == 50
    joined = "\n".join(texts)
    for construct in ("foreach", "while", "for (", "try {", "catch", "delete", "<<<", "@count",
                      "sprintf(", "printf(", " in ", "? ", "function ", "timer.ms", "exit()",
                      "limit", ".=", "next", "break"):
        assert construct in joined, construct


@pytest.mark.kernel
def test_whatever_pass2_accepts_compiles(both_kernels, private_store):
    rep = stapfuzz.fuzz_passes(range(N), lambda seed: both_kernels[seed % 2], full_every=10)
    print("stapfuzz:", rep.summary())
    failures = [f"seed {seed}: {msg}" for seed, msg in rep.failures()]
    assert not failures, "\n\n".join(failures[:8])
    # The generator makes well-typed programs: pass 2 rejecting many of
    # them would mean the fuzzer tests little (or pass 2 rejects valid code).
    assert len(rep.elaborate_rejected) + len(rep.parse_rejected) <= N // 10, \
        "\n".join(f"seed {s}: {m}" for s, m in (rep.parse_rejected + rep.elaborate_rejected)[:5])
    assert rep.compiled == rep.accepted and rep.compiled_full >= N // 12


@pytest.mark.kernel
@pytest.mark.parametrize("series", ["6.1", "6.12"])
def test_generated_programs_build_with_kbuild(series, private_store):
    release = kernels.resolve_release(series)
    kctx = passes.kernel_context(release)
    built = 0
    for seed in range(2000, 2004):
        text = stapfuzz.generate(seed)
        parsed = passes.parse_pass(None, text, kctx, name=f"stapfuzz-{seed}.stp")
        try:
            elab = passes.elaborate_pass(parsed.artifact, kctx)
        except (StapError, StapErrors):
            continue
        c = passes.translate_pass(elab.artifact, f"stap_fuzz_{seed}")
        ko = passes.compile_pass(c.artifact, f"stap_fuzz_{seed}", kctx)
        assert ko.artifact.path.stat().st_size > 0
        built += 1
    assert built >= 3


def test_cli_prints_a_program():
    r = subprocess.run([sys.executable, "-m", "stapbuild.stapfuzz", "3"], capture_output=True,
                       text=True, check=True)
    assert r.stdout == stapfuzz.generate(3)


# ---------------------------------------------------------------- findings
def _through_pass3(text: str) -> str:
    parsed = passes.parse_pass(None, text, None, name="repro.stp")
    elab = passes.elaborate_pass(parsed.artifact, None)
    return passes.translate_pass(elab.artifact, "stap_repro").artifact.path.read_text()


def _pass2_error(text: str) -> str:
    parsed = passes.parse_pass(None, text, None, name="repro.stp")
    with pytest.raises((StapError, StapErrors)) as e:
        passes.elaborate_pass(parsed.artifact, None)
    errs = getattr(e.value, "errors", [e.value])
    return "\n".join(x.render() for x in errs)


def test_nested_foreach_over_one_array_translates(private_store):
    c = _through_pass3('global a\nprobe begin { a[1] = 1; a[2] = 2\n'
                       '  foreach (i in a) foreach (j in a) printf("%d %d\\n", i, j) }\n')
    assert "stp_map" in c


def test_array_of_unknown_value_type_is_a_pass2_error(private_store):
    text = 'global a\nprobe begin { if ("x" in a) println("y"); delete a["z"] }\n'
    assert "unresolved type" in _pass2_error(text)


def test_modifying_an_array_during_its_foreach_is_a_pass2_error(private_store):
    text = ('global a\nprobe begin { for (i = 0; i < 5; i++) a[i] = i\n'
            '  foreach (k in a) delete a[k] }\n')
    assert "variable 'a' modified during 'foreach' iteration" in _pass2_error(text)
