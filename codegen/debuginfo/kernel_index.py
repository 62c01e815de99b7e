"""Per-kernel function index: symtab + .debug_aranges, cached as gzip JSON.

Why this shape: walking every DIE of a Debian vmlinux with pyelftools costs
~73 s and ~850 MiB.  Symbol addresses + aranges (address -> CU offset) cost
well under a second and are enough to jump straight to the one CU that
holds a function; the DIE itself is then found by scanning that CU's
top-level children (~30 ms).  Structs are not indexed (see functions.py).
"""

from __future__ import annotations

import bisect
import fnmatch
import gzip
import json
import os
import re
import struct
import sys
import marshal
import tempfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from .elf_symbols import ElfImage, read_function_symbols

# Bump when the JSON layout or its meaning changes; old caches get rebuilt.
INDEX_FORMAT = 1

# GCC's out-of-line copies: foo.isra.0, foo.constprop.0, foo.part.0,
# foo.cold, foo.cold.12, foo.localalias...  SystemTap never offers them as
# probe points.  We keep them apart so that `foo` can still be explained.
_CLONE_RE = re.compile(r"^(?P<base>[^.]+)\.(?P<kind>isra|constprop|part|cold|localalias|lto_priv|llvm)(\.|$)")

# Symbols that are not functions a user can name: ftrace/CFI padding
# prefixes (6.x kernels emit __pfx_<fn> 16 bytes before each function).
_SKIP_PREFIXES = ("__pfx_", "__cfi_")


@dataclass(frozen=True)
class FunctionEntry:
    name: str        # symtab name (may be a clone name such as foo.isra.0)
    address: int     # st_value
    size: int        # st_size
    cu_offset: int   # .debug_info offset of the CU header


class _Functions(Mapping):
    """name -> [FunctionEntry], built from columns on demand: a kernel has
    ~150k function symbols and a script asks about a handful, so loading
    the index must not create 150k objects (that alone took 0.2-0.4 s)."""

    def __init__(self, names: list, addrs: list, sizes: list, cus: list) -> None:
        self._cols = (names, addrs, sizes, cus)
        rows: dict[str, object] = {}
        for i, n in enumerate(names):
            have = rows.get(n)
            if have is None:
                rows[n] = i
            elif isinstance(have, list):
                have.append(i)
            else:
                rows[n] = [have, i]
        self._rows = rows

    def __getitem__(self, name: str) -> list[FunctionEntry]:
        r = self._rows[name]
        names, addrs, sizes, cus = self._cols
        return [FunctionEntry(names[i], addrs[i], sizes[i], cus[i])
                for i in (r if isinstance(r, list) else [r])]

    def __iter__(self):  # type: ignore[no-untyped-def]
        return iter(self._rows)

    def __len__(self) -> int:
        return len(self._rows)

    def __contains__(self, name: object) -> bool:
        return name in self._rows

    def columns(self) -> tuple[list, list, list, list]:
        return self._cols


