"""doit entry point: the tasks live in stapbuild.tasks.

    doit build probe=iotop kernels=6.1,6.12
    doit run probe=iotop kernel=6.1 workload='dd if=/dev/zero of=/tmp/x bs=1M count=12' duration=10
    doit bundle probe=iotop kernels=6.1,6.12
    doit matrix probes=iotop,hz kernels=6.1,6.12
    doit list --all
"""
from stapbuild.tasks import (  # noqa: F401 - doit collects task_* by name
    configure, task_boot, task_build, task_bundle, task_cell, task_compile, task_elaborate,
    task_kernel, task_matrix, task_parse, task_pass5, task_translate)

DOIT_CONFIG = configure()
