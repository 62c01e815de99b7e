"""The five passes as functions from artifacts to artifacts.

Both front ends call these: the doit tasks (stapbuild.tasks) and the
``stapbuild`` command (stapbuild.cli). Each pass computes its content key
from its inputs, returns the stored artifact on a hit, and otherwise does the
work and stores the result. The pass boundary is always a file: a JSON parse
tree, a JSON IR, a C file, a .ko.
"""
from __future__ import annotations

import dataclasses
import gc
import json
import os
import re
import time
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Optional, Sequence

from codegen import ast
from codegen.elaborate import IR_SCHEMA, elaborate
from codegen.errors import StapError, StapErrors
from codegen.kernel_facts import DwarfKernelFacts
from codegen.link import definitions
from codegen.parser import parse_file
from codegen.preprocess import PPContext
from codegen.translate import translate
from stapbuild import kbuild, kernels, store
from stapbuild.library_index import linked
from stapbuild.store import Artifact, key_of, project_root, sha256_bytes, sha256_file

if TYPE_CHECKING:
    from stapbuild.library_index import LibraryIndex

C_SCHEMA = "stapbuild.c/1"
KO_SCHEMA = "stapbuild.ko/1"


def tapset_dir() -> Path:
    """tapsets/ of the checkout, or ``$STAPBUILD_TAPSETS`` (a directory)."""
    env = os.environ.get("STAPBUILD_TAPSETS")
    return Path(env).resolve() if env else project_root() / "tapsets"


def runtime_dir() -> Path:
    """runtime_c/ of the checkout, or ``$STAPBUILD_RUNTIME`` (stap -R DIR)."""
    env = os.environ.get("STAPBUILD_RUNTIME")
    return Path(env).resolve() if env else project_root() / "runtime_c"


def _tree_digest(paths: list[Path]) -> str:
    # rel(): a runtime given with -R may live outside the checkout.
    return key_of({rel(p): sha256_file(p) for p in sorted(paths)})


def compiler_files() -> list[Path]:
    """The compiler's own source: a change to it must rebuild what it made."""
    base = project_root() / "codegen"
    return sorted(p for p in base.rglob("*") if p.suffix in (".py", ".j2") and p.is_file())


def runtime_files() -> list[Path]:
    return sorted(p for p in runtime_dir().rglob("*") if p.suffix in (".h", ".c"))


def tapset_files(extra_dirs: Optional[list[Path]] = None, suffix: str = "*.stp") -> list[Path]:
    """The library's files; stap -I dirs are searched after the default one.
    suffix "*.stpm": its library macro files."""
    files = sorted(p for p in tapset_dir().rglob(suffix))
    for d in extra_dirs or ():
        files += sorted(p for p in Path(d).resolve().rglob(suffix) if p not in files)
    return files


def library_macros(pp: PPContext, extra_dirs: Optional[list[Path]] = None
                   ) -> tuple[dict, dict[str, str]]:
    """The @define macros of the library's .stpm files, read before any
    script or tapset as stap does (they are visible in every file, and a
    file's own @define of the same name wins), and those files' digests
    (they are inputs of every parse)."""
    from codegen.parser import parse_stpm
    macros: dict = {}
    digests: dict[str, str] = {}
    for path in tapset_files(extra_dirs, "*.stpm"):
        text = path.read_text()
        macros.update(parse_stpm(rel(path), text, pp=pp, library_macros=macros))
        digests[rel(path)] = sha256_bytes(text.encode())
    return macros, digests


@lru_cache(maxsize=None)
def compiler_id() -> str:
    return _tree_digest(compiler_files())


@lru_cache(maxsize=None)
def runtime_id() -> str:
    return _tree_digest(runtime_files())


def rel(path: Path) -> str:
    """Paths inside the checkout are recorded relative to it (portable refs)."""
    try:
        return str(path.resolve().relative_to(project_root()))
    except ValueError:
        return str(path.resolve())


