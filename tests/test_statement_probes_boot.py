"""Issue 11's statement, label and callee probe points in booted kernels:
one module per series, built from lines and addresses this kernel's DWARF
names (found the way the resolver finds them), run in one boot.

- kernel.statement("vfs_read@FILE:N") at a line where $count is in a
  register reads the local (dd's 4096-byte reads);
- kernel.statement(ADDR) and kernel.statement(ADDR).absolute at that
  line's link-time address fire (registered as vfs_read+offset, so KASLR
  does not matter);
- kernel.statement("ksys_read@FILE:N") reads the stack local $pos;
- kernel.function("seq_read_iter").label("Done") fires when cat reads
  /proc/version;
- kernel.function("vfs_read").callee("rw_verify_area") and .callees fire,
  only for calls from vfs_read (dd's writes reach rw_verify_area through
  vfs_write and are not counted)."""
from __future__ import annotations

import pytest

from stapbuild import passes
from tests.bootlib import build_module, case, ok, resolve, run_batch
from tests.test_statement_probes import (ksys_read_line_with_stack_pos,
                                         vfs_read_line_with_reg_count)

WORKLOAD = ("dd if=/dev/zero of=/dev/null bs=4096 count=3 status=none; "
            "cat /proc/version >/dev/null; "
            "dd if=/etc/passwd of=/dev/null bs=16 count=3 status=none")

SCRIPT = """\
global line_counts, addr_hits, abs_hits, label_hits, callee_hits, callees, all_rva, pos_seen
probe kernel.statement("ksys_read@@KFILE@:@KLINE@") {
	if (execname() == "dd")
		pos_seen[$pos]++
}
probe kernel.statement("vfs_read@@FILE@:@LINE@") {
	if (execname() == "dd")
		line_counts[$count]++
}
probe kernel.statement(@ADDR@) {
	if (execname() == "dd")
		addr_hits++
}
probe kernel.statement(@ADDR@).absolute {
	if (execname() == "dd")
		abs_hits++
}
probe kernel.function("seq_read_iter").label("Done") {
	if (execname() == "cat")
		label_hits++
}
probe kernel.function("vfs_read").callee("rw_verify_area") {
	if (execname() == "dd")
		callee_hits++
}
probe kernel.function("rw_verify_area") {
	if (execname() == "dd")
		all_rva++
}
probe kernel.function("vfs_read").callees ? {
	if (execname() == "dd")
		callees[pp()]++
}
probe end {
	foreach (c in line_counts)
		printf("line count=%d hits=%d\\n", c, line_counts[c])
	printf("addr hits=%d\\n", addr_hits)
	printf("absolute hits=%d\\n", abs_hits)
	printf("label hits=%d\\n", label_hits)
	printf("callee hits=%d\\n", callee_hits)
	printf("rw_verify_area hits=%d\\n", all_rva)
	foreach (p in callees)
		printf("callees %s hits=%d\\n", p, callees[p])
	foreach (o in pos_seen)
		printf("pos %d hits=%d\\n", o, pos_seen[o])
}
"""


@pytest.fixture(scope="module", params=["6.1", "6.12"])
def results(request, tmp_path_factory):
    release = resolve(request.param)
    kctx = passes.kernel_context(release, frozenset({"headers", "dbg"}))
    info, line, addr, _ = vfs_read_line_with_reg_count(kctx)
    kinfo, kline = ksys_read_line_with_stack_pos(kctx)
    text = (SCRIPT.replace("@FILE@", info["decl_file"]).replace("@LINE@", str(line))
            .replace("@ADDR@", f"{addr:#x}").replace("@KFILE@", kinfo["decl_file"])
            .replace("@KLINE@", str(kline)))
    path = tmp_path_factory.mktemp(f"stmt-{request.param}") / "statements.stp"
    path.write_text(text)
    ko = build_module(path, release)
    return release, line, run_batch(release, [case("statements", ko, workload=WORKLOAD)])


@pytest.mark.boot
def test_statement_line_reads_local(results):
    _, line, res = results
    r = ok(res["statements"])
    hits = {}
    for l in r["stdout"].splitlines():
        if l.startswith("line count="):
            c, h = l.split()[1:]
            hits[int(c.split("=")[1])] = int(h.split("=")[1])
    assert hits.get(4096, 0) >= 3, (line, r["stdout"])


@pytest.mark.boot
def test_statement_reads_stack_local(results):
    """ksys_read's `pos` in its stack slot (CFA from .debug_frame at the PC):
    dd's 16-byte reads of a file start at positions 0, 16 and 32."""
    _, _, res = results
    out = ok(res["statements"])["stdout"]
    seen = {int(l.split()[1]) for l in out.splitlines() if l.startswith("pos ")}
    assert {0, 16, 32} <= seen, out


def _hits(res: dict) -> tuple[str, dict[str, str]]:
    """The statements case's stdout and its "NAME hits=N" lines."""
    out = ok(res["statements"])["stdout"]
    return out, dict(l.split(" hits=") for l in out.splitlines() if " hits=" in l)


@pytest.mark.boot
def test_address_probes_fire(results):
    _, _, res = results
    out, vals = _hits(res)
    assert int(vals["addr"]) >= 3, out
    assert int(vals["absolute"]) >= 3, out


@pytest.mark.boot
def test_label_probe_fires(results):
    _, _, res = results
    out, vals = _hits(res)
    assert int(vals["label"]) >= 1, out


@pytest.mark.boot
def test_callees_resolve_and_fire(results):
    _, _, res = results
    out, vals = _hits(res)
    assert int(vals["callee"]) >= 3, out
    # only calls from vfs_read: dd's writes call rw_verify_area from vfs_write
    assert int(vals["rw_verify_area"]) >= int(vals["callee"]) + 3, out
    fired = [k for k in vals if k.startswith("callees ")]
    assert any('.callee("rw_verify_area@' in k for k in fired), out
