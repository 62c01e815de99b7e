"""A generator of random, well-typed SystemTap programs, for fuzzing passes 2-4.

Every program it makes is meant to be accepted by pass 2 (elaboration); the
fuzzer's claim is that whatever pass 2 accepts, pass 3 translates and pass 4
compiles: generated C that does not build is a translator or runtime bug.

Programs use begin/end/timer probes (no kernel facts needed), globals of
both types, arrays with one to three keys, statistics, functions (called
only in definition order, so never recursive), locals, every operator,
strings, printf with SystemTap's directives, if/for/while/foreach (sorted,
with limit), delete, ``in``, try/catch, break/continue/next, ``<<<`` and
the aggregate operators.  Loops are bounded and divisors odd, so a
program's run is short and deterministic; runtime errors are still
possible (an array declared small overflows) and are fine: they must be
SystemTap's messages, and the same in every runtime.

    python -m stapbuild.stapfuzz SEED        # print one program
"""
from __future__ import annotations

import random
import sys
from dataclasses import dataclass, field

LONG, STRING = "long", "string"

# A foreach nested in a foreach over the same array is valid SystemTap and
# translates (tests/test_fuzz_passes.py), but an inner sorted loop reorders
# the entries the outer one walks, as in SystemTap: the output would depend
# on the runtime's sort, not on the program. So the generator avoids it.
AVOID_NESTED_SAME_ARRAY = True

_SAFE_CHARS = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789 _-+=:;,.!?()[]{}<>/|"


@dataclass
class Array:
    name: str
    keys: list[str]
    value: str          # LONG or STRING
    size: int = 0       # 0: undeclared (MAXMAPENTRIES)


@dataclass
class Func:
    name: str
    params: list[tuple[str, str]]
    ret: str | None     # LONG, STRING or None (no value)
    mutates: set[str] = field(default_factory=set)   # arrays it writes or deletes


@dataclass
class Scope:
    locals: dict[str, str] = field(default_factory=dict)
    in_loop: int = 0
    in_probe: bool = True
    in_function: Func | None = None
    counters: set[str] = field(default_factory=set)   # loop variables: never assigned
    iterating: set[str] = field(default_factory=set)  # arrays of the enclosing foreach loops
    mutates: set[str] = field(default_factory=set)    # arrays this body writes or deletes


