"""Latency through the local sidecar on loopback, set against Dapr's published figures.

    .venv/bin/python bench/sidecar_overhead.py [--n 400]

Measures p50/p95 of: state get and save (SDK ``DaprClient`` over gRPC, and HTTP) on the
Redis and in-memory stores, publish-to-delivery over Redis Streams (HTTP publish, time
until the subscriber app has the event), and actor invocation (warm actor) and activation
(first call of a new actor id) with an SDK ``DaprActor`` app in its own process.
Needs Redis on 127.0.0.1:6379. Reference (dapr-contract §10, daprd v1.17): state get
gRPC p50 0.57 ms; publish gRPC p50 0.60 ms; actor activation p50 2.30 ms.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
from dapr.clients import DaprClient
from dapr.conf import settings
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from sidecar.launcher import AppSpec, Topology
from sidecar.runtime import SidecarOptions
from sidecar.testing import AppServer, BackgroundLoop, free_port, make_cluster, start_sidecar

REPO = Path(__file__).resolve().parents[1]
REFERENCE_MS = {"state get (gRPC": 0.57, "publish (gRPC": 0.60, "actor activation": 2.30}

RESOURCES = {
    "redis.yaml": """
apiVersion: dapr.io/v1alpha1
kind: Component
metadata: {name: redisstore}
spec:
  type: state.redis
  version: v1
  metadata:
  - {name: redisHost, value: "localhost:6379"}
  - {name: actorStateStore, value: "true"}
""",
    "memory.yaml": """
apiVersion: dapr.io/v1alpha1
kind: Component
metadata: {name: memstore}
spec: {type: state.in-memory, version: v1, metadata: []}
""",
    "bus.yaml": """
apiVersion: dapr.io/v1alpha1
kind: Component
metadata: {name: bus}
spec:
  type: pubsub.redis
  version: v1
  metadata:
  - {name: redisHost, value: "localhost:6379"}
""",
}


def _percentiles(samples: list[float]) -> tuple[float, float]:
    ordered = sorted(samples)
    p95 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.95))]
    return statistics.median(ordered) * 1000, p95 * 1000


def _time(n: int, op: Callable[[int], Any]) -> list[float]:
    for i in range(min(20, n)):
        op(i)  # warm-up
    out = []
    for i in range(n):
        started = time.perf_counter()
        op(i)
        out.append(time.perf_counter() - started)
    return out


def _state_ops(
    client: DaprClient, http: httpx.Client, store: str, key: str
) -> tuple[Callable[[int], Any], Callable[[int], Any], Callable[[int], Any]]:
    def get(i: int) -> Any:
        return client.get_state(store, key)

    def save(i: int) -> Any:
        return client.save_state(store, f"{key}{i % 10}", "1")

    def http_get(i: int) -> Any:
        return http.get(f"/state/{store}/{key}")

    return get, save, http_get


def _subscriber(topic: str, arrivals: dict[int, float]) -> Starlette:
    async def subscribe(request: Request) -> Response:
        return JSONResponse([{"pubsubname": "bus", "topic": topic, "route": "/in"}])

    async def receive(request: Request) -> Response:
        event = await request.json()
        arrivals[event["data"]["i"]] = time.perf_counter()
        return Response(status_code=200)

    return Starlette(
        routes=[Route("/dapr/subscribe", subscribe), Route("/in", receive, methods=["POST"])]
    )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=400)
    n = parser.parse_args().n
    results: dict[str, tuple[float, float]] = {}
    run = uuid.uuid4().hex[:8]
    with tempfile.TemporaryDirectory() as tmp, BackgroundLoop() as bg:
        res = Path(tmp)
        for name, text in RESOURCES.items():
            (res / name).write_text(text)
        cluster = bg.run(make_cluster())
        arrivals: dict[int, float] = {}
        topic = f"bench-{run}"
        app = bg.run(AppServer(_subscriber(topic, arrivals)).start())
        sidecar = bg.run(
            start_sidecar(
                SidecarOptions(app_id="bench", resources_paths=(res,), app_port=app.port), cluster
            )
        )
        setattr(settings, "DAPR_HTTP_PORT", sidecar.http_port)  # noqa: B010 - SDK settings object
        base = f"http://127.0.0.1:{sidecar.http_port}/v1.0"
        client = DaprClient(address=f"127.0.0.1:{sidecar.grpc_port}")
        with httpx.Client(base_url=base) as http:
            for store in ("redisstore", "memstore"):
                client.save_state(store, f"{run}-k", json.dumps({"v": 1}))
                get, save, http_get = _state_ops(client, http, store, f"{run}-k")
                results[f"state get (gRPC, {store})"] = _percentiles(_time(n, get))
                results[f"state save (gRPC, {store})"] = _percentiles(_time(n, save))
                results[f"state get (HTTP, {store})"] = _percentiles(_time(n, http_get))
            results["publish (gRPC)"] = _percentiles(
                _time(n, lambda i: client.publish_event("bus", f"{topic}-x", "{}"))
            )
            sent: dict[int, float] = {}
            latencies = []
            for i in range(n):
                sent[i] = time.perf_counter()
                http.post(f"/publish/bus/{topic}", json={"i": i})
                deadline = time.perf_counter() + 5
                while i not in arrivals and time.perf_counter() < deadline:
                    time.sleep(0.0002)
                latencies.append(arrivals[i] - sent[i])
            results["publish-to-delivery (Redis Streams)"] = _percentiles(latencies)
        client.close()  # type: ignore[no-untyped-call]  # untyped SDK
        bg.run(sidecar.stop())
        bg.run(app.stop())

        port = free_port()
        command = (sys.executable, "-m", "uvicorn", "tests.sidecar.apps.actor_app:app",
                   "--port", str(port), "--log-level", "warning")  # fmt: skip
        spec = AppSpec("actors", REPO, command, port, resources_paths=(res,))
        topology = Topology([spec], sink=lambda app, line: None)
        bg.run(topology.start())
        actors = f"http://127.0.0.1:{topology.sidecar('actors').http_port}/v1.0/actors/Counter"
        with httpx.Client() as http:
            results["actor invocation (warm)"] = _percentiles(
                _time(n, lambda i: http.put(f"{actors}/{run}-warm/method/WhoAmI"))
            )
            results["actor activation"] = _percentiles(
                _time(
                    n, lambda i: http.put(f"{actors}/{run}-new-{i}-{time.time_ns()}/method/WhoAmI")
                )
            )
        bg.run(topology.stop())

    print(f"\nlocal sidecar on loopback, n={n} per row (ms)\n")
    print("| operation | p50 | p95 | Dapr p50 (§10) |\n|---|---|---|---|")
    for name, (p50, p95) in results.items():
        ref = next((f"{v:.2f}" for k, v in REFERENCE_MS.items() if name.startswith(k)), "")
        print(f"| {name} | {p50:.2f} | {p95:.2f} | {ref} |")


if __name__ == "__main__":
    main()
