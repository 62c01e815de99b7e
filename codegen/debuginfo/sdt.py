"""SDT/USDT markers (<sys/sdt.h>): the .note.stapsdt notes of an ELF file
and their argument strings.

Each note (type 3, owner "stapsdt") holds three addresses -- the marker's
nop, the link-time address of .stapsdt.base, the semaphore (0 if none) --
then provider, name and the argument string, e.g. "-4@%eax -8@%rdx 8@%rdi".
An argument is SIZE@OPERAND: a negative size is signed; the operand is
assembler syntax for where the value is at the nop:

    %reg            a register (any width: %eax, %dil, %r8d ...)
    $imm            a constant
    disp(%reg)      memory at reg + disp (a user read)
    sym(%rip)       memory at the symbol's run-time address
    sym+off(%rip)

A prelinked file moved .stapsdt.base; the note's addresses are shifted by
the difference, as SystemTap does.
"""
from __future__ import annotations

import re
import struct
from dataclasses import dataclass, field
from typing import Any, Optional

# Every x86-64 general register spelling -> struct pt_regs field.
_REG_ALIASES: dict[str, str] = {}
for _base, _names in {
    "ax": ["rax", "eax", "ax", "al", "ah"], "bx": ["rbx", "ebx", "bx", "bl", "bh"],
    "cx": ["rcx", "ecx", "cx", "cl", "ch"], "dx": ["rdx", "edx", "dx", "dl", "dh"],
    "si": ["rsi", "esi", "si", "sil"], "di": ["rdi", "edi", "di", "dil"],
    "bp": ["rbp", "ebp", "bp", "bpl"], "sp": ["rsp", "esp", "sp", "spl"],
    "ip": ["rip"],
}.items():
    for _n in _names:
        _REG_ALIASES[_n] = _base
for _i in range(8, 16):
    for _suffix in ("", "d", "w", "b"):
        _REG_ALIASES[f"r{_i}{_suffix}"] = f"r{_i}"

_ARG_RE = re.compile(r"^(?P<size>-?\d+)@(?P<op>.+)$")
_MEM_RE = re.compile(r"^(?P<disp>[-+]?(?:0x[0-9a-fA-F]+|\d+))?\(%(?P<reg>\w+)\)$")
_RIP_RE = re.compile(r"^(?P<sym>[A-Za-z_.$][\w.$@]*)(?P<off>[-+](?:0x[0-9a-fA-F]+|\d+))?"
                     r"\(%rip\)$")


class SdtError(ValueError):
    """An argument string we cannot turn into a read."""


@dataclass
class SdtArg:
    size: int                 # bytes: 1, 2, 4, 8
    signed: bool
    kind: str                 # reg | const | mem | rip
    reg: Optional[str] = None         # pt_regs field for reg/mem
    value: int = 0                    # const value, mem displacement, rip offset
    symbol: Optional[str] = None      # rip: the symbol
    text: str = ""

    def to_json(self) -> dict[str, Any]:
        return {"size": self.size, "signed": self.signed, "kind": self.kind,
                "reg": self.reg, "value": self.value, "symbol": self.symbol,
                "text": self.text}


@dataclass
class SdtNote:
    provider: str
    name: str
    pc: int                   # link-time address of the nop (prelink-adjusted)
    semaphore: int            # link-time address of the semaphore, 0 = none
    args: list[SdtArg] = field(default_factory=list)
    arg_text: str = ""
    args_error: Optional[str] = None    # why args could not be parsed


def _reg(name: str, text: str) -> str:
    r = _REG_ALIASES.get(name)
    if r is None:
        raise SdtError(f"unsupported register %{name} in SDT argument '{text}'")
    return r


def parse_arg(text: str) -> SdtArg:
    m = _ARG_RE.match(text)
    if m is None:
        # An argument without SIZE@ (very old sdt.h): a long in that place.
        size_s, op = "8", text
    else:
        size_s, op = m.group("size"), m.group("op")
    size = abs(int(size_s))
    if size not in (1, 2, 4, 8):
        raise SdtError(f"unsupported size {size} in SDT argument '{text}'")
    signed = size_s.startswith("-")
    if op.startswith("%"):
        return SdtArg(size, signed, "reg", reg=_reg(op[1:], text), text=text)
    if op.startswith("$"):
        return SdtArg(size, signed, "const", value=int(op[1:], 0), text=text)
    mm = _MEM_RE.match(op)
    if mm is not None and mm.group("reg") != "rip":
        return SdtArg(size, signed, "mem", reg=_reg(mm.group("reg"), text),
                      value=int(mm.group("disp") or "0", 0), text=text)
    rm = _RIP_RE.match(op)
    if rm is not None:
        return SdtArg(size, signed, "rip", symbol=rm.group("sym"),
                      value=int(rm.group("off") or "0", 0), text=text)
    raise SdtError(f"unsupported operand '{op}' in SDT argument '{text}'")


def parse_args(text: str) -> list[SdtArg]:
    return [parse_arg(a) for a in text.split()] if text.strip() else []


def read_notes(elf) -> list[SdtNote]:  # type: ignore[no-untyped-def]
    """The markers of an elftools ELFFile, in note order."""
    sec = elf.get_section_by_name(".note.stapsdt")
    if sec is None:
        return []
    base_sec = elf.get_section_by_name(".stapsdt.base")
    actual_base = base_sec["sh_addr"] if base_sec is not None else None
    data = sec.data()
    out: list[SdtNote] = []
    pos = 0
    while pos + 12 <= len(data):
        namesz, descsz, ntype = struct.unpack_from("<III", data, pos)
        pos += 12
        owner = data[pos:pos + namesz].rstrip(b"\0")
        pos += (namesz + 3) & ~3
        desc = data[pos:pos + descsz]
        pos += (descsz + 3) & ~3
        if owner != b"stapsdt" or ntype != 3 or len(desc) < 24:
            continue
        pc, base, sem = struct.unpack_from("<QQQ", desc, 0)
        provider, name, args = (desc[24:].split(b"\0") + [b"", b"", b""])[:3]
        if actual_base is not None and base:
            shift = actual_base - base
            pc += shift
            if sem:
                sem += shift
        text = args.decode(errors="replace")
        note = SdtNote(provider.decode(errors="replace"), name.decode(errors="replace"),
                       pc, sem, arg_text=text)
        try:
            note.args = parse_args(text)
        except SdtError as e:
            # Only an error if the script reads $argN of this marker.
            note.args_error = str(e)
        out.append(note)
    return out
