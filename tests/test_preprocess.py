"""Preprocessor tests: %( %) conditionals, @define macros, their errors."""
from __future__ import annotations

import pytest

from codegen.errors import StapError
from codegen.lexer import tokenize
from codegen.preprocess import PPContext, Preprocessor, normalize_arch, strverscmp

CTX = PPContext(kernel_release="6.1.0-56-amd64", arch="x86_64",
                config={"CONFIG_SMP": "y", "CONFIG_HZ": "250", "CONFIG_NAME": '"debian"',
                        "CONFIG_BAD": "abc", "CONFIG_A": "5", "CONFIG_B": "7"},
                systemtap_v="5.6", privilege="stapdev", guru=False, runtime="kernel")


def pp(text: str, ctx: PPContext = CTX) -> str:
    toks = Preprocessor(tokenize(text, "p.stp"), ctx).tokens()
    return " ".join(t.text for t in toks[:-1])


def cond(c: str) -> bool:
    return pp(f"%( {c} %? T %: F %)") == "T"


CONDITIONS = [
    ('kernel_v >= "2.6.32"', True), ('kernel_v == "6.1.0"', True), ('kernel_v < "6.1"', False),
    ('kernel_v > "6.1"', True), ('kernel_v == "6.1*"', True), ('kernel_v != "5.*"', True),
    ('kernel_vr == "6.1.0-56-amd64"', True), ('kernel_vr == "*-amd64"', True),
    ('kernel_vr < "6.1.0-100-amd64"', True),
    ('arch == "x86_64"', True), ('arch == "x86_*"', True), ('arch != "i386"', True),
    ('arch == "arm*"', False), ('runtime == "kernel"', True), ('runtime != "bpf"', True),
    ('systemtap_v >= "4.0"', True), ('systemtap_v < "5.10"', True), ('systemtap_v == "5.6"', True),
    ('systemtap_privilege == "stapdev"', True), ('systemtap_privilege == "stapusr"', False),
    ("guru_mode == 0", True), ("guru_mode != 0", False),
    ('CONFIG_SMP == "y"', True), ('CONFIG_SMP == "[ym]"', True), ('CONFIG_MISSING == ""', True),
    ('CONFIG_NAME == "debian"', True), ("CONFIG_HZ >= 250", True), ("CONFIG_HZ < 100", False),
    ("CONFIG_A < CONFIG_B", True), ("1 < 2", True), ('"a" < "b"', True), ("3 == 4", False),
    ("2 > -1", True),
    ('arch == "x86_64" && kernel_v < "3.0"', False), ('arch == "arm" || kernel_v > "3.0"', True),
    # && binds tighter than ||
    ('1 == 1 || 1 == 2 && 1 == 3', True), ('1 == 2 && 1 == 3 || 1 == 1', True),
]


@pytest.mark.parametrize("c,expected", CONDITIONS)
def test_conditions(c: str, expected: bool) -> None:
    assert cond(c) is expected


def test_guru_and_arch_normalisation() -> None:
    assert pp("%( guru_mode == 1 %? T %: F %)", PPContext(guru=True)) == "T"
    assert pp('%( arch == "arm64" %? T %: F %)', PPContext(arch="aarch64")) == "T"
    assert normalize_arch("i686") == "i386" and normalize_arch("ppc64le") == "powerpc"


def test_strverscmp() -> None:
    assert strverscmp("2.6.9", "2.6.10") < 0
    assert strverscmp("6.1", "6.1") == 0
    assert strverscmp("6.1.0", "6.1") > 0
    assert strverscmp("01", "1") < 0


def test_nesting_anywhere_and_skipped_branch_not_lexed_for_errors() -> None:
    assert pp("a %( 1 == 1 %? b %( 1 == 2 %? c %: d %) e %: f %) g") == "a b d e g"
    assert pp('x = %( 1 == 2 %? "bad\n %: 2 %)') == "x = 2"
    assert pp("%( 1 == 2 %? 08 $9 \x01 %)") == ""
    assert pp("%( 1 == 2 %? a %)") == ""


def test_macros() -> None:
    assert pp("@define X %( 1 + 2 %) a = @X") == "a = 1 + 2"
    assert pp("@define F(a, b) %( @a * @b %) @F(x(1, 2), [3, 4])") == "x ( 1 , 2 ) * [ 3 , 4 ]"
    # a parameterless macro leaves following parentheses alone
    assert pp("@define X %( 1 %) @X(2)") == "1 ( 2 )"
    # bodies may hold conditionals and other macros
    assert pp("@define A %( 7 %) @define B %( %( 1 == 1 %? @A %) %) @B") == "7"
    # @define inside a skipped branch is ignored
    assert pp("%( 1 == 2 %? @define Z %( 1 %) %) @Z") == "@Z"
    # unknown @word passes through for the parser to report
    assert pp("@nosuch(1)") == "@nosuch ( 1 )"


def test_library_macros() -> None:
    lib_pp = Preprocessor(tokenize("@define L(x) %( (@x) %)", "lib.stpm"))
    assert lib_pp.tokens()[0].kind == "eof"
    toks = Preprocessor(tokenize("@L(5)", "u.stp"), CTX, lib_pp.macros).tokens()
    assert [t.text for t in toks[:-1]] == ["(", "5", ")"]


ERRORS = [
    ('%( arch == "x" %? a', "incomplete conditional at end of file", (1, 20)),
    ("a %)", "incomplete conditional - missing '%('", (1, 3)),
    ("a %?", "incomplete conditional - missing '%('", (1, 3)),
    ("%( 1 == 1 %? a %: b %: c %)", "invalid conditional - duplicate '%:'", (1, 21)),
    ("%( 1 == 2 %? a %: b %: c %)", "invalid conditional - duplicate '%:'", (1, 21)),
    ("%( 1 == 1 a %)", "expected '%?' marker for conditional", (1, 11)),
    ("%( 1 ==", "incomplete condition after '%('", (1, 8)),
    ('%( foo == "x" %? a %)', None, (1, 4)),
    ('%( CONFIG_BAD > 3 %? a %)', "Config option value not a number", (1, 4)),
    ("@define m(a, b) %( @a %) @m(1)", "too few parameters for macro '@m' (expected 2)",
     (1, 26)),
    ("@define m(a) %( @a %) @m(1, 2)", "too many parameters for macro '@m' (expected 1)",
     (1, 23)),
    ("@define m %( 1 %) @define m %( 2 %)",
     "attempt to redefine macro '@m' in the same file", (1, 27)),
    ("@define m %( @define n %( 1 %) %)", "unexpected @define inside macro body", (1, 14)),
]


@pytest.mark.parametrize("text,msg,where", ERRORS)
def test_errors(text: str, msg, where) -> None:
    with pytest.raises(StapError) as info:
        pp(text)
    if msg is None:
        assert info.value.msg.startswith("expected 'arch', 'kernel_v', 'kernel_vr', ")
    else:
        assert info.value.msg == msg
    assert (info.value.loc.line, info.value.loc.col) == where
