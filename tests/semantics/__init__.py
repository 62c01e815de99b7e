"""Table-driven semantic tests: SystemTap scripts with hand-written expected
output (stdout, stderr, exit status), run in user space (tests/test_semantics.py)
and in booted kernels (tests/test_boot_semantics.py)."""
