#!/usr/bin/env python3
"""Instructions a function executes from exec to its first connection to the Lambda Runtime API.

    bench/scripts/init_instructions.py LABEL=BINARY [LABEL=BINARY...]

Each binary runs once under `valgrind --tool=callgrind` with Lambda's environment (init_ab.py's)
and a Runtime API address nothing listens on: the runtime's first connection is refused, the process prints
the error and exits. The count is everything before that (the dynamic loader, Rust's runtime, tokio, the
configuration, telemetry, the SDK configuration and clients) plus the short error exit, the same for every
binary. Unlike a time it does not depend on what else the machine is doing: the same binary gives the same
count (BENCHMARKS.md §1). The first label is the baseline of the ratio column. Standard library only.
"""
import os
import re
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from init_ab import lambda_env  # noqa: E402  (the same environment as the timed A/B)


def instructions(binary):
    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, "callgrind.out")
        # Port 9 (discard): nothing listens, the runtime's first connection is refused.
        env = lambda_env("127.0.0.1:9", binary)
        run = subprocess.run(
            ["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}", binary],
            env=env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
            text=True, check=False)
        found = re.search(r"Collected : (\d+)", run.stderr)
        if not found:
            sys.exit(f"{binary}: no callgrind total (is valgrind installed?)\n{run.stderr[-2000:]}")
        return int(found.group(1))


def main(specs):
    if not specs:
        sys.exit(__doc__)
    rows = []
    for spec in specs:
        label, binary = spec.split("=", 1)
        rows.append((label, instructions(binary)))
    base = rows[0][1]
    print("| binary | instructions to the first poll | ÷ " + rows[0][0] + " |")
    print("|---|---:|---:|")
    for label, count in rows:
        print(f"| `{label}` | {count:,} | {count / base:.2f}× |")


if __name__ == "__main__":
    main(sys.argv[1:])
