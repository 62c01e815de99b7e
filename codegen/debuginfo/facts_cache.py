"""Resolved kernel facts, kept across runs: "resolve lazily, cache what was
resolved".

The index (kernel_index) says which CU holds a function; reading that
CU's DIEs still costs 0.05-0.3 s per CU with pyelftools.  The answer (a
FunctionInfo as JSON) is small and depends only on the vmlinux, so it is
stored per kernel build-id in SQLite: the second script that probes
vfs_read, or the second `-L 'kernel.function("vfs_*")'`, reads no DWARF at
all.  SQLite because parallel builds (doit -n, pytest -n) share the file.
"""
from __future__ import annotations

import hashlib
import json
import sqlite3
from functools import lru_cache
from pathlib import Path
from typing import Optional

# Bump when FunctionInfo's JSON (or how it is computed) changes meaning.
FACTS_FORMAT = 3

_MISSING = object()


@lru_cache(maxsize=None)
def reader_digest() -> str:
    """Digest of the DWARF/BTF readers' source: an answer computed by other
    code is not trusted."""
    h = hashlib.sha256()
    for p in sorted(Path(__file__).parent.glob("*.py")):
        h.update(p.name.encode() + b"\0" + p.read_bytes())
    return h.hexdigest()[:16]


class FactsCache:
    def __init__(self, path: Path, build_id: Optional[str]) -> None:
        self.path = Path(path)
        self.tag = f"{FACTS_FORMAT}:{build_id}:{reader_digest()}"
        self._db: Optional[sqlite3.Connection] = None
        self._broken = False

    def _conn(self) -> Optional[sqlite3.Connection]:
        if self._db is None and not self._broken:
            try:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                db = sqlite3.connect(str(self.path), timeout=30, isolation_level=None)
                db.execute("CREATE TABLE IF NOT EXISTS facts "
                           "(tag TEXT, kind TEXT, name TEXT, json TEXT, "
                           "PRIMARY KEY (tag, kind, name))")
                self._db = db
            except sqlite3.Error:
                self._broken = True     # a cache, never a reason to fail
        return self._db

    def get(self, kind: str, name: str) -> object:
        """The cached JSON value, or _MISSING."""
        db = self._conn()
        if db is None:
            return _MISSING
        try:
            row = db.execute("SELECT json FROM facts WHERE tag=? AND kind=? AND name=?",
                             (self.tag, kind, name)).fetchone()
        except sqlite3.Error:
            return _MISSING
        return _MISSING if row is None else json.loads(row[0])

    def get_many(self, kind: str, names: list[str]) -> dict[str, object]:
        db = self._conn()
        out: dict[str, object] = {}
        if db is None or not names:
            return out
        try:
            for i in range(0, len(names), 500):
                chunk = names[i:i + 500]
                q = ",".join("?" * len(chunk))
                for n, j in db.execute(f"SELECT name, json FROM facts WHERE tag=? AND kind=? "
                                       f"AND name IN ({q})", (self.tag, kind, *chunk)):
                    out[n] = json.loads(j)
        except sqlite3.Error:
            pass
        return out

    def put(self, kind: str, name: str, value: object) -> None:
        db = self._conn()
        if db is None:
            return
        try:
            db.execute("INSERT OR REPLACE INTO facts VALUES (?, ?, ?, ?)",
                       (self.tag, kind, name, json.dumps(value, separators=(",", ":"))))
        except sqlite3.Error:
            pass


MISSING = _MISSING
