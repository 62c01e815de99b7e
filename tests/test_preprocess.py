"""Preprocessor tests (reference §1.2): %( %) conditionals with every
condition kind, @define macros (closures, library macros, PR18462 skipped
branches) and stap's error messages at stap's tokens."""
from __future__ import annotations

import pytest

from codegen.lexer import token_loc
from codegen.preprocess import (ALLOWED_LEFT, PPContext, PPError, normalize_arch,
                                preprocess_text, strverscmp)

CTX = PPContext(kernel_release="6.1.0-56-amd64", arch="x86_64",
                config={"CONFIG_SMP": "y", "CONFIG_HZ": "250", "CONFIG_NAME": '"debian"',
                        "CONFIG_BAD": "abc", "CONFIG_A": "5", "CONFIG_B": "7",
                        "CONFIG_HEX": "0x10", "CONFIG_S1": "abc", "CONFIG_S2": "abd"},
                systemtap_v="5.6", privilege="stapdev", guru=False, runtime="kernel")


def pp(text: str, ctx: PPContext = CTX, lib=None) -> str:
    return " ".join(t.text for t in preprocess_text(text, "p.stp", ctx, lib)[:-1])


def cond(c: str, ctx: PPContext = CTX) -> bool:
    return pp(f"%( {c} %? T %: F %)", ctx) == "T"


CONDITIONS = [
    ('kernel_v >= "2.6.32"', True), ('kernel_v == "6.1.0"', True), ('kernel_v < "6.1"', False),
    ('kernel_v > "6.1"', True), ('kernel_v == "6.1*"', True), ('kernel_v != "5.*"', True),
    ('kernel_v <= "6.1.0"', True),
    ('kernel_vr == "6.1.0-56-amd64"', True), ('kernel_vr == "*-amd64"', True),
    ('kernel_vr < "6.1.0-100-amd64"', True),
    ('arch == "x86_64"', True), ('arch == "x86_*"', True), ('arch != "i386"', True),
    ('arch == "arm*"', False), ('arch == "x86_6[0-9]"', True),
    ('runtime == "kernel"', True), ('runtime != "bpf"', True), ('runtime == "k*"', True),
    ('systemtap_v >= "4.0"', True), ('systemtap_v < "5.10"', True), ('systemtap_v == "5.6"', True),
    ('systemtap_v == "5.*"', True),
    ('systemtap_privilege == "stapdev"', True), ('systemtap_privilege == "stapusr"', False),
    ('systemtap_privilege != "stapsys"', True),
    ("guru_mode == 0", True), ("guru_mode != 0", False),
    ('CONFIG_SMP == "y"', True), ('CONFIG_SMP == "[ym]"', True), ('CONFIG_MISSING == ""', True),
    ('CONFIG_NAME == "debian"', True), ("CONFIG_HZ >= 250", True), ("CONFIG_HZ < 100", False),
    ("CONFIG_HEX == 16", True), ("CONFIG_A < CONFIG_B", True), ("CONFIG_S1 < CONFIG_S2", True),
    ("CONFIG_A == CONFIG_S1", False),
    ("1 < 2", True), ('"a" < "b"', True), ("3 == 4", False), ("0x10 == 16", True),
    ('"a*" == "abc"', False),                      # literal strings never glob
    ('arch == "x86_64" && kernel_v < "3.0"', False), ('arch == "arm" || kernel_v > "3.0"', True),
    # && binds tighter than ||
    ('1 == 1 || 1 == 2 && 1 == 3', True), ('1 == 2 && 1 == 3 || 1 == 1', True),
    ('1 == 2 && 1 == 1 || 1 == 2', False),
]


@pytest.mark.parametrize("c,expected", CONDITIONS)
def test_conditions(c: str, expected: bool) -> None:
    assert cond(c) is expected


def test_guru_privilege_runtime_arch_normalisation() -> None:
    assert cond("guru_mode == 1", PPContext(guru=True))
    assert cond('arch == "arm64"', PPContext(arch="aarch64"))
    assert cond('arch == "i386"', PPContext(arch="i686"))
    assert cond('runtime == "bpf"', PPContext(runtime="bpf"))
    assert cond('systemtap_privilege == "stapusr"', PPContext(privilege="stapusr"))
    assert normalize_arch("i686") == "i386" and normalize_arch("ppc64le") == "powerpc"


