"""User-space binaries for process("PATH") probes: symbols, file offsets,
DWARF of functions, and shared-library lookup.

A uprobe is registered on (inode, file offset), so a function's symbol
value (a link-time virtual address) is turned into the offset in the file
through the PT_LOAD segment that contains it:
``offset = value - p_vaddr + p_offset``.

Parameters come from the binary's own DWARF (pyelftools), summarised with
the same location and type readers as the kernel's.  At ``gcc -g`` (-O0)
a parameter's location is a frame slot that the prologue fills, so a
.call probe is placed after the prologue (the function's second line-table
row, as SystemTap does) and the slot is found from the frame pointer
(CFA = %rbp + 16 once ``push %rbp; mov %rsp,%rbp`` have run).
"""
from __future__ import annotations

import fnmatch
import glob
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

from elftools.common.exceptions import ELFError
from elftools.elf.elffile import ELFFile

from .dwarf_locations import frame_base_kind, location_at
from .dwarf_types import die_name, type_info
from .functions import _cu_file_table
from .model import FunctionInfo, ParamInfo

_WILD = "*?["
# push %rbp; mov %rsp,%rbp, optionally after endbr64.
_ENDBR64 = bytes.fromhex("f30f1efa")
_FRAME_SETUP = bytes.fromhex("554889e5")


class UserElfError(Exception):
    """The path is not a usable ELF binary; the message says why."""


@dataclass
class UserSymbol:
    name: str
    value: int          # link-time virtual address
    size: int
    offset: int         # file offset of the entry (what uprobe_register takes)


@dataclass
class UserFunction:
    symbol: UserSymbol
    info: Optional[FunctionInfo]        # None without DWARF for it
    probe_offset: int                   # file offset of a .call probe
    prologue_skipped: bool = False
    notes: list[str] = field(default_factory=list)


def _is_wild(pattern: str) -> bool:
    return any(c in pattern for c in _WILD)