# ------------------------------------------------------------------ kernels
@dataclass(frozen=True)
class KernelContext:
    """What the passes need of one kernel, cheap to pass around."""
    release: str
    kernel: kernels.Kernel

    @property
    def index_file(self) -> Path:
        return self.kernel.root / "dwarf-index.json.gz"

    def pp_context(self, guru: bool = False) -> PPContext:
        return PPContext(kernel_release=self.release, config=read_kernel_config(self.kernel),
                         guru=guru)


def read_kernel_config(k: kernels.Kernel) -> dict[str, str]:
    config: dict[str, str] = {}
    try:
        text = (k.build_dir / ".config").read_text()
    except OSError:
        return config
    for line in text.splitlines():
        m = re.match(r"(CONFIG_\w+)=(.*)", line)
        if m:
            config[m.group(1)] = m.group(2).strip('"')
    return config


def kernel_context_btf(release: str) -> KernelContext:
    """A kernel context without DWARF: the -dbg package is neither
    downloaded nor used (even if present); pass 2 reads BTF out of the
    image's vmlinuz (codegen.kernel_facts.BtfKernelFacts)."""
    import dataclasses
    k = kernels.provision(release, {"headers", "image"})
    return KernelContext(release, dataclasses.replace(k, vmlinux=None))


def kernel_context(release: str, parts: frozenset[str] = frozenset({"headers", "dbg"})) -> KernelContext:
    return KernelContext(release, kernels.provision(release, set(parts)))


# ------------------------------------------------------------------ pass 1
@dataclass
class ParseResult:
    artifact: Artifact
    inputs: dict[str, str]
    catalogue: str
    user_files: int
    library_files: int
    cached: bool


def _parse_cached(path: Path, text: str, tapset: bool, guru: bool, pp: PPContext,
                  args: list[str], macros: Optional[dict] = None,
                  macro_digests: Optional[dict[str, str]] = None,
                  name: Optional[str] = None) -> ast.File:
    """Parse one file, caching tapset trees by content (they are reused by
    every probe and kernel); name: rel(path), when the caller knows it."""
    if not tapset:
        return parse_file(str(path), text, tapset=False, guru=guru, args=args, pp=pp,
                          library_macros=macros)
    # The tree records its file name in every location: same text at another
    # path is another tree.
    key_parts = {"schema": ast.PARSE_TREE_SCHEMA, "compiler": compiler_id(),
                 "text": sha256_bytes(text.encode()), "path": name or rel(path)}
    if macro_digests and "@" in text:
        key_parts["stpm"] = macro_digests   # a library macro may be expanded here
    if pp.systemtap_v != PPContext().systemtap_v:
        key_parts["compatible"] = pp.systemtap_v
    if "%(" in text:
        key_parts["pp"] = [pp.kernel_release, pp.arch,
                           sha256_bytes(json.dumps(pp.config, sort_keys=True).encode())]
    key = key_of(key_parts)
    hit = store.lookup("tapset-parse", key, "json")
    if hit is not None:
        return ast.loads(hit.path.read_bytes())
    tree = parse_file(rel(path), text, tapset=True, pp=pp, library_macros=macros)
    store.put_json("tapset-parse", key, ast.to_json(tree))
    return tree


def tapset_library(pp: PPContext, extra_dirs: Optional[list[Path]] = None,
                   macros: Optional[tuple[dict, dict[str, str]]] = None) -> dict[str, ast.File]:
    lib_macros, digests = macros if macros is not None else library_macros(pp, extra_dirs)
    lib: dict[str, ast.File] = {}
    for p in tapset_files(extra_dirs):
        lib[rel(p)] = _parse_cached(p, p.read_text(), True, False, pp, [], lib_macros, digests)
    return lib


