"""The semantic cases. Every expected output here is written by hand from
SystemTap's language reference and runtime behaviour (shared reference
§1.4-1.8 and §4), not captured from our own output.

A case's script runs as ``stap -e`` would name it (``<input>``); error
messages name the token SystemTap blames, at its line and column (``at()``
computes the column from the script text, it does not run anything).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

NAME = "<input>"


@dataclass
class Case:
    name: str
    script: str
    stdout: str
    stderr: str = ""
    rc: int = 0
    defines: tuple[str, ...] = ()
    guru: bool = False
    # Seconds to let a kernel run last when the script does not exit()
    # (begin-only scripts); user space stops once nothing can fire.
    duration: Optional[float] = None
    kernel: bool = True          # also part of the booted batch
    tags: tuple[str, ...] = field(default_factory=tuple)


def at(script: str, needle: str, n: int = 1) -> str:
    """FILE:LINE:COL of the n-th occurrence of needle in script."""
    pos = -1
    for _ in range(n):
        pos = script.index(needle, pos + 1)
    line = script.count("\n", 0, pos) + 1
    col = pos - (script.rfind("\n", 0, pos) + 1) + 1
    return f"{NAME}:{line}:{col}"


def error(script: str, msg: str, token: str, needle: str, n: int = 1, probe: str = "begin",
          chain: tuple[tuple[str, str, int], ...] = (), errors: int = 1) -> str:
    """stderr of a run that stops on one error (MAXERRORS=0)."""
    text = f"ERROR: {msg} near {token} at {at(script, needle, n)}"
    for tok, ndl, k in chain:
        text += f" (called from {tok} at {at(script, ndl, k)})"
    return text + f" in probe {probe}\nWARNING: Number of errors: {errors}, skipped probes: 0\n"


CASES: list[Case] = []


def case(name: str, script: str, stdout: str, **kw) -> None:
    CASES.append(Case(name, script, stdout, **kw))


def fails(name: str, script: str, stdout: str, msg: str, token: str, needle: str,
          n: int = 1, **kw) -> None:
    chain = kw.pop("chain", ())
    probe = kw.pop("probe", "begin")
    CASES.append(Case(name, script, stdout, error(script, msg, token, needle, n, probe, chain),
                      rc=1, **kw))


# ============================================================== arithmetic
case("add_wraps", 'probe begin { println(9223372036854775807 + 1) }',
     "-9223372036854775808\n")
case("sub_wraps", 'probe begin { x = -9223372036854775807; println(x - 2) }',
     "9223372036854775807\n")
case("mul_wraps", 'probe begin { println(4294967296 * 4294967296, " ", 3037000500 * 3037000500) }',
     "0 -9223372036709301616\n")
case("neg_wraps", 'probe begin { x = 9223372036854775807; x = -x - 1; println(x, " ", -x) }',
     "-9223372036854775808 -9223372036854775808\n")
case("div_truncates", 'probe begin { println(7 / 2, " ", -7 / 2, " ", 7 / -2, " ", -7 / -2) }',
     "3 -3 -3 3\n")
case("mod_sign", 'probe begin { println(7 % 3, " ", -7 % 3, " ", 7 % -3, " ", -7 % -3) }',
     "1 -1 1 -1\n")
case("div_min_by_minus_one",
     'probe begin { m = -9223372036854775807 - 1; println(m / -1, " ", m % -1) }',
     "-9223372036854775808 0\n")
_s = 'probe begin { x = 0; println("before"); println(10 / x); println("after") }'
fails("div_by_zero", _s, "before\n", "division by 0", "operator '/'", "/")
_s = 'probe begin { x = 0; println(10 % x) }'
fails("mod_by_zero", _s, "", "division by 0", "operator '%'", "%")
_s = 'probe begin { x = 5; x /= 0; println(x) }'
fails("div_assign_by_zero_blames_rhs", _s, "", "division by 0", "number '0'", "0;")
_s = 'probe begin { z = 0; x = 5; x %= z }'
fails("mod_assign_by_zero", _s, "", "division by 0", "identifier 'z'", "z }")
case("shifts", 'probe begin { println(1 << 3, " ", 1 << 63, " ", -16 >> 2, " ", -16 >>> 60, " ", '
     '5 >> 1) }', "8 -9223372036854775808 -4 15 2\n")
case("bitwise", 'probe begin { println(6 & 3, " ", 6 | 3, " ", 6 ^ 3, " ", ~5, " ", ~-1) }',
     "2 7 5 -6 0\n")
case("logical_not", 'probe begin { println(!5, " ", !0, " ", !!7) }', "0 1 1\n")
case("unary_plus_minus", 'probe begin { x = 5; println(+x, " ", -x, " ", - -x) }', "5 -5 5\n")
case("precedence",
     'probe begin { println(1 + 2 * 3, " ", (1 + 2) * 3, " ", 1 << 2 + 1, " ", 2 | 4 ^ 6 & 3, '
     '" ", "a" . "b" == "ab") }', "7 9 8 6 1\n")
case("compare_longs",
     'probe begin { println(3 < 5, 5 < 3, 5 <= 5, 6 <= 5, 5 > 3, 3 >= 4, 4 == 4, 4 != 4, '
     '-1 < 0) }', "101010101\n")
case("compare_strings",
     'probe begin { println("abc" < "abd", "b" > "abc", "x" == "x", "x" != "y", "" < "a", '
     '"B" < "a", "ab" >= "abc") }', "1111110\n")
case("logical_short_circuit",
     'function t(x) { println("t", x); return x }\n'
     'probe begin { a = 0 && t(1); b = 1 || t(2); c = 1 && t(3); d = 0 || t(0); '
     'println(a, b, c, d) }', "t3\nt0\n0110\n")
case("logical_values", 'probe begin { println(5 && 7, " ", 0 || -3, " ", 0 && 0) }', "1 1 0\n")
case("ternary",
     'probe begin { x = 5; println(x > 3 ? "big" : "small", " ", x < 3 ? 1 : 2, " ", '
     'x ? x > 9 ? "a" : "b" : "c") }', "big 2 b\n")
case("increments",
     'probe begin { x = 5; println(x++, " ", x, " ", ++x, " ", x--, " ", --x, " ", x) }',
     "5 6 7 7 5 5\n")
case("increment_wraps", 'probe begin { x = 9223372036854775807; x++; println(x); x--; println(x) }',
     "-9223372036854775808\n9223372036854775807\n")
case("compound_assign",
     'probe begin { x = 10; x += 5; x -= 3; x *= 2; x /= 4; x %= 4; x <<= 3; x >>= 1; '
     'x &= 6; x |= 9; x ^= 3; println(x) }', "10\n")
case("compound_assign_elements",
     'global a, s\nprobe begin { a["k"] += 5; a["k"] *= 3; a["k"] -= 1; a["k"]++; ++a["k"]; '
     'a["k"] /= 2; a["k"] <<= 2; println(a["k"]); s["k"] = "ab"; s["k"] .= "cd"; '
     'println(s["k"]); println(a["k"]--, " ", --a["k"], " ", a["k"]) }',
     "32\nabcd\n32 30 30\n")
case("assignment_value", 'probe begin { x = y = 4; z = (w = 3) + 1; println(x, y, z, w) }',
     "4443\n")
case("concat", 'probe begin { x = "ab" . "cd"; x .= "ef"; y = x . "g" . x; println(x, " ", y) }',
     "abcdef abcdefgabcdef\n")
case("concat_truncates",
     'probe begin { x = "abcd" . "efgh"; println(x); x .= "zz"; println(x); '
     'y = "0123456789"; println(y, " ", y . "!") }',
     "abcdefg\nabcdefg\n0123456 0123456\n", defines=("MAXSTRINGLEN=8",))
case("string_default_and_delete",
     'global g = "init"\nprobe begin { println("[", s, "][", g, "]"); delete g; '
     'println("[", g, "]"); s = "x" }', "[][init]\n[]\n")
case("long_default_and_delete",
     'global n = 7\nprobe begin { println(n); delete n; println(n); x += 3; println(x) }',
     "7\n0\n3\n")

# ============================================================== printf
case("printf_integer_conversions",
     'probe begin { printf("%d %i %u %o %x %X\\n", -1, 42, -1, 8, 255, 255) }',
     "-1 42 18446744073709551615 10 ff FF\n")
case("printf_width_and_flags",
     'probe begin { printf("[%5d][%-5d][%05d][%+d][% d][%+d][% d]\\n", 42, 42, 42, 42, 42, '
     '-42, -42) }', "[   42][42   ][00042][+42][ 42][-42][-42]\n")
case("printf_zero_pad_negative", 'probe begin { printf("[%05d][%05x]\\n", -42, 255) }',
     "[-0042][000ff]\n")
case("printf_precision",
     'probe begin { printf("[%.3d][%5.3d][%-6.3d][%.3x][%05.3d]\\n", 7, 7, 7, 10, 7) }',
     "[007][  007][007   ][00a][00007]\n")
case("printf_alternate_forms",
     'probe begin { printf("[%#x][%#X][%#o][%#x][%#o][%#8x]\\n", 255, 255, 8, 0, 0, 255) }',
     "[0xff][0XFF][010][0x0][00][    0xff]\n")
case("printf_plus_ignored_unsigned", 'probe begin { printf("[%+u][%+x][% o]\\n", 5, 10, 8) }',
     "[5][a][10]\n")
case("printf_pointer",
     'probe begin { printf("[%p][%p][%10p][%-10p]\\n", 0, 4096, 4096, 255) }',
     "[0x0][0x1000][    0x1000][0xff      ]\n")
case("printf_strings",
     'probe begin { printf("[%s][%5s][%-5s][%.2s][%5.1s][%-4.3s]\\n", "abc", "abc", "abc", '
     '"abc", "abc", "abcdef") }', "[abc][  abc][abc  ][ab][    a][abc ]\n")
case("printf_chars",
     'probe begin { printf("[%c][%3c][%-3c][%c]\\n", 65, 66, 67, 256 + 68) }',
     "[A][  B][C  ][D]\n")
case("printf_char_escapes",
     'probe begin { printf("[%#c][%#c][%#c][%#c][%#c][%#c]\\n", 10, 9, 39, 92, 1, 120) }',
     "[\\n][\\t][\\'][\\\\][\\001][x]\n")
case("printf_percent", 'probe begin { printf("100%% of %d%%\\n", 5) }', "100% of 5%\n")
case("printf_star_width_precision",
     'probe begin { printf("[%*d][%-*d][%.*s][%*s][%*d]\\n", 5, 42, 4, 7, 2, "abcdef", -4, '
     '"x", 3, -1) }', "[   42][7   ][ab][x   ][ -1]\n")
case("printf_binary",
     'probe begin { printf("%1b%1b|%2b|%.1b|%4b\\n", 72, 105, 26952, 33, 1684234849) }',
     "Hi|Hi|!|abcd\n")
case("printf_binary_default_8_bytes",
     'probe begin { printf("%b", 4702111234474983745) }', "AAAAAAAA")
case("printf_long_modifier", 'probe begin { printf("%ld %lx %lu\\n", -5, 255, 7) }',
     "-5 ff 7\n")
case("printf_no_args", 'probe begin { printf("plain text\\n") }', "plain text\n")
case("printf_many_args",
     'probe begin { printf("%d%s%d%s%d%s%d%s%d%s\\n", 1, "a", 2, "b", 3, "c", 4, "d", 5, "e") }',
     "1a2b3c4d5e\n")
case("printf_memory",
     '%{ static const char stp_test_mem[] = "hello, world"; %}\n'
     'function mem:long() %{ STAP_RETVALUE = (long)stp_test_mem; %}\n'
     'probe begin { printf("[%.5m][%.3M][%m][%-8.2m][%7.2M]\\n", mem(), mem(), mem(), mem(), '
     'mem()) }', "[hello][68656c][h][he      ][   6865]\n", guru=True)
case("sprintf_basic",
     'probe begin { s = sprintf("%05d|%s|%x", 42, "x", 255); println(s); '
     'println(sprintf("%c%c", 104, 105)) }', "00042|x|ff\nhi\n")
case("sprintf_truncates",
     'probe begin { println(sprintf("%d", 123456789012)); println(sprintf("%s%s", "abcd", '
     '"efgh")) }', "1234567\nabcdefg\n", defines=("MAXSTRINGLEN=8",))

# ============================================================== print family
case("print_values", 'probe begin { print(1, "a", -2); print("\\n") }', "1a-2\n")
case("println_values", 'probe begin { println(1, "a", 2); println(); println("x") }',
     "1a2\n\nx\n")
case("printd", 'probe begin { printd("-", 1, "b", 3); printd(", ", "x", 2); print("\\n") }',
     "1-b-3x, 2\n")
case("printdln", 'probe begin { printdln(", ", "a", 2); printdln("%", 1, 2, 3) }',
     "a, 2\n1%2%3\n")
case("sprint_family",
     'probe begin { a = sprint(42, "x"); b = sprintln("a"); c = sprintd(":", 1, "2"); '
     'd = sprintdln(":", 1, 2); printf("[%s][%s][%s][%s]\\n", a, b, c, d) }',
     "[42x][a\n][1:2][1:2\n]\n")
case("print_escapes_in_literals", 'probe begin { print("tab\\there \\"q\\" back\\\\slash\\n") }',
     'tab\there "q" back\\slash\n')

# ============================================================== arrays
case("array_insertion_order",
     'global a\nprobe begin { a["z"] = 1; a["a"] = 2; a["m"] = 3; '
     'foreach (k in a) printf("%s=%d ", k, a[k]); println("") }', "z=1 a=2 m=3 \n")
case("array_mixed_keys",
     'global a\nprobe begin { a[1, "x", 2] = 10; a[2, "y", 1] = 20; a[1, "x", 3] = 30; '
     'foreach ([i, s, j] in a) printf("%d,%s,%d:%d\\n", i, s, j, a[i, s, j]) }',
     "1,x,2:10\n2,y,1:20\n1,x,3:30\n")
case("array_nine_keys",
     'global a\nprobe begin { a[1, "b", 3, "d", 5, "f", 7, "h", 9] = 45; '
     'foreach ([k1, k2, k3, k4, k5, k6, k7, k8, k9] in a) printf("%d%s%d%s%d%s%d%s%d=%d\\n", '
     'k1, k2, k3, k4, k5, k6, k7, k8, k9, a[k1, k2, k3, k4, k5, k6, k7, k8, k9]) }',
     "1b3d5f7h9=45\n")
case("array_missing_reads_zero",
     'global a, s\nprobe begin { a[1] = 1; println(a[2], "[", s["x"], "]"); '
     'println([2] in a, ["x"] in s); s["y"] = "z" }', "0[]\n00\n")
case("array_in_and_wildcard_in",
     'global a\nprobe begin { a["x", 1] = 5; a["y", 2] = 3; '
     'println(["x", 1] in a, ["x", 2] in a, ["x", *] in a, [*, 2] in a, [*, 3] in a, '
     '[*, *] in a) }', "101101\n")
case("array_delete_element",
     'global a\nprobe begin { a[1] = 1; a[2] = 2; a[3] = 3; delete a[2]; delete a[9]; '
     'foreach (k in a) print(k, " "); println([2] in a) }', "1 3 0\n")
case("array_delete_wildcard",
     'global a\nprobe begin { a["x", 1] = 1; a["y", 1] = 2; a["x", 2] = 3; a["y", 2] = 4; '
     'delete a["x", *]; foreach ([k, n] in a) printf("%s%d ", k, n); println(""); '
     'delete a[*, 2]; foreach ([k, n] in a) printf("%s%d ", k, n); println("") }',
     "y1 y2 \ny1 \n")
case("array_delete_whole",
     'global a\nprobe begin { a[1] = 1; a[2] = 2; delete a; foreach (k in a) println(k); '
     'a[3] = 3; foreach (k in a) println(k) }', "3\n")
case("array_declared_size_overflow",
     'global a[3]\nprobe begin { for (i = 0; i < 3; i++) a[i] = i; println("three"); '
     'a[1] = 10; println("replace ok"); a[9] = 9; println("not reached") }',
     "three\nreplace ok\n",
     stderr=error('global a[3]\nprobe begin { for (i = 0; i < 3; i++) a[i] = i; println('
                  '"three"); a[1] = 10; println("replace ok"); a[9] = 9; println("not '
                  'reached") }', "Array overflow, check size limit (3)", "identifier 'a'",
                  "a[9]"), rc=1)
_s = 'global a\nprobe begin { for (i = 0; i < 10; i++) a[i] = i }'
fails("array_maxmapentries_overflow", _s, "", "Array overflow, check MAXMAPENTRIES",
      "identifier 'a'", "a[i]", defines=("MAXMAPENTRIES=4",))
case("array_wrap_keeps_newest",
     'global w%[3]\nprobe begin { for (i = 1; i <= 5; i++) w[i] = i * 10; '
     'foreach (k in w) printf("%d:%d ", k, w[k]); println("") }', "3:30 4:40 5:50 \n")
case("foreach_sort_value",
     'global a\nprobe begin { a["x"] = 2; a["y"] = 3; a["z"] = 1; '
     'foreach (k in a+) print(k); print(" "); foreach (k in a-) print(k); println("") }',
     "zxy yxz\n")
case("foreach_sort_keys",
     'global a\nprobe begin { a[2, "b"] = 1; a[1, "c"] = 1; a[3, "a"] = 1; '
     'foreach ([n+, s] in a) printf("%d%s ", n, s); println(""); '
     'foreach ([n-, s] in a) printf("%d%s ", n, s); println(""); '
     'foreach ([n, s+] in a) printf("%d%s ", n, s); println(""); '
     'foreach ([n, s-] in a) printf("%d%s ", n, s); println("") }',
     "1c 2b 3a \n3a 2b 1c \n3a 2b 1c \n1c 2b 3a \n")
case("foreach_sort_string_values",
     'global a\nprobe begin { a[1] = "pear"; a[2] = "apple"; a[3] = "fig"; '
     'foreach (k in a+) print(a[k], " "); println(""); '
     'foreach (k in a-) print(a[k], " "); println("") }',
     "apple fig pear \npear fig apple \n")
case("foreach_sort_is_stable",
     'global a\nprobe begin { a["p"] = 1; a["q"] = 2; a["r"] = 1; a["s"] = 2; a["t"] = 1; '
     'foreach (k in a+) print(k); println(""); foreach (k in a-) print(k); println("") }',
     "prtqs\nqsprt\n")
case("foreach_sorted_order_persists",
     'global a\nprobe begin { a[3] = 1; a[1] = 2; a[2] = 3; foreach (k+ in a) print(k); '
     'print(" "); foreach (k in a) print(k); a[0] = 4; print(" "); foreach (k in a) print(k); '
     'println("") }', "123 123 1230\n")
case("foreach_limit",
     'global a\nprobe begin { for (i = 1; i <= 6; i++) a[i] = i * i; '
     'foreach (k in a- limit 3) print(k, " "); println(""); '
     'foreach (k in a limit 2) print(k, " "); println(""); '
     'n = 0; foreach (k in a limit n) print(k); println("none") }',
     "6 5 4 \n6 5 \nnone\n")
case("foreach_value_binding",
     'global a, s\nprobe begin { a["x", 1] = 10; a["y", 2] = 20; s["k"] = "v"; '
     'foreach (v = [k, n] in a) printf("%s%d=%d ", k, n, v); '
     'foreach (sv = k in s) printf("%s=%s", k, sv); println("") }',
     "x1=10 y2=20 k=v\n")
case("foreach_value_sort",
     'global a\nprobe begin { a["x"] = 5; a["y"] = 9; a["z"] = 1; '
     'foreach (v- = k in a) printf("%s%d ", k, v); println("") }', "y9 x5 z1 \n")
case("foreach_slice",
     'global a\nprobe begin { a["x", 1] = 1; a["y", 1] = 2; a["x", 2] = 3; a["y", 3] = 4; '
     'foreach ([k, n] in a["x", *]) printf("%s%d ", k, n); println(""); '
     'foreach ([k, n] in a[*, 1]) printf("%s%d ", k, n); println(""); '
     'foreach ([k, n+] in a["y", *]) printf("%s%d ", k, n); println("") }',
     "x1 x2 \nx1 y1 \ny1 y3 \n")
case("foreach_break_continue",
     'global a\nprobe begin { for (i = 0; i < 6; i++) a[i] = i; '
     'foreach (k in a) { if (k == 1) continue; if (k == 4) break; print(k) } println("") }',
     "023\n")
case("foreach_nested",
     'global a, b\nprobe begin { a[1] = 1; a[2] = 2; b["x"] = 1; b["y"] = 1; '
     'foreach (i in a) foreach (j in b) printf("%d%s ", i, j); println("") }',
     "1x 1y 2x 2y \n")
case("array_string_values_and_keys",
     'global m\nprobe begin { m["k1"] = "v1"; m["k2"] = "v2"; m["k1"] = "w1"; '
     'foreach (k in m) printf("%s=%s ", k, m[k]); println("") }', "k1=w1 k2=v2 \n")

# ============================================================== statistics
case("stat_extractors",
     'global s\nprobe begin { s <<< 5; s <<< -3; s <<< 10; '
     'println(@count(s), " ", @sum(s), " ", @min(s), " ", @max(s), " ", @avg(s)) }',
     "3 12 -3 10 4\n")
case("stat_avg_truncates", 'global s\nprobe begin { s <<< 1; s <<< 2; s <<< -4; '
     'println(@avg(s)) }', "0\n")
case("stat_variance", 'global s\nprobe begin { s <<< 10; s <<< 20; s <<< 30; '
     'println(@variance(s)) }', "100\n")
case("stat_variance_constant", 'global s\nprobe begin { for (i = 0; i < 5; i++) s <<< 7; '
     'println(@variance(s)) }', "0\n")
case("stat_count_of_empty", 'global s\nprobe begin { if (0) s <<< 1; println(@count(s)) }',
     "0\n")
_s = 'global s\nprobe begin { if (0) s <<< 1; println(@count(s)); println(@avg(s)) }'
fails("stat_empty_aggregate", _s, "0\n", "empty aggregate", "operator '@avg'", "@avg")
case("stat_delete", 'global s\nprobe begin { s <<< 4; delete s; s <<< 6; '
     'println(@count(s), " ", @sum(s)) }', "1 6\n")
case("stat_arrays",
     'global s\nprobe begin { s["a"] <<< 1; s["a"] <<< 3; s["b"] <<< 5; s["c"] <<< 2; '
     's["c"] <<< 2; s["c"] <<< 2; '
     'foreach (k in s-) printf("%s:%d/%d/%d ", k, @count(s[k]), @sum(s[k]), @avg(s[k])); '
     'println(""); foreach (k in s @sum+) print(k); println(""); '
     'foreach (k in s @max-) print(k); println(""); println(["b"] in s, ["z"] in s) }',
     "c:3/6/2 a:2/4/2 b:1/5/5 \nabc\nbac\n10\n")
case("stat_array_delete",
     'global s\nprobe begin { s[1] <<< 1; s[2] <<< 2; delete s[1]; '
     'foreach (k in s) print(k); delete s; foreach (k in s) print(k); println("") }', "2\n")

_DASHES = "-" * 50
_HDR = "value |" + _DASHES + " count\n"


def _row(value: str, bar: int, count: int, cnt_space: int = 1, val_space: int = 5) -> str:
    """One histogram row as SystemTap lays it out: the value right-aligned
    in val_space, " |", the bar, then the count right-aligned so that it
    ends HIST_WIDTH + 1 + cnt_space columns after the bar's start."""
    return value.rjust(val_space) + " |" + "@" * bar + str(count).rjust(50 - bar + 1 + cnt_space) \
        + "\n"


