"""Function and struct-member lookups against one kernel's DWARF.

Path of a lookup: index (name -> symtab address + CU offset, from aranges)
-> parse that one CU's top-level DIEs -> the subprogram whose entry is the
symbol's address -> params/types/locations.  Nothing here walks all CUs,
except the struct fallback search, which stops at the first CU that has a
complete definition (early CUs include the common headers).
"""

from __future__ import annotations

import os
from collections import OrderedDict
from typing import Iterator
from pathlib import Path

from elftools.dwarf.compileunit import CompileUnit
from elftools.dwarf.die import DIE
from elftools.dwarf.dwarfinfo import DWARFInfo
from elftools.dwarf.ranges import BaseAddressEntry as RangeBase, RangeEntry

from .dwarf_locations import cu_base_address, frame_base_kind, location_at
from .dwarf_open import open_dwarf
from .dwarf_types import die_name, origin_chain, attr_via_origin, ref, type_die_via_origin, type_info, _strip
from .kernel_index import _CLONE_RE, FunctionEntry, KernelIndex
from .model import X86_64_ARG_REGS, FunctionInfo, MemberInfo, ParamInfo

_ADDRX_FORMS = {"DW_FORM_addrx", "DW_FORM_addrx1", "DW_FORM_addrx2", "DW_FORM_addrx3",
                "DW_FORM_addrx4", "DW_FORM_GNU_addr_index"}


# --------------------------------------------------------------------------
# Per-CU caches (process lifetime; one elaboration touches a handful of CUs)

class _CUScan:
    """Top-level subprograms of one CU, keyed by entry address."""

    def __init__(self, cu: CompileUnit) -> None:
        self.cu = cu
        self.by_pc: dict[int, DIE] = {}
        self.ranged: list[DIE] = []         # subprograms with DW_AT_ranges (hot/cold split)
        # Definitions with no code range: GCC's IPA identical-code-folding
        # emits the folded function's DIE without pc, and its symbol as an
        # alias of the surviving copy's address.
        self.no_pc: dict[str, DIE] = {}
        for die in cu.get_top_DIE().iter_children():
            if die.tag != "DW_TAG_subprogram" or "DW_AT_declaration" in die.attributes:
                continue
            lo = die.attributes.get("DW_AT_low_pc")
            if lo is not None:
                self.by_pc.setdefault(_addr_value(cu, lo), die)
            elif "DW_AT_ranges" in die.attributes:
                self.ranged.append(die)
            else:
                # Abstract instances (DW_AT_inline) count too: a function
                # both inlined somewhere and folded keeps only that DIE.
                nm = die_name(die)
                if nm:
                    self.no_pc.setdefault(nm, die)
        self._files: list[str | None] | None = None

    def find(self, addr: int) -> DIE | None:
        die = self.by_pc.get(addr)
        if die is not None:
            return die
        for d in self.ranged:
            if any(lo == addr for lo, _hi in _die_ranges(self.cu, d)):
                return d
        return None

    def file_name(self, index: int) -> str | None:
        if self._files is None:
            self._files = _cu_file_table(self.cu)
        return self._files[index] if 0 <= index < len(self._files) else None


# LRU of scanned CUs.  pyelftools caches every parsed DIE forever; a
# wildcard probe touching hundreds of CUs grew RSS past 2 GiB, so evicted CUs
# get their (private) DIE caches cleared.  FunctionInfo holds no DIEs.
_MAX_SCANS = 16
_scans: "OrderedDict[tuple[int, int], _CUScan]" = OrderedDict()


def _scan(dw: DWARFInfo, cu_offset: int) -> _CUScan:
    key = (id(dw), cu_offset)
    s = _scans.get(key)
    if s is not None:
        _scans.move_to_end(key)
        return s
    s = _scans[key] = _CUScan(dw.get_CU_at(cu_offset))
    while len(_scans) > _MAX_SCANS:
        _, old = _scans.popitem(last=False)
        _forget_dies(old.cu)
    return s


def _forget_dies(cu: CompileUnit) -> None:
    cu._dielist.clear()   # type: ignore[attr-defined]
    cu._diemap.clear()    # type: ignore[attr-defined]
    dw = cu.dwarfinfo
    # Line programs are cached per CU too; they hold the whole decoded header.
    dw._linetable_cache.clear()  # type: ignore[attr-defined]


def _addr_value(cu: CompileUnit, attr) -> int:  # type: ignore[no-untyped-def]
    if attr.form in _ADDRX_FORMS:
        return cu.dwarfinfo.get_addr(cu, attr.value)
    return attr.value


