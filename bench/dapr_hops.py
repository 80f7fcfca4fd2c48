#!/usr/bin/env python
"""Calls between the apps and their daprd per superstep, read from daprd's metrics.

Run:  .venv/bin/python bench/dapr_hops.py [--supersteps 200] [--hosts 1]

Starts a local deployment on real daprd (the API/coordinator app and ``--hosts``
executor hosts of one pool, each beside its daprd), runs the W1 ping-pong workflow of
``dapr_bench.py`` once to warm up, then once more between two reads of every daprd's
Prometheus metrics, and prints, per superstep:

- app -> daprd: the requests each daprd's HTTP API served (``dapr_http_server_
  request_count``), by app and by kind of call (state, publish, actors...);
- daprd -> app: the calls each daprd made to its app (``dapr_http_client_
  completed_count``: deliveries, actor calls, health probes).

Health probes are counted apart (they do not depend on the supersteps). daprd 1.18
leaves actor calls out of these metrics (the apps' actor invocations and its actor calls
into the apps): they are not in the table; from the code path, each activation adds
two (the host's invocation of the executor actor, and daprd's call into the actor's
host) and each batch of results two more (the API app's invocation of the coordinator
actor, and daprd's call into it).
"""

from __future__ import annotations

import argparse
import asyncio
import re
import sys
from collections import Counter
from pathlib import Path

import httpx

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from dapr_bench import _factory, w1  # noqa: E402

_SAMPLE = re.compile(r"^(?P<name>[a-zA-Z_:][\w:]*)(?:\{(?P<labels>[^}]*)\})?\s+(?P<value>\S+)$")
_LABEL = re.compile(r'(\w+)="((?:[^"\\]|\\.)*)"')


def _samples(text: str, names: tuple[str, ...]) -> Counter[tuple[str, ...]]:
    out: Counter[tuple[str, ...]] = Counter()
    for line in text.splitlines():
        m = _SAMPLE.match(line)
        if m is None or m["name"] not in names:
            continue
        labels = dict(_LABEL.findall(m["labels"] or ""))
        path = str(labels.get("path") or labels.get("method") or "?")
        out[(m["name"], labels.get("app_id", "?"), _kind(path))] += int(float(m["value"]))
    return out


def _kind(path: str) -> str:
    """A call's kind from its path (ids and keys left out)."""
    for needle, kind in (
        ("/healthz", "health probe"),
        ("/state/", "state"),
        ("/publish/", "publish"),
        ("/actors/", "actors"),
        ("/events/", "delivery"),
        ("/dapr/", "subscriptions/config"),
    ):
        if needle in path:
            return kind
    return path


SERVER = "dapr_http_server_request_count"
CLIENT = "dapr_http_client_completed_count"


async def _scrape(ports: dict[str, int]) -> Counter[tuple[str, ...]]:
    total: Counter[tuple[str, ...]] = Counter()
    async with httpx.AsyncClient(timeout=10) as client:
        for port in ports.values():
            text = (await client.get(f"http://127.0.0.1:{port}/metrics")).text
            total.update(_samples(text, (SERVER, CLIENT)))
    return total


async def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--supersteps", type=int, default=200)
    ap.add_argument("--hosts", type=int, default=1)
    args = ap.parse_args()

    from runtime.client import RemoteRuntime
    from sidecar.launcher.daprd import ControlPlane, find_binaries
    from sidecar.launcher.deployment import LocalDeployment

    binaries = find_binaries()
    plane = ControlPlane(binaries)
    await plane.start()
    import os

    os.environ["PYTHONPATH"] = os.pathsep.join(
        p for p in (str(HERE), os.environ.get("PYTHONPATH", "")) if p
    )
    dep = LocalDeployment(
        workflows=["dapr_bench:*"],
        pools={"default": args.hosts},
        sink=lambda _a, _l: None,
        daprd=binaries,
    )
    await dep.start()
    try:
        assert dep.topology is not None
        ports = {name: d.metrics_port for name, d in dep.topology.daprds.items()}
        runtime = RemoteRuntime(dep.api_url, timeout_s=120)
        wf = w1(args.supersteps)
        wf.origin = (_factory("w1"), {"supersteps": args.supersteps})
        await wf.run(0, runtime=runtime)  # warm-up
        before = await _scrape(ports)
        result = await wf.run(0, runtime=runtime)
        after = await _scrape(ports)
        steps = result.supersteps
    finally:
        await dep.stop()
        await plane.stop()
    delta = after - before
    print(f"W1, {steps} supersteps, {args.hosts} host(s), real daprd: calls per superstep")
    print(f"{'direction':<15} {'app':<22} {'kind':<22} {'per superstep':>13}")
    totals: Counter[str] = Counter()
    for (name, app, kind), n in sorted(delta.items()):
        direction = "app -> daprd" if name == SERVER else "daprd -> app"
        print(f"{direction:<15} {app:<22} {kind:<22} {n / steps:>13.2f}")
        if kind != "health probe":
            totals[direction] += n
    for direction, n in totals.items():
        print(f"{direction:<15} {'all apps':<22} {'(no health probes)':<22} {n / steps:>13.2f}")
    print(
        f"{'both':<15} {'all apps':<22} {'(no health probes)':<22} "
        f"{sum(totals.values()) / steps:>13.2f}"
    )


if __name__ == "__main__":
    asyncio.run(main())