@dataclass
class KernelIndex:
    build_id: str | None
    vmlinux_size: int
    # name -> entries (one per distinct static definition)
    functions: dict[str, list[FunctionEntry]]
    # base name -> clone symbol names (foo -> [foo.isra.0, foo.cold])
    clones: dict[str, list[str]] = field(default_factory=dict)
    # function symbols that have no DWARF CU (assembly, generated stubs)
    no_dwarf: list[str] = field(default_factory=list)
    # Sorted [start, end, cu_offset] from .debug_aranges, for address -> CU.
    aranges: list[tuple[int, int, int]] = field(default_factory=list)

    def lookup(self, name: str) -> list[FunctionEntry]:
        return self.functions[name] if name in self.functions else []

    def match(self, pattern: str) -> list[str]:
        """Names matching a stap-style wildcard, clones excluded (as stap does)."""
        if not any(c in pattern for c in "*?["):
            return [pattern] if pattern in self.functions else []
        return sorted(n for n in fnmatch.filter(self.functions.keys(), pattern)
                      if not _CLONE_RE.match(n))

    def cu_for_address(self, addr: int) -> int | None:
        return cu_for_address(self.aranges, addr)

    # -- (de)serialisation: columns, not objects, to keep the file small --
    def to_json(self) -> dict:
        if isinstance(self.functions, _Functions):
            names, addrs, sizes, cus = self.functions.columns()
        else:
            names, addrs, sizes, cus = [], [], [], []
            for n, entries in self.functions.items():
                for e in entries:
                    names.append(n)
                    addrs.append(e.address)
                    sizes.append(e.size)
                    cus.append(e.cu_offset)
        return {
            "format": INDEX_FORMAT,
            "build_id": self.build_id,
            "vmlinux_size": self.vmlinux_size,
            "functions": {"name": names, "address": addrs, "size": sizes, "cu": cus},
            "clones": self.clones,
            "no_dwarf": self.no_dwarf,
            "aranges": [list(a) for a in self.aranges],
        }

    @classmethod
    def from_json(cls, d: dict) -> "KernelIndex":
        f = d["functions"]
        funcs = _Functions(f["name"], f["address"], f["size"], f["cu"])
        return cls(d["build_id"], d["vmlinux_size"], funcs, d.get("clones", {}),  # type: ignore[arg-type]
                   d.get("no_dwarf", []), [tuple(a) for a in d.get("aranges", [])])


def cu_for_address(aranges: list[tuple[int, int, int]], addr: int) -> int | None:
    i = bisect.bisect_right(aranges, (addr, float("inf"), 0)) - 1
    if i >= 0 and aranges[i][0] <= addr < aranges[i][1]:
        return aranges[i][2]
    return None


def parse_aranges(data: bytes) -> list[tuple[int, int, int]]:
    """Raw .debug_aranges parser -> sorted [(start, end, cu_offset)].

    pyelftools has one too, but it needs get_dwarf_info(), which copies
    every debug section into memory (~350 MiB, 0.3 s) first.
    """
    out: list[tuple[int, int, int]] = []
    pos, n = 0, len(data)
    while pos + 4 <= n:
        unit_len, = struct.unpack_from("<I", data, pos)
        if unit_len == 0xFFFFFFFF:
            unit_len, = struct.unpack_from("<Q", data, pos + 4)
            hdr, off_fmt, off_size = pos + 12, "<Q", 8
        else:
            hdr, off_fmt, off_size = pos + 4, "<I", 4
        end = hdr + unit_len
        # version(2) debug_info_offset addr_size(1) seg_size(1)
        cu_off, = struct.unpack_from(off_fmt, data, hdr + 2)
        addr_size = data[hdr + 2 + off_size]
        seg_size = data[hdr + 3 + off_size]
        if addr_size != 8 or seg_size != 0:
            raise ValueError(f"unsupported aranges set at {pos:#x}")
        # Tuples start aligned to 2*addr_size from the start of the set.
        t = hdr + 4 + off_size
        t = pos + (((t - pos) + 15) & ~15)
        while t + 16 <= end:
            a, ln = struct.unpack_from("<QQ", data, t)
            t += 16
            if a == 0 and ln == 0:
                break
            if ln:
                out.append((a, a + ln, cu_off))
        pos = end
    out.sort()
    return out


def build_index(vmlinux: Path) -> KernelIndex:
    with ElfImage(vmlinux) as img:
        syms = read_function_symbols(img)
        ar_bytes = img.section_bytes(".debug_aranges")
        if ar_bytes is None:
            raise ValueError(f"{vmlinux}: no .debug_aranges; cannot index "
                             "(use the BTF fallback)")
        aranges = parse_aranges(ar_bytes)
        build_id = img.build_id()
    index = index_functions(build_id, vmlinux.stat().st_size, syms.by_name, aranges)
    # Merge adjacent ranges of the same CU: halves the stored aranges.
    merged: list[tuple[int, int, int]] = []
    for a in aranges:
        if merged and merged[-1][2] == a[2] and merged[-1][1] == a[0]:
            merged[-1] = (merged[-1][0], a[1], a[2])
        else:
            merged.append(a)
    index.aranges = merged
    return index


