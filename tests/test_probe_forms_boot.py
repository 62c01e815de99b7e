"""Issue 11's probe-point forms in booted kernels: one boot per series runs
the whole-file probe and the address probes (built from the kernel's own
link-time addresses; the runtime registers them by symbol, so KASLR does
not matter)."""
from __future__ import annotations

import pytest

from codegen.debuginfo.elf_symbols import ElfImage, read_function_symbols
from stapbuild import kernels
from tests.bootlib import ROOT, build_module, case, ok, resolve, run_batch

SCRIPTS = ROOT / "tests" / "boot_scripts"
DD_SMALL = "dd if=/dev/zero of=/dev/null bs=4096 count=3 status=none"


def address_script(release: str, out_dir) -> object:
    with ElfImage(kernels.kernel_info(release).vmlinux) as img:
        syms = read_function_symbols(img)
    (read_start, _), = syms.lookup("vfs_read")
    (write_start, write_size), = syms.lookup("vfs_write")
    text = (SCRIPTS / "forms_address.stp.in").read_text()
    text = text.replace("@READ_ADDR@", f"{read_start + 4:#x}")
    text = text.replace("@WRITE_ADDR@", f"{write_start + write_size // 2:#x}")
    path = out_dir / "forms_address.stp"
    path.write_text(text)
    return path


@pytest.fixture(scope="module", params=["6.1", "6.12"])
def results(request, tmp_path_factory):
    release = resolve(request.param)
    tmp = tmp_path_factory.mktemp(f"forms-{request.param}")
    kos = {
        "file": build_module(SCRIPTS / "forms_file.stp", release),
        "address": build_module(address_script(release, tmp), release),
        "exported": build_module(SCRIPTS / "forms_exported.stp", release),
    }
    cases = [
        case("file", kos["file"], workload=DD_SMALL),
        case("address", kos["address"], workload=DD_SMALL),
        case("exported", kos["exported"], workload="/bin/true; /bin/true"),
    ]
    return release, run_batch(release, cases)


@pytest.mark.boot
def test_whole_file_probe_fires_vfs_read(results):
    _, res = results
    r = ok(res["file"])
    lines = r["stdout"].splitlines()
    head = lines[0].split()
    assert int(head[0].split("=")[1]) >= 3, r["stdout"]      # vfs_read
    assert int(head[1].split("=")[1]) >= 3, r["stdout"]      # vfs_write
    hit = {l.split()[1] for l in lines[1:] if l.startswith("hit ")}
    assert {"vfs_read", "vfs_write", "ksys_read", "ksys_write"} <= hit, r["stdout"]


@pytest.mark.boot
def test_address_probes_fire(results):
    _, res = results
    r = ok(res["address"])
    lines = r["stdout"].splitlines()
    assert "entry vfs_read count=4096 hits=3" in lines, r["stdout"]
    assert "return written=12288 calls=3" in lines, r["stdout"]


@pytest.mark.boot
def test_exported_probes_fire(results):
    _, res = results
    r = ok(res["exported"])
    assert "kernel_read returns seen=yes vfs_read named=no" in r["stdout"], r["stdout"]