case("hist_linear_elides_empty_runs",
     'global h\nprobe begin { h <<< 5; h <<< 95; print(@hist_linear(h, 0, 100, 10)) }',
     _HDR + _row("0", 1, 1) + _row("10", 0, 0) + _row("20", 0, 0) + "      ~\n"
     + _row("70", 0, 0) + _row("80", 0, 0) + _row("90", 1, 1) + _row("100", 0, 0) + "\n")
case("hist_linear_under_and_overflow",
     'global h\nprobe begin { h <<< -5; h <<< 0; h <<< 0; h <<< 25; h <<< 45; '
     'print(@hist_linear(h, 0, 30, 10)) }',
     _HDR + _row("<0", 1, 1) + _row("0", 2, 2) + _row("10", 0, 0) + _row("20", 1, 1)
     + _row("30", 0, 0) + _row(">30", 1, 1) + "\n")
case("hist_log",
     'global h\nprobe begin { h <<< 1; h <<< 2; h <<< 3; h <<< 8; print(@hist_log(h)) }',
     _HDR + _row("0", 0, 0) + _row("1", 1, 1) + _row("2", 2, 2) + _row("4", 0, 0)
     + _row("8", 1, 1) + _row("16", 0, 0) + _row("32", 0, 0) + "\n")
case("hist_log_negative_and_zero",
     'global h\nprobe begin { h <<< -1; h <<< 0; h <<< 1; print(@hist_log(h)) }',
     _HDR + _row("-4", 0, 0) + _row("-2", 0, 0) + _row("-1", 1, 1) + _row("0", 1, 1)
     + _row("1", 1, 1) + _row("2", 0, 0) + _row("4", 0, 0) + "\n")
