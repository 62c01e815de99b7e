"""Pass 2 extras that need no kernel: stap's elision warnings (-u turns
them off) and the end-of-run display of globals written but never read."""
from __future__ import annotations

from codegen.elaborate import elaborate, iter_nodes
from codegen.errors import register_source
from codegen.parser import parse_file


def ir_of(text: str, tapset: str = "", **kw) -> dict:
    register_source("x.stp", text)
    files = [parse_file("x.stp", text)]
    if tapset:
        t = parse_file("lib.stp", tapset, tapset=True)
        t.is_tapset = True
        files.append(t)
    return elaborate(files, None, **kw)


def formats(probe: dict) -> list[str]:
    return [n["args"][0]["value"] for n in iter_nodes(probe["body"])
            if n.get("k") == "Call" and n.get("name") == "printf"][::-1]


def test_unused_function_and_variable_warnings():
    text = "global used, unused\nfunction f(x) { return x }\nprobe begin { used = 1; print(used) }\n"
    ir = ir_of(text, tapset="function lib_unused() { return 2 }\n")
    assert ir["warnings"] == [
        "WARNING: Eliding unused function 'f': identifier 'f' at x.stp:2:10\n"
        " source: function f(x) { return x }\n"
        "                  ^\n",
        "WARNING: Eliding unused variable 'unused': identifier 'unused' at x.stp:1:14\n"
        " source: global used, unused\n"
        "                      ^\n"]
    # f's parameter type is never resolved: elided before it could be an error
    assert [f["name"] for f in ir["functions"]] == []


def test_unoptimized_keeps_and_does_not_warn():
    ir = ir_of("function g() { return 1 }\nprobe begin { print(2) }\n", unoptimized=True)
    assert ir["warnings"] == [] and [f["name"] for f in ir["functions"]] == ["g"]


def test_written_never_read_globals_are_displayed_at_end():
    text = ("global n, s, a, st, inc, rmw, readback\n"
            "probe begin { n = 3; s = \"x\"; a[\"k\", 2] = 5; st <<< 7; inc++; rmw += 1;"
            " readback = 1; print(readback) }\n")
    ir = ir_of(text)
    end = [p for p in ir["probes"] if p["family"] == "end"]
    assert len(end) == 1 and end[0]["pp"] == "end"
    # declaration order; `+=` reads, `++` is a pure write (stap's varuse rules)
    assert formats(end[0]) == [
        "n=%d\n", 's="%s"\n', 'a["%s",%d]=%d\n',
        "st @count=%d @min=%d @max=%d @sum=%d @avg=%d\n", "inc=%d\n"]
    foreach = next(n for n in iter_nodes(end[0]["body"]) if n.get("k") == "Foreach")
    assert (foreach["sort_column"], foreach["sort_dir"]) == (0, -1)   # by value, descending


def test_no_display_when_read_or_disabled():
    assert [p["family"] for p in ir_of("global n\nprobe begin { n = 1 }\nprobe end { print(n) }\n")
            ["probes"]] == ["begin", "end"]
    assert [p["family"] for p in ir_of("global n\nprobe begin { n = 1 }\n",
                                       global_display=False)["probes"]] == ["begin"]
