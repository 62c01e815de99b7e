"""The parse tree of a SystemTap script: node classes and their JSON form.

Pass 1 (codegen.parser) builds these nodes; pass 2 (codegen.elaborate) reads
them back from the parse-tree artifact. Every node carries a ``loc``
(file, line, column) so that later passes report errors against the source.

The JSON form is generic: ``{"k": "<ClassName>", "loc": [file, line, col],
<field>: <value>, ...}``; lists and nested nodes recurse. ``PARSE_TREE_SCHEMA``
names the version; bump it whenever a node or field changes meaning.
"""
from __future__ import annotations

import dataclasses
import functools
import gc
import json
from dataclasses import dataclass, field
from typing import Any, Optional, Union

PARSE_TREE_SCHEMA = "stapbuild.parse-tree/1"


@dataclass(frozen=True)
class Loc:
    file: str
    line: int
    col: int

    def __str__(self) -> str:
        return f"{self.file}:{self.line}:{self.col}"


NOWHERE = Loc("<builtin>", 0, 0)


@dataclass
class Node:
    loc: Loc = field(default=NOWHERE, kw_only=True, compare=False)


# ---------------------------------------------------------------- expressions
@dataclass
class Expr(Node):
    # Filled in by pass 2 and carried in the IR: the inferred type ("long",
    # "string", "stats") and resolution facts (scope of a symbol, the callee
    # of a call, the location of a $target). None in a parse tree.
    ty: Optional[str] = field(default=None, kw_only=True, compare=False)
    info: Optional[dict] = field(default=None, kw_only=True, compare=False)


@dataclass
class Number(Expr):
    value: int


@dataclass
class String(Expr):
    value: str            # decoded text; the translator re-escapes it for C


@dataclass
class Symbol(Expr):
    """A script variable: local, function parameter or global."""
    name: str


@dataclass
class TargetComponent(Node):
    kind: str                      # "member" ($p->f) or "index" ($p[i])
    member: str = ""
    index: Optional[Expr] = None


@dataclass
class TargetSymbol(Expr):
    """A context (target) variable: $name, $name->f[2], &$name, $name$."""
    name: str                      # with its leading "$", e.g. "$count"
    components: list[TargetComponent] = field(default_factory=list)
    addressof: bool = False
    pretty: str = ""               # "", "$" or "$$" suffix


@dataclass
class Wildcard(Expr):
    """``*`` in an index list: delete a[*, k], [*, k] in a, foreach slices."""


@dataclass
class Index(Expr):
    base: Expr                     # a Symbol naming a global array
    indexes: list[Expr]


@dataclass
class Call(Expr):
    """A function call; also the print family (printf, println ...)."""
    name: str
    args: list[Expr]


@dataclass
class Binary(Expr):
    """Arithmetic, bitwise, comparison, regex match and "." concatenation."""
    op: str
    left: Expr
    right: Expr


@dataclass
class Logical(Expr):
    op: str                        # "&&" or "||"
    left: Expr
    right: Expr


@dataclass
class Unary(Expr):
    op: str                        # "-", "+", "!", "~"
    operand: Expr


@dataclass
class IncDec(Expr):
    op: str                        # "++" or "--"
    prefix: bool
    operand: Expr


@dataclass
class Assign(Expr):
    op: str                        # "=", "+=", ..., ".=", "<<<"
    target: Expr
    value: Expr


@dataclass
class Ternary(Expr):
    cond: Expr
    then: Expr
    else_: Expr


@dataclass
class InArray(Expr):
    keys: list[Expr]
    array: Expr


@dataclass
class StatOp(Expr):
    """@count(x), @sum(x), @min(x), @max(x), @avg(x), @variance(x[, s])."""
    op: str                        # "count", "sum", ...
    operand: Expr
    args: list[Expr] = field(default_factory=list)


@dataclass
class HistOp(Expr):
    """@hist_linear(x, lo, hi, width) and @hist_log(x)."""
    kind: str                      # "linear" or "log"
    operand: Expr
    params: list[Expr] = field(default_factory=list)


