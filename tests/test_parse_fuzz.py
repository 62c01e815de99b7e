"""Fuzzing pass 1: random and mutated inputs never raise anything but
StapErrors, never hang, and whatever parses also prints and re-parses to
the same tree.

CI (CI=true) sends 100,000 inputs through lexer, preprocessor and parser,
in two classes that pytest-xdist's loadscope runs on separate workers;
locally a few thousand. Each class prints how many inputs it ran. The
inputs are deterministic (seeded), cheap to make (slicing and splicing the
seed corpus, inserting the tokens the preprocessor and parser treat
specially) and short, so that 100,000 of them take well under a minute.
"""
from __future__ import annotations

import os
import random
import time
from pathlib import Path

import pytest

from codegen.errors import StapError, StapErrors
from codegen.parser import parse_file
from codegen.preprocess import PPContext
from codegen.printer import print_file

CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")
TOTAL = 100_000 if CI else 4_000
SHARDS = 2
PER_INPUT_LIMIT_S = 2.0          # a "hang": far above the ~0.2 ms an input takes

DATA = Path(__file__).parent / "data"
PP = PPContext(config={"CONFIG_SMP": "y", "CONFIG_HZ": "250"})

SNIPPETS = [
    "probe begin { x = 1 }", "global a[10], b%, c = -5;", 'function f:long (a:long) { return a }',
    "probe a = b, c { }", "probe a += b { } ", "probe a = b { }, { }", "probe {a,b}.c? if (x) {}",
    'probe kernel.function("f").return! { printf("%d\\n", $x->y[1]$) }',
    "foreach ([a, b-] in c[*, 1] limit 5) delete c[a, b]", "foreach (v = k in s @sum+) ;",
    "try { error(\"x\") } catch (m) { next }", "for (i = 0; i < 3; i++) { continue }",
    "while (x--) break", "if (a =~ \"r\") b else c", "s <<< 1; print(@hist_log(s))",
    "x = @cast(p, \"t\", \"kernel\")->f & ~y ^ z | w && !v || u",
    "x = [a, b] in c ? d . e : f << 2 >>> 1", "x = @defined($a) ? @entry($b) : @var(\"c\")",
    "@define M(a, b) %( (@a + @b) %) x = @M(1, @M(2, 3))", "@define N %( 5 %) y = @N",
    "%( kernel_v >= \"2.6\" && arch == \"x86_64\" || CONFIG_SMP == \"y\" %? a %: b %)",
    "%( systemtap_v < \"4.0\" %? p = 1 %)", "%( runtime == \"kernel\" %? %( guru_mode == 0 %? q %) %)",
    "x = $1 + @1 . $# . @#", "%{ int x; %}", "x = %{ 1 %}", "printd(\",\", a, b); printf(\"%s\", s)",
    "x = &$p->a; y = $$vars$; z = $$locals; w = $$parms$$", "@probewrite(x); @const(\"A\")",
    "@kregister(1) + @uderef(4, p) + @perf(\"c\") + @variance(s, 2) + @count(s)",
    "x = \"a\" \"b\" /* c */ \"\\x41\\101\"", "x = 0x10 + 010 + 18446744073709551615",
    "private global p; private function g() { }", "function h() :2 %{ /* pure */ %}",
]
SPECIAL = ["%(", "%?", "%:", "%)", "@define", "@", "$", "$1", "@1", "$#", "@#", '"', "/*", "*/",
           "%{", "%}", "{", "}", "(", ")", "[", "]", ",", ";", "=", "?", "!", ":", "->", ".",
           "probe", "global", "function", "private", "if", "else", "foreach", "in", "limit",
           "return", "delete", "try", "catch", "next", "@cast", "@var", "@defined", "@hist_log",
           "@count", "printf", "print", "printd", "$x", "$$vars", "\\", "\x00", "\x01", "é",
           "#", "//", "\n", "'", "`", "<<<", ">>>", "0x", "08", "99999999999999999999"]


def _seeds() -> list[str]:
    seeds = [p.read_text() for p in sorted((DATA / "parse_ok").glob("*.stp"))]
    seeds += [p.read_text() for p in sorted((DATA / "parse_bad").glob("*.stp"))]
    seeds += SNIPPETS + ["probe begin { " + s + " }" for s in SNIPPETS]
    return seeds


TOP = [s for s in SNIPPETS if s.split()[0] in ("probe", "global", "function", "private", "%{",
                                                "@define")]
STMT = [s for s in SNIPPETS if s not in TOP and "$1" not in s]


def _valid(rnd: random.Random) -> str:
    """A valid program put together from snippets (exercises the round trip)."""
    parts = [rnd.choice(TOP) for _ in range(rnd.randint(0, 2))]
    body = "; ".join(rnd.choice(STMT) for _ in range(rnd.randint(1, 4)))
    return " ".join(parts) + " probe begin { " + body + " }"


