"""Boot real Debian kernels under QEMU/TCG (slow: ~20-35 s each)."""

from __future__ import annotations

import pytest

from stapbuild import guest, kernels

RELEASES = ["6.1.0-56-amd64", "6.12.117+deb12-amd64"]


@pytest.mark.boot
@pytest.mark.parametrize("release", RELEASES)
def test_boot_uname_and_status(release):
    k = kernels.provision(release, {"image"})
    # One boot checks both: the kernel that runs is ours, stdout and stderr
    # come back apart, and the command's status is the guest result's.
    r = guest.run_in_guest(k, "uname -r; echo to-stderr >&2; exit 3", timeout=300)
    assert r.stdout.strip() == release, r.stderr + r.console[-2000:]
    assert r.stderr.strip() == "to-stderr"
    assert r.returncode == 3
    assert 0 < r.seconds < 300


SELFTEST = guest.REPO_ROOT / "tests" / "c" / "runtime_selftest.c"


@pytest.mark.boot
@pytest.mark.skipif(not SELFTEST.exists(), reason="runtime self-test not written yet")
def test_runner_in_guest_runs_and_unloads(tmp_path):
    """kbuild -> boot -> stapbuild.runner in the guest -> module gone afterwards."""
    from stapbuild import kbuild

    k = kernels.provision(RELEASES[0])
    ko = kbuild.compile_module(SELFTEST, "runtime_selftest", k, guest.REPO_ROOT / "runtime_c",
                               tmp_path / "runtime_selftest.ko")
    cmd = (guest.runner_command(ko, workload="cat /etc/passwd >/dev/null; sleep 0.3")
           + "; echo runner-status=$?; grep -c '^runtime_selftest ' /proc/modules")
    r = guest.run_in_guest(k, cmd, timeout=300)
    lines = r.stdout.splitlines()
    assert lines[0] == "begin", r.stdout + r.stderr
    assert lines[-1] == "0"                      # not left loaded
    status = int(lines[-2].removeprefix("runner-status="))
    # stapio's rule: status 1 exactly when an ERROR: line came on stderr
    assert status == (1 if "\nERROR: " in "\n" + r.stderr else 0)
