"""Lexer tests (reference §1.1): token kinds, spellings, values, 1-based
locations, argument splicing and stap's token descriptions."""
from __future__ import annotations

import pytest

from codegen.ast import Loc
from codegen.lexer import (BAD_NUMBER, NESTED_ARGS, NO_CLOSING_EMBED, NO_CLOSING_QUOTE,
                           Source, decode_string, parse_c_number, quote_string, scan,
                           stap_content, tokenize)


def kinds(text: str, args=None) -> list[tuple[str, str]]:
    return [(t.kind, t.text) for t in tokenize(text, "f.stp", args)[:-1]]


def values(text: str, args=None) -> list:
    return [t.value for t in tokenize(text, "f.stp", args)[:-1]]


TOKENS = [
    ("probe begin", [("keyword", "probe"), ("identifier", "begin")]),
    ("a # c\nb // c\nc /* x\ny */ d", [("identifier", x) for x in "abcd"]),
    ("a /* unclosed", [("identifier", "a")]),
    ("$var $$vars $x$ $x$$ @cast @foo $ @", [
        ("identifier", "$var"), ("identifier", "$$vars"), ("identifier", "$x$"),
        ("identifier", "$x$$"), ("operator", "@cast"), ("operator", "@foo"),
        ("identifier", "$"), ("operator", "@")]),
    ("a<<<b>>>c<<=d>>=e", [("identifier", "a"), ("operator", "<<<"), ("identifier", "b"),
                           ("operator", ">>>"), ("identifier", "c"), ("operator", "<<="),
                           ("identifier", "d"), ("operator", ">>="), ("identifier", "e")]),
    ("== != <= >= =~ !~ += -= *= /= %= &= ^= |= .= && || ++ -- -> << >>",
     [("operator", o) for o in "== != <= >= =~ !~ += -= *= /= %= &= ^= |= .= && || ++ -- "
      "-> << >>".split()]),
    ("%( %? %: %)", [("operator", o) for o in ("%(", "%?", "%:", "%)")]),
    ("--=&&=<<<=", [("operator", "--"), ("operator", "="), ("operator", "&&"),
                    ("operator", "="), ("operator", "<<<"), ("operator", "=")]),
    ("if else for foreach in limit return delete while break continue next string long "
     "try catch private global function",
     [("keyword", k) for k in "if else for foreach in limit return delete while break "
      "continue next string long try catch private global function".split()]),
    ("%{ int x; %}", [("embedded", " int x; ")]),
    ("%{%}", [("embedded", "")]),
    ("a.b", [("identifier", "a"), ("operator", "."), ("identifier", "b")]),
    ("' \\ ` ;", [("operator", "'"), ("operator", "\\"), ("operator", "`"),
                  ("operator", ";")]),
    ("\x01", [("junk", "\\x01")]),
    ("12abc 0x1F", [("number", "12abc"), ("number", "0x1F")]),
]


@pytest.mark.parametrize("text,expected", TOKENS)
def test_tokens(text: str, expected: list) -> None:
    assert kinds(text) == expected


def test_private_is_a_keyword_only_from_3_0() -> None:
    keys, _, _ = scan(Source("f", "private x"), private_keyword=False)
    assert keys[0] == "\0i"
    keys, _, _ = scan(Source("f", "private x"))
    assert keys[0] == "private"


NUMBERS = [("0", 0), ("42", 42), ("0x1F", 31), ("0X10", 16), ("017", 15),
           ("9223372036854775807", 2**63 - 1), ("9223372036854775808", -2**63),
           ("18446744073709551615", -1), ("18446744073709551616", None), ("08", None),
           ("0x", None), ("12abc", None), ("1L", None)]


@pytest.mark.parametrize("text,value", NUMBERS)
def test_numbers(text: str, value) -> None:
    assert parse_c_number(text) == value
    (tok,) = tokenize(text, "f")[:-1]
    assert tok.kind == "number" and tok.value == value
    assert tok.error == (None if value is not None else BAD_NUMBER)


STRINGS = [(r"a\nb", "a\nb"), (r"\t\\\"", "\t\\\""), (r"\a\b\f\v\r", "\a\b\f\v\r"),
           (r"\101\0", "A\0"), (r"\x41\x4a", "AJ"), (r"\q", "q"), ("plain", "plain")]