case("hist_scales_bars",
     'global h\nprobe begin { for (i = 0; i < 200; i++) h <<< 1; h <<< 12; '
     'print(@hist_linear(h, 0, 20, 10)) }',
     _HDR + _row("0", 50, 200, 3) + _row("10", 0, 1, 3) + _row("20", 0, 0, 3) + "\n")
case("hist_bucket_index",
     'global h\nprobe begin { h <<< 5; h <<< 7; h <<< 15; h <<< 99; '
     'println(@hist_linear(h, 0, 20, 10)[0], @hist_linear(h, 0, 20, 10)[1], '
     '@hist_linear(h, 0, 20, 10)[2], @hist_linear(h, 0, 20, 10)[4]) }', "0211\n")
_s = 'global h\nprobe begin { h <<< 1; println(@hist_linear(h, 0, 20, 10)[5]) }'
fails("hist_index_out_of_range", _s, "", "histogram index out of range", "operator '['",
      "@hist_linear")
case("hist_foreach_buckets",
     'global h\nprobe begin { h <<< 5; h <<< 15; h <<< 16; '
     'foreach (i in @hist_linear(h, 0, 30, 10)) printf("%d:%d ", i, '
     '@hist_linear(h, 0, 30, 10)[i]); println("") }', "0:0 1:1 2:2 3:0 4:0 5:0 \n")
