"""Booted on both series (one boot each): pretty-printed target variables
($file$, $p->member$$, @cast(...)$) against the plain values the same
probe reads."""
from __future__ import annotations

import re

import pytest

from tests.bootlib import ROOT, build_module, case, ok, resolve, run_batch

SCRIPTS = ROOT / "tests" / "boot_scripts"
DD_FILE = ("printf 'pretty!' > /tmp/stapbuild-pretty-file; "
           "dd if=/tmp/stapbuild-pretty-file of=/dev/null bs=4096 count=1 status=none; "
           "rm -f /tmp/stapbuild-pretty-file")


@pytest.fixture(scope="module", params=["6.1", "6.12"])
def results(request):
    release = resolve(request.param)
    cases = [
        case("pretty_vfs", build_module(SCRIPTS / "pretty_vfs.stp", release), workload=DD_FILE),
    ]
    return release, run_batch(release, cases)


def _lines(r: dict) -> dict[str, str]:
    """The output lines by their first word."""
    out: dict[str, str] = {}
    for line in r["stdout"].splitlines():
        word, _, rest = line.partition(" ")
        out[word] = rest
    return out


@pytest.mark.boot
def test_pretty_file_and_members(results):
    _, res = results
    r = ok(res["pretty_vfs"])
    got = _lines(r)
    plain = [dict(kv.split("=") for kv in line.split()[1:])
             for line in r["stdout"].splitlines() if line.startswith("vals ")]
    assert len(plain) == 2, r["stdout"]
    file_vals, path_vals = plain
    # $file$: one level of struct file, nested structs as {...}
    f = got["file"]
    assert f.startswith("{.") and f.endswith("}"), f
    assert ".f_path={...}" in f and ".f_count={...}" in f, f
    assert f".f_inode=0x{file_vals['inode']}," in f, f
    assert f".f_mode=0x{file_vals['mode']}," in f, f
    assert f".f_pos=0x{file_vals['pos']}," in f, f
    assert not re.search(r"=[^0{\[\"?]", f), f
    # $file->f_path$$ and the @cast form: the two pointers of struct path
    path = f"{{.mnt=0x{path_vals['mnt']}, .dentry=0x{path_vals['dentry']}}}"
    assert got["path"] == path, r["stdout"]
    assert got["cast"] == path, r["stdout"]
    # struct qstr under $$: the anonymous union's members in place and
    # the name as a quoted string (21 characters)
    assert re.fullmatch(r'\{\.hash=0x[0-9a-f]+, \.len=0x15, \.hash_len=0x15[0-9a-f]{8}, '
                        r'\.name="stapbuild-pretty-file"\}', got["qstr"]), got["qstr"]
    assert got["iname"] == '"stapbuild-pretty-file"', r["stdout"]
    assert got["count"] == "0x1000", r["stdout"]
    # the object at a bad address: the script error, caught
    assert got["caught"].startswith("kernel read fault at 0x00000000003e8000"), got["caught"]

