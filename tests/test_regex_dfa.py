"""The regex compiler (codegen/regex_dfa.py) against Python's re for match
existence (where POSIX ERE and Python agree), plus the POSIX-only parts."""
from __future__ import annotations

import itertools
import re

import pytest

from codegen.regex_dfa import RegexError, compile_regex, search

PATTERNS = ["a", "ab", "a|b", "a*", "a+b", "^a", "b$", "^ab$", "(ab)+", "a.c", "[abc]+x",
            "[^ab]", "a{2}", "a{1,2}b", "a{2,}", "(a|bc)*d", "^$", "x?y", "(a*)*b", "^(a|b)*c$",
            "[a-c]{2}$", "(^a|b)c", "a(b|$)"]
SUBJECTS = ["".join(p) for n in range(0, 5) for p in itertools.product("abcdx", repeat=n)]


@pytest.mark.parametrize("pattern", PATTERNS)
def test_matches_like_python_re(pattern: str) -> None:
    rx = compile_regex(pattern)
    py = re.compile(pattern)
    for s in SUBJECTS:
        assert search(rx, s.encode()) == bool(py.search(s)), (pattern, s)


@pytest.mark.parametrize("pattern,subject,want", [
    ("[[:digit:]]+", "ab12", True), ("[[:upper:]]", "abc", False), ("[[:space:]]", "a b", True),
    ("[]x]", "]", True), ("[a-]", "-", True), ("a.b", "a\nb", True), ("\\.", "x", False),
    ("\\.", ".", True), ("a{,", "a{,", True),
])
def test_posix_specifics(pattern: str, subject: str, want: bool) -> None:
    assert search(compile_regex(pattern), subject.encode()) == want


@pytest.mark.parametrize("pattern", ["(", "a)", "[a", "*a", "a{3,2}", "\\1", "[[:nope:]]"])
def test_errors(pattern: str) -> None:
    with pytest.raises(RegexError):
        compile_regex(pattern)


def test_groups_counted() -> None:
    assert compile_regex("(a)(b(c))").ngroups == 3