case("hist_of_array_element",
     'global h\nprobe begin { h["a"] <<< 3; h["a"] <<< 3; h["b"] <<< 1; '
     'print(@hist_linear(h["a"], 0, 10, 5)) }',
     _HDR + _row("0", 2, 2) + _row("5", 0, 0) + _row("10", 0, 0) + "\n")
_s = 'global h\nprobe begin { if (0) h <<< 1; print(@hist_log(h)) }'
fails("hist_empty", _s, "", "empty aggregate", "operator '@hist_log'", "@hist_log")

# ============================================================== functions
case("recursion",
     'function fib(n) { if (n < 2) return n; return fib(n - 1) + fib(n - 2) }\n'
     'probe begin { println(fib(10)) }', "55\n")
case("arity_overloading",
     'function f(a) { return a * 10 }\nfunction f(a, b) { return a + b }\n'
     'function f() { return "none" }\nprobe begin { println(f(1), " ", f(1, 2), " ", f()) }',
     "10 3 none\n")
case("string_function",
     'function greet:string(who:string) { return "hi " . who }\n'
     'probe begin { println(greet("bob")) }', "hi bob\n")
case("function_locals_are_per_call",
     'function f(n) { x = n * 2; if (n > 0) f(n - 1); return x }\n'
     'probe begin { println(f(3)) }', "6\n")