class ProgramGenerator:
    def __init__(self, seed: int, size: int = 3):
        self.r = random.Random(seed)
        self.seed = seed
        self.size = size
        self.glong = [f"g{i}" for i in range(self.r.randint(1, 3))]
        self.gstr = [f"gs{i}" for i in range(self.r.randint(1, 2))]
        self.arrays: list[Array] = []
        for i in range(self.r.randint(1, 4)):
            nkeys = self.r.choice([1, 1, 1, 2, 3])
            keys = [self.r.choice([LONG, STRING]) for _ in range(nkeys)]
            size = self.r.choice([0, 0, 0, 8, 64])
            self.arrays.append(Array(f"a{i}", keys, self.r.choice([LONG, STRING]), size))
        self.stats = [f"st{i}" for i in range(self.r.randint(1, 2))]
        self.stat_arrays = [Array(f"sa{i}", [self.r.choice([LONG, STRING])], LONG)
                            for i in range(self.r.randint(0, 2))]
        self.funcs: list[Func] = []
        self.counter = 0
        self.has_timer = False

    # ------------------------------------------------------------ helpers
    def fresh(self, prefix: str) -> str:
        self.counter += 1
        return f"{prefix}{self.counter}"

    def chance(self, p: float) -> bool:
        return self.r.random() < p

    def long_literal(self) -> str:
        v = self.r.choice([0, 1, 2, 3, 7, 10, 42, 100, 255, 1000, -1, -7, 65536,
                           2147483647, -2147483648, 4294967296, 9223372036854775807,
                           self.r.randint(-10**6, 10**6)])
        if v < 0:
            return f"({v})"
        if self.chance(0.1):
            return hex(v)
        return str(v)

    def string_literal(self) -> str:
        n = self.r.randint(0, 12)
        s = "".join(self.r.choice(_SAFE_CHARS) for _ in range(n))
        if self.chance(0.15):
            s += self.r.choice(["\\n", "\\t", "\\\\", "\\\""])
        return f'"{s}"'

    def writable(self, arrays: list[Array], sc: Scope) -> list[Array]:
        """Arrays a statement may modify here: SystemTap forbids modifying
        an array inside a foreach over it, even through a function."""
        return [a for a in arrays if a.name not in sc.iterating]

    def callable_funcs(self, sc: Scope, ret="any") -> list[Func]:
        return [f for f in self.funcs if f is not sc.in_function
                and (ret == "any" or f.ret == ret) and not (f.mutates & sc.iterating)]

    def note_call(self, f: Func, sc: Scope) -> None:
        sc.mutates |= f.mutates

    # ------------------------------------------------------------ expressions
    def expr(self, t: str, sc: Scope, depth: int) -> str:
        return self.long_expr(sc, depth) if t == LONG else self.string_expr(sc, depth)

    def vars_of(self, t: str, sc: Scope) -> list[str]:
        names = [n for n, vt in sc.locals.items() if vt == t]
        names += self.glong if t == LONG else self.gstr
        return names

    def key_exprs(self, arr: Array, sc: Scope, depth: int) -> str:
        keys = []
        for kt in arr.keys:
            if kt == LONG:
                keys.append(self.r.choice([str(self.r.randint(0, 5)), f"({self.long_expr(sc, depth)}) % 7"]))
            else:
                keys.append(self.r.choice(['"k"', '"x"', '""', self.string_expr(sc, depth)]))
        return ", ".join(keys)

    def long_expr(self, sc: Scope, depth: int) -> str:
        if depth <= 0:
            pick = self.r.choice(["lit", "var", "var"])
        else:
            pick = self.r.choice(["lit", "var", "var", "bin", "bin", "bin", "unary", "cmp", "scmp",
                                  "logic", "tern", "arr", "in", "call", "stat", "div", "shift",
                                  "incr"])
        d = depth - 1
        if pick == "lit":
            return self.long_literal()
        if pick == "var":
            return self.r.choice(self.vars_of(LONG, sc))
        if pick == "bin":
            op = self.r.choice(["+", "-", "*", "&", "|", "^"])
            return f"({self.long_expr(sc, d)} {op} {self.long_expr(sc, d)})"
        if pick == "div":
            op = self.r.choice(["/", "%"])
            return f"({self.long_expr(sc, d)} {op} ({self.long_expr(sc, d)} | 1))"
        if pick == "shift":
            op = self.r.choice(["<<", ">>"])
            return f"({self.long_expr(sc, d)} {op} ({self.long_expr(sc, d)} & 63))"
        if pick == "unary":
            op = self.r.choice(["-", "!", "~", "+"])
            return f"{op}({self.long_expr(sc, d)})"
        if pick == "cmp":
            op = self.r.choice(["<", ">", "<=", ">=", "==", "!="])
            return f"({self.long_expr(sc, d)} {op} {self.long_expr(sc, d)})"
        if pick == "scmp":
            op = self.r.choice(["<", ">", "==", "!="])
            return f"({self.string_expr(sc, d)} {op} {self.string_expr(sc, d)})"
        if pick == "logic":
            op = self.r.choice(["&&", "||"])
            return f"({self.long_expr(sc, d)} {op} {self.long_expr(sc, d)})"
        if pick == "tern":
            return f"({self.long_expr(sc, d)} ? {self.long_expr(sc, d)} : {self.long_expr(sc, d)})"
        if pick == "arr":
            arrs = [a for a in self.arrays if a.value == LONG]
            if arrs:
                a = self.r.choice(arrs)
                return f"{a.name}[{self.key_exprs(a, sc, d)}]"
            return self.long_literal()
        if pick == "in":
            a = self.r.choice(self.arrays)
            k = self.key_exprs(a, sc, d)
            return f"([{k}] in {a.name})" if len(a.keys) > 1 else f"({k} in {a.name})"
        if pick == "call":
            fs = self.callable_funcs(sc, LONG)
            if fs:
                f = self.r.choice(fs)
                self.note_call(f, sc)
                args = ", ".join(self.expr(pt, sc, d) for _, pt in f.params)
                return f"{f.name}({args})"
            return self.long_literal()
        if pick == "stat":
            s = self.r.choice(self.stats)
            op = self.r.choice(["@count", "@sum", "@min", "@max", "@avg"])
            return f"{op}({s})"
        if pick == "incr":
            v = self.r.choice([n for n, vt in sc.locals.items()
                               if vt == LONG and n not in sc.counters] + self.glong)
            return self.r.choice([f"{v}++", f"++{v}", f"{v}--", f"--{v}"])
        raise AssertionError(pick)

    def string_expr(self, sc: Scope, depth: int) -> str:
        if depth <= 0:
            pick = self.r.choice(["lit", "var"])
        else:
            pick = self.r.choice(["lit", "var", "var", "cat", "cat", "sprintf", "tern", "arr", "call"])
        d = depth - 1
        if pick == "lit":
            return self.string_literal()
        if pick == "var":
            return self.r.choice(self.vars_of(STRING, sc))
        if pick == "cat":
            return f"({self.string_expr(sc, d)} . {self.string_expr(sc, d)})"
        if pick == "sprintf":
            fmt, args = self.format(sc, d)
            return f"sprintf({fmt}{''.join(', ' + a for a in args)})"
        if pick == "tern":
            return f"({self.long_expr(sc, d)} ? {self.string_expr(sc, d)} : {self.string_expr(sc, d)})"
        if pick == "arr":
            arrs = [a for a in self.arrays if a.value == STRING]
            if arrs:
                a = self.r.choice(arrs)
                return f"{a.name}[{self.key_exprs(a, sc, d)}]"
            return self.string_literal()
        if pick == "call":
            fs = self.callable_funcs(sc, STRING)
            if fs:
                f = self.r.choice(fs)
                self.note_call(f, sc)
                args = ", ".join(self.expr(pt, sc, d) for _, pt in f.params)
                return f"{f.name}({args})"
            return self.string_literal()
        raise AssertionError(pick)

    def format(self, sc: Scope, depth: int) -> tuple[str, list[str]]:
        parts, args = [], []
        for _ in range(self.r.randint(1, 4)):
            if self.chance(0.3):
                parts.append(self.r.choice(["x=", " ", "-", "[", "]", "%%", ":"]))
                continue
            conv = self.r.choice(["d", "d", "i", "u", "x", "X", "o", "s", "s", "c"])
            flag = self.r.choice(["", "", "", "-", "0", "+", " ", "#"])
            width = self.r.choice(["", "", "", "3", "8", "12"])
            if conv == "s":
                flag = self.r.choice(["", "-"])
                prec = self.r.choice(["", "", ".3"])
                parts.append(f"%{flag}{width}{prec}s")
                args.append(self.string_expr(sc, depth))
            elif conv == "c":
                parts.append(f"%{self.r.choice(['', '-'])}{width}c")
                args.append(f"(65 + (({self.long_expr(sc, depth)}) & 15))")
            else:
                if conv in "diu" and flag == "#":
                    flag = ""
                parts.append(f"%{flag}{width}{conv}")
                args.append(self.long_expr(sc, depth))
        return '"' + "".join(parts) + '\\n"', args

    # ------------------------------------------------------------ statements
    def block(self, sc: Scope, depth: int, n: int | None = None) -> list[str]:
        n = self.r.randint(1, self.size) if n is None else n
        out = []
        for _ in range(n):
            out += self.stmt(sc, depth)
        return out

    def assign_local(self, sc: Scope, depth: int) -> list[str]:
        existing = [(n, t) for n, t in sc.locals.items() if n not in sc.counters]
        if existing and self.chance(0.5):
            name, t = self.r.choice(existing)
        else:
            name, t = self.fresh("v"), self.r.choice([LONG, LONG, STRING])
        value = self.expr(t, sc, depth)
        sc.locals[name] = t
        if t == LONG and self.chance(0.3):
            op = self.r.choice(["+=", "-=", "*=", "&=", "|=", "^="])
            if name in dict(existing):
                return [f"{name} {op} {value}"]
        if t == STRING and self.chance(0.2) and name in dict(existing):
            return [f"{name} .= {value}"]
        return [f"{name} = {value}"]

    def stmt(self, sc: Scope, depth: int) -> list[str]:
        kinds = ["local", "local", "global", "print", "print", "array", "stat"]
        if depth > 0:
            kinds += ["if", "for", "while", "foreach", "try", "delete", "call"]
        if sc.in_loop:
            kinds += ["break"]
        if sc.in_probe and not sc.in_loop:
            kinds += ["next"]
        kind = self.r.choice(kinds)
        d = depth - 1
        e = min(depth, 2) + 1       # expression depth
        if kind == "local":
            return self.assign_local(sc, e)
        if kind == "global":
            if self.chance(0.6):
                g = self.r.choice(self.glong)
                return [f"{g} {self.r.choice(['=', '+=', '-=', '^='])} {self.long_expr(sc, e)}"]
            g = self.r.choice(self.gstr)
            return [f"{g} {self.r.choice(['=', '.='])} {self.string_expr(sc, e)}"]
        if kind == "print":
            which = self.r.choice(["printf", "printf", "println", "print"])
            if which == "printf":
                fmt, args = self.format(sc, e)
                return [f"printf({fmt}{''.join(', ' + a for a in args)})"]
            t = self.r.choice([LONG, STRING])
            return [f"{which}({self.expr(t, sc, e)}{', ' + chr(34) + chr(92) + 'n' + chr(34) if which == 'print' else ''})"]
        if kind == "array":
            arrs = self.writable(self.arrays, sc)
            if not arrs:
                return self.assign_local(sc, e)
            a = self.r.choice(arrs)
            sc.mutates.add(a.name)
            k = self.key_exprs(a, sc, e)
            if a.value == LONG:
                op = self.r.choice(["=", "+=", "++", "--"])
                if op in ("++", "--"):
                    return [f"{a.name}[{k}]{op}"]
                return [f"{a.name}[{k}] {op} {self.long_expr(sc, e)}"]
            return [f"{a.name}[{k}] = {self.string_expr(sc, e)}"]
        if kind == "stat":
            sarrs = self.writable(self.stat_arrays, sc)
            if sarrs and self.chance(0.4):
                a = self.r.choice(sarrs)
                sc.mutates.add(a.name)
                return [f"{a.name}[{self.key_exprs(a, sc, e)}] <<< {self.long_expr(sc, e)}"]
            return [f"{self.r.choice(self.stats)} <<< {self.long_expr(sc, e)}"]
        if kind == "if":
            lines = [f"if ({self.long_expr(sc, e)}) {{"] + self.indent(self.block(sc, d)) + ["}"]
            if self.chance(0.5):
                lines[-1] = "} else {"
                lines += self.indent(self.block(sc, d)) + ["}"]
            return lines
        if kind == "for":
            i = self.fresh("i")
            sc.locals[i] = LONG
            sc.counters.add(i)
            sc.in_loop += 1
            body = self.block(sc, d)
            sc.in_loop -= 1
            return [f"for ({i} = 0; {i} < {self.r.randint(0, 5)}; {i}++) {{"] + self.indent(body) + ["}"]
        if kind == "while":
            w = self.fresh("w")
            sc.locals[w] = LONG
            sc.counters.add(w)
            sc.in_loop += 1
            body = self.block(sc, d)
            sc.in_loop -= 1
            return ([f"{w} = 0", f"while ({w} < {self.r.randint(0, 4)}) {{", f"    {w}++"]
                    + self.indent(body) + ["}"])
        if kind == "foreach":
            return self.foreach(sc, d)
        if kind == "try":
            m = self.fresh("msg")
            body = self.block(sc, d)
            sc.locals[m] = STRING
            handler = self.block(sc, d, 1)
            if self.chance(0.5):
                return ["try {"] + self.indent(body) + [f"}} catch ({m}) {{"] + self.indent(handler) + ["}"]
            return ["try {"] + self.indent(body) + ["} catch {"] + self.indent(handler) + ["}"]
        if kind == "delete":
            arrs = self.writable(self.arrays, sc)
            if not arrs:
                return self.assign_local(sc, e)
            a = self.r.choice(arrs)
            sc.mutates.add(a.name)
            if self.chance(0.3):
                return [f"delete {a.name}"]
            return [f"delete {a.name}[{self.key_exprs(a, sc, e)}]"]
        if kind == "call":
            fs = self.callable_funcs(sc)
            if not fs:
                return self.assign_local(sc, e)
            f = self.r.choice(fs)
            self.note_call(f, sc)
            return [f"{f.name}({', '.join(self.expr(pt, sc, e) for _, pt in f.params)})"]
        if kind == "break":
            return [f"if ({self.long_expr(sc, 1)}) {self.r.choice(['break', 'continue'])}"]
        if kind == "next":
            return [f"if ({self.long_expr(sc, 1)} && {self.long_expr(sc, 1)}) next"]
        raise AssertionError(kind)

    def foreach(self, sc: Scope, depth: int) -> list[str]:
        arrs = self.arrays + self.stat_arrays
        if AVOID_NESTED_SAME_ARRAY:
            arrs = [a for a in arrs if a.name not in sc.iterating]
        if not arrs:
            return self.assign_local(sc, depth)
        a = self.r.choice(arrs)
        keys = [self.fresh("k") for _ in a.keys]
        for k, kt in zip(keys, a.keys):
            sc.locals[k] = kt
        # Sorted on the first key: keys are distinct, so the order is
        # deterministic (SystemTap's tie-breaking is not what we test here).
        ks = list(keys)
        ks[0] += self.r.choice(["+", "-"])
        head = ks[0] if len(ks) == 1 else "[" + ", ".join(ks) + "]"
        limit = f" limit {self.r.randint(1, 4)}" if self.chance(0.3) else ""
        value_bind = ""
        if a not in self.stat_arrays and self.chance(0.25):
            v = self.fresh("val")
            sc.locals[v] = a.value
            value_bind = f"{v} = "
        sc.in_loop += 1
        outer = sc.iterating
        sc.iterating = outer | {a.name}
        body = self.block(sc, depth)
        sc.iterating = outer
        if a in self.stat_arrays:
            ref = f"{a.name}[{', '.join(keys)}]"
            body.append(f'printf("{a.name} %d %d\\n", @count({ref}), @sum({ref}))')
        sc.in_loop -= 1
        return [f"foreach ({value_bind}{head} in {a.name}{limit}) {{"] + self.indent(body) + ["}"]

    @staticmethod
    def indent(lines: list[str]) -> list[str]:
        return ["    " + l for l in lines]

    # ------------------------------------------------------------ program
    def function(self) -> list[str]:
        name = self.fresh("f")
        params = [(self.fresh("p"), self.r.choice([LONG, STRING])) for _ in range(self.r.randint(0, 3))]
        ret = self.r.choice([LONG, STRING, None])
        f = Func(name, params, ret)
        sc = Scope(locals=dict(params), in_probe=False, in_function=f)
        body = self.block(sc, 2)
        if ret is not None:
            body.append(f"return {self.expr(ret, sc, 2)}")
        f.mutates = set(sc.mutates)
        sig = ", ".join(f"{p}:{t}" for p, t in params)
        suffix = f":{ret}" if ret else ""
        self.funcs.append(f)
        return [f"function {name}{suffix}({sig}) {{"] + self.indent(body) + ["}"]

    def probe(self, point: str, extra_first: list[str] = (), extra_last: list[str] = ()) -> list[str]:
        sc = Scope()
        body = list(extra_first) + self.block(sc, 3) + list(extra_last)
        return [f"probe {point} {{"] + self.indent(body) + ["}"]

    def program(self) -> str:
        out = [f"# stapfuzz seed {self.seed}"]
        decl = []
        for g in self.glong + self.gstr + self.stats:
            decl.append(g)
        for a in self.arrays:
            decl.append(f"{a.name}[{a.size}]" if a.size else a.name)
        for a in self.stat_arrays:
            decl.append(a.name)
        out.append("global " + ", ".join(decl))
        out.append("global ticks")
        for _ in range(self.r.randint(0, 3)):
            out += self.function()
        # First: every global gets its type (SystemTap has no typed global
        # declarations, and a global whose type nothing decides is an
        # "unresolved type" error), and the scalar statistics are never
        # empty, so @min/@max/@avg are defined.
        init = [f"{g} = 0" for g in self.glong] + [f'{g} = ""' for g in self.gstr]
        init += [f"{s} <<< 1" for s in self.stats]
        lit = {LONG: "0", STRING: '""'}
        for a in self.arrays + self.stat_arrays:
            key = ", ".join(lit[k] for k in a.keys)
            init.append(f"{a.name}[{key}] <<< 1" if a in self.stat_arrays
                        else f"{a.name}[{key}] = {lit[a.value]}")
            init.append(f"delete {a.name}")
        out.append("probe begin(-1000) {")
        out += self.indent(init)
        out.append("}")
        out += self.probe("begin")
        if self.chance(0.6):
            self.has_timer = True
            out += self.probe(f"timer.ms({self.r.choice([1, 5, 10])})",
                              [f"if (++ticks >= {self.r.randint(1, 3)}) exit()"])
        else:
            out.append("probe begin(1000) { exit() }")
        out += self.probe("end")
        return "\n".join(out) + "\n"


