#!/usr/bin/env python
"""Profile one workload of ``superstep_bench.py`` with cProfile, around the run call only.

    .venv/bin/python bench/profile_workload.py W1 [--sort tottime|cumulative] [--limit 25] [--out FILE]

Graph build and result checks are outside the profile, as they are outside the
benchmark's timing. Profiling slows Python code down several times; read the
shares, not the absolute times.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import pstats
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import superstep_bench as sb

BUILDERS: dict[str, Any] = {
    "W1": lambda: sb.build_w1(None)[:2],
    "W1_ckpt": lambda: sb.build_w1("mem")[:2],
    "W1_fckpt": lambda: sb.build_w1("file")[:2],
    "W2": sb.build_w2,
    "W3a": sb.build_w3a,
    "W3b": sb.build_w3b,
    "W3c": sb.build_w3c,
}


async def profile(workload: str, profiler: cProfile.Profile) -> float:
    wf, inp = BUILDERS[workload]()
    t0 = time.perf_counter()
    profiler.enable()
    result = await wf.run(inp)
    profiler.disable()
    wall = time.perf_counter() - t0
    assert result.status.value == "completed", result.error
    return wall


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("workload", choices=sorted(BUILDERS))
    ap.add_argument("--sort", default="tottime", choices=("tottime", "cumulative", "ncalls"))
    ap.add_argument("--limit", type=int, default=25)
    ap.add_argument("--out", help="also save the raw profile (for snakeviz, pstats...)")
    args = ap.parse_args()
    profiler = cProfile.Profile()
    wall = asyncio.run(profile(args.workload, profiler))
    print(f"{args.workload}: run took {wall:.3f} s under the profiler")
    if args.out:
        profiler.dump_stats(args.out)
    stats = pstats.Stats(profiler)
    stats.strip_dirs().sort_stats(args.sort).print_stats(args.limit)


if __name__ == "__main__":
    main()
