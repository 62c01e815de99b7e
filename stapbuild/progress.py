"""Progress for long work: a line per event on stderr, or JSON lines.

Provisioning a kernel (a 1 GB download and an unpack), and matrix builds
and boots, take long enough that users want to see them move. With
``STAPBUILD_JSON=1`` (``--json`` on the command line, ``json=1`` for doit)
every event is one JSON object per line for CI and log shippers.
"""
from __future__ import annotations

import json
import os
import sys
import time
from typing import Any


def json_mode() -> bool:
    return os.environ.get("STAPBUILD_JSON", "") not in ("", "0")


def event(kind: str, **fields: Any) -> None:
    """Report one step: e.g. event("provision", kernel=K, part="dbg", state="done")."""
    if json_mode():
        doc = {"event": kind, "time": round(time.time(), 3), **fields}
        sys.stderr.write(json.dumps(doc, sort_keys=True) + "\n")
    else:
        detail = " ".join(f"{k}={v}" for k, v in fields.items())
        sys.stderr.write(f"stapbuild: {kind} {detail}\n")
    sys.stderr.flush()


def _doit_reporter():
    from doit.reporter import ConsoleReporter

    class JsonLinesReporter(ConsoleReporter):
        """doit task events as JSON lines (doit's own json reporter prints
        one document at the very end, which is no use for progress)."""
        desc = "JSON lines, one per task event"

        def initialize(self, tasks, selected_tasks):
            self._total = len([t for t in tasks.values() if t.actions])
            self._done = 0

        def _emit(self, state: str, task, **extra: Any) -> None:
            if not task.actions or task.name.startswith("_"):
                return
            doc = {"event": "task", "task": task.name, "state": state,
                   "done": self._done, "total": self._total, "time": round(time.time(), 3)}
            doc.update(extra)
            self.outstream.write(json.dumps(doc, sort_keys=True) + "\n")
            self.outstream.flush()

        def execute_task(self, task):
            self._emit("running", task)

        def add_success(self, task):
            self._done += 1
            self._emit("ok", task)

        def add_failure(self, task, fail):
            self._done += 1
            self.failures.append({"task": task, "exception": fail})
            self._emit("failed", task, error=fail.get_msg()[-2000:])

        def skip_uptodate(self, task):
            self._done += 1
            self._emit("up-to-date", task)

        def skip_ignore(self, task):
            self._emit("ignored", task)

        def complete_run(self):
            for msg in self.runtime_errors:
                self.outstream.write(json.dumps({"event": "error", "message": msg}) + "\n")

    return JsonLinesReporter


def json_reporter():
    return _doit_reporter()