@dataclass
class AtOp(Expr):
    """Other @-operators: @defined(e), @entry(e), @cast(...), @var(...)."""
    op: str
    args: list[Expr] = field(default_factory=list)
    strings: list[str] = field(default_factory=list)
    # Added by the parser (pass 1) for @cast/@var and autocasts: member/index
    # suffixes, '&' and '$'/'$$', exactly as on TargetSymbol. An implicit
    # autocast ("f()->x", "&(e)->y") is op "autocast" with the expression in args[0].
    components: list[TargetComponent] = field(default_factory=list)
    addressof: bool = False
    pretty: str = ""


@dataclass
class EmbeddedExpr(Expr):
    code: str


# ---------------------------------------------------------------- statements
@dataclass
class Stmt(Node):
    pass


@dataclass
class Block(Stmt):
    stmts: list[Stmt] = field(default_factory=list)


@dataclass
class NullStmt(Stmt):
    pass


@dataclass
class ExprStmt(Stmt):
    expr: Expr


@dataclass
class If(Stmt):
    cond: Expr
    then: Stmt
    else_: Optional[Stmt] = None


@dataclass
class While(Stmt):
    cond: Expr
    body: Stmt


@dataclass
class For(Stmt):
    init: Optional[Expr]
    cond: Optional[Expr]
    incr: Optional[Expr]
    body: Stmt


@dataclass
class Foreach(Stmt):
    """foreach ([v =] [k1, k2] in A[slice] [@agg][+|-] limit N) body.

    sort_column: None (unsorted), 0 (by value) or i >= 1 (by key i);
    sort_dir: +1 ascending, -1 descending.
    """
    keys: list[Symbol]
    value: Optional[Symbol]
    array: Expr
    body: Stmt
    slice: Optional[list[Expr]] = None
    sort_column: Optional[int] = None
    sort_dir: int = 0
    agg: Optional[str] = None
    limit: Optional[Expr] = None


@dataclass
class Break(Stmt):
    pass


@dataclass
class Continue(Stmt):
    pass


@dataclass
class Next(Stmt):
    pass


@dataclass
class Return(Stmt):
    value: Optional[Expr] = None


@dataclass
class Delete(Stmt):
    target: Expr                   # Symbol (whole array / scalar) or Index


@dataclass
class TryCatch(Stmt):
    body: Block
    handler: Block
    var: Optional[str] = None


# ---------------------------------------------------------------- top level
@dataclass
class Component(Node):
    """One dot-separated part of a probe point: ``name`` or ``name(arg)``."""
    name: str
    arg: Optional[Union[Number, String]] = None


@dataclass
class ProbePoint(Node):
    components: list[Component]
    optional: bool = False         # "?"
    sufficient: bool = False       # "!"
    condition: Optional[Expr] = None

    def text(self) -> str:
        """The probe point as SystemTap prints it in pp()."""
        parts = []
        for c in self.components:
            if c.arg is None:
                parts.append(c.name)
            elif isinstance(c.arg, String):
                parts.append(f'{c.name}("{c.arg.value}")')
            else:
                parts.append(f"{c.name}({c.arg.value})")
        return ".".join(parts)


@dataclass
class Probe(Node):
    points: list[ProbePoint]
    body: Block


@dataclass
class ProbeAlias(Node):
    """probe NAME = PP, ... { prologue }  or  probe NAME += PP { epilogue }."""
    names: list[ProbePoint]
    points: list[ProbePoint]
    body: Block
    epilogue: bool = False


@dataclass
class Param(Node):
    name: str
    type: Optional[str] = None     # "long", "string" or None (inferred)


@dataclass
class Function(Node):
    name: str
    params: list[Param]
    body: Union[Block, EmbeddedExpr]   # EmbeddedExpr: a %{ C %} body
    return_type: Optional[str] = None
    priority: int = 0
    private: bool = False


@dataclass
class Global(Node):
    name: str
    size: Optional[int] = None
    wrap: bool = False
    init: Optional[Union[Number, String]] = None
    private: bool = False


@dataclass
class Embed(Node):
    """Top-level %{ C %} code."""
    code: str


@dataclass
class File(Node):
    path: str
    probes: list[Probe] = field(default_factory=list)
    aliases: list[ProbeAlias] = field(default_factory=list)
    functions: list[Function] = field(default_factory=list)
    globals: list[Global] = field(default_factory=list)
    embeds: list[Embed] = field(default_factory=list)
    is_tapset: bool = False


