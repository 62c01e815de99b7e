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
        "var": build_module(SCRIPTS / "forms_var.stp", release),
    }
    cases = [
        case("file", kos["file"], workload=DD_SMALL),
        case("address", kos["address"], workload=DD_SMALL),
        case("exported", kos["exported"], workload="/bin/true; /bin/true"),
        case("var", kos["var"], workload=DD_SMALL),
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


@pytest.mark.boot
def test_var_reads_kernel_variables(results):
    """@var("name@file.c") from begin and from a kprobe: the link-time
    address moved by the guest's KASLR shift reads init_task and
    nr_threads."""
    _, res = results
    r = ok(res["var"])
    lines = r["stdout"].splitlines()
    assert lines[0] == "init comm=swapper/0 pid=0", r["stdout"]
    # the idle task's struct pid (init_struct_pid), followed and printed
    assert lines[1].startswith("init {.") and ", .level=0, " in lines[1], r["stdout"]
    threads = int(lines[2].split("=")[1])
    assert 5 < threads < 10000, r["stdout"]
    assert int(lines[3].split("=")[1]) >= 3, r["stdout"]
