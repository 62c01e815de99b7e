"""Kernel debug-info access for elaboration: symtab, DWARF (via a per-kernel
index) and a BTF fallback.  All results are JSON-serialisable dataclasses."""

from .btf import load_btf, lookup_function_btf
from .elf_symbols import FunctionSymbols, read_build_id
from .functions import lookup_function, lookup_functions, lookup_struct_member
from .kernel_index import KernelIndex, build_index, load_or_build_index
from .model import FunctionInfo, MemberInfo, ParamInfo, TypeInfo

__all__ = [
    "FunctionInfo", "FunctionSymbols", "KernelIndex", "MemberInfo", "ParamInfo", "TypeInfo",
    "build_index", "load_btf", "load_or_build_index", "lookup_function", "lookup_function_btf",
    "lookup_functions", "lookup_struct_member", "read_build_id",
]
