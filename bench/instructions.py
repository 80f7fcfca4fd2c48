#!/usr/bin/env python
"""Run one in-process workload once, for instruction counts under callgrind.

Instructions, unlike seconds, do not depend on what else the machine is doing, so two
versions of the runtime compare on a shared, noisy machine. Run from the root of the
tree to measure (its ``runtime`` is imported first):

    valgrind --tool=callgrind --callgrind-out-file=/dev/null \
        .venv/bin/python bench/instructions.py W1      # W1, W2, W3b, or NONE (imports only)

The workload's own count is the difference with ``NONE``.
"""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path
from typing import Any

sys.path[:0] = [str(Path.cwd()), str(Path(__file__).resolve().parent)]

import superstep_bench as bench  # noqa: E402


async def main(which: str) -> None:
    if which == "NONE":
        return
    start: Any
    if which == "W1":
        wf, start, _, _ = bench.build_w1(None)
    elif which == "W2":
        wf, start = bench.build_w2()
    elif which == "W3b":  # 10,000 messages a barrier; its sleeps make the count vary a little
        wf, start = bench.build_w3b()
    else:
        raise SystemExit(f"unknown workload {which!r}: W1, W2, W3b or NONE")
    result = await wf.run(start)
    assert result.status.value == "completed", result.status


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1] if len(sys.argv) > 1 else "W1"))