def _walk(root: Path) -> Optional[list[str]]:
    """Every path below root, or None when the tree holds a symlink (then
    only Path.resolve() names its files as rel() does)."""
    out: list[str] = []
    stack = [str(root)]
    while stack:
        with os.scandir(stack.pop()) as entries:
            for e in entries:
                if e.is_symlink():
                    return None
                out.append(e.path)
                if e.is_dir(follow_symlinks=False):
                    stack.append(e.path)
    return out


def library_paths(extra_dirs: Optional[list[Path]] = None
                  ) -> tuple[dict[str, Path], dict[str, Path]]:
    """The library's .stp and .stpm files as tapset_files() lists them,
    each under its rel() name. One walk of the directories, and no
    per-file resolve() (a third of a lazy pass 1 on a 500-file library)
    unless a symlink makes it necessary."""
    dirs = [tapset_dir().resolve()] + [Path(d).resolve() for d in extra_dirs or ()]
    walks = [_walk(d) if d.is_dir() else [] for d in dirs]
    if any(w is None for w in walks):
        return ({rel(p): p for p in tapset_files(extra_dirs)},
                {rel(p): p for p in tapset_files(extra_dirs, "*.stpm")})
    root = str(project_root()) + os.sep
    out: list[dict[str, Path]] = []
    for suffix in (".stp", ".stpm"):
        named: dict[str, Path] = {}
        for w in walks:
            for p in sorted(Path(x) for x in w if x.endswith(suffix)):
                x = str(p)
                named.setdefault(x[len(root):] if x.startswith(root) else x, p)
        out.append(named)
    return out[0], out[1]


def library_index(extra_dirs: Optional[list[Path]] = None,
                  paths: Optional[tuple[dict[str, Path], dict[str, Path]]] = None
                  ) -> "LibraryIndex":
    """The definitions index of the library (.stp and .stpm files), cached
    in the store by the files' contents (stapbuild.library_index)."""
    from stapbuild.library_index import load_or_build
    stp, stpm = paths if paths is not None else library_paths(extra_dirs)
    return load_or_build({**stp, **stpm})


def library_loader(pp: PPContext, macros: tuple[dict, dict[str, str]],
                   paths: tuple[dict[str, Path], dict[str, Path]]) -> Callable[[str], ast.File]:
    """Parse one library .stp file by its rel() name (paths: library_paths()),
    or load its tree from the cache."""
    lib_macros, digests = macros

    def load(name: str) -> ast.File:
        p = paths[0][name]
        return _parse_cached(p, p.read_text(), True, False, pp, [], lib_macros, digests, name)
    return load


def lazy_library(users: list[ast.File], pp: PPContext, extra_dirs: Optional[list[Path]],
                 macros: tuple[dict, dict[str, str]], refs: Optional[dict] = None
                 ) -> tuple[dict[str, ast.File], str]:
    """The library files the user files may link, parsed (or loaded from the
    tree cache), and the library's catalogue digest. Only files the index
    says may define a name the script (or a file it pulls in) refers to are
    read: closure() over them equals closure() over the whole library.
    refs: a memo of each tree's references, shared with linked()."""
    from stapbuild.library_index import select_library
    paths = library_paths(extra_dirs)
    index = library_index(extra_dirs, paths)
    load = library_loader(pp, macros, paths)
    # Trees hold no cycles; the collector would only rescan the growing heap
    # while hundreds of them load (a fifth of the time for syscall.*).
    gc_was_enabled = gc.isenabled()
    gc.disable()
    try:
        return select_library(users, index, load, refs), index.catalogue
    finally:
        if gc_was_enabled:
            gc.enable()


def library_catalogue(extra_dirs: Optional[list[Path]] = None) -> str:
    """The catalogue digest parse_pass records (see ParseUpToDate in
    stapbuild.tasks): what each library file may define, from the index."""
    return library_index(extra_dirs).catalogue