@pytest.mark.parametrize("raw,decoded", STRINGS)
def test_string_escapes(raw: str, decoded: str) -> None:
    assert decode_string(raw) == decoded
    assert values(f'"{raw}"') == [decoded]
    assert decode_string(quote_string(decoded)) == decoded


def test_hex_escape_needs_2_3() -> None:
    assert decode_string(r"\x41", hex_escapes=False) == "x41"


def test_string_content_as_stap_prints_it() -> None:
    # Escapes C understands stay escaped, others lose their backslash.
    assert stap_content(r"a\"b\n\q") == r'a"b\nq'


def test_escaped_newline_continues_a_string() -> None:
    assert values('"a\\\nb"') == ["a\nb"]


def test_locations_are_one_based_and_track_lines() -> None:
    toks = tokenize("probe begin {\n\tx = 1 /* a\n b */ y\n}", "f.stp")
    assert [(t.text, t.loc.line, t.loc.col) for t in toks] == [
        ("probe", 1, 1), ("begin", 1, 7), ("{", 1, 13), ("x", 2, 2), ("=", 2, 4),
        ("1", 2, 6), ("y", 3, 7), ("}", 4, 1), ("", 4, 2)]
    assert toks[0].loc == Loc("f.stp", 1, 1)


def test_spaced_flag_for_probe_point_gluing() -> None:
    toks = tokenize("sys*call a *", "f")
    assert [t.spaced for t in toks[:-1]] == [False, False, False, True, True]


def test_argument_splicing() -> None:
    assert kinds("$1 + @2", ["a.b", 'q"x']) == [
        ("identifier", "a"), ("operator", "."), ("identifier", "b"), ("operator", "+"),
        ("string", 'q\\"x')]
    assert values("@2", ["a", 'q"x']) == ['q"x']
    assert values("$# @#", ["a", "b"]) == [2, "2"]
    # pasted tokens sit at the $N location
    toks = tokenize("  $1", "f", ["x + y"])
    assert {t.loc.col for t in toks[:-1]} == {3}


def test_pasted_text_joins_following_characters() -> None:
    # stap pastes the argument into the character stream, so "$1x" with
    # $1 = "ab" is the identifier "abx", and "$1" = "1" before "0" is 10.
    assert kinds("$1x y", ["ab"]) == [("identifier", "abx"), ("identifier", "y")]
    assert kinds("$1x", ["12"]) == [("number", "12x")]
    assert kinds('@1"z"', ["q"]) == [("string", "q"), ("string", "z")]


def test_argument_digits_stop_past_the_count() -> None:
    # stap stops reading digits once the index exceeds the argument count.
    assert kinds("$12", ["a", "b"]) == [("junk", "$12")]
    assert kinds("$123", ["a", "b"]) == [("junk", "$12"), ("number", "3")]


@pytest.mark.parametrize("text,args,msg", [
    ("$3", ["a"], "command line argument out of range [1-1]"),
    ("@0", ["a"], "command line argument out of range [1-1]"),
    ("$1", [], "command line argument out of range [1-0]"),
    ("$1", ["$2"], NESTED_ARGS),
    ("$1", ["@#"], NESTED_ARGS),
])
def test_argument_errors(text: str, args: list, msg: str) -> None:
    (tok,) = tokenize(text, "f", args)[:-1]
    assert tok.kind == "junk" and tok.error == msg


def test_unterminated() -> None:
    (tok,) = tokenize('"abc\n', "f")[:-1]
    assert tok.kind == "junk" and tok.error == NO_CLOSING_QUOTE
    (tok,) = tokenize("%{ abc", "f")[:-1]
    assert tok.kind == "junk" and tok.error == NO_CLOSING_EMBED


def test_describe_forms() -> None:
    # stap prints keywords and embedded code by kind only; others with content.
    toks = tokenize('x } "a\\"bc" 5 probe %{ %} \x02', "f")
    assert [t.describe() for t in toks] == [
        "identifier 'x'", "operator '}'", "string 'a\"bc'", "number '5'", "keyword",
        "embedded-code", "junk '\\x02'", "EOF"]


def test_embedded_typo_warns() -> None:
    warnings: list[str] = []
    scan(Source("f", "%{ x }% %}"), warnings=warnings)
    assert warnings == ["possible erroneous closing '}%', use '%}'?"]


def test_long_whitespace_tail_does_not_backtrack() -> None:
    assert kinds("a" + " \n\t" * 20000) == [("identifier", "a")]