class UserBinary:
    """One ELF file (executable or shared library), opened lazily."""

    def __init__(self, path: str) -> None:
        self.path = path
        try:
            self._f = open(path, "rb")
        except OSError as e:
            raise UserElfError(f"cannot open {path}: {e.strerror}") from None
        try:
            self.elf = ELFFile(self._f)
        except ELFError as e:
            self._f.close()
            raise UserElfError(f"{path} is not an ELF file ({e})") from None
        if self.elf.get_machine_arch() != "x64":
            arch = self.elf.get_machine_arch()
            self._f.close()
            raise UserElfError(f"{path} is a {arch} binary; only x86-64 is supported")
        self._symbols: Optional[dict[str, UserSymbol]] = None
        self._dwarf_funcs: Optional[dict[tuple[str, int], Any]] = None

    def close(self) -> None:
        self._f.close()

    def __enter__(self) -> "UserBinary":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- segments -------------------------------------------------------
    def file_offset(self, vaddr: int) -> int:
        """The file offset that maps to link-time address vaddr."""
        for seg in self.elf.iter_segments():
            if seg["p_type"] != "PT_LOAD":
                continue
            lo = seg["p_vaddr"]
            if lo <= vaddr < lo + seg["p_filesz"]:
                return vaddr - lo + seg["p_offset"]
        raise UserElfError(f"address {vaddr:#x} is in no loadable segment of {self.path}")

    def read_at(self, vaddr: int, n: int) -> bytes:
        self._f.seek(self.file_offset(vaddr))
        return self._f.read(n)

    # -- symbols ----------------------------------------------------------
    def symbols(self) -> dict[str, UserSymbol]:
        """Defined functions by name, from .symtab, else .dynsym (a
        stripped library still exports its dynamic symbols)."""
        if self._symbols is not None:
            return self._symbols
        out: dict[str, UserSymbol] = {}
        for secname in (".symtab", ".dynsym"):
            sec = self.elf.get_section_by_name(secname)
            if sec is None:
                continue
            for s in sec.iter_symbols():
                if s["st_info"]["type"] not in ("STT_FUNC", "STT_GNU_IFUNC"):
                    continue
                if s["st_shndx"] == "SHN_UNDEF" or not s["st_value"] or not s.name:
                    continue
                name = s.name.split("@", 1)[0]
                if name in out:
                    continue
                try:
                    off = self.file_offset(s["st_value"])
                except UserElfError:
                    continue
                out[name] = UserSymbol(name, s["st_value"], s["st_size"], off)
            if out and secname == ".symtab":
                break
        self._symbols = out
        return out

    def match(self, pattern: str) -> list[str]:
        syms = self.symbols()
        if not _is_wild(pattern):
            return [pattern] if pattern in syms else []
        return sorted(n for n in syms if fnmatch.fnmatchcase(n, pattern))

    # -- dynamic section --------------------------------------------------
    def needed(self) -> list[str]:
        sec = self.elf.get_section_by_name(".dynamic")
        if sec is None:
            return []
        return [t.needed for t in sec.iter_tags() if t.entry.d_tag == "DT_NEEDED"]

    def runpath(self) -> list[str]:
        sec = self.elf.get_section_by_name(".dynamic")
        if sec is None:
            return []
        dirs: list[str] = []
        origin = os.path.dirname(os.path.realpath(self.path))
        for t in sec.iter_tags():
            if t.entry.d_tag == "DT_RUNPATH":
                dirs += t.runpath.split(":")
            elif t.entry.d_tag == "DT_RPATH":
                dirs += t.rpath.split(":")
        return [d.replace("$ORIGIN", origin).replace("${ORIGIN}", origin) for d in dirs if d]

    # -- PLT ---------------------------------------------------------------
    def plt_entries(self) -> dict[str, int]:
        """name -> link-time address of its PLT stub. Each 16-byte stub
        starts (after an optional endbr64/bnd prefix) with
        ``jmp *DISP(%rip)`` through the GOT slot that the function's
        JUMP_SLOT relocation names; stubs are matched to names through
        that slot, not by position. With IBT (.plt.sec) calls go to
        .plt.sec, so that is the section probed."""
        slots: dict[int, str] = {}
        rel = self.elf.get_section_by_name(".rela.plt")
        if rel is not None:
            symtab = self.elf.get_section(rel["sh_link"])
            for r in rel.iter_relocations():
                sym = symtab.get_symbol(r["r_info_sym"])
                if sym is not None and sym.name:
                    slots[r["r_offset"]] = sym.name.split("@", 1)[0]
        out: dict[str, int] = {}
        sec = self.elf.get_section_by_name(".plt.sec") or self.elf.get_section_by_name(".plt")
        if sec is None or not slots:
            return out
        data = sec.data()
        start = sec["sh_addr"]
        for at in range(0, len(data) - 15, 16):
            stub = data[at:at + 16]
            k = stub.find(b"\xff\x25", 0, 10)
            if k < 0:
                continue
            disp = int.from_bytes(stub[k + 2:k + 6], "little", signed=True)
            name = slots.get(start + at + k + 6 + disp)
            if name is not None and name not in out:
                out[name] = start + at
        return out

    # -- DWARF ------------------------------------------------------------
    def _dwarf_index(self) -> dict[tuple[str, int], Any]:
        """(name, entry address) -> (cu, subprogram DIE), for defined
        functions; a test binary or small program has few CUs."""
        if self._dwarf_funcs is not None:
            return self._dwarf_funcs
        out: dict[tuple[str, int], Any] = {}
        if self.elf.has_dwarf_info():
            dw = self.elf.get_dwarf_info()
            for cu in dw.iter_CUs():
                for die in cu.get_top_DIE().iter_children():
                    if die.tag != "DW_TAG_subprogram" or "DW_AT_low_pc" not in die.attributes:
                        continue
                    name = die_name(die)
                    if name:
                        out[(name, die.attributes["DW_AT_low_pc"].value)] = (cu, die)
        self._dwarf_funcs = out
        return out

    def _post_prologue(self, cu: Any, die: Any, lo: int) -> Optional[int]:
        """The second line-table row inside the function (the first
        statement after the prologue), if the function builds a frame
        pointer first; else None."""
        head = self.read_at(lo, 8)
        if head.startswith(_ENDBR64):
            head = head[4:]
        if not head.startswith(_FRAME_SETUP):
            return None
        hi_attr = die.attributes.get("DW_AT_high_pc")
        if hi_attr is None:
            return None
        hi = hi_attr.value if hi_attr.form.startswith("DW_FORM_addr") else lo + hi_attr.value
        lp = cu.dwarfinfo.line_program_for_CU(cu)
        if lp is None:
            return None
        first_line = None
        for entry in lp.get_entries():
            st = entry.state
            if st is None or st.end_sequence or not (lo <= st.address < hi):
                continue
            if first_line is None and st.address == lo:
                first_line = st.line
                continue
            if first_line is not None and st.address > lo and st.line != first_line:
                return st.address
        return None

    # -- statements (process("PATH").statement) ---------------------------
    def _function_dwarf(self, name: str) -> Optional[tuple[Any, Any]]:
        sym = self.symbols().get(name)
        return None if sym is None else self._dwarf_index().get((name, sym.value))

    def line_rows(self, name: str) -> list[tuple[int, int, str]]:
        """(address, line, file) of the line-table rows that begin a
        statement inside function `name` (empty without DWARF)."""
        hit = self._function_dwarf(name)
        if hit is None:
            return []
        cu, _ = hit
        sym = self.symbols()[name]
        lp = cu.dwarfinfo.line_program_for_CU(cu)
        if lp is None:
            return []
        files = _cu_file_table(cu)
        rows = []
        for entry in lp.get_entries():
            st = entry.state
            if st is None or st.end_sequence or not st.is_stmt:
                continue
            if sym.value <= st.address < sym.value + max(sym.size, 1):
                f = files[st.file] if 0 <= st.file < len(files) else None
                rows.append((st.address, st.line, f or "?"))
        return rows

    def scope_at(self, name: str, pc: int) -> list[ParamInfo]:
        """The parameters and locals of `name` in scope at pc (inner
        blocks shadow outer ones), located at pc. Frame slots are read
        through the frame pointer (CFA = bp + 16), so they need pc past
        the prologue: before it they have no location."""
        hit = self._function_dwarf(name)
        if hit is None:
            return []
        cu, die = hit
        sym = self.symbols()[name]
        fb = frame_base_kind(cu, die, pc) if "DW_AT_frame_base" in die.attributes else None
        frame_ready = (self._post_prologue(cu, die, sym.value) or sym.value + 1) <= pc
        seen: dict[str, ParamInfo] = {}
        index = 0

        def visit(scope: Any) -> None:
            nonlocal index
            for ch in scope.iter_children():
                if ch.tag in ("DW_TAG_formal_parameter", "DW_TAG_variable"):
                    vname = die_name(ch)
                    if not vname or "DW_AT_location" not in ch.attributes and \
                            "DW_AT_const_value" not in ch.attributes:
                        continue
                    index += 1
                    loc = location_at(cu, ch, pc, fb, at_entry=pc == sym.value)
                    if loc.get("kind") == "fbreg" and loc.get("frame_base") == "cfa":
                        loc = {"kind": "bpcfa", "offset": loc["offset"]} if frame_ready \
                            else {"kind": "unknown"}
                    t = ch.get_DIE_from_attribute("DW_AT_type") if "DW_AT_type" in ch.attributes \
                        else None
                    seen[vname] = ParamInfo(vname, type_info(t), index, loc)
                elif ch.tag == "DW_TAG_lexical_block" and _block_covers(ch, pc):
                    visit(ch)
        visit(die)
        return sorted(seen.values(), key=lambda v: v.index)

    def function(self, name: str) -> UserFunction:
        sym = self.symbols()[name]
        hit = self._dwarf_index().get((name, sym.value))
        if hit is None:
            return UserFunction(sym, None, sym.offset,
                                notes=[f"{name} has no DWARF in {self.path}"])
        cu, die = hit
        files = _cu_file_table(cu)
        df = die.attributes.get("DW_AT_decl_file")
        dl = die.attributes.get("DW_AT_decl_line")
        rt = die.attributes.get("DW_AT_type")
        info = FunctionInfo(name=name, address=sym.value,
                            decl_file=(files[df.value] if df is not None and
                                       0 <= df.value < len(files) else None),
                            decl_line=dl.value if dl is not None else None,
                            return_type=type_info(die.get_DIE_from_attribute("DW_AT_type"))
                            if rt is not None else None,
                            symbol=name, size=sym.size, cu_offset=cu.cu_offset,
                            die_offset=die.offset)
        fb = frame_base_kind(cu, die, sym.value) if "DW_AT_frame_base" in die.attributes else None
        params = [ch for ch in die.iter_children() if ch.tag == "DW_TAG_formal_parameter"]
        info.varargs = any(ch.tag == "DW_TAG_unspecified_parameters"
                           for ch in die.iter_children())
        locs = [location_at(cu, p, sym.value, fb, at_entry=True) for p in params]
        probe_offset = sym.offset
        skipped = False
        if any(l.get("kind") == "fbreg" for l in locs):
            # Frame slots hold the arguments only once the prologue ran.
            after = self._post_prologue(cu, die, sym.value)
            if after is not None:
                probe_offset = self.file_offset(after)
                skipped = True
                locs = [{"kind": "bpcfa", "offset": l["offset"]}
                        if l.get("kind") == "fbreg" and l.get("frame_base") == "cfa" else l
                        for l in locs]
        for i, (p, loc) in enumerate(zip(params, locs), 1):
            ptype = p.get_DIE_from_attribute("DW_AT_type") if "DW_AT_type" in p.attributes \
                else None
            info.params.append(ParamInfo(die_name(p) or f"arg{i}", type_info(ptype), i, loc))
        return UserFunction(sym, info, probe_offset, skipped)