def generate(seed: int, size: int = 3) -> str:
    return ProgramGenerator(seed, size).program()


if __name__ == "__main__":
    print(generate(int(sys.argv[1]) if len(sys.argv) > 1 else 0), end="")


# ======================================================================
# the fuzzer: generated programs through passes 2-4
# ======================================================================
# Kernel-header compiles of generated C, without the rest of kbuild: the
# exact gcc command kbuild used for one module's object (captured once per
# kernel build tree), pointed at another C file with -fsyntax-only (every
# front-end diagnostic, ~0.6 s) or -S -o /dev/null (also the backend's, such
# as -Wframe-larger-than, ~2 s).
import json as _json
import os as _os
import re as _re
import shlex as _shlex
import shutil as _shutil
import subprocess as _subprocess
import tempfile as _tempfile
import time as _time
from pathlib import Path as _Path


def kbuild_cc_argv(kernel) -> tuple[list[str], _Path]:
    """(argv without the source file, cwd) of kbuild's compile of a module
    object for `kernel`, cached beside the kernel's kbuild directories."""
    from stapbuild import kbuild, kernels, passes
    from stapbuild.store import sha256_file
    ident = kernels.build_identity(kernel) + sha256_file(_Path(kbuild.__file__))
    cache = kernels.cache_root() / "kbuild" / f"fuzz-cc-{kernel.release}.json"
    try:
        doc = _json.loads(cache.read_text())
        if doc["build"] == ident and doc["runtime"] == str(passes.runtime_dir()):
            return doc["argv"], _Path(doc["cwd"])
    except (OSError, ValueError, KeyError):
        pass
    d = _Path(_tempfile.mkdtemp(prefix="stapbuild-fuzzcc-"))
    try:
        name = "stap_fuzz_probe"
        (d / f"{name}_src.c").write_text('#include "stp_runtime.h"\n')
        (d / "Kbuild").write_text(kbuild._kbuild_file(name, passes.runtime_dir(), d, []))
        r = _subprocess.run(["make", "-C", str(kernel.build_dir), f"M={d}", f"{name}_src.o"],
                            cwd=d, env=kbuild._clean_env(), capture_output=True, text=True)
        cmdfile = d / f".{name}_src.o.cmd"
        if not cmdfile.exists():
            raise RuntimeError(f"kbuild did not compile the probe object:\n{r.stdout}{r.stderr}")
        line = cmdfile.read_text().splitlines()[0]
        cmd = line.split(":=", 1)[1].split(";")[0]
        argv, skip = [], False
        for a in _shlex.split(cmd):
            if skip:
                skip = False
            elif a == "-o":
                skip = True
            elif a == "-c" or a.startswith("-Wp,-MMD") or a.endswith(f"{name}_src.c"):
                continue
            else:
                argv.append(a)
        # the build dir's -ffile-prefix-map means nothing outside it
        argv = [a for a in argv if not a.startswith(f"-ffile-prefix-map={d}")]
    finally:
        _shutil.rmtree(d, ignore_errors=True)
    cache.parent.mkdir(parents=True, exist_ok=True)
    tmp = cache.with_name(cache.name + f".{_os.getpid()}")
    tmp.write_text(_json.dumps({"build": ident, "runtime": str(passes.runtime_dir()),
                                "argv": argv, "cwd": str(kernel.build_dir)}))
    _os.replace(tmp, cache)
    return argv, kernel.build_dir


