"""Passes 1-2 of a script given as text, for pass-2 tests: the elaborated
IR as JSON, or the rendered SystemTap error (its file is "t.stp")."""
from __future__ import annotations

import pytest

from codegen.errors import StapError, StapErrors
from stapbuild import passes


def elaborate(kctx, text: str) -> dict:  # type: ignore[no-untyped-def]
    parsed = passes.parse_pass(None, text, kctx, name="t.stp")
    return passes.elaborate_pass(parsed.artifact, kctx).artifact.read_json()


def error(kctx, text: str) -> str:  # type: ignore[no-untyped-def]
    with pytest.raises((StapError, StapErrors)) as ei:
        elaborate(kctx, text)
    return ei.value.render()