def _block_covers(block: Any, pc: int) -> bool:
    """Does a DW_TAG_lexical_block's low_pc/high_pc range hold pc? (gcc -O0
    gives contiguous blocks; a block with DW_AT_ranges is taken to hold it,
    which only widens what is visible.)"""
    lo = block.attributes.get("DW_AT_low_pc")
    hi = block.attributes.get("DW_AT_high_pc")
    if lo is None or hi is None:
        return "DW_AT_ranges" in block.attributes
    end = hi.value if hi.form.startswith("DW_FORM_addr") else lo.value + hi.value
    return lo.value <= pc < end


# --------------------------------------------------------------------------
# Shared libraries, found the way the dynamic linker finds them

DEFAULT_LIB_DIRS = ["/lib/x86_64-linux-gnu", "/usr/lib/x86_64-linux-gnu",
                    "/lib64", "/usr/lib64", "/lib", "/usr/lib"]


def ld_so_conf_dirs(conf: str = "/etc/ld.so.conf", depth: int = 0) -> list[str]:
    """Directories listed in ld.so.conf and the files it includes."""
    out: list[str] = []
    if depth > 8:
        return out
    try:
        text = Path(conf).read_text()
    except OSError:
        return out
    for line in text.splitlines():
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        if line.startswith("include "):
            pat = line.split(None, 1)[1]
            if not os.path.isabs(pat):
                pat = os.path.join(os.path.dirname(conf), pat)
            for f in sorted(glob.glob(pat)):
                out += ld_so_conf_dirs(f, depth + 1)
        else:
            out.append(line)
    return out