def _die_ranges(cu: CompileUnit, die: DIE) -> list[tuple[int, int]]:
    rl = cu.dwarfinfo.range_lists()
    if rl is None:
        return []
    attr = die.attributes["DW_AT_ranges"]
    if attr.form == "DW_FORM_rnglistx":
        entries = rl.get_range_list_at_offset_ex(attr.value)  # pragma: no cover (split DWARF)
    else:
        entries = rl.get_range_list_at_offset(attr.value, cu=cu)
    base = cu_base_address(cu)
    out = []
    for e in entries:
        if isinstance(e, RangeBase):
            base = e.base_address
        elif isinstance(e, RangeEntry):
            lo, hi = (e.begin_offset, e.end_offset) if e.is_absolute else \
                (base + e.begin_offset, base + e.end_offset)
            out.append((lo, hi))
    return out


def _norm_path(path: str, comp_dir: str) -> str:
    """Make a DWARF file path relative to the kernel source root.

    Debian builds with -fdebug-prefix-map, so directories are already
    source-relative ("fs", "include/linux"); comp_dir is the relative build
    dir ("debian/build/build_amd64_none_amd64"), which only generated files
    live under.  Absolute paths (local builds) are made relative to comp_dir
    when they are inside it.
    """
    p = os.path.normpath(path)
    cd = os.path.normpath(comp_dir) if comp_dir else ""
    for prefix in (cd + os.sep,) if cd and cd != "." else ():
        if p.startswith(prefix):
            p = p[len(prefix):]
    return p[2:] if p.startswith("./") else p


def _cu_file_table(cu: CompileUnit) -> list[str | None]:
    dw = cu.dwarfinfo
    lp = dw.line_program_for_CU(cu)
    top = cu.get_top_DIE()
    comp_dir = top.attributes["DW_AT_comp_dir"].value.decode() if "DW_AT_comp_dir" in top.attributes else ""
    if lp is None:
        return []
    dirs = [d.decode() if isinstance(d, bytes) else str(d) for d in lp.header.include_directory]
    ver = lp.header.version
    files: list[str | None] = []
    if ver < 5:
        files.append(None)  # DWARF <= 4: file indices start at 1
        dirs = [comp_dir] + dirs  # ... and dir 0 is the comp dir
    for fe in lp.header.file_entry:
        name = fe.name.decode() if isinstance(fe.name, bytes) else str(fe.name)
        d = dirs[fe.dir_index] if fe.dir_index < len(dirs) else ""
        full = name if os.path.isabs(name) else os.path.join(d, name)
        files.append(_norm_path(full, comp_dir))
    return files


# --------------------------------------------------------------------------
# Functions

def _resolved_name(die: DIE) -> str | None:
    for d in origin_chain(die):
        n = die_name(d)
        if n:
            return n
    return None


def _clone_note(symbol: str) -> str:
    m = _CLONE_RE.match(symbol)
    kind = m.group("kind") if m else "clone"
    return (f"{symbol} is a GCC out-of-line copy (.{kind}) of {m.group('base') if m else symbol}; "
            "SystemTap does not offer it as a probe point (its parameters may be "
            "removed or reordered)")