case("void_function_and_return",
     'function p(x) { if (x) return; println("zero") }\nprobe begin { p(1); p(0) }', "zero\n")
_s = 'function f(n) { return f(n + 1) + 1 }\nprobe begin { f(0) }'
fails("maxnesting", _s, "", "MAXNESTING exceeded", "identifier 'f'", "f(n + 1)",
      chain=(("identifier 'f'", "f(n + 1)", 1), ("identifier 'f'", "f(n + 1)", 1),
             ("identifier 'f'", "f(0)", 1)), defines=("MAXNESTING=3",))
case("recursion_within_default_nesting",
     'function down(n) { if (n == 0) return 0; return 1 + down(n - 1) }\n'
     'probe begin { println(down(10)) }', "10\n")
_s = 'function inner(x) { return 1 / x }\nfunction outer(x) { return inner(x) }\n' \
     'probe begin { println(outer(2)); println(outer(0)) }'
fails("error_call_chain", _s, "0\n", "division by 0", "operator '/'", "/",
      chain=(("identifier 'inner'", "inner(x) }", 1), ("identifier 'outer'", "outer(0)", 1)))
case("try_catch_message",
     'probe begin { try { x = 1 / 0; println("no") } catch (msg) { println("caught: ", msg) } '
     'println("after") }', "caught: division by 0\nafter\n")