def resolve_library(binary: UserBinary, lib: str,
                    search: Optional[list[str]] = None) -> list[str]:
    """Real paths of the shared libraries that `lib` names for `binary`:
    an absolute path (or glob) as written, else a DT_NEEDED entry that
    matches `lib` (exactly, as a glob, or as a prefix like "libc" for
    "libc.so.6"), looked up in the binary's RUNPATH, ld.so.conf and the
    default directories."""
    if os.path.isabs(lib):
        hits = sorted(glob.glob(lib)) if _is_wild(lib) else ([lib] if os.path.exists(lib) else [])
        return [os.path.realpath(h) for h in hits]
    needed = binary.needed()
    chosen = [n for n in needed if n == lib or fnmatch.fnmatchcase(n, lib)]
    if not chosen:
        chosen = [n for n in needed if n.startswith(lib + ".so") or n.startswith(lib + "-")]
    dirs = search if search is not None else \
        binary.runpath() + ld_so_conf_dirs() + DEFAULT_LIB_DIRS
    out: list[str] = []
    for n in chosen:
        for d in dirs:
            cand = os.path.join(d, n)
            if os.path.exists(cand):
                real = os.path.realpath(cand)
                if real not in out:
                    out.append(real)
                break
    return out


def find_executable(name: str) -> Optional[str]:
    """process("ls"): a name without a slash is searched in $PATH, as a
    shell does."""
    if "/" in name:
        return name
    for d in os.environ.get("PATH", "/usr/bin:/bin").split(":"):
        cand = os.path.join(d or ".", name)
        if os.path.isfile(cand) and os.access(cand, os.X_OK):
            return cand
    return None
