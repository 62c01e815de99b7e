"""``stapbuild cache stats`` and ``stapbuild cache gc --max-size SIZE``.

The store only grows while you build; gc removes the least recently used
artifacts until the store fits, and then the refs that named them, so doit
rebuilds exactly what was removed the next time it is needed.
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

from stapbuild import store

_UNITS = {"": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}


def parse_size(text: str) -> int:
    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([KMGT]?)i?B?\s*", text, re.I)
    if not m:
        raise ValueError(f"bad size {text!r} (use e.g. 500M, 2G)")
    return int(float(m.group(1)) * _UNITS[m.group(2).upper()])


def human(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} GiB"


@dataclass
class Entry:
    path: Path
    size: int
    used: float          # last access or modification, whichever is later


def artifacts() -> list[Entry]:
    """Every stored artifact (with its digest sidecar counted in its size)."""
    root = store.artifacts_root() / "store"
    out = []
    if not root.is_dir():
        return out
    for p in root.rglob("*"):
        if not p.is_file() or p.name.startswith(".") or p.name.endswith(".sha256"):
            continue
        st = p.stat()
        side = store.digest_path(p)
        size = st.st_size + (side.stat().st_size if side.exists() else 0)
        out.append(Entry(p, size, max(st.st_atime, st.st_mtime)))
    return out


def stats() -> dict:
    root = store.artifacts_root() / "store"
    by_kind: dict[str, dict[str, int]] = {}
    for e in artifacts():
        kind = e.path.relative_to(root).parts[0]
        k = by_kind.setdefault(kind, {"count": 0, "bytes": 0})
        k["count"] += 1
        k["bytes"] += e.size
    refs_root = store.artifacts_root() / "refs"
    refs = [r for r in refs_root.rglob("*.json") if not r.name.endswith(".inputs.json")] \
        if refs_root.is_dir() else []
    return {"root": str(store.artifacts_root()), "kinds": by_kind,
            "count": sum(k["count"] for k in by_kind.values()),
            "bytes": sum(k["bytes"] for k in by_kind.values()), "refs": len(refs)}


def gc(max_size: int) -> dict:
    entries = sorted(artifacts(), key=lambda e: e.used)
    total = sum(e.size for e in entries)
    removed, freed = 0, 0
    for e in entries:
        if total <= max_size:
            break
        for p in (e.path, store.digest_path(e.path)):
            try:
                p.unlink()
            except FileNotFoundError:
                pass
        total -= e.size
        freed += e.size
        removed += 1
    dropped_refs = 0
    refs_root = store.artifacts_root() / "refs"
    if refs_root.is_dir():
        for ref in refs_root.rglob("*.json"):
            if ref.name.endswith(".inputs.json"):
                continue
            try:
                doc = json.loads(ref.read_text())
            except (OSError, ValueError):
                continue
            if "artifact" in doc and not (store.artifacts_root() / doc["artifact"]).exists():
                ref.unlink()
                dropped_refs += 1
    return {"removed": removed, "freed": freed, "remaining": total, "dropped_refs": dropped_refs}


def main(argv: list[str]) -> int:
    import argparse
    import sys
    ap = argparse.ArgumentParser(prog="stapbuild cache")
    sub = ap.add_subparsers(dest="cmd", required=True)
    sub.add_parser("stats", help="what the artifact store holds")
    g = sub.add_parser("gc", help="remove least recently used artifacts")
    g.add_argument("--max-size", required=True, help="e.g. 500M, 2G")
    ap.add_argument("--json", action="store_true", help="print JSON")
    args = ap.parse_args(argv)
    if args.cmd == "stats":
        doc = stats()
        if args.json:
            print(json.dumps(doc, sort_keys=True))
        else:
            print(f"store: {doc['root']}")
            for kind, k in sorted(doc["kinds"].items()):
                print(f"  {kind:14} {k['count']:6} artifacts {human(k['bytes']):>12}")
            print(f"  {'total':14} {doc['count']:6} artifacts {human(doc['bytes']):>12}"
                  f"   ({doc['refs']} refs)")
        return 0
    try:
        limit = parse_size(args.max_size)
    except ValueError as e:
        sys.stderr.write(f"stapbuild cache: {e}\n")
        return 1
    doc = gc(limit)
    if args.json:
        print(json.dumps(doc, sort_keys=True))
    else:
        print(f"removed {doc['removed']} artifacts ({human(doc['freed'])}), "
              f"{human(doc['remaining'])} remain; {doc['dropped_refs']} refs dropped")
    return 0


if __name__ == "__main__":
    import sys
    sys.exit(main(sys.argv[1:]))
