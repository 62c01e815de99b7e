"""DWARF of a kernel module's debug .ko (an ET_REL object).

A .ko is not linked: every SHF_ALLOC section (.text, .text.unlikely,
.init.text, ...) starts at address 0, and the debug sections refer to code,
strings and line programs through relocations (.rela.debug_info, ...).
The rest of codegen/debuginfo reads addresses as if from a linked image
(a function's DIE is found by its symbol's address), so this module lays
the sections out at distinct synthetic addresses and applies the debug
relocations against that layout.  Symbols, DW_AT_low_pc, location lists
and aranges then agree, and the vmlinux machinery (functions.py,
types.py, dwarf_locations.py) works on the module unchanged.  Probes use
"module:symbol", never these addresses, so the layout need not match the
kernel's.

pyelftools can relocate ET_REL debug sections itself, but one entry at a
time through construct (~0.1 ms each; loop.ko has ~20k); the struct loop
below does the same in a few milliseconds.
"""

from __future__ import annotations

import io
import struct
from pathlib import Path

from elftools.dwarf.dwarfinfo import DebugSectionDescriptor, DwarfConfig, DWARFInfo

from .elf_symbols import STT_FUNC, SHN_UNDEF, ElfImage
from .kernel_index import KernelIndex, index_functions, parse_aranges

ET_REL = 1
SHF_ALLOC = 0x2
SHN_ABS = 0xFFF1
# Synthetic layout: the first section at 4 KiB (so no function is at 0),
# each next one 4 KiB-aligned after the previous.
_LAYOUT_START = 0x1000
_LAYOUT_ALIGN = 0x1000

R_X86_64_NONE, R_X86_64_64, R_X86_64_PC32, R_X86_64_32, R_X86_64_32S = 0, 1, 2, 10, 11
R_X86_64_PC64 = 24


def is_relocatable(img: ElfImage) -> bool:
    e_type, = struct.unpack_from("<H", img.data, 16)
    return e_type == ET_REL


def section_bases(img: ElfImage) -> dict[int, int]:
    """Section index -> synthetic load address, for SHF_ALLOC sections."""
    bases: dict[int, int] = {}
    addr = _LAYOUT_START
    for s in sorted(img.sections.values(), key=lambda s: s.index):
        if s.flags & SHF_ALLOC and s.index:
            bases[s.index] = addr
            addr = (addr + s.size + _LAYOUT_ALIGN) // _LAYOUT_ALIGN * _LAYOUT_ALIGN
    return bases


def _symbol_values(img: ElfImage, bases: dict[int, int]) -> list[int]:
    """Every .symtab entry's value in the synthetic layout (section-relative
    values plus their section's base; absolute and undefined kept as is)."""
    symtab = img.sections[".symtab"]
    raw = img.data[symtab.offset:symtab.offset + symtab.size]
    out = []
    for _n, _info, _other, shndx, value, _size in struct.iter_unpack("<IBBHQQ", raw):
        out.append(value + bases.get(shndx, 0) if shndx not in (SHN_UNDEF, SHN_ABS) else value)
    return out


def relocated_section(img: ElfImage, name: str, bases: dict[int, int],
                      values: list[int]) -> bytes | None:
    """Section NAME's bytes with its .rela section applied (None if absent)."""
    data = img.section_bytes(name)
    if data is None:
        return None
    rela = img.sections.get(".rela" + name)
    if rela is None:
        return data
    target = img.sections[name]
    buf = bytearray(data)
    raw = img.data[rela.offset:rela.offset + rela.size]
    for r_offset, r_info, addend in struct.iter_unpack("<QQq", raw):
        rtype, sym = r_info & 0xFFFFFFFF, r_info >> 32
        s = values[sym] if sym else 0
        if rtype == R_X86_64_64:
            struct.pack_into("<Q", buf, r_offset, (s + addend) & 0xFFFFFFFFFFFFFFFF)
        elif rtype in (R_X86_64_32, R_X86_64_32S):
            struct.pack_into("<I", buf, r_offset, (s + addend) & 0xFFFFFFFF)
        elif rtype == R_X86_64_PC32:
            p = bases.get(target.index, 0) + r_offset
            struct.pack_into("<I", buf, r_offset, (s + addend - p) & 0xFFFFFFFF)
        elif rtype == R_X86_64_PC64:
            p = bases.get(target.index, 0) + r_offset
            struct.pack_into("<Q", buf, r_offset, (s + addend - p) & 0xFFFFFFFFFFFFFFFF)
        elif rtype != R_X86_64_NONE:
            raise ValueError(f"{img.path}: relocation type {rtype} in {name} "
                             "is not supported")
    return bytes(buf)


def relocatable_dwarf(img: ElfImage, section_args: dict[str, str]) -> DWARFInfo:
    """A DWARFInfo over the relocated debug sections of an ET_REL object
    (section_args: DWARFInfo keyword -> section name, as dwarf_open uses)."""
    bases = section_bases(img)
    values = _symbol_values(img, bases)
    kwargs: dict[str, DebugSectionDescriptor | None] = {}
    for arg, name in section_args.items():
        data = relocated_section(img, name, bases, values)
        if data is None:
            kwargs[arg] = None
            continue
        s = img.sections[name]
        kwargs[arg] = DebugSectionDescriptor(stream=io.BytesIO(data), name=name,
                                             global_offset=s.offset, size=len(data),
                                             address=0)
    return DWARFInfo(config=DwarfConfig(little_endian=True, default_address_size=8,
                                        machine_arch="x64"), **kwargs)  # type: ignore[arg-type]


def build_module_index(ko: Path) -> KernelIndex:
    """The KernelIndex of a module's debug .ko: its function symbols at
    their synthetic addresses, each mapped to its CU through the relocated
    .debug_aranges (the same shape as a vmlinux's index)."""
    with ElfImage(Path(ko)) as img:
        if not is_relocatable(img):
            raise ValueError(f"{ko}: not a relocatable module object")
        bases = section_bases(img)
        values = _symbol_values(img, bases)
        ar = relocated_section(img, ".debug_aranges", bases, values)
        if ar is None:
            raise ValueError(f"{ko}: no .debug_aranges (not a debug module?)")
        aranges = parse_aranges(ar)
        symtab = img.sections[".symtab"]
        strsec = img.by_index[symtab.link]
        strtab = bytes(img.data[strsec.offset:strsec.offset + strsec.size])
        raw = img.data[symtab.offset:symtab.offset + symtab.size]
        build_id = img.build_id()
        syms: dict[str, list[tuple[int, int]]] = {}
        for i, (st_name, info, _o, shndx, _v, size) in enumerate(
                struct.iter_unpack("<IBBHQQ", raw)):
            if info & 0xF != STT_FUNC or shndx == SHN_UNDEF:
                continue
            name = strtab[st_name:strtab.index(b"\0", st_name)].decode("utf-8", "replace")
            spans = syms.setdefault(name, [])
            if (values[i], size) not in spans:
                spans.append((values[i], size))
    return index_functions(build_id, Path(ko).stat().st_size, syms, aranges)