case("try_catch_without_variable",
     'probe begin { try { error("x") } catch { println("c") } }', "c\n")
case("try_catch_nested_rethrow",
     'probe begin { try { try { error("a") } catch (m) { error("b:" . m) } } '
     'catch (m2) { println(m2) } }', "b:a\n")
case("try_catch_from_function",
     'function f() { error("deep") }\n'
     'probe begin { try { f() } catch (e) { println("got ", e) } println("on") }',
     "got deep\non\n")
case("try_catch_array_overflow",
     'global a[1]\nprobe begin { a[1] = 1; try { a[2] = 2 } catch (e) { println(e) } }',
     # a is written, never read: SystemTap prints it when the session ends
     "Array overflow, check size limit (1)\na[1]=1\n")
_s = 'probe begin { println("a"); error("boom"); println("b") }'
fails("error_function", _s, "a\n", "boom", "identifier 'error'", "error")
_s = 'function check(x) { if (x > 2) error(sprintf("too big: %d", x)) }\n' \
     'probe begin { check(1); check(5) }'
fails("error_in_function", _s, "", "too big: 5", "identifier 'error'", "error",
      chain=(("identifier 'check'", "check(5)", 1),))
case("next_leaves_probe", 'probe begin { println("a"); next; println("b") }', "a\n")
case("next_in_loop", 'probe begin { for (i = 0; i < 5; i++) { if (i == 2) next; print(i) } }',
     "01")
