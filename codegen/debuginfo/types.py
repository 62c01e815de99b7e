"""Type navigation for `$p->a->b`, `$p[i]` and `@cast`: one interface over
DWARF DIEs and BTF types.

A TypeInfo carries a `ref` ("d:<cu>:<die>" or "b:<id>") to the type it
describes, typedefs and qualifiers already stripped.  From there a walk
asks for a member (offset, type), the full pointee or array element, or a
type by name.  DWARF is asked first; when a CU holds only a declaration of
a struct (common: a function that merely passes a pointer along), the
complete layout comes from the same kernel's BTF, which has every struct
once and is indexed by name, instead of a walk over thousands of CUs.
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

from .model import MemberInfo, TypeInfo

_AGGREGATE_TAGS = ("DW_TAG_structure_type", "DW_TAG_union_type", "DW_TAG_class_type")


class TypeNav:
    """Navigate the types of one kernel (vmlinux DWARF and/or BTF)."""

    def __init__(self, vmlinux: Optional[Path] = None, btf_source: Optional[Path] = None,
                 index: object = None) -> None:
        self.vmlinux = Path(vmlinux) if vmlinux else None
        self.btf_source = Path(btf_source) if btf_source else None
        self.index = index
        self._btf = None
        self._btf_failed = False

    # -- backends --------------------------------------------------------
    def btf(self):  # type: ignore[no-untyped-def]
        """The kernel's BTF, parsed on first use (~0.6 s), or None."""
        if self._btf is None and not self._btf_failed:
            from .btf import load_btf
            src = self.btf_source or self.vmlinux
            try:
                self._btf = load_btf(src) if src is not None else None
            except (OSError, ValueError):
                self._btf = None
            self._btf_failed = self._btf is None
        return self._btf

    def _die(self, ref: str):  # type: ignore[no-untyped-def]
        from .dwarf_open import open_dwarf
        _, cu_off, die_off = ref.split(":")
        assert self.vmlinux is not None
        cu = open_dwarf(self.vmlinux).get_CU_at(int(cu_off))
        return cu.get_DIE_from_refaddr(int(die_off))

    # -- completing declarations -------------------------------------------
    def complete(self, t: TypeInfo) -> TypeInfo:
        """A struct/union with its full layout (a declaration is looked up
        by name); other types unchanged."""
        if t.kind not in ("struct", "union") or t.ref is None:
            return t
        if t.ref.startswith("d:"):
            die = self._die(t.ref)
            if "DW_AT_declaration" not in die.attributes:
                return t
        elif t.size is not None:
            return t
        found = self.lookup(t.name) if t.name and "{" not in t.name else None
        return found if found is not None and found.kind == t.kind else t

    # -- navigation --------------------------------------------------------
    def pointee(self, t: TypeInfo) -> Optional[TypeInfo]:
        """The full type a pointer (or array) points to; None for void*."""
        if t.ref is None:
            return t.target
        if t.ref.startswith("b:"):
            btf = self.btf()
            bt = btf.types[int(t.ref[2:])]
            if t.kind == "pointer":
                return btf.type_info(bt.size_or_type) if bt.size_or_type else None
            if t.kind == "array":
                return btf.type_info(bt.extra[0])
            return None
        from .dwarf_types import ref as die_ref, type_info
        die = self._die(t.ref)
        tgt = die_ref(die, "DW_AT_type")
        return type_info(tgt) if tgt is not None else None

    def member(self, t: TypeInfo, name: str) -> Optional[MemberInfo]:
        """Member `name` of struct/union `t` (anonymous members flattened);
        offset relative to the start of `t`."""
        t = self.complete(t)
        if t.ref is None:
            return None
        if t.ref.startswith("b:"):
            btf = self.btf()
            got = btf._member_in(int(t.ref[2:]), name, 0)
            return got[0] if got is not None else None
        from .functions import _member_in
        die = self._die(t.ref)
        if "DW_AT_declaration" in die.attributes:
            return None
        return _member_in(die, name, 0)

    def members(self, t: TypeInfo) -> list[MemberInfo]:
        """Every member of struct/union `t` in declaration order (anonymous
        members flattened), offsets from the start of `t`; [] when only a
        declaration is known."""
        t = self.complete(t)
        if t.ref is None:
            return []
        if t.ref.startswith("b:"):
            btf = self.btf()
            return list(btf.iter_members(int(t.ref[2:])))
        from .functions import iter_members
        die = self._die(t.ref)
        if "DW_AT_declaration" in die.attributes:
            return []
        return list(iter_members(die))

    def member_names(self, t: TypeInfo) -> list[str]:
        """Every member name a user can write after `->` (for suggestions)."""
        t = self.complete(t)
        if t.ref is None:
            return []
        out: list[str] = []
        if t.ref.startswith("b:"):
            btf = self.btf()

            def walk_b(tid: int) -> None:
                bt = btf.types[tid]
                for name_off, mtid, _off in btf.members(bt):
                    nm = btf.str(name_off)
                    if nm:
                        out.append(nm)
                    else:
                        inner = btf._strip(mtid)
                        if btf.types[inner] is not None and btf.types[inner].kind in (4, 5):
                            walk_b(inner)
            walk_b(int(t.ref[2:]))
            return out
        from .dwarf_types import _strip, die_name, ref as die_ref

        def walk_d(die) -> None:  # type: ignore[no-untyped-def]
            for ch in die.iter_children():
                if ch.tag != "DW_TAG_member":
                    continue
                nm = die_name(ch)
                if nm:
                    out.append(nm)
                else:
                    inner = _strip(die_ref(ch, "DW_AT_type"))
                    if inner is not None and inner.tag in _AGGREGATE_TAGS:
                        walk_d(inner)
        walk_d(self._die(t.ref))
        return out

    def lookup(self, name: str) -> Optional[TypeInfo]:
        """A type by name, as @cast names it: "task_struct", "struct file",
        "union bpf_attr", or a typedef ("sector_t")."""
        name = " ".join(name.split())
        kw, _, rest = name.partition(" ")
        if kw in ("struct", "union", "enum") and rest:
            kinds = [kw]
            bare = rest
        else:
            kinds = ["struct", "union", "typedef"]
            bare = name
        # A module's own types (struct loop_device lives only in loop.ko)
        # come from its DWARF first; the kernel's BTF then completes what
        # the module only declares.
        own_first = self.vmlinux is not None and Path(self.vmlinux).suffix == ".ko"
        if own_first:
            found = self._dwarf_lookup(kinds, bare)
            if found is not None:
                return found
        btf = self.btf()
        if btf is not None:
            from .btf import KIND_ENUM, KIND_STRUCT, KIND_TYPEDEF, KIND_UNION
            codes = {"struct": KIND_STRUCT, "union": KIND_UNION, "typedef": KIND_TYPEDEF,
                     "enum": KIND_ENUM}
            for k in kinds:
                tid = btf.named.get((codes[k], bare))
                if tid is not None:
                    return btf.type_info(tid)
            # vmlinux BTF has every struct/union/typedef of the kernel
            # (deduplicated): not there means not anywhere.
            return None
        return None if own_first else self._dwarf_lookup(kinds, bare)

    def _dwarf_lookup(self, kinds: list[str], bare: str) -> Optional[TypeInfo]:
        if self.vmlinux is None or self.index is None:
            return None
        from .dwarf_open import open_dwarf
        from .dwarf_types import type_info
        from .functions import _find_struct
        tags = {"struct": "DW_TAG_structure_type", "union": "DW_TAG_union_type"}
        dw = open_dwarf(self.vmlinux)
        for k in kinds:
            if k not in tags:
                continue
            die = _find_struct(dw, str(Path(self.vmlinux).resolve()), tags[k], bare, None, 400)
            if die is not None:
                return type_info(die)
        return None
