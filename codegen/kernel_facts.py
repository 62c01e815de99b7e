"""Kernel facts for pass 2, answered from the per-kernel DWARF index.

The index (codegen.debuginfo.kernel_index) is built once per kernel and
cached; afterwards a function lookup touches one CU of the vmlinux. Each
answer is memoised for the life of the process, since one script often
names the same function from several probes, and stored in the kernel's
facts cache (codegen.debuginfo.facts_cache), so that later runs read no
DWARF for it at all.
"""
from __future__ import annotations

from pathlib import Path
from typing import Optional

from codegen.debuginfo.facts_cache import MISSING, FactsCache
from codegen.debuginfo.functions import lookup_function
from codegen.debuginfo.kernel_index import KernelIndex, load_or_build_index
from codegen.debuginfo.types import TypeNav


def read_exported(symvers: Path) -> frozenset[str]:
    """The symbols vmlinux exports to modules, from Module.symvers
    (CRC, symbol, vmlinux, EXPORT_SYMBOL[_GPL], namespace per line)."""
    out = set()
    for line in symvers.read_text(errors="replace").splitlines():
        parts = line.split("\t")
        if len(parts) >= 4 and parts[2] == "vmlinux":
            out.add(parts[1])
    return frozenset(out)


class ExportedMixin:
    """kernel.function(...).exported: the exports of this kernel, read once
    from the headers' Module.symvers (None when there is none)."""
    symvers: Optional[Path] = None
    _exported: Optional[frozenset[str]] = None

    def exported(self) -> Optional[frozenset[str]]:
        if self._exported is None and self.symvers is not None and self.symvers.exists():
            self._exported = read_exported(self.symvers)
        return self._exported


