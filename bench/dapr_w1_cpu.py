#!/usr/bin/env python
"""Where a Dapr superstep's CPU goes: W1 (or W2) on a local deployment, with the CPU time
each process spends per superstep (per message for W2).

Run:  .venv/bin/python bench/dapr_w1_cpu.py [--hosts 1] [--supersteps 300] [--reps 3]
                                           [--daprd] [--workload w1|w2]

Starts a local deployment (the API/coordinator app and ``--hosts`` executor hosts of one
pool, each its own process; every local sidecar, and this benchmark's client, in this
process; with ``--daprd`` real daprd processes instead, whose CPU is counted too, in a
column of all daprds), runs ``dapr_bench.py``'s W1 ping-pong (or W2's fan-out and
fan-in: 20 rounds of 201 messages) ``--reps`` times and prints, per run, the superstep
latency (p50/p95 of the gaps between ``superstep_completed`` events on the client), W2's
messages per second, and the user+system CPU time per superstep (W1) or per message
(W2) of each process, read from ``/proc/<pid>/stat`` before and after the run (Linux
only). CPU time is steadier than wall time on a shared machine: compare it between
trees.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from sidecar.launcher.deployment import LocalDeployment

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import dapr_bench  # noqa: E402  (bench/ is not a package)
from superstep_bench import W2_ROUNDS, W2_WORKERS  # noqa: E402


def cpu_seconds(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--hosts", type=int, default=1)
    ap.add_argument("--supersteps", type=int, default=300)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--daprd", action="store_true", help="beside real daprd processes")
    ap.add_argument("--workload", choices=("w1", "w2"), default="w1")
    args = ap.parse_args()

    from sidecar.launcher.daprd import ControlPlane, find_binaries
    from sidecar.launcher.deployment import LocalDeployment

    os.environ["PYTHONPATH"] = os.pathsep.join(
        p for p in (str(HERE), os.environ.get("PYTHONPATH", "")) if p
    )
    binaries = find_binaries() if args.daprd else None
    plane = ControlPlane(binaries) if binaries is not None else None
    if plane is not None:
        await plane.start()
    dep = LocalDeployment(
        workflows=["dapr_bench:*"],
        pools={"default": args.hosts},
        sink=lambda _a, _l: None,
        daprd=binaries,
    )
    try:
        await dep.start()
        own = "client" if args.daprd else "sidecars+client"
        await _measure(dep, own, args.supersteps, args.reps, args.workload)
    finally:
        await dep.stop()
        if plane is not None:
            await plane.stop()


async def _measure(
    dep: LocalDeployment, own: str, supersteps: int, reps: int, workload: str = "w1"
) -> None:
    """A workload ``reps`` times on a started deployment, with the CPU of each app
    process, of all daprds together, and of this one (``own``: the client, and the local
    sidecars when they run here)."""
    from runtime.client import RemoteRuntime

    assert dep.topology is not None
    procs: dict[str, list[int]] = {own: [os.getpid()]}
    for spec in dep.topology.apps:
        pid = dep.topology.processes[spec.name].pid
        assert pid is not None
        procs[spec.name] = [pid]
    daprds = [d.process.pid for d in dep.topology.daprds.values()]
    if daprds:
        procs["daprds"] = [pid for pid in daprds if pid is not None]
    runtime = RemoteRuntime(dep.api_url, timeout_s=120)
    if workload == "w1":  # the ping-pong's length; CPU per superstep
        params, warm_up, unit, count = (
            {"supersteps": supersteps},
            {"supersteps": 20},
            "superstep",
            supersteps,
        )
    else:  # W2 as it is; CPU per message
        params, warm_up, unit, count = {}, {}, "message", (2 * W2_WORKERS + 1) * W2_ROUNDS
    await dapr_bench._run(workload, warm_up, 0, runtime)
    print(
        "| run | p50 ms | p95 ms | msgs/s | "
        + " | ".join(f"{n} CPU ms/{unit}" for n in procs)
        + " |"
    )
    print("|---" * (4 + len(procs)) + "|")
    for rep in range(1, reps + 1):
        before = {n: sum(cpu_seconds(p) for p in ps) for n, ps in procs.items()}
        wall, gaps, _ = await dapr_bench._run(workload, params, 0, runtime)
        after = {n: sum(cpu_seconds(p) for p in ps) for n, ps in procs.items()}
        per = [(after[n] - before[n]) / count * 1e3 for n in procs]
        print(
            f"| {rep} | {statistics.median(gaps) * 1e3:.2f} "
            f"| {dapr_bench._pct(gaps, 0.95) * 1e3:.2f} | {count / wall:.0f} | "
            + " | ".join(f"{c:.3f}" for c in per)
            + " |"
        )
    print(f"\nload average after: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    dapr_bench.run_on_uvloop(main)
