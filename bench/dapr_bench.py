#!/usr/bin/env python
"""Benchmark: the Dapr runtime on real daprd and on the local sidecar, beside the
in-process runtime.

Run:  .venv/bin/python bench/dapr_bench.py [--hosts 1,2,4] [--reps 3] [--only W1,W2,W3a]
                                           [--sidecars daprd,local]

For each host count and each sidecar it starts a local deployment (the
API/coordinator app and N executor hosts of one pool, each beside its sidecar: real
daprd as ``tools/dapr/install`` builds it, with placement and scheduler, or the
project's local sidecar; on the Redis components of ``components/``), then runs the
peer workloads through ``RemoteRuntime`` over HTTP:

  W1   ping-pong between two executors: superstep latency p50/p95, from the arrival
       times of ``superstep_completed`` events on the client (``--w1-supersteps``,
       default 200, instead of the in-process 2,000: the figure is per superstep)
  W2   dispatcher -> 100 workers -> fan-in aggregator, 20 rounds: messages/s
  W3a  10,000 docs over 50 workers, 10 ms of simulated I/O per doc: wall / 2 s ideal

Every run is checked for lost or duplicated messages: W2's aggregator asserts it
got exactly one result per worker each round and the 20 round totals are compared
with the in-process run; W3a's output must count 10,000 documents. The same
workloads run in-process in the same invocation for comparison. Prints a table
and writes the raw figures to ``bench/results/dapr-<time>.json``.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import os
import statistics
import sys
import time
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from superstep_bench import (  # noqa: E402  (bench/ is not a package)
    W2_ROUNDS,
    W2_WORKERS,
    W3_DOCS,
    W3_IO_S,
    W3_WORKERS,
    build_w2,
    build_w3a,
    make_docs,
)

from runtime import Executor, Workflow, WorkflowBuilder, WorkflowContext, handler  # noqa: E402


class Ping(Executor):
    def __init__(self, id: str, last: int) -> None:
        super().__init__(id)
        self.last = last

    @handler
    async def on_int(self, x: int, ctx: WorkflowContext[int, int]) -> None:
        if x >= self.last:
            await ctx.yield_output(x)
        else:
            await ctx.send_message(x + 1)


def w1(supersteps: int = 200) -> Workflow:
    a, b = Ping("a", supersteps - 1), Ping("b", supersteps - 1)
    return (
        WorkflowBuilder(start_executor=a, name="bench-w1", max_supersteps=supersteps + 10)
        .add_edge(a, b)
        .add_edge(b, a)
        .build()
    )


def w2() -> Workflow:
    return build_w2()[0]


def w3a() -> Workflow:
    return build_w3a()[0]


def _factory(name: str) -> str:
    return f"dapr_bench:{name}"


async def _run(
    name: str, params: dict[str, Any], value: Any, runtime: Any
) -> tuple[float, list[float], Any]:
    """Run one workload; wall time, gaps between superstep completions, outputs."""
    # build from the importable module, not __main__: the servers build the same
    # classes from "dapr_bench", and the graph signature names them
    import dapr_bench

    wf = getattr(dapr_bench, name)(**params)
    if runtime is not None:
        wf.origin = (_factory(name), params)
    stamps: list[float] = []
    t0 = time.perf_counter()
    stream = wf.run(value, runtime=runtime, stream=True)
    async for ev in stream:
        if ev.type == "superstep_completed":
            stamps.append(time.perf_counter())
    result = await stream
    wall = time.perf_counter() - t0
    if result.status.value != "completed":
        raise SystemExit(f"{name} ended {result.status.value}: {result.error}")
    gaps = [b - a for a, b in itertools.pairwise(stamps)]
    return wall, gaps, result.outputs


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def measure(runtime: Any, only: list[str], reps: int, w1_steps: int) -> dict[str, Any]:
    out: dict[str, Any] = {}
    docs = make_docs(W3_DOCS)
    reference_w2: Any = None
    if "W1" in only:
        p50s, p95s = [], []
        for _ in range(reps):
            _, gaps, outputs = await _run("w1", {"supersteps": w1_steps}, 0, runtime)
            assert outputs == [w1_steps - 1], outputs
            p50s.append(statistics.median(gaps) * 1e3)
            p95s.append(_pct(gaps, 0.95) * 1e3)
        out["W1"] = {"p50_ms": statistics.median(p50s), "p95_ms": statistics.median(p95s)}
    if "W2" in only:
        rates = []
        for _ in range(reps):
            wall, _, outputs = await _run("w2", {}, 0, runtime)
            assert len(outputs) == 1 and len(outputs[0]) == W2_ROUNDS, outputs
            reference_w2 = reference_w2 or outputs
            assert outputs == reference_w2, "W2 round totals differ between runs"
            rates.append((2 * W2_WORKERS + 1) * W2_ROUNDS / wall)
        out["W2"] = {"msgs_per_s": statistics.median(rates), "totals": reference_w2[0]}
    if "W3a" in only:
        ratios = []
        for _ in range(reps):
            wall, _, outputs = await _run("w3a", {}, docs, runtime)
            assert outputs[0]["docs"] == W3_DOCS, outputs
            ratios.append(wall / (W3_DOCS * W3_IO_S / W3_WORKERS))
        out["W3a"] = {"ratio_vs_ideal": statistics.median(ratios)}
    return out


async def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--hosts", default="1,2,4")
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--only", default="W1,W2,W3a")
    ap.add_argument("--w1-supersteps", type=int, default=200)
    ap.add_argument("--sidecars", default="daprd,local", help="daprd, local or both")
    args = ap.parse_args()
    only = [w for w in args.only.split(",") if w]
    sidecars = [k for k in args.sidecars.split(",") if k]
    assert set(sidecars) <= {"daprd", "local"}, sidecars

    from runtime.client import RemoteRuntime
    from sidecar.launcher.daprd import ControlPlane, find_binaries
    from sidecar.launcher.deployment import LocalDeployment

    binaries = find_binaries() if "daprd" in sidecars else None
    plane = ControlPlane(binaries) if binaries is not None else None
    if plane is not None:
        await plane.start()

    os.environ["PYTHONPATH"] = os.pathsep.join(
        p for p in (str(HERE), os.environ.get("PYTHONPATH", "")) if p
    )
    results: dict[str, Any] = {"load_before": os.getloadavg(), "runs": {}}
    print("in-process ...", file=sys.stderr)
    results["runs"]["in-process"] = await measure(None, only, args.reps, args.w1_supersteps)
    try:
        for n, kind in itertools.product([int(h) for h in args.hosts.split(",") if h], sidecars):
            row = f"{kind}-{n}"
            print(f"{kind}, {n} host(s) ...", file=sys.stderr)
            dep = LocalDeployment(
                workflows=["dapr_bench:*"],
                pools={"default": n},
                sink=lambda _a, _l: None,
                daprd=binaries if kind == "daprd" else None,
            )
            await dep.start()
            try:
                runtime = RemoteRuntime(dep.api_url, timeout_s=120)
                results["runs"][row] = await measure(runtime, only, args.reps, args.w1_supersteps)
            finally:
                await dep.stop()
            w2_here = results["runs"][row].get("W2", {}).get("totals")
            w2_ref = results["runs"]["in-process"].get("W2", {}).get("totals")
            assert w2_here == w2_ref, f"W2 totals on {row} differ from in-process"
    finally:
        if plane is not None:
            await plane.stop()
    results["load_after"] = os.getloadavg()
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    out_dir = HERE / "results"
    out_dir.mkdir(exist_ok=True)
    (out_dir / f"dapr-{stamp}.json").write_text(json.dumps(results, indent=2))
    print(table(results))


def table(results: dict[str, Any]) -> str:
    lines = [
        "| runtime | W1 p50 ms/superstep | W1 p95 | W2 messages/s | W3a wall / ideal |",
        "|---|---|---|---|---|",
    ]
    for name, r in results["runs"].items():
        w1r, w2r, w3r = r.get("W1", {}), r.get("W2", {}), r.get("W3a", {})
        # in-process events reach the client in bursts: their gaps are not supersteps
        # (bench/superstep_bench.py measures in-process W1 per superstep)
        p50, p95 = (
            ("—", "—")
            if name == "in-process"
            else (
                f"{w1r.get('p50_ms', float('nan')):.2f}",
                f"{w1r.get('p95_ms', float('nan')):.2f}",
            )
        )
        lines.append(
            f"| {name} | {p50} | {p95} "
            f"| {w2r.get('msgs_per_s', float('nan')):,.0f} | {w3r.get('ratio_vs_ideal', float('nan')):.3f} |"
        )
    lines.append(
        f"\nload average before {results['load_before'][0]:.2f}, after {results['load_after'][0]:.2f}"
    )
    return "\n".join(lines)


def run_on_uvloop(main: Callable[[], Coroutine[Any, Any, None]]) -> None:
    """Run ``main()`` on uvloop when installed: a local deployment's sidecars run in the
    benchmark's process, on uvloop as under ``python -m sidecar run``."""
    try:
        import uvloop
    except ImportError:
        asyncio.run(main())
    else:
        uvloop.run(main())


if __name__ == "__main__":
    run_on_uvloop(main)  # the in-process rows of this table share the loop
