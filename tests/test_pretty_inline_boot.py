"""Booted on both series (one boot each): pretty-printed target variables
($file$, $p->member$$, @cast(...)$) against the plain values the same
probe reads, the same in a process probe (user memory), and a
kernel.function(...).inline probe that fires."""
from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

from tests.bootlib import ROOT, build_module, case, ok, resolve, run_batch

SCRIPTS = ROOT / "tests" / "boot_scripts"
DD_FILE = ("printf 'pretty!' > /tmp/stapbuild-pretty-file; "
           "dd if=/tmp/stapbuild-pretty-file of=/dev/null bs=4096 count=1 status=none; "
           "rm -f /tmp/stapbuild-pretty-file")


DEMO_SRC = ROOT / "tests" / "c" / "uprobe_demo.c"
# point_sum(&pt, 3) with pt = {40, 2, label} and label[] = "origin" in main
UPRETTY = r'''
probe process("@BIN@").function("point_sum") {
	println("upoint ", $p$)
	println("udeep ", $p$$)
	printf("uvals label=%x\n", $p->label)
}
'''


def _user_pretty(tmp: Path, release: str) -> tuple[Path, Path]:
    """The demo program (gcc -g, under /tmp so the guest sees it at the
    same path) and the module pretty-printing its struct point."""
    demo = tmp / "uprobe_demo"
    subprocess.run(["gcc", "-g", "-o", str(demo), str(DEMO_SRC)], check=True, cwd=ROOT)
    script = tmp / "upretty.stp"
    script.write_text(UPRETTY.replace("@BIN@", str(demo)))
    return demo, build_module(script, release)


@pytest.fixture(scope="module", params=["6.1", "6.12"])
def results(request, tmp_path_factory):
    release = resolve(request.param)
    demo, upretty = _user_pretty(tmp_path_factory.mktemp(f"pretty-{request.param}"), release)
    cases = [
        case("pretty_vfs", build_module(SCRIPTS / "pretty_vfs.stp", release), workload=DD_FILE),
        case("upretty", upretty, workload=f"{demo} 1"),
        case("inline", build_module(SCRIPTS / "inline_file_ppos.stp", release),
             workload="dd if=/dev/zero of=/dev/null bs=512 count=20 status=none"),
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
    # SystemTap's pretty-printer: integers in decimal, pointers in hex
    assert f".f_mode={file_vals['mode']}," in f, f
    assert f".f_pos={file_vals['pos']}," in f, f
    assert not re.search(r"=[^-0-9{\[\"?]", f), f
    # $file->f_path$$ and the @cast form: the two pointers of struct path
    path = f"{{.mnt=0x{path_vals['mnt']}, .dentry=0x{path_vals['dentry']}}}"
    assert got["path"] == path, r["stdout"]
    assert got["cast"] == path, r["stdout"]
    # struct qstr under $$: the anonymous union's members in place and
    # the name as a quoted string (21 characters)
    q = re.fullmatch(r'\{\.hash=([0-9]+), \.len=21, \.hash_len=([0-9]+), '
                     r'\.name="stapbuild-pretty-file"\}', got["qstr"])
    assert q and int(q[2]) == (21 << 32) | int(q[1]), got["qstr"]   # hash_len = len:hash
    assert got["iname"] == '"stapbuild-pretty-file"', r["stdout"]
    assert got["count"] == "4096", r["stdout"]
    # the object at a bad address: the script error, caught
    assert got["caught"].startswith("kernel read fault at 0x00000000003e8000"), got["caught"]


@pytest.mark.boot
def test_inline_probe_fires(results):
    _, res = results
    r = ok(res["inline"])
    hits = re.findall(r'^hits (kernel\.function\("file_ppos@fs/read_write\.c:\d+"\)\.inline) '
                      r'(\d+)$', r["stdout"], re.M)
    assert len(hits) == 1, r["stdout"]           # one pp for the four instances
    # dd: 20 reads and 20 writes through ksys_read/ksys_write (plus its
    # loader's reads)
    assert int(hits[0][1]) >= 40, r["stdout"]
    files = re.search(r"^files (\d+)$", r["stdout"], re.M)
    assert files and int(files.group(1)) == int(hits[0][1]), r["stdout"]


@pytest.mark.boot
def test_pretty_user_struct(results):
    _, res = results
    r = ok(res["upretty"])
    got = _lines(r)
    label = got["uvals"].split("=")[1]
    # $ shows the char* member as its address, $$ as the string
    assert got["upoint"] == f"{{.x=40, .y=2, .label=0x{label}}}", r["stdout"]
    assert got["udeep"] == '{.x=40, .y=2, .label="origin"}', r["stdout"]