case("exit_runs_end_probes",
     'probe begin { println("begin"); exit(); println("rest of begin") }\n'
     'probe end { println("end") }', "begin\nrest of begin\nend\n")
case("begin_end_order",
     'probe end { println("end") }\nprobe begin(10) { println("ten") }\n'
     'probe begin { println("zero") }\nprobe begin(-5) { println("minus five") }\n'
     'probe end(-1) { println("end first") }', "minus five\nzero\nten\nend first\nend\n")
case("error_probe_runs_after_error",
     'probe begin { error("x") }\nprobe end { println("end") }\n'
     'probe error { println("error probe") }', "error probe\n",
     stderr="ERROR: x near identifier 'error' at <input>:1:15 in probe begin\n"
            "WARNING: Number of errors: 1, skipped probes: 0\n", rc=1)
case("maxerrors_lets_errors_through",
     'probe begin { error("one") }\nprobe begin(1) { error("two") }\n'
     'probe begin(2) { println("third begin") }\nprobe end { println("end") }',
     "",
     stderr="ERROR: one near identifier 'error' at <input>:1:15 in probe begin\n"
            "ERROR: two near identifier 'error' at <input>:2:18 in probe begin(1)\n"
            "WARNING: Number of errors: 2, skipped probes: 0\n", rc=1,
     defines=("MAXERRORS=1",))
case("first_error_stops_session",
     'probe begin { error("one") }\nprobe begin(1) { println("second begin") }',
     "",
     stderr="ERROR: one near identifier 'error' at <input>:1:15 in probe begin\n"
            "WARNING: Number of errors: 1, skipped probes: 0\n", rc=1)
case("assert_passes", 'probe begin { assert(1 == 1, "never"); assert(2 > 1); println("ok") }',
     "ok\n")

