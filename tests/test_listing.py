"""stapbuild -l / -L against both kernels' debug info."""
from __future__ import annotations

import io
import re

import pytest

from stapbuild.cli import main
from stapbuild.listing import run_listing
from tests.bootlib import resolve

pytestmark = pytest.mark.kernel


@pytest.fixture(scope="module", params=["6.1", "6.12"])
def release(request):
    return resolve(request.param)


def listing(release: str, pattern: str, with_vars: bool) -> tuple[int, list[str]]:
    out = io.StringIO()
    rc = run_listing(pattern, release, with_vars, out=out)
    return rc, out.getvalue().splitlines()


def test_L_vfs_wildcard(release):
    rc, lines = listing(release, 'kernel.function("vfs_*")', True)
    assert rc == 0 and len(lines) > 50 and lines == sorted(lines)
    read = [l for l in lines if l.startswith('kernel.function("vfs_read@')]
    assert len(read) == 1
    assert re.fullmatch(r'kernel\.function\("vfs_read@fs/read_write\.c:\d+"\) '
                        r'\$file:struct file\* \$buf:char\* \$count:size_t \$pos:loff_t\*',
                        read[0]), read
    assert all(l.startswith('kernel.function("vfs_') for l in lines)


def test_l_and_return(release):
    rc, lines = listing(release, 'kernel.function("vfs_read").return', False)
    assert rc == 0 and re.fullmatch(r'kernel\.function\("vfs_read@fs/read_write\.c:\d+"\)'
                                    r'\.return', lines[0]) and len(lines) == 1
    rc, lines = listing(release, 'kernel.function("vfs_read").return', True)
    assert lines[0].endswith(" $pos:loff_t* $return:ssize_t")


def test_aliases(release):
    assert listing(release, "vfs.*", False) == (0, ["vfs.open", "vfs.read", "vfs.write"])
    rc, lines = listing(release, "vfs.read.return", True)
    assert rc == 0 and lines[0].startswith(
        "vfs.read.return bytes_read:long error:long name:string ret:long $file:struct file*")


def test_no_match_exits_1(release, capsys):
    assert listing(release, 'kernel.function("no_such_function_*")', True)[0] == 1
    assert main(["-r", release, "-l", 'kernel.function("no_such_function")']) == 1
    err = capsys.readouterr().err
    assert "no_such_function" in err and release in err