class DwarfKernelFacts(ExportedMixin):
    def __init__(self, release: str, vmlinux: Path, index_file: Path) -> None:
        self.release = release
        self.vmlinux = Path(vmlinux)
        self.index: KernelIndex = load_or_build_index(self.vmlinux, Path(index_file))
        self._functions: dict[str, Optional[dict]] = {}
        self.types = TypeNav(self.vmlinux, index=self.index)
        self.cache = FactsCache(Path(index_file).with_name("dwarf-facts.sqlite"),
                                self.index.build_id)

    def match_functions(self, pattern: str) -> list[str]:
        names = self.index.match(pattern)
        if not names and pattern in self.index.clones:
            # Only out-of-line copies exist; function() explains why.
            return [pattern]
        return sorted(set(names))

    def prefetch(self, names: list[str]) -> None:
        """Load many cached answers with one query (wildcard probes)."""
        todo = [n for n in names if n not in self._functions]
        for n, v in self.cache.get_many("function", todo).items():
            self._functions[n] = v  # type: ignore[assignment]

    def function(self, name: str) -> Optional[dict]:
        if name not in self._functions:
            hit = self.cache.get("function", name)
            if hit is MISSING:
                info = lookup_function(self.vmlinux, self.index, name)
                # Unprobeable clones are kept (probeable: false) for their note.
                hit = info.to_json() if info is not None else None
                self.cache.put("function", name, hit)
            self._functions[name] = hit  # type: ignore[assignment]
        return self._functions[name]

    # -- issue 11: address forms and whole-file patterns ---------------------
    def function_at(self, addr: int):  # type: ignore[no-untyped-def]
        """(symbol, start, size) of the function containing a link-time
        address, or None when no function symbol covers it."""
        if getattr(self, "_addrmap", None) is None:
            from codegen.debuginfo.addresses import AddressMap
            self._addrmap = AddressMap(self.index)
        return self._addrmap.containing(addr)

    # When .init.* code is freed (said in "no match" messages).
    INIT_FREED = "after boot"

    def _section_starts(self, img) -> dict[int, int]:  # type: ignore[no-untyped-def]
        """Section index -> start address, in the addresses the index uses
        (vmlinux: its link-time section addresses)."""
        return {sec.index: sec.addr for sec in img.sections.values() if sec.addr}

    def section_ranges(self) -> dict[str, tuple[int, int]]:
        """Section name -> [start, end) of every allocated section, read
        from the ELF once."""
        if getattr(self, "_section_ranges", None) is None:
            from codegen.debuginfo.elf_symbols import ElfImage
            with ElfImage(self.vmlinux) as img:
                starts = self._section_starts(img)
                self._section_ranges = {name: (starts[sec.index], starts[sec.index] + sec.size)
                                        for name, sec in img.sections.items()
                                        if sec.index in starts}
        return self._section_ranges

    def section_base(self, name: str) -> Optional[int]:
        got = self.section_ranges().get(name)
        return got[0] if got is not None else None

    def in_init_section(self, addr: int) -> bool:
        """Whether addr is in .init.* code (__init, init_module): it is
        freed (INIT_FREED), so a kprobe there can never be registered."""
        return any(lo <= addr < hi for name, (lo, hi) in self.section_ranges().items()
                   if name.startswith(".init"))

    def symbol_count(self, name: str) -> int:
        """How many distinct definitions share a symbol name (statics)."""
        return len(self.index.lookup(name))

    def functions_in_files(self, names: list[str], file_pat: str) -> list[str]:
        """Of names, those whose CU's source file matches file_pat (a
        cheap prefilter before DWARF lookups; CU names are cached)."""
        import fnmatch
        from codegen.debuginfo.inlines import cu_names
        keep = {off for off, v in cu_names(self).items() if fnmatch.fnmatchcase(v, file_pat)}
        return [n for n in names
                if any(e.cu_offset in keep for e in self.index.lookup(n))]

    def variable(self, name: str, file_glob: str, cu_hint: Optional[int]) -> dict:
        """@var("name[@file]"): {"address", "type", "anchor_link"} or
        {"error": message}, cached per kernel. Searched in the CUs of
        file_glob, else in cu_hint (the probed function's CU)."""
        import fnmatch
        from codegen.debuginfo.dwarf_open import open_dwarf
        from codegen.debuginfo.inlines import cu_names
        from codegen.debuginfo.variables import VariableError, resolve_variable
        key = f"{name}@{file_glob}" if file_glob else f"{name}#{cu_hint}"
        hit = self.cache.get("variable", key)
        if hit is not MISSING and isinstance(hit, dict):
            return hit
        anchor = self.index.lookup("_printk")
        if file_glob:
            cus = sorted(off for off, f in cu_names(self).items()
                         if fnmatch.fnmatchcase(f, file_glob))
            where = f"the compilation units of {file_glob}"
        else:
            cus = [cu_hint] if cu_hint is not None else []
            where = "the probed function's compilation unit"
        if not cus:
            result = {"error": f"no compilation unit of the kernel matches '{file_glob}'"
                      if file_glob else f"@var(\"{name}\") here needs its file: "
                      f"@var(\"{name}@FILE.c\")"}
        elif len(anchor) != 1:
            result = {"error": "cannot place kernel variables: the kernel has "
                      f"{len(anchor)} _printk symbols"}
        else:
            try:
                result = resolve_variable(self.vmlinux, open_dwarf(self.vmlinux), cus, name,
                                          where)
                result["anchor_link"] = anchor[0].address
            except VariableError as e:
                result = {"error": str(e)}
        self.cache.put("variable", key, result)
        return result


def tracepoints(facts, pattern: str) -> list[dict]:  # type: ignore[no-untyped-def]
    """kernel.trace("[sys:]name") matches: every tracepoint has an iterator
    function __traceiter_<name>(void *__data, TP_PROTO args) whose
    parameters are the tracepoint's arguments, named and typed.  The
    system is the trace header the iterator is declared in
    (include/trace/events/<sys>.h); BTF does not know it."""
    import fnmatch
    sys_pat, _, name_pat = pattern.rpartition(":")
    out = []
    for fname in facts.match_functions("__traceiter_" + name_pat):
        info = facts.function(fname)
        if info is None or not info.get("params"):
            continue
        decl = info.get("decl_file") or ""
        system = None
        if decl.startswith("include/trace/events/") and decl.endswith(".h"):
            system = decl[len("include/trace/events/"):-2].replace("/", "_")
        elif decl:
            system = Path(decl).stem
        if sys_pat and system is not None and not fnmatch.fnmatchcase(system, sys_pat):
            continue
        args = [{"name": p["name"], "type": p["type"]} for p in info["params"][1:]]
        out.append({"name": fname[len("__traceiter_"):], "system": system, "args": args,
                    "decl_file": info.get("decl_file"), "decl_line": info.get("decl_line")})
    return out


