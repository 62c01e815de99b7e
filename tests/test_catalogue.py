"""The probes/ catalogue: every tool builds on both kernel series, and in
one boot per series each tool runs with the workload its header declares
(``# smoke:``) and its output matches every ``# smoke-expect:`` regex.

The workloads make the output predictable: execsnoop must show the
programs the workload ran, opensnoop the paths it opened, biolatency the
exact number of direct I/Os dd issued to a null_blk disk, and so on.
"""
from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.bootlib import ROOT, build_module, case, resolve, run_batch

PROBES = ROOT / "probes"
TOOLS = sorted(p.stem for p in PROBES.glob("*.stp"))
SERIES = ["6.1", "6.12"]


def header(tool: str) -> dict:
    """workload, duration and every expect regex of a tool's header."""
    h: dict = {"workload": None, "duration": None, "expect": []}
    for line in (PROBES / f"{tool}.stp").read_text().splitlines():
        m = re.match(r"\s*#\s*smoke(-duration|-expect)?:\s*(.*?)\s*$", line)
        if not m:
            continue
        if m.group(1) is None:
            h["workload"] = m.group(2)
        elif m.group(1) == "-duration":
            h["duration"] = float(m.group(2))
        else:
            h["expect"].append(m.group(2))
    return h


def test_catalogue_size_and_headers():
    assert len(TOOLS) >= 25, TOOLS
    for tool in TOOLS:
        text = (PROBES / f"{tool}.stp").read_text()
        assert text.startswith("#!/usr/bin/env stapbuild\n# " + tool + ":"), tool
        assert "# Run:" in text and "# Output:" in text, tool
        h = header(tool)
        assert h["expect"], f"{tool} declares no smoke-expect"


@pytest.mark.kernel
@pytest.mark.parametrize("series", SERIES)
def test_catalogue_builds(series):
    release = resolve(series)
    failed = {}
    for tool in TOOLS:
        try:
            assert build_module(PROBES / f"{tool}.stp", release).exists()
        except Exception as e:  # noqa: BLE001 - report every tool that fails
            failed[tool] = str(e)[:400]
    assert not failed, failed


_RESULTS: dict[str, dict] = {}


def results(series: str) -> dict:
    """Run every tool once in one boot of `series` (cached per session)."""
    if series not in _RESULTS:
        release = resolve(series)
        cases = []
        for tool in TOOLS:
            h = header(tool)
            cases.append(case(tool, build_module(PROBES / f"{tool}.stp", release),
                              workload=h["workload"], duration=h["duration"]))
        _RESULTS[series] = run_batch(release, cases, timeout=1800)
    return _RESULTS[series]


@pytest.mark.boot
@pytest.mark.parametrize("series", SERIES)
@pytest.mark.parametrize("tool", TOOLS)
def test_tool_output(series, tool):
    r = results(series)[tool]
    out = r.get("stdout", "")
    assert r.get("rc") == 0, (r.get("rc"), r.get("stderr"), out[-2000:])
    assert not r.get("left_loaded"), r
    assert not r.get("kernel_trouble"), r.get("kernel_trouble")
    for rx in header(tool)["expect"]:
        assert re.search(rx, out, re.M), (f"{tool} on {series}: /{rx}/ not in:\n{out[-3000:]}"
                                          f"\nstderr:\n{r.get('stderr', '')[-1500:]}")
