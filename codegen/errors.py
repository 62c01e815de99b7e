"""Diagnostics in SystemTap's form, rendered in one place.

A pass raises ``StapError`` (or collects several in ``StapErrors``); the
driver prints ``render()`` and exits non-zero. The text follows stap:

    parse error: expected ';'
            at: operator '}' at probes/x.stp:3:1
         source: }
                 ^

    semantic error: unresolved function: identifier 'foo' at x.stp:1:15
            source: probe begin { foo() }
                                  ^
"""
from __future__ import annotations

from pathlib import Path
from typing import Iterable, Optional

from codegen.ast import Loc

_SOURCES: dict[str, list[str]] = {}


def register_source(name: str, text: str) -> None:
    """Remember a script's text so errors can quote it (e.g. for -e input)."""
    _SOURCES[name] = text.splitlines()


def source_line(loc: Loc) -> Optional[str]:
    lines = _SOURCES.get(loc.file)
    if lines is None:
        try:
            lines = Path(loc.file).read_text(errors="replace").splitlines()
        except OSError:
            return None
        _SOURCES[loc.file] = lines
    if 1 <= loc.line <= len(lines):
        return lines[loc.line - 1]
    return None


class StapError(Exception):
    """One diagnostic. kind is "parse" or "semantic" (or another pass name)."""

    def __init__(self, kind: str, msg: str, loc: Optional[Loc] = None,
                 token: Optional[str] = None, notes: Iterable[str] = ()) -> None:
        super().__init__(msg)
        self.kind = kind
        self.msg = msg
        self.loc = loc
        self.token = token          # e.g. "identifier 'foo'", "operator '}'"
        self.notes = list(notes)    # e.g. "while resolving probe point ..."

    def render(self) -> str:
        if self.kind == "parse":
            return self._render_parse()
        return self._render_semantic()

    def _render_parse(self) -> str:
        out = [f"parse error: {self.msg}"]
        if self.loc is not None:
            what = self.token or "token"
            if self.token == "EOF":
                out.append(f"         saw: {self.loc.file} EOF")
            else:
                out.append(f"        at: {what} at {self.loc}")
            out.extend(self._quote("     source: "))
        return "\n".join(out + self.notes) + "\n"

    def _render_semantic(self) -> str:
        head = f"{self.kind} error: {self.msg}"
        if self.loc is not None:
            what = f"{self.token} at " if self.token else "at "
            head += f": {what}{self.loc}"
        out = [head]
        if self.loc is not None:
            out.extend(self._quote("        source: "))
        return "\n".join(out + self.notes) + "\n"

    def _quote(self, prefix: str) -> list[str]:
        assert self.loc is not None
        text = source_line(self.loc)
        if text is None:
            return []
        # Tabs would misplace the caret; stap expands them the same way.
        text = text.replace("\t", " ")
        return [prefix + text, " " * (len(prefix) + max(self.loc.col - 1, 0)) + "^"]

    def __str__(self) -> str:
        return self.render()


class StapErrors(Exception):
    """Several diagnostics from one pass, reported together."""

    def __init__(self, errors: list[StapError]) -> None:
        super().__init__(f"{len(errors)} errors")
        self.errors = errors

    def render(self) -> str:
        text = "".join(e.render() + "\n" for e in self.errors)
        n = len(self.errors)
        kind = self.errors[0].kind if self.errors else "parse"
        if kind == "parse":
            text += f"{n} parse error{'s' if n != 1 else ''}.\n"
        return text
