"""The semantic table (tests/semantics/cases.py) in user space: each script
is translated, built with -DSTP_USER and run as a process in virtual time.
The same cases run in booted kernels in tests/test_boot_semantics.py."""
from __future__ import annotations

import pytest

from stapbuild.userspace import run_script
from tests.semantics.cases import CASES, Case


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_semantics_user(case: Case) -> None:
    r = run_script(case.script, defines=case.defines, guru=case.guru)
    assert (r.stdout, r.stderr, r.rc) == (case.stdout, case.stderr, case.rc)


def test_case_names_unique() -> None:
    names = [c.name for c in CASES]
    assert len(names) == len(set(names))