def _build_info(vmlinux: Path, entry: FunctionEntry, display: str) -> FunctionInfo:
    dw = open_dwarf(vmlinux)
    scan = _scan(dw, entry.cu_offset)
    cu = scan.cu
    is_clone = bool(_CLONE_RE.match(entry.name))
    info = FunctionInfo(name=display, address=entry.address, decl_file=None, decl_line=None,
                        return_type=None, symbol=entry.name, size=entry.size,
                        cu_offset=entry.cu_offset)
    if is_clone:
        info.probeable = False
        info.note = _clone_note(entry.name)
    die = scan.find(entry.address)
    folded: DIE | None = None
    abi_only = False
    base_name = _CLONE_RE.match(entry.name).group("base") if is_clone else entry.name  # type: ignore[union-attr]
    if die is None or (_resolved_name(die) not in (None, base_name) and entry.name in scan.no_pc):
        alias = scan.no_pc.get(entry.name)
        if alias is None and die is None:
            info.note = (info.note + "; " if info.note else "") + \
                "no DWARF subprogram starts at the symbol address"
            info.source = "symtab"
            return info
        if alias is not None:
            # ICF alias: declared types come from its own DIE; locations from
            # the surviving copy's DIE at this address, when there is one.
            folded, die = die, alias
            abi_only = folded is None
            info.note = (info.note + "; " if info.note else "") + (
                "identical-code-folded into " + (_resolved_name(folded) or "?")
                if folded is not None else
                "identical-code-folded; entry locations assumed from the x86-64 ABI")
    info.die_offset = die.offset
    df = attr_via_origin(die, "DW_AT_decl_file")
    dl = attr_via_origin(die, "DW_AT_decl_line")
    if isinstance(df, int):
        # decl_file indexes the line table of the CU that holds the DIE that
        # carries it; origins are in the same CU for vmlinux (no LTO/dwz).
        info.decl_file = scan.file_name(df)
    info.decl_line = dl if isinstance(dl, int) else None
    rt = type_die_via_origin(die)
    info.return_type = type_info(rt) if rt is not None else None
    code_die = folded if folded is not None else die
    fb = frame_base_kind(cu, code_die, entry.address) if "DW_AT_frame_base" in code_die.attributes else None
    code_params = [ch for ch in code_die.iter_children() if ch.tag == "DW_TAG_formal_parameter"]

    params = [ch for ch in die.iter_children() if ch.tag == "DW_TAG_formal_parameter"]
    info.varargs = any(ch.tag == "DW_TAG_unspecified_parameters" for ch in die.iter_children())
    if not params:
        # Some concrete instances omit params that were fully optimised out;
        # the abstract instance still lists them.
        for o in origin_chain(die)[1:]:
            params = [ch for ch in o.iter_children() if ch.tag == "DW_TAG_formal_parameter"]
            if params:
                break
    for i, p in enumerate(params, 1):
        pname = None
        for d in origin_chain(p):
            pname = die_name(d)
            if pname:
                break
        ptype = type_die_via_origin(p)
        if abi_only:
            loc = {"kind": "reg", "reg": X86_64_ARG_REGS[i - 1]} if i <= 6 else {"kind": "unknown"}
        elif code_die is die:
            loc = location_at(p.cu, p, entry.address, fb, at_entry=True)
        elif folded is not None and i <= len(code_params):
            loc = location_at(cu, code_params[i - 1], entry.address, fb, at_entry=True)
        else:
            loc = {"kind": "reg", "reg": X86_64_ARG_REGS[i - 1]} if i <= 6 else {"kind": "unknown"}
        info.params.append(ParamInfo(pname or f"arg{i}", type_info(ptype), i, loc))
    return info


def lookup_functions(vmlinux: Path, index: KernelIndex, pattern: str) -> list[FunctionInfo]:
    """All probeable functions matching a name or stap wildcard (`vfs_*`).

    Static functions defined in several files yield one FunctionInfo each.
    An exact name that exists only as clones yields the (unprobeable) clones.
    """
    out: list[FunctionInfo] = []
    names = index.match(pattern)
    if not names and not any(c in pattern for c in "*?["):
        for clone in index.clones.get(pattern, []):
            for e in index.lookup(clone):
                fi = _build_info(vmlinux, e, pattern)
                out.append(fi)
        return out
    for n in names:
        for e in index.lookup(n):
            out.append(_build_info(vmlinux, e, n))
    return out


def lookup_function(vmlinux: Path, index: KernelIndex, name: str) -> FunctionInfo | None:
    """The function `name` (first definition if several statics share it).

    Returns None if the kernel has no such function symbol with DWARF.
    If only out-of-line clones exist (foo.isra.0), returns the first clone
    with probeable=False and a note.  Also accepts a clone's own name.
    """
    entries = index.lookup(name)
    if entries:
        display = name
        m = _CLONE_RE.match(name)
        return _build_info(vmlinux, entries[0], m.group("base") if m else display)
    clones = index.clones.get(name, [])
    # Prefer the clone that holds the entry (isra/constprop/part) over .cold.
    clones = sorted(clones, key=lambda c: (".cold" in c, c))
    for c in clones:
        for e in index.lookup(c):
            return _build_info(vmlinux, e, name)
    return None


# --------------------------------------------------------------------------
# Struct members

_TAGS = {"struct": "DW_TAG_structure_type", "union": "DW_TAG_union_type"}
_struct_memo: dict[tuple[str, str, str], tuple[int, int] | None] = {}


def _find_struct(dw: DWARFInfo, key: str, tag: str, name: str,
                 cu_hint: int | None, max_cus: int) -> DIE | None:
    memo = _struct_memo.get((key, tag, name))
    if memo is not None:
        return dw.get_CU_at(memo[0]).get_DIE_from_refaddr(memo[1])

    def search(cu: CompileUnit) -> DIE | None:
        for d in cu.get_top_DIE().iter_children():
            if d.tag == tag and "DW_AT_declaration" not in d.attributes and die_name(d) == name:
                return d
        return None

    if cu_hint is not None:
        d = search(dw.get_CU_at(cu_hint))
        if d is not None:
            _struct_memo[(key, tag, name)] = (d.cu.cu_offset, d.offset)
            return d
    for n, cu in enumerate(dw.iter_CUs()):
        if n >= max_cus:
            break
        d = search(cu)
        if d is not None:
            _struct_memo[(key, tag, name)] = (cu.cu_offset, d.offset)
            return d
        # Drop the parsed DIEs of CUs that did not help (private pyelftools
        # caches; measured 5x less RSS for whole-kernel walks).
        if all(sc.cu is not cu for sc in _scans.values()):
            _forget_dies(cu)
    return None


