"""@var("name[@file.c]"): a kernel variable's link-time address and type.

The DWARF of a global or file-static variable sits among the top-level
DIEs of the CU that defines it (with a DW_AT_location of DW_OP_addr), and
as an extern declaration (type, no location) in every CU that includes its
header.  .debug_aranges covers only code, so the CUs to search come from
the script: the CUs compiled from `@file.c`, or else the probed function's
own CU (where a declaration is enough: the address then comes from the
symbol table, which must name exactly one object of that name).
"""
from __future__ import annotations

import struct
from pathlib import Path
from typing import Iterable, Optional

from elftools.dwarf.die import DIE

from .dwarf_types import die_name, ref, type_info
from .elf_symbols import SHN_UNDEF, ElfImage

DW_OP_ADDR = 0x03
STT_OBJECT = 1


class VariableError(LookupError):
    """Why a variable cannot be resolved (the message says so)."""


def _location_address(die: DIE) -> Optional[int]:
    """The static address of a variable whose location is DW_OP_addr A."""
    loc = die.attributes.get("DW_AT_location")
    if loc is None or not isinstance(loc.value, list) or len(loc.value) != 9 \
            or loc.value[0] != DW_OP_ADDR:
        return None
    return int.from_bytes(bytes(loc.value[1:9]), "little")


def _named(die: DIE) -> Optional[str]:
    name = die_name(die)
    if name is None:
        spec = ref(die, "DW_AT_specification")
        name = die_name(spec) if spec is not None else None
    return name


def _type_die(die: DIE) -> Optional[DIE]:
    t = ref(die, "DW_AT_type")
    if t is None:
        spec = ref(die, "DW_AT_specification")
        t = ref(spec, "DW_AT_type") if spec is not None else None
    return t


def search_cus(dw, cu_offsets: Iterable[int], name: str  # type: ignore[no-untyped-def]
               ) -> tuple[Optional[int], Optional[DIE], bool]:
    """(address, type DIE, declared) of variable `name` in the CUs: the
    address when a CU defines it, else (None, its type, True) when a CU
    only declares it, else (None, None, False)."""
    declared_type: Optional[DIE] = None
    for off in cu_offsets:
        cu = dw.get_CU_at(off)
        for d in cu.get_top_DIE().iter_children():
            if d.tag != "DW_TAG_variable" or _named(d) != name:
                continue
            addr = _location_address(d)
            if addr is not None:
                return addr, _type_die(d), True
            declared_type = declared_type or _type_die(d)
    return None, declared_type, declared_type is not None


def object_symbols(vmlinux: Path, name: str) -> list[int]:
    """Addresses of the defined STT_OBJECT symbols called `name`."""
    found: list[int] = []
    key = name.encode()
    with ElfImage(vmlinux) as img:
        symtab = img.sections.get(".symtab")
        if symtab is None:
            return found
        strsec = img.by_index[symtab.link]
        strtab = img.data[strsec.offset:strsec.offset + strsec.size]
        raw = img.data[symtab.offset:symtab.offset + symtab.size]
        for st_name, info, _o, shndx, value, _size in struct.iter_unpack("<IBBHQQ", raw):
            if info & 0xF != STT_OBJECT or shndx == SHN_UNDEF:
                continue
            if strtab[st_name:st_name + len(key) + 1] == key + b"\0" and value not in found:
                found.append(value)
    return found


def resolve_variable(vmlinux: Path, dw, cu_offsets: list[int], name: str,  # type: ignore[no-untyped-def]
                     where: str) -> dict:
    """{"address", "type"} of a variable for @var, or VariableError.
    where: how the searched CUs were chosen, for the message."""
    addr, tdie, declared = search_cus(dw, cu_offsets, name)
    if not declared:
        raise VariableError(f"unable to find global '{name}' in {where}")
    if addr is None:
        addrs = object_symbols(vmlinux, name)
        if len(addrs) != 1:
            raise VariableError(
                f"global '{name}' is declared in {where} but the kernel has "
                f"{len(addrs) or 'no'} symbol{'s' if len(addrs) != 1 else ''} of that name; "
                f"name its file: @var(\"{name}@FILE.c\")")
        addr = addrs[0]
    return {"address": addr, "type": type_info(tdie).to_json()}