def test_strverscmp_like_glibc() -> None:
    assert strverscmp("2.6.9", "2.6.10") < 0
    assert strverscmp("6.1", "6.1") == 0
    assert strverscmp("6.1.0", "6.1") > 0
    assert strverscmp("01", "1") < 0           # a leading zero is a fraction
    assert strverscmp("009", "01") < 0         # more zeros, smaller
    assert strverscmp("1.01", "1.1") < 0
    assert strverscmp("a", "b") < 0 and strverscmp("5.10", "5.9") > 0
    assert sorted(["000", "00", "01", "010", "09", "0", "1", "9", "10"],
                  key=__import__("functools").cmp_to_key(strverscmp)) == \
        ["000", "00", "01", "010", "09", "0", "1", "9", "10"]


def test_nesting_anywhere_and_skipped_branch_not_parsed() -> None:
    assert pp("a %( 1 == 1 %? b %( 1 == 2 %? c %: d %) e %: f %) g") == "a b d e g"
    assert pp('x = %( 1 == 2 %? "bad\n %: 2 %)') == "x = 2"
    assert pp("%( 1 == 2 %? 08 $9 \x01 %)") == ""
    assert pp("%( 1 == 2 %? a %)") == ""


def test_macros() -> None:
    assert pp("@define X %( 1 + 2 %) a = @X") == "a = 1 + 2"
    assert pp("@define F(a, b) %( @a * @b %) @F(x(1, 2), [3, 4])") == "x ( 1 , 2 ) * [ 3 , 4 ]"
    assert pp("@define F(a) %( <@a> %) @F()") == "< >"
    # a parameterless macro leaves following parentheses alone
    assert pp("@define X %( 1 %) @X(2)") == "1 ( 2 )"
    # bodies may hold conditionals and other macros
    assert pp("@define A %( 7 %) @define B %( %( 1 == 1 %? @A %) %) @B") == "7"
    # unknown @word passes through for the parser to report
    assert pp("@nosuch(1)") == "@nosuch ( 1 )"
    # a macro's name may be used in conditions
    assert pp("@define V %( 1 %) %( @V == 1 %? yes %)") == "yes"


def test_macro_arguments_are_closures() -> None:
    # @a inside an argument is the *caller's* parameter, not the callee's.
    text = "@define inner(a) %( [@a] %) @define outer(a) %( @inner(@a + 1) %) @outer(5)"
    assert pp(text) == "[ 5 + 1 ]"
    text = "@define twice(x) %( @x @x %) @define g(a) %( @twice(@a) %) @g(q)"
    assert pp(text) == "q q"


def test_skipped_branch_expands_macros_but_ignores_defines() -> None:
    # PR18462: a macro used in a skipped branch is still expanded (it may
    # close the branch) but an @define there is not recorded.
    assert pp("@define ELSE %( %: %) %( 1 == 2 %? a @ELSE b %)") == "b"
    assert pp("%( 1 == 2 %? @define Z %( 1 %) %) @Z") == "@Z"
    assert pp("%( 1 == 2 %? @define Z %( 1 %) %: @define Z %( 2 %) %) @Z") == "2"
    # errors inside a skipped branch are dropped
    assert pp("@define m(a) %( @a %) %( 1 == 2 %? @m(1, 2) %) ok") == "ok"


def test_library_macros_and_visibility() -> None:
    from codegen.parser import parse_stpm
    lib = parse_stpm("lib.stpm", "@define L(x) %( (@x) %) @define M %( @loc %)")
    assert pp("@L(5)", lib=lib) == "( 5 )"
    # file-local macros win over library ones ...
    assert pp("@define L(x) %( <@x> %) @L(5)", lib=lib) == "< 5 >"
    # ... but a library macro's body sees only library macros
    assert pp("@define loc %( 9 %) @M", lib=lib) == "@loc"


def err(text: str, ctx: PPContext = CTX) -> PPError:
    with pytest.raises(PPError) as info:
        preprocess_text(text, "p.stp", ctx)
    return info.value