def _named_members(die: DIE, base: int, skip_declarations: bool
                   ) -> Iterator[tuple[DIE, str, int, int]]:
    """(member DIE, name, byte offset, base of its enclosing struct) of every
    named member of `die`, descending into anonymous struct/union members."""
    for ch in die.iter_children():
        if ch.tag != "DW_TAG_member" or \
                (skip_declarations and "DW_AT_declaration" in ch.attributes):
            continue
        off = ch.attributes.get("DW_AT_data_member_location")
        offset = base + (off.value if off is not None and isinstance(off.value, int) else 0)
        nm = die_name(ch)
        if nm is None:
            inner = _strip(ref(ch, "DW_AT_type"))
            if inner is not None and inner.tag in ("DW_TAG_structure_type", "DW_TAG_union_type"):
                yield from _named_members(inner, offset, skip_declarations)
            continue
        yield ch, nm, offset, base


def _member_in(die: DIE, member: str, base: int) -> MemberInfo | None:
    """Search `die`'s members, descending into anonymous struct/union members."""
    for ch, nm, offset, at in _named_members(die, base, skip_declarations=False):
        if nm == member:
            return _member_info(ch, nm, offset, at)
    return None


def iter_members(die: DIE, base: int = 0) -> Iterator[MemberInfo]:
    """Every named member of struct/union `die` in declaration order, the
    members of anonymous struct/union members flattened in place (as
    SystemTap's pretty-printer shows them); offsets from `base`."""
    for ch, nm, offset, at in _named_members(die, base, skip_declarations=True):
        yield _member_info(ch, nm, offset, at)


def _member_info(ch: DIE, nm: str, offset: int, base: int) -> MemberInfo:
    """The MemberInfo of member DIE `ch` at byte `offset` (bitfields get
    their absolute bit offset)."""
    t = type_info(ref(ch, "DW_AT_type"))
    mi = MemberInfo(nm, offset, t)
    if "DW_AT_bit_size" in ch.attributes:
        mi.bit_size = ch.attributes["DW_AT_bit_size"].value
        if "DW_AT_data_bit_offset" in ch.attributes:
            mi.bit_offset = base * 8 + ch.attributes["DW_AT_data_bit_offset"].value
            mi.offset = mi.bit_offset // 8
        elif "DW_AT_bit_offset" in ch.attributes:  # DWARF 2/3, big-endian bit numbering
            storage = (ch.attributes["DW_AT_byte_size"].value
                       if "DW_AT_byte_size" in ch.attributes else (t.size or 0))
            mi.bit_offset = offset * 8 + storage * 8 - ch.attributes["DW_AT_bit_offset"].value \
                - mi.bit_size
    return mi


def lookup_struct_member(vmlinux: Path, index: KernelIndex, struct_name: str, member: str,
                         cu_hint: int | None = None, max_cus: int = 400) -> MemberInfo | None:
    """Member `member` of `struct_name` ("file", "struct file", "union foo").

    `member` may be a dotted path ("f_path.dentry"); anonymous struct/union
    members are flattened, as C does.  Offsets are from the start of the
    outermost struct.  `cu_hint` (e.g. FunctionInfo.cu_offset) is searched
    first; then CUs in order, up to `max_cus`.
    """
    kw, _, nm = struct_name.strip().partition(" ")
    if not nm:
        kw, nm = "struct", kw
    tag = _TAGS.get(kw)
    if tag is None:
        raise ValueError(f"not a struct/union name: {struct_name!r}")
    dw = open_dwarf(vmlinux)
    die = _find_struct(dw, str(Path(vmlinux).resolve()), tag, nm, cu_hint, max_cus)
    if die is None:
        return None
    base = 0
    parts = member.split(".")
    mi: MemberInfo | None = None
    for i, part in enumerate(parts):
        mi = _member_in(die, part, base)
        if mi is None:
            return None
        if i + 1 < len(parts):
            # Descend into the member's own struct type.
            mdie = _member_type_die(die, part)
            if mdie is None:
                return None
            die, base = mdie, mi.offset
    return mi


def _member_type_die(die: DIE, member: str) -> DIE | None:
    for ch in die.iter_children():
        if ch.tag != "DW_TAG_member":
            continue
        nm = die_name(ch)
        t = _strip(ref(ch, "DW_AT_type"))
        if nm is None and t is not None and t.tag in ("DW_TAG_structure_type", "DW_TAG_union_type"):
            got = _member_type_die(t, member)
            if got is not None:
                return got
        elif nm == member:
            return t
    return None

