"""``stapbuild --json``: everything a run says, as JSON lines.

One JSON object per line (UTF-8, no pretty-printing), each with a ``type``:

    {"type": "output",  "text": "...", "ts": 1732780000.123}
        one line of the script's output (print, printf ...), without its
        newline; a last line the script left unterminated has "partial": true
    {"type": "warning", "text": "WARNING: ...", "pass": N, "ts": ...}
    {"type": "error",   "text": "...", "pass": N, "ts": ...}
        a diagnostic: pass 1-4 errors (parse/semantic errors keep their
        stap text, several lines in one object), the module's ERROR:/WARNING:
        lines in pass 5, and "Pass N: ... failed." lines
    {"type": "message", "text": "...", "pass": N, "ts": ...}
        any other stderr line (verbose pass lines, "Keeping temporary
        directory", the module's other channel-2 text)
    {"type": "pass", "pass": N, "name": "parse|elaborate|translate|compile|run",
     "ok": true, "cached": false, "usr_ms": 12, "sys_ms": 3, "real_ms": 40, "ts": ...}
        one per pass that ran (ok false for the pass that failed)
    {"type": "exit", "status": 0, "ts": ...}
        always the last object: the command's exit status

``ts`` is the wall-clock time in seconds when the line was seen: by
stapbuild, or for pass-5 lines by the runner (in a guest, the guest's
clock, which virtme sets from the host's). Fields may be added in later
versions; none will be removed or change meaning ("schema": 1 is implied).

This module imports only the standard library: it runs inside the guest
(``python3 -S``), where the runner itself writes the JSON lines.
"""
from __future__ import annotations

import io
import json
import re
import sys
import threading
import time
from typing import Any, BinaryIO, Optional, TextIO

PASS_NAMES = {1: "parse", 2: "elaborate", 3: "translate", 4: "compile", 5: "run"}


_ERROR_RE = re.compile(r"ERROR:|[a-z]+ error: |Pass \d: .* failed\.")


def classify(line: str) -> str:
    """The type of one stderr line (or block), by stap's prefixes."""
    if line.startswith("WARNING:"):
        return "warning"
    if _ERROR_RE.match(line):
        return "error"
    return "message"


class JsonLines:
    """A thread-safe writer of one JSON object per line."""

    def __init__(self, sink: "Optional[TextIO | BinaryIO]" = None):
        self.sink = sink if sink is not None else sys.stdout
        # Binary sinks too: the runner's streams are binary, and wrapping one
        # in a TextIOWrapper would close it when the wrapper is collected.
        self._binary = not isinstance(self.sink, io.TextIOBase)
        self._lock = threading.Lock()

    def emit(self, type_: str, **fields: Any) -> None:
        doc = {"type": type_, **fields, "ts": round(time.time(), 6)}
        line = json.dumps(doc, ensure_ascii=False, separators=(",", ":")) + "\n"
        with self._lock:
            self.sink.write(line.encode() if self._binary else line)  # type: ignore[arg-type]
            self.sink.flush()

    def text(self, text: str, pass_no: Optional[int] = None) -> None:
        """Diagnostics text (one or more lines) as classified objects.
        A stap error block (message, then indented source/caret lines) stays
        one object; separate WARNING:/ERROR: lines become separate objects."""
        block: list[str] = []

        def flush() -> None:
            if block:
                joined = "\n".join(block)
                extra = {"pass": pass_no} if pass_no is not None else {}
                self.emit(classify(joined), text=joined, **extra)
                block.clear()

        for line in text.splitlines():
            if not line.strip():
                flush()
                continue
            # Continuation lines of an error block are indented ("  source: ").
            if block and (line.startswith(" ") or line.startswith("\t")):
                block.append(line)
                continue
            flush()
            block.append(line)
        flush()


class LineStream:
    """A binary stream (what the runner writes to) that turns each line of
    the bytes written into one JSON object.

    kind "output": every line is an output object. kind "stderr": lines are
    classified (warning/error/message). A partial last line is held until
    its newline arrives, or until close()."""

    def __init__(self, out: JsonLines, kind: str, pass_no: int = 5,
                 drop_warnings: bool = False):
        self.out, self.kind, self.pass_no = out, kind, pass_no
        self.drop_warnings = drop_warnings
        self._buf = b""

    def write(self, data: bytes) -> int:
        self._buf += data
        *lines, self._buf = self._buf.split(b"\n")
        for raw in lines:
            self._line(raw.decode("utf-8", "replace"), partial=False)
        return len(data)

    def _line(self, text: str, partial: bool) -> None:
        if self.kind == "output":
            extra = {"partial": True} if partial else {}
            self.out.emit("output", text=text, **extra)
            return
        t = classify(text)
        if t == "warning" and self.drop_warnings:
            return
        self.out.emit(t, text=text, **{"pass": self.pass_no})

    def flush(self) -> None:
        pass

    def close(self) -> None:
        if self._buf:
            self._line(self._buf.decode("utf-8", "replace"), partial=True)
            self._buf = b""


class WarningFilter:
    """stap -w for plain (non-JSON) output: drop the module's WARNING: lines
    from a binary stream, pass everything else through unchanged."""

    def __init__(self, inner: BinaryIO):
        self.inner = inner
        self._buf = b""

    def write(self, data: bytes) -> int:
        self._buf += data
        *lines, self._buf = self._buf.split(b"\n")
        keep = [l + b"\n" for l in lines if not l.startswith(b"WARNING:")]
        if keep:
            self.inner.write(b"".join(keep))
        return len(data)

    def flush(self) -> None:
        self.inner.flush()

    def close(self) -> None:
        if self._buf and not self._buf.startswith(b"WARNING:"):
            self.inner.write(self._buf)
        self._buf = b""
        self.inner.flush()
