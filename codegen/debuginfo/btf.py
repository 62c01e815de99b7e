"""Pure-Python BTF reader: the fallback when a kernel has no DWARF.

BTF (the `.BTF` section of vmlinux, or /sys/kernel/btf/vmlinux) carries
types and function prototypes but no locations and no line info.  At a
function's entry the x86-64 SysV ABI fixes where the first six integer
arguments are, which is all a `kernel.function("f")` entry probe needs.
Format: https://docs.kernel.org/bpf/btf.html
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

from .elf_symbols import ElfImage, read_function_symbols
from .model import X86_64_ARG_REGS, FunctionInfo, MemberInfo, ParamInfo, TypeInfo, VOID

BTF_MAGIC = 0xEB9F

(KIND_INT, KIND_PTR, KIND_ARRAY, KIND_STRUCT, KIND_UNION, KIND_ENUM, KIND_FWD,
 KIND_TYPEDEF, KIND_VOLATILE, KIND_CONST, KIND_RESTRICT, KIND_FUNC, KIND_FUNC_PROTO,
 KIND_VAR, KIND_DATASEC, KIND_FLOAT, KIND_DECL_TAG, KIND_TYPE_TAG, KIND_ENUM64) = range(1, 20)

_SKIP = {KIND_VOLATILE, KIND_CONST, KIND_RESTRICT, KIND_TYPE_TAG}
_MAX_DEPTH = 6


@dataclass
class BtfType:
    kind: int
    name: str
    vlen: int
    kflag: bool
    size_or_type: int
    extra: object  # kind-specific decoded data


class Btf:
    """All types of one (non-split) BTF blob, decoded eagerly (~0.5 s for vmlinux)."""

    def __init__(self, data: bytes) -> None:
        magic, version, _flags, hdr_len, type_off, type_len, str_off, str_len = \
            struct.unpack_from("<HBBIIIII", data, 0)
        if magic != BTF_MAGIC:
            raise ValueError("not BTF (bad magic); big-endian BTF is not supported")
        if version != 1:
            raise ValueError(f"unsupported BTF version {version}")
        t0 = hdr_len + type_off
        s0 = hdr_len + str_off
        self._data = data
        self._strs = data[s0:s0 + str_len]
        self.types: list[BtfType | None] = [None]  # id 0 = void
        self.funcs: dict[str, int] = {}
        self.named: dict[tuple[int, str], int] = {}
        pos, end = t0, t0 + type_len
        unpack = struct.unpack_from
        while pos < end:
            name_off, info, st = unpack("<III", data, pos)
            pos += 12
            kind = (info >> 24) & 0x1F
            vlen = info & 0xFFFF
            kflag = bool(info >> 31)
            extra: object = None
            if kind == KIND_INT:
                enc, = unpack("<I", data, pos)
                extra = enc
                pos += 4
            elif kind == KIND_ARRAY:
                extra = unpack("<III", data, pos)  # elem type, index type, nelems
                pos += 12
            elif kind in (KIND_STRUCT, KIND_UNION):
                extra = pos  # members decoded on demand: most are never asked for
                pos += 12 * vlen
            elif kind == KIND_ENUM:
                pos += 8 * vlen
            elif kind == KIND_ENUM64:
                pos += 12 * vlen
            elif kind == KIND_FUNC_PROTO:
                extra = pos
                pos += 8 * vlen
            elif kind == KIND_VAR:
                pos += 4
            elif kind == KIND_DATASEC:
                pos += 12 * vlen
            elif kind == KIND_DECL_TAG:
                pos += 4
            name = self.str(name_off)
            tid = len(self.types)
            self.types.append(BtfType(kind, name, vlen, kflag, st, extra))
            if name:
                if kind == KIND_FUNC:
                    self.funcs.setdefault(name, tid)
                elif kind in (KIND_STRUCT, KIND_UNION, KIND_TYPEDEF, KIND_ENUM, KIND_ENUM64):
                    self.named.setdefault((kind, name), tid)

    def members(self, t: BtfType) -> list[tuple[int, int, int]]:
        """(name_off, type, offset) of a struct/union."""
        return list(struct.iter_unpack("<III", self._data[t.extra:t.extra + 12 * t.vlen]))  # type: ignore[operator]

    def proto_params(self, t: BtfType) -> list[tuple[int, int]]:
        """(name_off, type) of a FUNC_PROTO."""
        return list(struct.iter_unpack("<II", self._data[t.extra:t.extra + 8 * t.vlen]))  # type: ignore[operator]

    def str(self, off: int) -> str:
        return self._strs[off:self._strs.index(b"\0", off)].decode("utf-8", "replace")

    # -- type rendering ------------------------------------------------
    def spelling(self, tid: int, depth: int = 0) -> str:
        t = self.types[tid] if tid else None
        if t is None:
            return "void"
        if depth > _MAX_DEPTH:
            return "..."
        k = t.kind
        if k in _SKIP:
            return self.spelling(t.size_or_type, depth + 1)
        if k in (KIND_INT, KIND_TYPEDEF, KIND_FLOAT):
            return t.name
        if k in (KIND_STRUCT, KIND_UNION, KIND_ENUM, KIND_ENUM64, KIND_FWD):
            kw = "union" if k == KIND_UNION or (k == KIND_FWD and t.kflag) else \
                "enum" if k in (KIND_ENUM, KIND_ENUM64) else "struct"
            return f"{kw} {t.name or '{...}'}"
        if k == KIND_PTR:
            tgt = self._skip_cv(t.size_or_type)
            tt = self.types[tgt] if tgt else None
            if tt is not None and tt.kind == KIND_FUNC_PROTO:
                return self._proto_spelling(tgt, "(*)", depth + 1)
            return self.spelling(tgt, depth + 1) + "*"
        if k == KIND_ARRAY:
            elem, _idx, n = t.extra  # type: ignore[misc]
            return self.spelling(elem, depth + 1) + f"[{n}]"
        if k == KIND_FUNC_PROTO:
            return self._proto_spelling(tid, "", depth + 1)
        return t.name or "?"

    def _proto_spelling(self, tid: int, mid: str, depth: int) -> str:
        t = self.types[tid]
        assert t is not None
        params = self.proto_params(t)
        args = ["..." if (pt == 0 and i == len(params) - 1) else self.spelling(pt, depth)
                for i, (_n, pt) in enumerate(params)]
        return f"{self.spelling(t.size_or_type, depth)}{mid}({', '.join(args)})"

    def _skip_cv(self, tid: int) -> int:
        while tid and self.types[tid] is not None and self.types[tid].kind in _SKIP:  # type: ignore[union-attr]
            tid = self.types[tid].size_or_type  # type: ignore[union-attr]
        return tid

    def _strip(self, tid: int) -> int:
        while tid:
            t = self.types[tid]
            assert t is not None
            if t.kind in _SKIP or t.kind == KIND_TYPEDEF:
                tid = t.size_or_type
            else:
                break
        return tid

    def type_info(self, tid: int, depth: int = 0) -> TypeInfo:
        if tid == 0:
            return VOID
        name = self.spelling(tid)
        b = self._strip(tid)
        t = self.types[b] if b else None
        if t is None:
            return TypeInfo("void", name, 0)
        ti = self._type_info(t, name, depth)
        ti.ref = f"b:{b}"
        return ti

    def _type_info(self, t: BtfType, name: str, depth: int) -> TypeInfo:
        k = t.kind
        if k == KIND_INT:
            enc = t.extra  # type: ignore[assignment]
            bits = (enc >> 24) & 0xF  # type: ignore[operator]
            if bits & 4:
                return TypeInfo("bool", name, t.size_or_type)
            return TypeInfo("int", name, t.size_or_type, bool(bits & 1))
        if k == KIND_FLOAT:
            return TypeInfo("float", name, t.size_or_type)
        if k == KIND_PTR:
            target = self.type_info(t.size_or_type, depth + 1) if depth < _MAX_DEPTH else None
            return TypeInfo("pointer", name, 8, False, target)
        if k == KIND_STRUCT:
            return TypeInfo("struct", name, t.size_or_type)
        if k == KIND_UNION:
            return TypeInfo("union", name, t.size_or_type)
        if k == KIND_FWD:
            return TypeInfo("union" if t.kflag else "struct", name, None)
        if k in (KIND_ENUM, KIND_ENUM64):
            return TypeInfo("enum", name, t.size_or_type, t.kflag)
        if k == KIND_ARRAY:
            elem, _idx, n = t.extra  # type: ignore[misc]
            et = self.type_info(elem, depth + 1) if depth < _MAX_DEPTH else None
            return TypeInfo("array", name, et.size * n if et and et.size is not None else None,
                            None, et, n)
        if k == KIND_FUNC_PROTO:
            return TypeInfo("func", name, None)
        return TypeInfo("void", name, None)

    # -- lookups -------------------------------------------------------
    def function(self, name: str) -> FunctionInfo | None:
        tid = self.funcs.get(name)
        if tid is None:
            return None
        f = self.types[tid]
        assert f is not None
        proto = self.types[f.size_or_type]
        assert proto is not None and proto.kind == KIND_FUNC_PROTO
        rt = None if proto.size_or_type == 0 else self.type_info(proto.size_or_type)
        info = FunctionInfo(name=name, address=0, decl_file=None, decl_line=None,
                            return_type=rt, symbol=name, source="btf",
                            note="BTF: locations assumed from the x86-64 ABI at entry")
        slot = 0
        params = self.proto_params(proto)
        for i, (name_off, ptid) in enumerate(params, 1):
            if ptid == 0 and i == len(params):
                info.varargs = True
                break
            ti = self.type_info(ptid)
            # Aggregates > 16 bytes go on the stack; 9..16-byte ones take two
            # registers.  Kernel functions almost never pass structs by value.
            nregs = 1 if ti.kind not in ("struct", "union") or (ti.size or 0) <= 8 else \
                2 if (ti.size or 0) <= 16 else 0
            if nregs == 0 or slot + nregs > len(X86_64_ARG_REGS) or ti.kind == "float":
                loc: dict = {"kind": "unknown"}  # stack-passed: needs the frame layout
            elif nregs == 1:
                loc = {"kind": "reg", "reg": X86_64_ARG_REGS[slot]}
            else:
                loc = {"kind": "regs", "regs": X86_64_ARG_REGS[slot:slot + 2]}
            slot += nregs
            info.params.append(ParamInfo(self.str(name_off) or f"arg{i}", ti, i, loc))
        return info

    def member(self, struct_name: str, member: str) -> MemberInfo | None:
        kw, _, nm = struct_name.strip().partition(" ")
        if not nm:
            kw, nm = "struct", kw
        kind = KIND_UNION if kw == "union" else KIND_STRUCT
        tid = self.named.get((kind, nm))
        if tid is None:
            return None
        base_bits = 0
        mi: MemberInfo | None = None
        for part in member.split("."):
            found = self._member_in(tid, part, base_bits)
            if found is None:
                return None
            mi, mtid = found
            base_bits = (mi.bit_offset if mi.bit_offset is not None else mi.offset * 8)
            tid = self._strip(mtid)
        return mi

    def iter_members(self, tid: int, base_bits: int = 0) -> Iterator[MemberInfo]:
        """Every named member of struct/union `tid` in declaration order,
        anonymous struct/union members flattened in place."""
        t = self.types[tid]
        if t is None or t.kind not in (KIND_STRUCT, KIND_UNION):
            return
        for name_off, mtid, off in self.members(t):
            bit_off, bit_size = (off & 0xFFFFFF, off >> 24) if t.kflag else (off, 0)
            nm = self.str(name_off)
            abs_bits = base_bits + bit_off
            if not nm:
                yield from self.iter_members(self._strip(mtid), abs_bits)
                continue
            mi = MemberInfo(nm, abs_bits // 8, self.type_info(mtid))
            if bit_size:
                mi.bit_offset, mi.bit_size = abs_bits, bit_size
            yield mi

    def _member_in(self, tid: int, member: str, base_bits: int) -> tuple[MemberInfo, int] | None:
        t = self.types[tid]
        if t is None or t.kind not in (KIND_STRUCT, KIND_UNION):
            return None
        for name_off, mtid, off in self.members(t):
            bit_off, bit_size = (off & 0xFFFFFF, off >> 24) if t.kflag else (off, 0)
            nm = self.str(name_off)
            if not nm:
                inner = self._strip(mtid)
                got = self._member_in(inner, member, base_bits + bit_off)
                if got is not None:
                    return got
                continue
            if nm == member:
                abs_bits = base_bits + bit_off
                mi = MemberInfo(nm, abs_bits // 8, self.type_info(mtid))
                if bit_size:
                    mi.bit_offset, mi.bit_size = abs_bits, bit_size
                return mi, mtid
        return None


_cache: dict[str, Btf] = {}


def load_btf(path: Path | str) -> Btf:
    """BTF from a raw blob (/sys/kernel/btf/vmlinux) or an ELF's .BTF section."""
    key = str(Path(path).resolve())
    if key in _cache:
        return _cache[key]
    with open(path, "rb") as f:
        head = f.read(4)
    if head == b"\x7fELF":
        with ElfImage(Path(path)) as img:
            data = img.section_bytes(".BTF")
        if data is None:
            raise ValueError(f"{path}: no .BTF section")
    else:
        data = Path(path).read_bytes()
    btf = _cache[key] = Btf(data)
    return btf


def lookup_function_btf(btf_path_or_vmlinux: Path | str, name: str) -> FunctionInfo | None:
    """FunctionInfo from BTF only; address filled from .symtab when given an ELF."""
    info = load_btf(btf_path_or_vmlinux).function(name)
    if info is None:
        return None
    try:
        with open(btf_path_or_vmlinux, "rb") as f:
            is_elf = f.read(4) == b"\x7fELF"
        if is_elf:
            with ElfImage(Path(btf_path_or_vmlinux)) as img:
                spans = read_function_symbols(img).lookup(name)
            if spans:
                info.address, info.size = spans[0]
    except OSError:
        pass
    return info
