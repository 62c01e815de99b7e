"""Debug CLI: `python -m codegen.debuginfo VMLINUX FUNC...` prints stap -L style lines.

FUNC may be a wildcard (`vfs_*`).  The index is cached under
$XDG_CACHE_HOME/stapbuild/debuginfo/<build-id>.json.gz unless --index is given.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

from .btf import load_btf
from .elf_symbols import read_build_id
from .functions import lookup_functions, lookup_struct_member
from .kernel_index import load_or_build_index


def default_index_path(vmlinux: Path) -> Path:
    base = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache"))
    bid = read_build_id(vmlinux) or f"nobuildid-{vmlinux.name}"
    return base / "stapbuild" / "debuginfo" / f"{bid}.json.gz"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m codegen.debuginfo", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("vmlinux", type=Path, help="vmlinux with DWARF (or any BTF blob with --btf)")
    ap.add_argument("func", nargs="+", help="function name or wildcard; STRUCT.MEMBER with --member")
    ap.add_argument("--index", type=Path, help="index cache file (default: by build-id)")
    ap.add_argument("--btf", action="store_true", help="use BTF only (no DWARF)")
    ap.add_argument("--json", action="store_true", help="print FunctionInfo JSON")
    ap.add_argument("--member", action="store_true", help="args are 'struct.member' paths")
    ap.add_argument("--all", action="store_true", help="also show unprobeable clones")
    ap.add_argument("-v", "--verbose", action="store_true", help="timings on stderr")
    a = ap.parse_args(argv)

    t0 = time.perf_counter()
    status = 0
    if a.btf:
        btf = load_btf(a.vmlinux)
        for name in a.func:
            if a.member:
                s, _, m = name.partition(".")
                mi = btf.member(s, m)
                print(json.dumps(mi.to_json()) if mi else f"{name}: not found")
                continue
            fi = btf.function(name)
            if fi is None:
                print(f"{name}: not found in BTF", file=sys.stderr)
                status = 1
            else:
                print(json.dumps(fi.to_json(), indent=1) if a.json else fi.stap_listing())
        return status

    idx = load_or_build_index(a.vmlinux, a.index or default_index_path(a.vmlinux))
    if a.verbose:
        print(f"index: {time.perf_counter() - t0:.3f}s ({len(idx.functions)} functions)",
              file=sys.stderr)
    for name in a.func:
        t1 = time.perf_counter()
        if a.member:
            s, _, m = name.partition(".")
            mi = lookup_struct_member(a.vmlinux, idx, s, m)
            print(json.dumps(mi.to_json()) if mi else f"{name}: not found")
            continue
        infos = lookup_functions(a.vmlinux, idx, name)
        shown = [fi for fi in infos if fi.probeable or a.all]
        if not shown:
            why = f" (only unprobeable clones: {', '.join(fi.symbol or '' for fi in infos)})" \
                if infos else ""
            print(f"{name}: no match{why}", file=sys.stderr)
            status = 1
        for fi in shown:
            if a.json:
                print(json.dumps(fi.to_json(), indent=1))
            else:
                line = fi.stap_listing()
                if not fi.probeable:
                    line += f"   # not probeable: {fi.symbol}"
                print(line)
        if a.verbose:
            print(f"{name}: {time.perf_counter() - t1:.3f}s", file=sys.stderr)
    return status


if __name__ == "__main__":
    sys.exit(main())