# ============================================================== limits
_s = 'probe begin { println("start"); while (1) { } }'
fails("maxaction_loop", _s, "start\n", "MAXACTION exceeded", "keyword", "while")
_s = 'probe begin { for (i = 0; i < 6000; i++) x += i; println(x) }'
fails("maxaction_default_budget", _s, "", "MAXACTION exceeded", "keyword", "for")
case("maxaction_override", 'probe begin { for (i = 0; i < 6000; i++) x += i; println(x) }',
     "17997000\n", defines=("MAXACTION=2000",))
_s = 'global a\nprobe begin { a[1] = 1; foreach (k in a) { while (1) { } } }'
fails("maxaction_in_foreach", _s, "", "MAXACTION exceeded", "keyword", "while")
case("maxstringlen_keys",
     'global a\nprobe begin { a["abcdefghij"] = 1; a["abcdefgXYZ"] = 2; '
     'foreach (k in a) printf("%s=%d ", k, a[k]); println("") }', "abcdefg=2 \n",
     defines=("MAXSTRINGLEN=8",))
case("timer_probe_counts",
     'global n\nprobe timer.ms(10) { n++; if (n == 3) exit() }\nprobe end { println("n=", n) }',
     "n=3\n")
case("timer_two_rates",
     'global a, b\nprobe timer.ms(20) { a++ }\nprobe timer.ms(50) { b++; if (b == 2) exit() }\n'
     'probe end { println(a >= 4 && a <= 6, " ", b) }', "1 2\n")

# ============================================================== regular expressions
case("regex_match_and_no_match",
     'probe begin { s = "hello world"; println(s =~ "wor", s =~ "^h.l+o w", s =~ "^ell", '
     's !~ "x|y", s !~ "o w", "a.b" =~ "a\\\\.b", "axb" =~ "a\\\\.b") }', "1101010\n")
case("regex_anchors_and_empty",
     'probe begin { println("" =~ "^$", "" =~ "a", "abc" =~ "c$", "abc" =~ "b$", '
     '"abc" =~ "^abc$", "x" =~ "") }', "101011\n")
case("regex_brackets_and_repeats",
     'probe begin { println("x9" =~ "[[:digit:]]", "ABC" =~ "[a-z]", "ABC" =~ "[^a-z]", '
     '"a]b" =~ "[]]", "aab" =~ "^a{2}b$", "ab" =~ "^a{2}b$", "aaab" =~ "^a{1,2}b$", '
     '"ac" =~ "^ab?c$", "abbbc" =~ "^ab+c$") }', "101110011\n")
case("regex_alternation_and_groups",
     'probe begin { println("cat" =~ "^(cat|dog)$", "cow" =~ "^(cat|dog)$", '
     '"abab" =~ "^(ab)*$", "aba" =~ "^(ab)*$", "xyz" =~ "x(y|q)z") }', "10101\n")
case("regex_matched_groups",
     'probe begin { s = "date 2024-11-28 end"; '
     'if (s =~ "([0-9]{4})-([0-9]{2})-([0-9]{2})") '
     'println(ngroups(), " ", matched(0), " ", matched(1), " ", matched(2), " ", matched(3)) }',
     "4 2024-11-28 2024 11 28\n")
case("regex_matched_leftmost_longest",
     'probe begin { if ("xabcabcy" =~ "(abc)+") println(matched(0), " ", matched(1)); '
     'if ("aaa" =~ "a*") println("[", matched(0), "]"); '
     'if ("baaa" =~ "a*") println("[", matched(0), "]"); '
     'if ("foo=bar" =~ "^([a-z]+)=([a-z]*)$") println(matched(1), " -> ", matched(2)); '
     'if ("ab" =~ "(x)|(ab)") println("[", matched(1), "][", matched(2), "]") }',
     "abcabc abc\n[aaa]\n[]\nfoo -> bar\n[][ab]\n")
_s = 'probe begin { if ("abc" =~ "(b)") println(matched(1)); x = matched(2) }'
fails("regex_nonexistent_group", _s, "b\n", "Attempted to get nonexistent subexpression 2",
      "identifier 'matched'", "matched(2)")
_s = 'probe begin { if ("abc" =~ "z") println("no"); x = matched(0) }'
fails("regex_matched_after_failure", _s, "",
      "Attempted to get subexpression 0 from failed match", "identifier 'matched'", "matched(0)")

# ============================================================== per-CPU counters
# hits and total are only ++/+= in the timer probes, read in end: they
# become per-CPU counters without a lock; the result must not change.
case("counter_globals",
     'global hits, total = 10\nprobe timer.ms(1) { hits++; total += 5; total -= 0 }\n'
     'probe timer.ms(10) { exit() }\n'
     'probe end { println(hits >= 5, " ", total == 10 + 5 * hits); hits = 2; hits += 3; '
     'println(hits); delete total; println(total) }', "1 1\n5\n0\n")