def _mutate(rnd: random.Random, seeds: list[str]) -> str:
    kind = rnd.random()
    if kind < 0.25:
        text = _valid(rnd)
        if rnd.random() < 0.5:
            return text
        # one small, often harmless edit
        i = rnd.randrange(len(text))
        return text[:i] + rnd.choice([" ", "\n", "/* c */", "# c\n", ";"]) + text[i:]
    if kind < 0.32:               # pure noise over the language's alphabet
        alphabet = "abc$@%(){}[]<>=!?:;,.+-*/&|^~\"'#\\ \n\t0123456789_"
        return "".join(rnd.choice(alphabet) for _ in range(rnd.randint(0, 60)))
    if kind < 0.37:               # random tokens
        return " ".join(rnd.choice(SPECIAL) for _ in range(rnd.randint(1, 30)))
    text = rnd.choice(seeds)
    if len(text) > 400:           # keep inputs short: a window of a big seed
        start = rnd.randrange(len(text) - 300)
        text = text[start:start + rnd.randint(50, 400)]
    for _ in range(rnd.randint(1, 4)):
        n = len(text)
        i = rnd.randint(0, n)
        j = min(n, i + rnd.randint(0, 12))
        op = rnd.random()
        if op < 0.25:
            text = text[:i] + text[j:]                                   # delete
        elif op < 0.5:
            text = text[:i] + rnd.choice(SPECIAL) + text[i:]             # insert a token
        elif op < 0.65:
            text = text[:i] + text[i:j] * rnd.randint(2, 5) + text[j:]   # repeat
        elif op < 0.85:
            other = rnd.choice(seeds)
            k = rnd.randint(0, len(other))
            text = text[:i] + other[k:k + rnd.randint(1, 80)] + text[j:]  # splice
        else:
            text = text[:i] + chr(rnd.randint(0, 127)) + text[j:]       # one byte
    return text


def _check(text: str, rnd: random.Random) -> tuple[bool, float]:
    guru = rnd.random() < 0.5
    args = ["a b", '"x"'] if rnd.random() < 0.3 else None
    start = time.perf_counter()
    try:
        tree = parse_file("fuzz.stp", text, guru=guru, args=args, pp=PP,
                          tapset=rnd.random() < 0.2)
    except StapErrors as e:
        e.render()                           # errors always render
        return False, time.perf_counter() - start
    except StapError as e:                   # pragma: no cover - not expected
        e.render()
        return False, time.perf_counter() - start
    elapsed = time.perf_counter() - start
    printed = print_file(tree)
    again = parse_file("fuzz.stp", printed, guru=True, pp=PP, tapset=tree.is_tapset)
    assert again == tree, f"round trip changed the tree for:\n{text!r}\nprinted:\n{printed}"
    return True, elapsed


def _run_shard(shard: int) -> None:
    rnd = random.Random(0x57A9 + shard)
    seeds = _seeds()
    count = TOTAL // SHARDS
    parsed = 0
    slowest = 0.0
    begin = time.perf_counter()
    for n in range(count):
        text = _mutate(rnd, seeds)
        try:
            ok, elapsed = _check(text, rnd)
        except AssertionError:
            raise
        except Exception as e:  # noqa: BLE001 - the point of the test
            raise AssertionError(f"input #{n} raised {type(e).__name__}: {e}\n{text!r}") from e
        parsed += ok
        if elapsed > slowest:
            slowest = elapsed
            assert elapsed < PER_INPUT_LIMIT_S, f"input #{n} took {elapsed:.1f}s:\n{text!r}"
    total = time.perf_counter() - begin
    print(f"\nfuzz shard {shard}: {count} inputs ({parsed} parsed) in {total:.1f}s, "
          f"slowest {slowest * 1000:.1f} ms")


class TestFuzzShard0:
    def test_fuzz(self) -> None:
        _run_shard(0)


class TestFuzzShard1:
    def test_fuzz(self) -> None:
        _run_shard(1)


@pytest.mark.parametrize("text", PATHOLOGICAL := [
    "@define a %( @a %) probe begin { x = @a }",                     # recursive macro
    "@define a %( @b @b @b @b %) @define b %( @c @c @c @c %) @define c %( @d @d @d @d %) "
    "@define d %( @e @e @e @e %) @define e %( @f @f @f @f %) @define f %( @g @g @g @g %) "
    "@define g %( @h @h @h @h %) @define h %( @i @i @i @i %) @define i %( @j @j @j @j %) "
    "@define j %( @k @k @k @k %) @define k %( x %) probe begin { @a }",   # 4^10 tokens
    "probe " + ".".join("{a,b}" for _ in range(30)) + " { }",          # 2^30 probe points
    "probe begin { x = " + "f(" * 5000 + ")" * 5000 + " }",
], ids=["recursive-macro", "exponential-macro", "brace-explosion", "deep-calls"])
def test_pathological_inputs_stop_quickly(text: str) -> None:
    start = time.perf_counter()
    with pytest.raises(StapErrors):
        parse_file("p.stp", text)
    assert time.perf_counter() - start < 10