ERRORS = [
    # (text, message, (line, col) of the token it is reported at)
    ('%( arch == "x" %? a', "incomplete conditional at end of file", (1, 1)),
    ("a %)", "incomplete conditional - missing '%('", (1, 3)),
    ("a %?", "incomplete conditional - missing '%('", (1, 3)),
    ("a %:", "incomplete conditional - missing '%('", (1, 3)),
    ("%( 1 == 1 %? a %: b %: c %)", "invalid conditional - duplicate '%:'", (1, 21)),
    ("%( 1 == 2 %? a %: b %: c %)", "invalid conditional - duplicate '%:'", (1, 21)),
    ("%( 1 == 1 a %)", "expected '%?' marker for conditional", (1, 1)),
    ("x %( 1 ==", "incomplete condition after '%('", (1, 3)),
    ('%( foo == "x" %? a %)', ALLOWED_LEFT, (1, 4)),
    ('%( 2 > -1 %? a %)', ALLOWED_LEFT, (1, 4)),
    ('%( CONFIG_BAD > 3 %? a %)', "Config option value not a number", (1, 4)),
    ('%( CONFIG_SMP > "y" %? a %)', "expected '==' or '!='", (1, 15)),
    ('%( CONFIG_SMP == foo %? a %)',
     "expected string, number literal or other CONFIG_... as right side operand", (1, 18)),
    ('%( kernel_v == 1 %? a %)', "expected string literal", (1, 16)),
    ('%( kernel_v < "2.*" %? a %)', "wildcard not allowed with order comparison operators",
     (1, 13)),
    ('%( kernel_v + "2" %? a %)', "expected comparison operator", (1, 13)),
    ('%( arch < "x" %? a %)', "expected '==' or '!='", (1, 9)),
    ('%( guru_mode == "1" %? a %)', "expected number", (1, 17)),
    ('%( guru_mode == 2 %? a %)', "expected 0 or 1", (1, 14)),
    ('%( guru_mode < 1 %? a %)', "expected '==' or '!='", (1, 14)),
    ('%( "a" == 1 %? a %)', "expected string literal as right value", (1, 11)),
    ('%( 1 == "a" %? a %)', "expected number literal as right value", (1, 9)),
    ("@define m(a, b) %( @a %) @m(1)", "too few parameters for macro '@m' (expected 2)",
     (1, 30)),
    ("@define m(a) %( @a %) @m(1, 2)", "too many parameters for macro '@m' (expected 1)",
     (1, 27)),
    ("@define m(a) %( @a %) @m x", "expected '(' in invocation of macro '@m' taking 1 "
     "parameter", (1, 26)),
    ("@define m(a) %( @a %) @m(1", "could not find end of macro invocation", (1, 23)),
    ("@define m %( 1 %) @define m %( 2 %)",
     "attempt to redefine macro '@m' in the same file", (1, 27)),
    ("@define m %( @define n %( 1 %) %) @m", "'@define' forbidden inside macro body", (1, 14)),
    ("@define 5 %( %)", "expected identifier", (1, 9)),
    ("@define define %( %)", "attempt to redefine '@define'", (1, 9)),
    ("@define m x", "expected '%(' or '('", (1, 11)),
    ("@define m(a) x", "expected '%('", (1, 14)),
    ("@define m(a b) %( %)", "expected ',' or ')'", (1, 13)),
    ("@define m %( 1", "incomplete macro definition - missing '%)'", (1, 9)),
]


@pytest.mark.parametrize("text,msg,where", ERRORS)
def test_errors(text: str, msg: str, where) -> None:
    e = err(text)
    assert e.msg == msg
    loc = token_loc(e.tok)
    assert (loc.line, loc.col) == where


def test_macro_redefining_an_atword_warns() -> None:
    from codegen.lexer import Source, scan
    from codegen.preprocess import Preprocessor
    warnings: list[str] = []
    keys, toks, _ = scan(Source("w.stp", "@define cast %( 1 %) @cast"))
    _, out = Preprocessor(keys, toks, CTX, warnings=warnings).run()
    assert warnings == ["macro redefines built-in operator '@cast'"]
    assert [t[1] for t in out[:-1]] == ["1"]


def test_deep_conditional_nesting_is_iterative() -> None:
    n = 100000
    assert pp("%( 1 == 1 %? " * n + "x" + " %)" * n) == "x"