def kernel_cc(c_file: _Path, kernel, module: str, full: bool = False) -> tuple[bool, str]:
    """Compile generated C against `kernel`'s headers with kbuild's flags."""
    argv, cwd = kbuild_cc_argv(kernel)
    argv = [a.replace("stap_fuzz_probe", module) for a in argv]
    mode = ["-S", "-o", "/dev/null"] if full else ["-fsyntax-only"]
    r = _subprocess.run(argv + mode + [str(c_file)], cwd=cwd, capture_output=True, text=True,
                        env={**_os.environ, "LC_ALL": "C"})
    return r.returncode == 0, r.stdout + r.stderr


def _first_errors(log: str, limit: int = 6) -> list[str]:
    lines = [l for l in log.splitlines() if _re.search(r"\berror\b", l)]
    return (lines or log.splitlines()[-limit:])[:limit]


@dataclass
class FuzzReport:
    programs: int = 0
    parse_rejected: list = field(default_factory=list)      # (seed, message)
    elaborate_rejected: list = field(default_factory=list)
    translate_failed: list = field(default_factory=list)    # pass 2 accepted, pass 3 crashed
    compile_failed: list = field(default_factory=list)      # pass 3 C that gcc refused
    compiled: int = 0
    compiled_full: int = 0
    seconds: float = 0.0
    c_files: dict = field(default_factory=dict)             # seed -> C path (accepted ones)

    @property
    def accepted(self) -> int:
        return self.programs - len(self.parse_rejected) - len(self.elaborate_rejected)

    def failures(self) -> list:
        return self.translate_failed + self.compile_failed

    def summary(self) -> dict:
        return {"programs": self.programs, "accepted_by_pass2": self.accepted,
                "parse_rejected": len(self.parse_rejected),
                "elaborate_rejected": len(self.elaborate_rejected),
                "translate_failed": len(self.translate_failed),
                "compile_failed": len(self.compile_failed),
                "compiled_syntax": self.compiled, "compiled_full": self.compiled_full,
                "seconds": round(self.seconds, 1)}