def catalogue_digest(lib: dict[str, ast.File]) -> str:
    """What the library defines, file by file: a change here may change
    which tapsets a script links, even if none of its own files changed."""
    doc = {}
    for name, f in sorted(lib.items()):
        d = definitions(f)
        doc[name] = [sorted(d.functions), sorted(d.globals),
                     sorted(ast.ProbePoint(a).text() for a in d.aliases)]
    return key_of(doc)


def parse_pass(script: Optional[Path], text: str, kctx: Optional[KernelContext], *,
               name: Optional[str] = None, guru: bool = False,
               args: Optional[list[str]] = None,
               extra: Optional[list[tuple[str, str]]] = None,
               tapset_dirs: Optional[list[Path]] = None,
               compatible: Optional[str] = None) -> ParseResult:
    """extra: stap -E scripts, (name, text) pairs parsed beside the main
    one as further user files; tapset_dirs: stap -I directories;
    compatible: stap --compatible VERSION (the language of that release:
    %( systemtap_v %) and the grammar's version gates)."""
    args = list(args or [])
    extra = list(extra or [])
    pp = kctx.pp_context(guru) if kctx else PPContext(guru=guru)
    if compatible is not None:
        pp = dataclasses.replace(pp, systemtap_v=compatible)
    display = name or (rel(script) if script else "<input>")
    lib_macros, macro_digests = library_macros(pp, tapset_dirs)
    user = parse_file(display, text, guru=guru, args=args, pp=pp, library_macros=lib_macros)
    users = [user] + [parse_file(n, t, guru=guru, args=args, pp=pp, library_macros=lib_macros)
                      for n, t in extra]
    refs: dict = {}
    lib, catalogue = lazy_library(users, pp, tapset_dirs, (lib_macros, macro_digests), refs)
    used = linked(users, lib, refs)
    inputs = {rel(script) if script else "<input>": sha256_bytes(text.encode())}
    inputs.update(macro_digests)
    for n, t in extra:
        inputs[n] = sha256_bytes(t.encode())
    root = project_root()
    for u in used:
        inputs[u] = sha256_file(root / u)
    key_parts = {"schema": ast.PARSE_TREE_SCHEMA, "compiler": compiler_id(), "inputs": inputs,
                 "display": display, "guru": guru, "args": args}
    if compatible is not None:
        key_parts["compatible"] = compatible
    if "%(" in text or any("%(" in t for _, t in extra) or \
            any("%(" in (root / u).read_text() for u in used):
        key_parts["pp"] = [pp.kernel_release, pp.arch,
                           sha256_bytes(json.dumps(pp.config, sort_keys=True).encode())]
    # Two keys: the input key finds a previous result without parsing; the
    # artifact itself is stored under the hash of its content, so an edit
    # that leaves the trees the same (a comment at the end of a tapset) yields
    # the same artifact and key, and elaboration is not redone (early cutoff).
    in_key = key_of(key_parts)
    out_key = store.memo_get("parse", in_key)
    hit = store.lookup("parse", out_key, "json") if out_key else None
    cached = hit is not None
    if hit is None:
        doc = {"schema": ast.PARSE_TREE_SCHEMA, "user": [ast.to_json(u) for u in users],
               "tapsets": [ast.to_json(lib[u]) for u in used]}
        hit = store.put_json_by_content("parse", doc)
        store.memo_put("parse", in_key, hit.key)
    return ParseResult(hit, inputs, catalogue, len(users), len(used), cached)


def load_parse_tree(art: Artifact) -> list[ast.File]:
    doc = art.read_json()
    if doc.get("schema") != ast.PARSE_TREE_SCHEMA:
        raise StapError("semantic", f"parse tree {art.path} has schema {doc.get('schema')}, "
                        f"expected {ast.PARSE_TREE_SCHEMA}")
    files = [ast.from_json(f) for f in doc["user"] + doc["tapsets"]]
    for f in files[len(doc["user"]):]:
        f.is_tapset = True
    return files


