"""Library macros (.stpm files in the tapset directories, stap -I
directories included): read before any script or tapset, visible in every
file, and inputs of the parse (an edit re-parses)."""
from __future__ import annotations

from pathlib import Path

import pytest

from codegen.errors import StapErrors
from stapbuild import passes


@pytest.fixture
def private_store(tmp_path, monkeypatch):
    monkeypatch.setenv("STAPBUILD_ARTIFACTS", str(tmp_path / "artifacts"))
    return tmp_path


def _lib(tmp_path: Path, macros: str) -> Path:
    d = tmp_path / "lib"
    d.mkdir(exist_ok=True)
    (d / "mine.stpm").write_text(macros)
    (d / "helper.stp").write_text("function twice(x) { return @DOUBLE(x) }\n")
    return d


def _printed_numbers(tree: dict) -> list[int]:
    return [n["value"] for n in _walk(tree) if n.get("k") == "Number"]


def _walk(node):
    if isinstance(node, dict):
        yield node
        for v in node.values():
            yield from _walk(v)
    elif isinstance(node, list):
        for v in node:
            yield from _walk(v)


def test_script_and_tapsets_see_library_macros(private_store):
    lib = _lib(private_store, "@define DOUBLE(x) %( (2 * @x) %)\n@define ANSWER %( 42 %)\n")
    r = passes.parse_pass(None, "probe begin { println(@ANSWER + twice(1)) }", None,
                          tapset_dirs=[lib])
    doc = r.artifact.read_json()
    assert 42 in _printed_numbers(doc["user"][0])
    helper = [t for t in doc["tapsets"] if t["path"].endswith("helper.stp")]
    assert helper and 2 in _printed_numbers(helper[0])
    assert any(k.endswith("mine.stpm") for k in r.inputs)


def test_editing_a_stpm_reparses(private_store):
    lib = _lib(private_store, "@define DOUBLE(x) %( (2 * @x) %)\n@define ANSWER %( 42 %)\n")
    text = "probe begin { println(@ANSWER + twice(1)) }"
    first = passes.parse_pass(None, text, None, tapset_dirs=[lib])
    _lib(private_store, "@define DOUBLE(x) %( (2 * @x) %)\n@define ANSWER %( 43 %)\n")
    second = passes.parse_pass(None, text, None, tapset_dirs=[lib])
    assert first.artifact.key != second.artifact.key
    assert 43 in _printed_numbers(second.artifact.read_json()["user"][0])


def test_script_define_wins_over_library(private_store):
    lib = _lib(private_store, "@define DOUBLE(x) %( (2 * @x) %)\n@define ANSWER %( 42 %)\n")
    r = passes.parse_pass(None, "@define ANSWER %( 7 %)\nprobe begin { println(@ANSWER) }",
                          None, tapset_dirs=[lib])
    nums = _printed_numbers(r.artifact.read_json()["user"][0])
    assert 7 in nums and 42 not in nums


def test_bad_stpm_is_a_parse_error(private_store):
    lib = _lib(private_store, "probe begin { }\n")
    with pytest.raises(StapErrors) as e:
        passes.parse_pass(None, "probe begin { }", None, tapset_dirs=[lib])
    assert "unexpected token in library macro file" in e.value.errors[0].msg
