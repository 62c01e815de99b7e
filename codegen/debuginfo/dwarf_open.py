"""Open a vmlinux's DWARF with pyelftools without copying the sections.

`ELFFile.get_dwarf_info()` copies every debug section into a BytesIO
(0.3 s and ~350 MiB RSS for the Debian 6.1 vmlinux), and by default also
"applies" 12.7 M already-applied relocations (~19 min).  We build the
DWARFInfo ourselves over mmap-backed streams: an elaboration touches one
CU, so only the pages it reads become resident.
"""

from __future__ import annotations

import mmap
from pathlib import Path

from elftools.dwarf.dwarfinfo import DebugSectionDescriptor, DwarfConfig, DWARFInfo

from .elf_symbols import ElfImage

_SECTIONS = {
    "debug_info_sec": ".debug_info", "debug_aranges_sec": ".debug_aranges",
    "debug_abbrev_sec": ".debug_abbrev", "debug_frame_sec": ".debug_frame",
    "eh_frame_sec": ".eh_frame", "debug_str_sec": ".debug_str",
    "debug_loc_sec": ".debug_loc", "debug_ranges_sec": ".debug_ranges",
    "debug_line_sec": ".debug_line", "debug_pubtypes_sec": ".debug_pubtypes",
    "debug_pubnames_sec": ".debug_pubnames", "debug_addr_sec": ".debug_addr",
    "debug_str_offsets_sec": ".debug_str_offsets", "debug_line_str_sec": ".debug_line_str",
    "debug_loclists_sec": ".debug_loclists", "debug_rnglists_sec": ".debug_rnglists",
    "debug_sup_sec": ".debug_sup", "gnu_debugaltlink_sec": ".gnu_debugaltlink",
    "debug_types_sec": ".debug_types",
}

SHF_COMPRESSED = 0x800


class SectionStream:
    """File-like view of one section inside a file mmap.

    Each section gets its own mmap object (its own file position), so that
    `read` can be the C-level `mmap.read` directly; only seek/tell need a
    Python-level offset translation.  construct calls read() far more often
    than seek(), which keeps DIE parsing at BytesIO speed.
    """

    def __init__(self, fileno: int, base: int, size: int) -> None:
        self._mm = mmap.mmap(fileno, 0, access=mmap.ACCESS_READ)
        self._base = base
        self.size = size
        self.read = self._mm.read  # type: ignore[method-assign]
        self._mm.seek(base)

    def seek(self, pos: int, whence: int = 0) -> int:
        if whence == 0:
            self._mm.seek(self._base + pos)
        elif whence == 1:
            self._mm.seek(pos, 1)
        else:
            self._mm.seek(self._base + self.size + pos)
        return self._mm.tell() - self._base

    def tell(self) -> int:
        return self._mm.tell() - self._base

    def getvalue(self) -> bytes:  # used by a few construct adapters
        return self._mm[self._base:self._base + self.size]


_cache: dict[str, tuple[ElfImage, DWARFInfo]] = {}


def open_dwarf(path: Path) -> DWARFInfo:
    """DWARFInfo for an ET_EXEC vmlinux (no relocation) or a module's ET_REL
    debug .ko (relocated), cached per process."""
    key = str(Path(path).resolve())
    hit = _cache.get(key)
    if hit is not None:
        return hit[1]
    img = ElfImage(Path(path))
    if ".debug_info" not in img.sections:
        raise FileNotFoundError(f"{path}: no .debug_info (use the BTF fallback)")
    from .module_dwarf import is_relocatable, relocatable_dwarf
    if is_relocatable(img):
        # A module's debug .ko: its debug sections need their relocations
        # applied (small files, so in memory; see module_dwarf).
        dw = relocatable_dwarf(img, _SECTIONS)
        _cache[key] = (img, dw)
        return dw
    fileno = img._f.fileno()
    kwargs: dict[str, DebugSectionDescriptor | None] = {}
    for arg, name in _SECTIONS.items():
        s = img.sections.get(name)
        if s is None:
            kwargs[arg] = None
            continue
        if s.flags & SHF_COMPRESSED:
            # Debian ships uncompressed; zstd (CONFIG_DEBUG_INFO_COMPRESSED_ZSTD)
            # is unsupported by pyelftools anyway.
            raise NotImplementedError(f"{path}: compressed {name}; run "
                                      "objcopy --decompress-debug-sections first")
        kwargs[arg] = DebugSectionDescriptor(
            stream=SectionStream(fileno, s.offset, s.size), name=name,
            global_offset=s.offset, size=s.size, address=s.addr)
    dw = DWARFInfo(config=DwarfConfig(little_endian=True, default_address_size=8,
                                      machine_arch="x64"), **kwargs)  # type: ignore[arg-type]
    _cache[key] = (img, dw)
    return dw