def index_functions(build_id: str, size: int, spans_by_name: dict[str, list[tuple[int, int]]],
                    aranges: list[tuple[int, int, int]]) -> KernelIndex:
    """The KernelIndex of an object's function symbols (name -> [(address,
    size)]): each mapped to its CU through the aranges; clones (.isra,
    .constprop...) grouped under their base name; symbols no CU covers
    listed as having no DWARF. vmlinux and a module's .ko alike."""
    functions: dict[str, list[FunctionEntry]] = {}
    clones: dict[str, list[str]] = {}
    no_dwarf: list[str] = []
    for name, spans in spans_by_name.items():
        if name.startswith(_SKIP_PREFIXES):
            continue
        entries = [FunctionEntry(name, a, sz, cu) for a, sz in spans
                   if (cu := cu_for_address(aranges, a)) is not None]
        if not entries:
            no_dwarf.append(name)
            continue
        functions[name] = entries
        m = _CLONE_RE.match(name)
        if m:
            clones.setdefault(m.group("base"), []).append(name)
    return KernelIndex(build_id, size, functions,
                       {k: sorted(v) for k, v in clones.items()}, sorted(no_dwarf), aranges)


def load_or_build_index(vmlinux: Path, cache_file: Path,
                        builder: Callable[[Path], KernelIndex] | None = None) -> KernelIndex:
    """Load the cached index if it belongs to this vmlinux, else (re)build it.

    Validity is keyed on the GNU build-id (read from the ELF notes, ~1 ms)
    plus the file size, never on mtime: a re-extracted identical vmlinux
    must not trigger a rebuild.  `builder` makes the index of another kind
    of object (a module's debug .ko: module_dwarf.build_module_index).
    """
    vmlinux, cache_file = Path(vmlinux), Path(cache_file)
    with ElfImage(vmlinux) as img:
        build_id = img.build_id()
    size = vmlinux.stat().st_size
    # A marshal copy loads in ~20 ms where the portable gzip JSON takes
    # ~0.2 s; it is only ever a copy, checked like the JSON.
    fast = cache_file.with_name(cache_file.name + f".py{sys.version_info[0]}{sys.version_info[1]}.marshal")
    try:
        d = marshal.loads(fast.read_bytes())
        if (d.get("format") == INDEX_FORMAT and d.get("build_id") == build_id
                and d.get("vmlinux_size") == size):
            return KernelIndex.from_json(d)
    except (OSError, ValueError, EOFError, TypeError, AttributeError):
        pass
    idx = _load_or_build_json(vmlinux, cache_file, build_id, size, builder or build_index)
    _atomic_write(fast, marshal.dumps(idx.to_json()))
    return idx


def _atomic_write(path: Path, data: bytes) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name + ".")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise


def _load_or_build_json(vmlinux: Path, cache_file: Path, build_id: str | None,
                        size: int, builder: Callable[[Path], KernelIndex]) -> KernelIndex:
    if cache_file.exists():
        try:
            with gzip.open(cache_file, "rt") as f:
                d = json.load(f)
            if (d.get("format") == INDEX_FORMAT and d.get("build_id") == build_id
                    and d.get("vmlinux_size") == size):
                return KernelIndex.from_json(d)
        except (OSError, ValueError, KeyError, EOFError):
            pass  # corrupt or truncated cache: rebuild below
    idx = builder(vmlinux)
    cache_file.parent.mkdir(parents=True, exist_ok=True)
    # Atomic write: a killed build must not leave a half index behind.
    fd, tmp = tempfile.mkstemp(dir=cache_file.parent, prefix=cache_file.name + ".")
    try:
        with os.fdopen(fd, "wb") as raw, gzip.GzipFile(fileobj=raw, mode="wb", compresslevel=6, mtime=0) as gz:
            gz.write(json.dumps(idx.to_json(), separators=(",", ":")).encode())
        os.replace(tmp, cache_file)
    except BaseException:
        os.unlink(tmp)
        raise
    return idx
