"""``$SYSTEMTAP_DIR/rc``: options every stap invocation starts with.

stap reads the file (default ``~/.systemtap/rc``), splits it into words the
way the shell would (wordexp(3): quotes, ``$VAR`` and ``~`` expansion, no
command substitution) and puts the words before the real command line, so
the command line can add to or override them.
"""
from __future__ import annotations

import os
import re
import shlex
from pathlib import Path
from typing import Optional


class RcError(Exception):
    pass


def systemtap_dir() -> Path:
    """``$SYSTEMTAP_DIR``, else ``~/.systemtap``."""
    env = os.environ.get("SYSTEMTAP_DIR")
    return Path(env) if env else Path.home() / ".systemtap"


def rc_path() -> Path:
    return systemtap_dir() / "rc"


_CMDSUB = re.compile(r"\$\(|`")


def parse(text: str) -> list[str]:
    """The words of an rc file's text (raises RcError like wordexp's
    WRDE_CMDSUB / WRDE_SYNTAX would)."""
    if _CMDSUB.search(text):
        raise RcError("command substitution is not allowed")
    try:
        words = shlex.split(text, comments=True)
    except ValueError as e:
        raise RcError(str(e)) from None
    # wordexp expands variables and a leading ~ in each word.
    return [os.path.expanduser(os.path.expandvars(w)) for w in words]


def options(path: Optional[Path] = None) -> list[str]:
    """The rc file's words; [] if there is no file."""
    p = path or rc_path()
    try:
        text = p.read_text()
    except FileNotFoundError:
        return []
    except OSError as e:
        raise RcError(f"cannot read {p}: {e.strerror}") from None
    try:
        return parse(text)
    except RcError as e:
        raise RcError(f"{p}: {e}") from None
