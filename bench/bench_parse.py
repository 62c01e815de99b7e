"""Parse a large generated script and print lines/second (no assertions).

    python bench/bench_parse.py [LINES]
"""
from __future__ import annotations

import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from codegen.parser import parse_file  # noqa: E402

BLOCK = """\
global reads{i}, writes{i}
probe vfs.read.return, kernel.function("vfs_*").call? {{
  reads{i}[execname(), pid()] += bytes_read   # a comment
  if (bytes_read > 0 && pid() != 0) x = $file->f_path->dentry . "x" . sprintf("%d", 1 + 2 * 3)
  foreach ([name, p] in reads{i}- limit 10)
    printf("%16s %8d %10d\\n", name, p, reads{i}[name, p] / 1024)
  %( kernel_v >= "2.6" %? y = @count(s) %: y = 0 %)
}}
function f{i}:long (a:long, b) {{ return a < b ? a : b }}
"""


def generate(lines: int) -> str:
    per = BLOCK.count("\n")
    return "".join(BLOCK.format(i=i) for i in range(max(1, lines // per)))


def main() -> None:
    lines = int(sys.argv[1]) if len(sys.argv) > 1 else 20000
    text = generate(lines)
    n = text.count("\n")
    start = time.perf_counter()
    parse_file("bench.stp", text)
    elapsed = time.perf_counter() - start
    print(f"{n} lines in {elapsed:.2f}s: {n / elapsed:,.0f} lines/s")


if __name__ == "__main__":
    main()
