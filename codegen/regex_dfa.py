"""Regular expressions for ``=~`` and ``!~``: POSIX ERE compiled at translate
time into DFA tables (C arrays) that the runtime walks in one pass, with no
allocation and no backtracking, so matching is safe and bounded in probe
context.

Pipeline: parse the ERE into a small AST, build a Thompson NFA over the
byte alphabet, then the subset construction gives two DFAs:

- *search*: the pattern anywhere in the subject (``=~`` is unanchored, like
  regexec); it stops at the first position where a match has ended;
- *anchored*: the pattern starting at a given position; with it the runtime
  finds the leftmost-longest match (POSIX's rule) for ``matched(0)``.

``^`` and ``$`` are zero-width assertions (beginning and end of the subject;
``.`` matches any byte, newline included, as without REG_NEWLINE). They are
resolved during the subset construction: a DFA state's epsilon closure is
taken without assertions, and "accepts at the end" is computed per state
with ``$`` allowed.

Submatches (``matched(n)`` for n >= 1) come from a Pike VM program emitted
alongside, run only when the script asks: it is anchored at the leftmost-
longest overall match found by the DFA and must end where that match ends,
and among the ways to do so it prefers, in order, the left alternative of
``|`` and the greedy choice of a quantifier. That equals POSIX's
subexpression rule for the usual patterns; where the two differ (patterns
like ``(a|ab)(c|bcd)(d*)`` whose groups can split one overall match in
several ways) group boundaries may differ from SystemTap's.

Supported: literals, ``.``, bracket expressions with ranges, negation and
``[:class:]`` names, groups, ``|``, ``* + ?`` and ``{m}``, ``{m,}``,
``{m,n}`` (counts up to 255), ``\\c`` for a literal c, ``^``, ``$``.
Not supported (a compile error): back-references (not ERE), and patterns
whose DFA exceeds MAX_STATES states.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional, Union

MAX_STATES = 4000
MAX_REPEAT = 255
BYTES = 256


class RegexError(ValueError):
    pass


# ----------------------------------------------------------------- AST
@dataclass
class Chars:
    chars: frozenset[int]


@dataclass
class Assert:
    kind: str                   # "bol" or "eol"


@dataclass
class Cat:
    items: list["Node"]


@dataclass
class Alt:
    items: list["Node"]


@dataclass
class Repeat:
    item: "Node"
    lo: int
    hi: Optional[int]           # None = unbounded


@dataclass
class Group:
    item: "Node"
    index: int


Node = Union[Chars, Assert, Cat, Alt, Repeat, Group]

_CLASSES = {
    "alpha": lambda c: chr(c).isalpha() and c < 128,
    "digit": lambda c: 48 <= c <= 57,
    "alnum": lambda c: (chr(c).isalnum() and c < 128),
    "upper": lambda c: 65 <= c <= 90,
    "lower": lambda c: 97 <= c <= 122,
    "space": lambda c: c in (9, 10, 11, 12, 13, 32),
    "blank": lambda c: c in (9, 32),
    "punct": lambda c: 33 <= c <= 126 and not chr(c).isalnum(),
    "xdigit": lambda c: chr(c) in "0123456789abcdefABCDEF",
    "print": lambda c: 32 <= c <= 126,
    "graph": lambda c: 33 <= c <= 126,
    "cntrl": lambda c: c < 32 or c == 127,
}


class _Parser:
    def __init__(self, pattern: str) -> None:
        self.p = pattern.encode("utf-8", "surrogateescape")
        self.i = 0
        self.groups = 0

    def peek(self) -> Optional[int]:
        return self.p[self.i] if self.i < len(self.p) else None

    def take(self) -> int:
        c = self.p[self.i]
        self.i += 1
        return c

    def parse(self) -> Node:
        node = self.alt()
        if self.i < len(self.p):
            raise RegexError(f"unbalanced ')' at offset {self.i}")
        return node

    def alt(self) -> Node:
        items = [self.cat()]
        while self.peek() == ord("|"):
            self.take()
            items.append(self.cat())
        return items[0] if len(items) == 1 else Alt(items)

    def cat(self) -> Node:
        items: list[Node] = []
        while self.peek() is not None and self.peek() not in (ord("|"), ord(")")):
            items.append(self.repeat())
        return Cat(items)

    def repeat(self) -> Node:
        node = self.atom()
        while True:
            c = self.peek()
            if c == ord("*"):
                self.take()
                node = Repeat(node, 0, None)
            elif c == ord("+"):
                self.take()
                node = Repeat(node, 1, None)
            elif c == ord("?"):
                self.take()
                node = Repeat(node, 0, 1)
            elif c == ord("{") and self._bound_ahead():
                lo, hi = self.bound()
                node = Repeat(node, lo, hi)
            else:
                return node

    def _bound_ahead(self) -> bool:
        j = self.i + 1
        digits = 0
        while j < len(self.p) and chr(self.p[j]).isdigit():
            j += 1
            digits += 1
        return digits > 0 and j < len(self.p) and self.p[j] in (ord(","), ord("}"))

    def bound(self) -> tuple[int, Optional[int]]:
        self.take()                     # '{'
        lo = self.number()
        hi: Optional[int] = lo
        if self.peek() == ord(","):
            self.take()
            hi = self.number() if self.peek() is not None and chr(self.peek()).isdigit() \
                else None
        if self.peek() != ord("}"):
            raise RegexError("invalid repetition count")
        self.take()
        if lo > MAX_REPEAT or (hi is not None and (hi > MAX_REPEAT or hi < lo)):
            raise RegexError("invalid repetition count")
        return lo, hi

    def number(self) -> int:
        n = 0
        while self.peek() is not None and chr(self.peek()).isdigit():
            n = n * 10 + self.take() - 48
        return n

    def atom(self) -> Node:
        c = self.take()
        if c == ord("("):
            self.groups += 1
            index = self.groups
            inner = self.alt()
            if self.peek() != ord(")"):
                raise RegexError("unbalanced '('")
            self.take()
            return Group(inner, index)
        if c == ord("."):
            return Chars(frozenset(range(BYTES)))
        if c == ord("["):
            return Chars(self.bracket())
        if c == ord("^"):
            return Assert("bol")
        if c == ord("$"):
            return Assert("eol")
        if c == ord("\\"):
            if self.peek() is None:
                raise RegexError("trailing backslash")
            e = self.take()
            if chr(e).isdigit() and e != ord("0"):
                raise RegexError("back-references are not supported")
            return Chars(frozenset([e]))
        if c in (ord("*"), ord("+"), ord("?")):
            raise RegexError(f"repetition-operator operand invalid at offset {self.i - 1}")
        return Chars(frozenset([c]))

    def bracket(self) -> frozenset[int]:
        negate = False
        if self.peek() == ord("^"):
            self.take()
            negate = True
        chars: set[int] = set()
        first = True
        while True:
            c = self.peek()
            if c is None:
                raise RegexError("unbalanced '['")
            if c == ord("]") and not first:
                self.take()
                break
            first = False
            if c == ord("[") and self.i + 1 < len(self.p) and self.p[self.i + 1] in b":=.":
                kind = self.p[self.i + 1]
                end = self.p.find(bytes([kind, ord("]")]), self.i + 2)
                if end < 0:
                    raise RegexError("unbalanced '['")
                name = self.p[self.i + 2:end].decode("latin-1")
                self.i = end + 2
                if kind == ord(":"):
                    test = _CLASSES.get(name)
                    if test is None:
                        raise RegexError(f"invalid character class '{name}'")
                    chars |= {b for b in range(BYTES) if test(b)}
                else:
                    chars |= set(name.encode("latin-1"))
                continue
            lo = self.take()
            if self.peek() == ord("-") and self.i + 1 < len(self.p) and \
                    self.p[self.i + 1] != ord("]"):
                self.take()
                hi = self.take()
                if hi < lo:
                    raise RegexError("invalid character range")
                chars |= set(range(lo, hi + 1))
            else:
                chars.add(lo)
        if negate:
            chars = set(range(BYTES)) - chars
        return frozenset(chars)


def parse(pattern: str) -> tuple[Node, int]:
    p = _Parser(pattern)
    return p.parse(), p.groups


# ----------------------------------------------------------------- NFA
@dataclass
class NFA:
    # per state: list of (charset index or None for epsilon, target)
    edges: list[list[tuple[Optional[int], int]]] = field(default_factory=list)
    # zero-width assertion edges: (kind, target)
    asserts: list[list[tuple[str, int]]] = field(default_factory=list)
    sets: list[frozenset[int]] = field(default_factory=list)

    def new(self) -> int:
        self.edges.append([])
        self.asserts.append([])
        return len(self.edges) - 1

    def set_index(self, s: frozenset[int]) -> int:
        try:
            return self.sets.index(s)
        except ValueError:
            self.sets.append(s)
            return len(self.sets) - 1


def _build(nfa: NFA, node: Node, start: int, end: int) -> None:
    """Add node to nfa so that it leads from start to end."""
    if isinstance(node, Chars):
        nfa.edges[start].append((nfa.set_index(node.chars), end))
    elif isinstance(node, Assert):
        nfa.asserts[start].append((node.kind, end))
    elif isinstance(node, Group):
        _build(nfa, node.item, start, end)
    elif isinstance(node, Cat):
        cur = start
        for item in node.items:
            nxt = nfa.new()
            _build(nfa, item, cur, nxt)
            cur = nxt
        nfa.edges[cur].append((None, end))
    elif isinstance(node, Alt):
        for item in node.items:
            _build(nfa, item, start, end)
    elif isinstance(node, Repeat):
        cur = start
        for _ in range(node.lo):
            nxt = nfa.new()
            _build(nfa, node.item, cur, nxt)
            cur = nxt
        if node.hi is None:
            loop = nfa.new()
            nfa.edges[cur].append((None, loop))
            body_end = nfa.new()
            _build(nfa, node.item, loop, body_end)
            nfa.edges[body_end].append((None, loop))
            nfa.edges[loop].append((None, end))
        else:
            for _ in range(node.hi - node.lo):
                nfa.edges[cur].append((None, end))
                nxt = nfa.new()
                _build(nfa, node.item, cur, nxt)
                cur = nxt
            nfa.edges[cur].append((None, end))


# ----------------------------------------------------------------- DFA
@dataclass
class DFA:
    trans: list[list[int]]      # [state][class] -> state; state 0 is dead
    accept: list[int]           # bit 0: accepts here; bit 1: accepts at the end
    starts: dict[str, int]      # "bol" (at position 0) and "mid" start states


@dataclass
class Compiled:
    pattern: str
    classmap: list[int]         # byte -> class
    nclasses: int
    search: DFA
    anchored: DFA
    ngroups: int                # capture groups, not counting group 0
    prog: list[tuple[str, int, int]]   # Pike VM: (op, x, y)
    prog_sets: list[frozenset[int]]


def _closure(nfa: NFA, states: frozenset[int], bol: bool, eol: bool) -> frozenset[int]:
    out = set(states)
    stack = list(states)
    while stack:
        s = stack.pop()
        for cs, t in nfa.edges[s]:
            if cs is None and t not in out:
                out.add(t)
                stack.append(t)
        for kind, t in nfa.asserts[s]:
            if ((kind == "bol" and bol) or (kind == "eol" and eol)) and t not in out:
                out.add(t)
                stack.append(t)
    return frozenset(out)


def _classes(nfa: NFA) -> tuple[list[int], int]:
    """Partition the bytes so that each NFA char set is a union of classes."""
    sig: dict[tuple[bool, ...], int] = {}
    classmap = []
    for b in range(BYTES):
        key = tuple(b in s for s in nfa.sets)
        if key not in sig:
            sig[key] = len(sig)
        classmap.append(sig[key])
    return classmap, len(sig)


def _subset(nfa: NFA, start: int, final: int, classmap: list[int], nclasses: int,
            loop_start: bool) -> DFA:
    rep = [classmap.index(k) for k in range(nclasses)]       # a byte of each class
    trans: list[list[int]] = [[0] * nclasses]
    accept: list[int] = [0]
    index: dict[tuple[str, frozenset[int]], int] = {}
    work: list[tuple[int, frozenset[int], bool]] = []

    def state(core: frozenset[int], bol: bool, tag: str) -> int:
        key = (tag, core)
        if key in index:
            return index[key]
        if len(trans) >= MAX_STATES:
            raise RegexError(f"regular expression too complex (more than {MAX_STATES} "
                             "DFA states)")
        sid = len(trans)
        index[key] = sid
        trans.append([0] * nclasses)
        closed = _closure(nfa, core, bol, False)
        at_end = _closure(nfa, core, bol, True)
        accept.append((1 if final in closed else 0) | (2 if final in at_end else 0))
        work.append((sid, core, bol))
        return sid

    def step(core: frozenset[int], bol: bool, byte: int) -> frozenset[int]:
        closed = _closure(nfa, core, bol, False)
        nxt = set()
        for s in closed:
            for cs, t in nfa.edges[s]:
                if cs is not None and byte in nfa.sets[cs]:
                    nxt.add(t)
        if loop_start:
            nxt.add(start)              # a match may begin at the next position
        return frozenset(nxt)

    starts = {"bol": state(frozenset([start]), True, "bol"),
              "mid": state(frozenset([start]), False, "mid")}
    while work:
        sid, core, bol = work.pop()
        for k in range(nclasses):
            nxt = step(core, bol, rep[k])
            trans[sid][k] = state(nxt, False, "mid") if nxt else 0
    return DFA(trans, accept, starts)


# ----------------------------------------------------------------- Pike VM
def _program(node: Node, nfa_sets: list[frozenset[int]]) -> tuple[list[tuple[str, int, int]],
                                                                   list[frozenset[int]]]:
    """Instructions: ("char", set, 0), ("split", x, y) preferring x, ("jmp", x, 0),
    ("save", slot, 0), ("bol"|"eol", 0, 0), ("match", 0, 0)."""
    prog: list[list] = []
    sets: list[frozenset[int]] = []

    def set_index(s: frozenset[int]) -> int:
        if s not in sets:
            sets.append(s)
        return sets.index(s)

    def emit(op: str, x: int = 0, y: int = 0) -> int:
        prog.append([op, x, y])
        return len(prog) - 1

    def gen(n: Node) -> None:
        if isinstance(n, Chars):
            emit("char", set_index(n.chars))
        elif isinstance(n, Assert):
            emit(n.kind)
        elif isinstance(n, Group):
            emit("save", 2 * n.index)
            gen(n.item)
            emit("save", 2 * n.index + 1)
        elif isinstance(n, Cat):
            for item in n.items:
                gen(item)
        elif isinstance(n, Alt):
            jumps = []
            for i, item in enumerate(n.items):
                if i < len(n.items) - 1:
                    split = emit("split")
                    prog[split][1] = len(prog)
                    gen(item)
                    jumps.append(emit("jmp"))
                    prog[split][2] = len(prog)
                else:
                    gen(item)
            for j in jumps:
                prog[j][1] = len(prog)
        elif isinstance(n, Repeat):
            for _ in range(n.lo):
                gen(n.item)
            if n.hi is None:
                top = emit("split")
                prog[top][1] = len(prog)
                gen(n.item)
                emit("jmp", top)
                prog[top][2] = len(prog)
            else:
                splits = []
                for _ in range(n.hi - n.lo):
                    s = emit("split")
                    prog[s][1] = len(prog)
                    splits.append(s)
                    gen(n.item)
                for s in splits:
                    prog[s][2] = len(prog)

    emit("save", 0)
    gen(node)
    emit("save", 1)
    emit("match")
    if len(prog) > 4000:
        raise RegexError("regular expression too long for submatch extraction")
    return [tuple(i) for i in prog], sets


def compile_regex(pattern: str) -> Compiled:
    node, ngroups = parse(pattern)
    nfa = NFA()
    start, final = nfa.new(), nfa.new()
    _build(nfa, node, start, final)
    classmap, nclasses = _classes(nfa)
    search = _subset(nfa, start, final, classmap, nclasses, loop_start=True)
    anchored = _subset(nfa, start, final, classmap, nclasses, loop_start=False)
    prog, sets = _program(node, nfa.sets)
    return Compiled(pattern, classmap, nclasses, search, anchored, ngroups, prog, sets)


# ----------------------------------------------------------------- Python model
def search(rx: Compiled, subject: bytes) -> bool:
    """What the runtime's search does (for tests)."""
    d = rx.search
    st = d.starts["bol"]
    if d.accept[st] & 1:
        return True
    for i, b in enumerate(subject):
        st = d.trans[st][rx.classmap[b]]
        if d.accept[st] & 1:
            return True
    return bool(d.accept[st] & 2)