# ---------------------------------------------------------------- JSON
_CLASSES: dict[str, type] = {}
# Per class: field names in order, constant defaults, and default factories.
_FIELDS: dict[type, tuple[str, ...]] = {}
_DEFAULTS: dict[type, dict[str, Any]] = {}
_FACTORIES: dict[type, tuple[tuple[str, Any], ...]] = {}
_new = object.__new__


def _register() -> None:
    for obj in list(globals().values()):
        if isinstance(obj, type) and issubclass(obj, Node):
            _CLASSES[obj.__name__] = obj
            fields = dataclasses.fields(obj)
            _FIELDS[obj] = tuple(f.name for f in fields if f.name != "loc")
            _DEFAULTS[obj] = {f.name: f.default for f in fields
                              if f.default is not dataclasses.MISSING and f.name != "loc"}
            _FACTORIES[obj] = tuple((f.name, f.default_factory) for f in fields
                                    if f.default_factory is not dataclasses.MISSING)


def _gc_paused(fn):  # type: ignore[no-untyped-def]
    """Run fn with the cyclic GC paused: trees have no cycles, and with a big
    live heap the collector's rescans cost several times the work itself."""
    @functools.wraps(fn)
    def wrapper(value: Any) -> Any:
        if not gc.isenabled():
            return fn(value)
        gc.disable()
        try:
            return fn(value)
        finally:
            gc.enable()
    return wrapper


def _to_json(value: Any) -> Any:
    cls = type(value)
    names = _FIELDS.get(cls)
    if names is not None:
        loc = value.loc
        out: dict[str, Any] = {"k": cls.__name__, "loc": [loc.file, loc.line, loc.col]}
        d = value.__dict__
        for name in names:
            item = d[name]
            if item is None:
                if name == "ty" or name == "info":
                    continue        # keep parse trees free of pass-2 annotations
                out[name] = None
            elif type(item) in (str, int, bool):
                out[name] = item
            else:
                out[name] = _to_json(item)
        return out
    if cls is list:
        return [_to_json(v) for v in value]
    if isinstance(value, Node):         # a subclass defined elsewhere
        out = {"k": cls.__name__}
        loc = value.loc
        out["loc"] = [loc.file, loc.line, loc.col]
        for f in dataclasses.fields(value):
            if f.name == "loc":
                continue
            item = getattr(value, f.name)
            if f.name in ("ty", "info") and item is None:
                continue
            out[f.name] = _to_json(item)
        return out
    return value


to_json = _gc_paused(_to_json)
to_json.__doc__ = """Turn a node (or list of nodes) into plain JSON-able data."""


def _loc(v: list) -> Loc:
    loc = _new(Loc)
    d = loc.__dict__
    d["file"], d["line"], d["col"] = v
    return loc


def _node(data: dict) -> Node:
    """One node from its JSON object, without the dataclass __init__ (the
    slow part of loading a cached tree): fields are set directly, missing
    ones get their defaults."""
    cls = _CLASSES[data["k"]]
    node = _new(cls)
    d = node.__dict__
    d.update(_DEFAULTS[cls])
    for name, factory in _FACTORIES[cls]:
        d[name] = factory()
    for name, v in data.items():
        t = type(v)
        if t is list:
            if name == "loc":
                d["loc"] = _loc(v)
                continue
            v = [_node(x) if type(x) is dict and "k" in x else
                 (_from_json(x) if type(x) is list else x) for x in v]
        elif t is dict:
            if "k" in v:
                v = _node(v)
        elif name == "k":
            continue
        d[name] = v
    if "loc" not in d:
        d["loc"] = NOWHERE
    return node


def _from_json(data: Any) -> Any:
    t = type(data)
    if t is dict:
        if "k" in data:
            return _node(data)
        return data
    if t is list:
        return [_from_json(v) for v in data]
    return data


from_json = _gc_paused(_from_json)
from_json.__doc__ = """Inverse of to_json."""


@_gc_paused
def loads(text: Union[str, bytes]) -> Any:
    """json.loads + from_json with the GC paused throughout (the fast way to
    read a cached tree: loading 486 tapset trees is mostly GC otherwise)."""
    return _from_json(json.loads(text))


_register()
