"""The stapbuild version recorded in bundles and reports."""
from __future__ import annotations


def stapbuild_version() -> str:
    # The installed distribution's version; a bare checkout reads pyproject.
    try:
        from importlib.metadata import version
        return version("stapbuild")
    except Exception:  # noqa: BLE001 - not installed: fall back to the source
        import re
        from pathlib import Path
        text = (Path(__file__).resolve().parent.parent / "pyproject.toml").read_text()
        m = re.search(r'^version\s*=\s*"([^"]+)"', text, re.M)
        return m.group(1) if m else "unknown"