# ----------------------------------------------------------------- C output
def _c_bytes(values: list[int], per_line: int = 24) -> str:
    lines = []
    for i in range(0, len(values), per_line):
        lines.append("\t" + ", ".join(str(v) for v in values[i:i + per_line]) + ",")
    return "\n".join(lines)


def _c_set(s: frozenset[int]) -> str:
    words = [0] * 8
    for b in s:
        words[b // 32] |= 1 << (b % 32)
    return "{ " + ", ".join(f"0x{w:08x}U" for w in words) + " }"


def emit_c(rx: Compiled, name: str, pattern_text: Optional[str] = None) -> str:
    from codegen.formats import c_escape
    comment = c_escape(rx.pattern).replace("*/", "* /")
    out = [f"/* regex: {comment} */"]
    for label, d in (("search", rx.search), ("anch", rx.anchored)):
        flat = [t for row in d.trans for t in row]
        ctype = "u16"
        out.append(f"static const {ctype} {name}_{label}[] = {{\n{_c_bytes(flat)}\n}};")
        out.append(f"static const u8 {name}_{label}_acc[] = {{\n{_c_bytes(d.accept)}\n}};")
    out.append(f"static const u8 {name}_class[256] = {{\n{_c_bytes(rx.classmap)}\n}};")
    ops = {"char": "STP_RE_CHAR", "split": "STP_RE_SPLIT", "jmp": "STP_RE_JMP",
           "save": "STP_RE_SAVE", "bol": "STP_RE_BOL", "eol": "STP_RE_EOL",
           "match": "STP_RE_MATCH"}
    insts = ",\n".join(f"\t{{ {ops[op]}, {x}, {y} }}" for op, x, y in rx.prog)
    out.append(f"static const struct stp_re_inst {name}_prog[] = {{\n{insts}\n}};")
    sets = ",\n".join("\t" + _c_set(s) for s in rx.prog_sets) or "\t{ 0 }"
    out.append(f"static const u32 {name}_sets[][8] = {{\n{sets}\n}};")
    out.append(
        f"static const struct stp_regex {name} = {{\n"
        f"\t.pattern = \"{c_escape(rx.pattern)}\",\n"
        f"\t.nclasses = {rx.nclasses},\n"
        f"\t.classmap = {name}_class,\n"
        f"\t.search = {name}_search,\n"
        f"\t.search_acc = {name}_search_acc,\n"
        f"\t.search_start = {rx.search.starts['bol']},\n"
        f"\t.anch = {name}_anch,\n"
        f"\t.anch_acc = {name}_anch_acc,\n"
        f"\t.anch_start_bol = {rx.anchored.starts['bol']},\n"
        f"\t.anch_start_mid = {rx.anchored.starts['mid']},\n"
        f"\t.ngroups = {rx.ngroups},\n"
        f"\t.prog = {name}_prog,\n"
        f"\t.nprog = {len(rx.prog)},\n"
        f"\t.sets = {name}_sets,\n"
        f"}};")
    return "\n".join(out)
