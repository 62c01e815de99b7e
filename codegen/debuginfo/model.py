"""JSON-serialisable results shared by the DWARF and BTF readers."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

# DWARF x86-64 register numbers -> struct pt_regs field names (without the
# leading "r"/"e"), which is what the generated C reads at a kprobe.
X86_64_DWARF_REGS = ["ax", "dx", "cx", "bx", "si", "di", "bp", "sp",
                     "r8", "r9", "r10", "r11", "r12", "r13", "r14", "r15", "ip"]

# x86-64 SysV integer argument registers, used by the BTF fallback.
X86_64_ARG_REGS = ["di", "si", "dx", "cx", "r8", "r9"]


def dwarf_reg_name(n: int) -> str:
    if n < len(X86_64_DWARF_REGS):
        return X86_64_DWARF_REGS[n]
    if 17 <= n <= 32:
        return f"xmm{n - 17}"
    return f"dwreg{n}"


@dataclass
class TypeInfo:
    """A type with typedefs/cv-qualifiers stripped for `kind`/`size`/`signed`,
    but `name` keeps the C spelling a user wrote (e.g. "ssize_t", "loff_t*").

    kind: int | float | bool | pointer | struct | union | enum | array |
          void | func
    """

    kind: str
    name: str
    size: int | None = None
    signed: bool | None = None
    target: "TypeInfo | None" = None     # pointee / array element / func return
    count: int | None = None             # array element count (None = flexible)
    # Where to continue navigating (members, full pointee): "d:<cu>:<die>"
    # for a DWARF DIE (typedefs/qualifiers stripped), "b:<id>" for a BTF type.
    ref: str | None = None

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


VOID = TypeInfo("void", "void", 0)


@dataclass
class ParamInfo:
    name: str
    type: TypeInfo
    index: int                     # 1-based position
    # Location at the function's entry address, e.g. {"kind": "reg", "reg": "di"}.
    # kinds: reg, fbreg, breg, addr, const, entry_value, expr, optimized_out, unknown
    entry_location: dict[str, Any]


@dataclass
class FunctionInfo:
    name: str                       # the name a probe uses ("vfs_read")
    address: int                    # entry address (symtab st_value)
    decl_file: str | None           # relative to the kernel source root
    decl_line: int | None
    return_type: TypeInfo | None    # None = void
    params: list[ParamInfo] = field(default_factory=list)
    symbol: str | None = None       # symtab name; differs for clones (foo.isra.0)
    size: int | None = None
    probeable: bool = True          # False for GCC out-of-line clones
    note: str | None = None         # why not probeable, or other caveats
    source: str = "dwarf"           # "dwarf" | "btf"
    cu_offset: int | None = None    # for follow-up lookups (struct members)
    die_offset: int | None = None
    varargs: bool = False

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> "FunctionInfo":
        def t(x: dict | None) -> TypeInfo | None:
            if x is None:
                return None
            x = dict(x)
            x["target"] = t(x.get("target"))
            return TypeInfo(**x)
        d = dict(d)
        d["return_type"] = t(d.get("return_type"))
        d["params"] = [ParamInfo(p["name"], t(p["type"]), p["index"], p["entry_location"])  # type: ignore[arg-type]
                       for p in d.get("params", [])]
        return cls(**d)

    def stap_listing(self) -> str:
        """One line in the style of `stap -L 'kernel.function("...")'`."""
        where = self.name
        if self.decl_file:
            where += f"@{self.decl_file}"
            if self.decl_line:
                where += f":{self.decl_line}"
        parts = [f'kernel.function("{where}")']
        parts += [f"${p.name}:{p.type.name}" for p in self.params if p.name]
        return " ".join(parts)


@dataclass
class MemberInfo:
    name: str
    offset: int                    # byte offset from the start of the outer struct
    type: TypeInfo
    bit_offset: int | None = None  # bitfields: bit offset from the struct start
    bit_size: int | None = None

    def to_json(self) -> dict[str, Any]:
        return asdict(self)
