"""Bad input at the command line: SystemTap's diagnostics, a non-zero
exit, and never a Python traceback."""
from __future__ import annotations

import subprocess
import sys

import pytest

pytestmark = pytest.mark.kernel     # pass 2 reads a provisioned kernel's DWARF


def stapbuild(*args: str, script_file: str | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "stapbuild.cli", *args],
                          capture_output=True, text=True, timeout=300)


def assert_clean_failure(r: subprocess.CompletedProcess) -> str:
    assert r.returncode != 0
    assert "Traceback" not in r.stderr and "Traceback" not in r.stdout
    return r.stderr


def test_syntax_error_has_location_and_caret(tmp_path):
    script = tmp_path / "bad.stp"
    script.write_text("global n\nprobe begin {\n  n = 1 +\n}\n")
    err = assert_clean_failure(stapbuild("-p4", "-r", "6.1", str(script)))
    lines = err.splitlines()
    # stap's parse_value -> parse_literal message; "saw:" as the token is
    # the one last read, not one the error was raised at.
    assert lines[0] == "parse error: expected literal string or number"
    assert lines[1] == f"        saw: operator '}}' at {script}:4:1"
    assert lines[2] == "     source: }"
    assert lines[3] == "             ^"
    assert "Pass 1: parse failed.  [man error::pass1]" in lines


def test_unknown_kernel_function_is_a_pass2_error_naming_it():
    err = assert_clean_failure(stapbuild(
        "-p4", "-r", "6.12", "-e", 'probe kernel.function("no_such_fn_xyz") { exit() }'))
    assert err.startswith("semantic error: no match for probe point "
                          'kernel.function("no_such_fn_xyz")')
    assert "<input>:1:14" in err
    assert "Pass 2: analysis failed.  [man error::pass2]" in err


def test_unknown_parameter_lists_alternatives():
    err = assert_clean_failure(stapbuild(
        "-p2", "-r", "6.1", "-e", 'probe kernel.function("vfs_read") { println($nosuch) }'))
    assert "unable to find local 'nosuch' in kernel function 'vfs_read'" in err
    assert "(alternatives: $file $buf $count $pos)" in err
    assert err.count("semantic error") == 1


def test_unknown_release_is_reported_with_nearest():
    err = assert_clean_failure(stapbuild("-p2", "-r", "6.1.0-999-amd64", "-e",
                                         "probe begin { exit() }"))
    assert err.startswith("ERROR: kernel '6.1.0-999-amd64' is not available; nearest: ")
    assert "6.1.0-" in err


def test_unknown_function_and_type_mismatch():
    err = assert_clean_failure(stapbuild("-p2", "-r", "6.1", "-e", "probe begin { foo(1) }"))
    assert "semantic error: unresolved function: identifier 'foo' at <input>:1:15" in err
    err = assert_clean_failure(stapbuild("-p2", "-r", "6.1", "-e",
                                         'probe begin { x = "a" + 1 }'))
    assert "semantic error: type mismatch" in err


def test_bad_pass_number():
    err = assert_clean_failure(stapbuild("-p", "7", "-e", "probe begin {}"))
    assert "Invalid pass number (should be 1-5)." in err


def test_pass_outputs(tmp_path):
    r = stapbuild("-p1", "-r", "6.1", "-e", "probe begin { printf(\"%d\\n\", 1 + 2) }")
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith("# parse tree dump\n")
    r = stapbuild("-p2", "-r", "6.1", "probes/iotop.stp")
    assert r.returncode == 0, r.stderr
    assert "reads:long [string, long]" in r.stdout
    assert 'kernel.function("vfs_read@fs/read_write.c:450").return /* <- vfs.read.return */' \
        in r.stdout
    r = stapbuild("-p3", "-r", "6.1", "-e", "probe begin { exit() }")
    assert r.returncode == 0 and '#include "stp_runtime.h"' in r.stdout
    r = stapbuild("-v", "-p4", "-r", "6.1", "-e", "probe begin { exit() }")
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip().endswith(".ko")
    assert r.stderr.startswith("Pass 1: parsed user script and 1 library script using ")
    assert "Pass 4: compiled C into" in r.stderr