# ------------------------------------------------------------------ pass 2
@dataclass
class ElaborateResult:
    artifact: Artifact
    cached: bool
    counts: dict = field(default_factory=dict)
    warnings: list = field(default_factory=list)   # stap's pass-2 WARNING: lines


def elaborate_pass(parse_art: Artifact, kctx: Optional[KernelContext],
                   debuginfo_id: Optional[str] = None, *,
                   unoptimized: bool = False) -> ElaborateResult:
    if kctx is not None and debuginfo_id is None:
        if kctx.kernel.vmlinux is not None:
            debuginfo_id = kernels.debuginfo_identity(kctx.kernel)
        else:   # no -dbg part: pass 2 works from BTF
            from codegen.kernel_facts import btf_identity
            debuginfo_id = btf_identity(kctx.kernel)
    key_parts = {"schema": IR_SCHEMA, "compiler": compiler_id(), "parse": parse_art.key,
                 "debuginfo": debuginfo_id,
                 "release": kctx.release if kctx else None}
    if unoptimized:
        key_parts["unoptimized"] = True         # stap -u: no elision
    key = key_of(key_parts)
    hit = store.lookup("elaborate", key, "json")
    if hit is not None:
        doc = hit.read_json()
        # process("PATH") probes depend on the program's bytes, which the
        # key does not cover: for a rebuilt program the IR is keyed by them.
        from codegen.uprobe_points import stale_user_binaries, user_binary_digests
        if stale_user_binaries(doc):
            key = key_of({**key_parts, "user_binaries": user_binary_digests(doc)})
            hit = store.lookup("elaborate", key, "json")
            doc = hit.read_json() if hit is not None else {}
    if hit is not None:
        return ElaborateResult(hit, True, doc.get("counts", {}), doc.get("warnings", []))
    files = load_parse_tree(parse_art)
    facts = None
    if kctx is not None:
        from codegen.kernel_facts import make_kernel_facts
        facts = make_kernel_facts(kctx.release, kctx.kernel, kctx.index_file)
    ir = elaborate(files, facts, unoptimized=unoptimized)
    ir["kernel"] = {"release": kctx.release, "debuginfo": debuginfo_id} if kctx else None
    ir["counts"] = {"probes": len(ir["probes"]), "functions": len(ir["functions"]),
                    "embeds": len(ir["embeds"]), "globals": len(ir["globals"])}
    return ElaborateResult(store.put_json("elaborate", key, ir), False, ir["counts"],
                           ir.get("warnings", []))


# ------------------------------------------------------------------ pass 3
@dataclass
class TranslateResult:
    artifact: Artifact
    module_name: str
    cached: bool


def module_name_for(probe: str, ir_key: str) -> str:
    base = re.sub(r"[^a-z0-9_]", "_", probe.lower())[:32]
    return f"stap_{base}_{ir_key[:10]}"


def translate_pass(ir_art: Artifact, module_name: str) -> TranslateResult:
    if not re.fullmatch(r"[a-z0-9_]{1,55}", module_name):
        raise StapError("semantic", f"invalid module name '{module_name}': use "
                        "[a-z0-9_], at most 55 characters")
    key = key_of({"schema": C_SCHEMA, "compiler": compiler_id(), "ir": ir_art.key,
                  "runtime": runtime_id(), "module": module_name})
    hit = store.lookup("translate", key, "c")
    if hit is not None:
        return TranslateResult(hit, module_name, True)
    ir = ir_art.read_json()
    if ir.get("schema") != IR_SCHEMA:
        raise StapError("semantic", f"IR {ir_art.path} has schema {ir.get('schema')}")
    c = translate(ir, module_name)
    return TranslateResult(store.put_bytes("translate", key, "c", c.encode()), module_name, False)


# ------------------------------------------------------------------ pass 4
@dataclass
class CompileResult:
    artifact: Artifact
    cached: bool