def fuzz_passes(seeds, kernels_by_seed, full_every: int = 0, jobs: int = 2) -> FuzzReport:
    """Generate a program per seed; passes 1-3 in process, then the kernel
    compile of each accepted one (kernels_by_seed(seed) -> Kernel, or None
    to stop after pass 3). full_every=N: every Nth compile is a full one."""
    import traceback
    from concurrent.futures import ThreadPoolExecutor

    from codegen.errors import StapError, StapErrors, register_source
    from stapbuild import passes

    rep = FuzzReport()
    start = _time.monotonic()
    todo = []
    for seed in seeds:
        rep.programs += 1
        text = generate(seed)
        name = f"stapfuzz-{seed}.stp"
        register_source(name, text)
        try:
            parsed = passes.parse_pass(None, text, None, name=name)
        except (StapError, StapErrors) as e:
            rep.parse_rejected.append((seed, _render(e)))
            continue
        try:
            elab = passes.elaborate_pass(parsed.artifact, None)
        except (StapError, StapErrors) as e:
            rep.elaborate_rejected.append((seed, _render(e)))
            continue
        module = f"stap_fuzz_{seed}"
        try:
            c = passes.translate_pass(elab.artifact, module)
        except Exception:  # noqa: BLE001 - any crash here is the finding
            rep.translate_failed.append((seed, traceback.format_exc(limit=3)[-1500:]))
            continue
        rep.c_files[seed] = c.artifact.path
        k = kernels_by_seed(seed)
        if k is not None:
            full = bool(full_every) and len(todo) % full_every == 0
            todo.append((seed, c.artifact.path, k, module, full))

    def one(item):
        seed, path, k, module, full = item
        ok, log = kernel_cc(path, k, module, full)
        return seed, k.release, full, ok, log

    with ThreadPoolExecutor(max_workers=jobs) as pool:
        for seed, release, full, ok, log in pool.map(one, todo):
            if ok:
                rep.compiled += 1
                rep.compiled_full += full
            else:
                rep.compile_failed.append((seed, f"{release}: " + "\n".join(_first_errors(log))))
    rep.seconds = _time.monotonic() - start
    return rep


def _render(e) -> str:
    errs = getattr(e, "errors", [e])
    return "\n".join(x.render() if hasattr(x, "render") else str(x) for x in errs)[:2000]