class BtfKernelFacts(ExportedMixin):
    """Kernel facts from BTF alone, for kernels without the -dbg package.

    BTF serves a kernel.function entry probe's parameters (in the x86-64
    argument registers at entry), $return, struct/union members, arrays,
    bitfields and @cast.  It cannot serve (these need DWARF): locals and
    $$locals, @file/@file:line filters and decl lines in pp(), .inline and
    .statement/line probes, parameters passed on the stack (beyond six
    integer registers) or as structs by value, functions pahole left out of
    BTF (inconsistent prototypes, most static inlines), and module probes.
    """

    def __init__(self, release: str, btf_path: Path) -> None:
        from codegen.debuginfo.btf import load_btf
        self.release = release
        self.btf_path = Path(btf_path)
        self.btf = load_btf(self.btf_path)
        self.types = TypeNav(btf_source=self.btf_path)
        self._functions: dict[str, Optional[dict]] = {}

    def match_functions(self, pattern: str) -> list[str]:
        import fnmatch
        from codegen.debuginfo.kernel_index import _CLONE_RE
        if not any(c in pattern for c in "*?["):
            return [pattern] if pattern in self.btf.funcs else []
        return sorted(n for n in fnmatch.filter(self.btf.funcs.keys(), pattern)
                      if not _CLONE_RE.match(n))

    def function(self, name: str) -> Optional[dict]:
        if name not in self._functions:
            info = self.btf.function(name)
            self._functions[name] = info.to_json() if info is not None else None
        return self._functions[name]


def btf_path_for(kernel) -> Path:  # type: ignore[no-untyped-def]
    """The kernel's BTF blob: from its vmlinux when it has one, else out of
    its vmlinuz (cached under the kernel's directory), else the running
    kernel's /sys/kernel/btf/vmlinux when it is that kernel."""
    from codegen.debuginfo.vmlinuz import find_btf
    if getattr(kernel, "vmlinux", None) is not None:
        return Path(kernel.vmlinux)
    return find_btf(kernel.release, getattr(kernel, "vmlinuz", None), Path(kernel.root) / "btf")


def btf_identity(kernel) -> str:  # type: ignore[no-untyped-def]
    """What pass 2's answers depend on in BTF mode: the blob's digest."""
    import hashlib
    from codegen.debuginfo.vmlinuz import BtfUnavailable
    try:
        return "btf:" + hashlib.sha256(btf_path_for(kernel).read_bytes()).hexdigest()
    except (BtfUnavailable, OSError):
        return "btf:none"


def make_kernel_facts(release: str, kernel, index_file: Path):  # type: ignore[no-untyped-def]
    """Facts for one provisioned kernel (stapbuild.kernels.Kernel): from its
    DWARF vmlinux when the dbg part is there, else from BTF (see
    BtfKernelFacts for what that cannot answer)."""
    from codegen.debuginfo.vmlinuz import BtfUnavailable
    facts: DwarfKernelFacts | BtfKernelFacts
    if getattr(kernel, "vmlinux", None) is not None:
        facts = DwarfKernelFacts(release, kernel.vmlinux, index_file)
    else:
        try:
            facts = BtfKernelFacts(release, btf_path_for(kernel))
        except BtfUnavailable:
            return None     # probes that need kernel facts say so in pass 2
    if isinstance(facts, DwarfKernelFacts):
        # module("NAME") probes: each module's DWARF, extracted on demand.
        from codegen.module_facts import ModuleSource, provisioned_locator
        facts.modules = ModuleSource(release, provisioned_locator(release),
                                     Path(kernel.vmlinux))
    build_dir = getattr(kernel, "build_dir", None)
    facts.symvers = Path(build_dir) / "Module.symvers" if build_dir else None
    return facts