def compile_pass(c_art: Artifact, module_name: str, kctx: KernelContext,
                 build_id: Optional[str] = None, defines: Optional[list[str]] = None,
                 make_vars: Optional[list[str]] = None,
                 keep_dir: Optional[Path] = None) -> CompileResult:
    """make_vars: stap -B NAME=VAL, extra kbuild make arguments; keep_dir:
    stap -k, build in this directory and leave it there (never a cache hit,
    so the directory always holds a real build)."""
    if build_id is None:
        build_id = kernels.build_identity(kctx.kernel)
    defines = list(defines or [])
    make_vars = list(make_vars or [])
    parts = {"schema": KO_SCHEMA, "c": c_art.key, "runtime": runtime_id(),
             "build": build_id, "release": kctx.release, "defines": defines,
             "kbuild": sha256_file(Path(kbuild.__file__))}
    if make_vars:
        parts["make_vars"] = make_vars
    key = key_of(parts)
    path = store.artifact_path("compile", key, "ko")
    if keep_dir is None and store.verify(path):
        return CompileResult(Artifact("compile", key, path), True)
    kbuild.compile_module(c_art.path, module_name, kctx.kernel, runtime_dir(), path,
                          defines=defines, make_vars=make_vars, keep_dir=keep_dir)
    store.seal(path)
    return CompileResult(Artifact("compile", key, path), False)


# ------------------------------------------------------------------ timing
@dataclass
class PassTimer:
    """usr/sys/real milliseconds of one pass, as stap -v prints them."""
    start_real: float = 0.0
    start_cpu: tuple[float, float] = (0.0, 0.0)

    def __enter__(self) -> "PassTimer":
        import os
        t = os.times()
        self.start_cpu = (t.user + t.children_user, t.system + t.children_system)
        self.start_real = time.monotonic()
        return self

    def __exit__(self, *exc: object) -> None:
        pass

    def text(self) -> str:
        import os
        t = os.times()
        usr = (t.user + t.children_user - self.start_cpu[0]) * 1000
        sys_ = (t.system + t.children_system - self.start_cpu[1]) * 1000
        real = (time.monotonic() - self.start_real) * 1000
        return f"{usr:.0f}usr/{sys_:.0f}sys/{real:.0f}real ms"

    @property
    def seconds(self) -> float:
        return time.monotonic() - self.start_real


def memory_text() -> str:
    """virt/res/shr/data kb from /proc/self/statm, like stap."""
    import os
    try:
        fields = [int(x) for x in Path("/proc/self/statm").read_text().split()]
    except OSError:
        return "?virt/?res/?shr/?data kb"
    page = os.sysconf("SC_PAGE_SIZE") // 1024
    return f"{fields[0] * page}virt/{fields[1] * page}res/{fields[2] * page}shr/{fields[5] * page}data kb"


__all__ = ["StapErrors", "parse_pass", "elaborate_pass", "translate_pass", "compile_pass"]


# ------------------------------------------------------------------ all four
@dataclass
class Built:
    """Passes 1-4 of one script for one kernel."""
    ko: Path
    module: str
    keys: dict[str, str]


def build_script(script: Path, release: str, module: Optional[str] = None,
                 defines: Sequence[str] = ()) -> Built:
    """Run passes 1-4 through the store (hits cost almost nothing);
    defines: -D NAME=VALUE for pass 4."""
    kctx = kernel_context(release)
    parsed = parse_pass(script, script.read_text(), kctx)
    elab = elaborate_pass(parsed.artifact, kctx)
    name = module or module_name_for(script.stem, elab.artifact.key)
    c = translate_pass(elab.artifact, name)
    ko = compile_pass(c.artifact, name, kctx, defines=list(defines)) if defines else \
        compile_pass(c.artifact, name, kctx)
    return Built(ko.artifact.path, name, {"parse": parsed.artifact.key,
                                          "elaborate": elab.artifact.key,
                                          "translate": c.artifact.key,
                                          "compile": ko.artifact.key})
