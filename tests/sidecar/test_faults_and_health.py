"""Health handshake (§4.1, §5.2), API token (§1), metadata (§5.3), and seeded fault injection.

The health, token and metadata tests start their sidecar from a run template
(:mod:`tests.sidecar.runs`) and run on both targets; fault injection is the local
sidecar's own (``sidecar_only``)."""

from __future__ import annotations

import asyncio
import itertools
import random
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from sidecar.cluster import Cluster
from sidecar.faults import FaultPlan, PubSubFaults, StateFaults, faulty_handler
from sidecar.pubsub.base import BrokerMessage
from sidecar.resources.model import RouteRule, Subscription
from sidecar.runtime import SidecarOptions
from sidecar.testing import AppServer, BackgroundLoop, free_port, start_sidecar, wait_until
from tests.sidecar.conftest import write_resources
from tests.sidecar.runs import DaprRun, RunApp

MEMORY = {
    "state.yaml": """
apiVersion: dapr.io/v1alpha1
kind: Component
metadata: {name: mem}
spec: {type: state.in-memory, version: v1, metadata: []}
""",
    "bus.yaml": """
apiVersion: dapr.io/v1alpha1
kind: Component
metadata: {name: bus}
spec: {type: pubsub.in-memory, version: v1, metadata: []}
""",
}


@pytest.fixture
def resources(tmp_path: Path) -> Path:
    return write_resources(tmp_path / "res", dict(MEMORY))


def test_outbound_health_before_the_app_is_up(
    bg: BackgroundLoop, resources: Path, tmp_path: Path
) -> None:
    late = RunApp("late", app_port=free_port(), resources=(resources,))  # nothing listens
    with DaprRun([late], tmp_path / "run", bg, ready=False) as run:
        base = run.api("late")
        with httpx.Client(timeout=5) as client:
            assert client.get(f"{base}/healthz/outbound").status_code == 204
            not_ready = client.get(f"{base}/healthz")
            assert not_ready.status_code == 500
            assert not_ready.json()["errorCode"] == "ERR_HEALTH_NOT_READY"


def _subscriber() -> tuple[Starlette, list[dict[str, Any]], list[str]]:
    received: list[dict[str, Any]] = []
    calls: list[str] = []

    async def subscribe(request: Request) -> Response:
        calls.append(request.headers.get("dapr-app-id", ""))
        return JSONResponse([{"pubsubname": "bus", "topic": "t", "route": "/t"}])

    async def config(request: Request) -> Response:
        return Response(status_code=404)

    async def deliver(request: Request) -> Response:
        received.append(await request.json())
        return Response(status_code=200)

    app = Starlette(
        routes=[
            Route("/dapr/subscribe", subscribe),
            Route("/dapr/config", config),
            Route("/t", deliver, methods=["POST"]),
        ]
    )
    return app, received, calls


@pytest.fixture
def subscriber(bg: BackgroundLoop) -> Iterator[tuple[int, list[dict[str, Any]], list[str]]]:
    app, received, calls = _subscriber()
    server = bg.run(AppServer(app).start())
    yield server.port, received, calls
    bg.run(server.stop())


def test_handshake_token_and_metadata(
    bg: BackgroundLoop,
    resources: Path,
    tmp_path: Path,
    subscriber: tuple[int, list[dict[str, Any]], list[str]],
) -> None:
    port, received, calls = subscriber
    guarded = RunApp("guarded", app_port=port, resources=(resources,))
    with DaprRun([guarded], tmp_path / "run", bg, api_token="s3cret") as run:
        base = run.api("guarded")
        token = {"dapr-api-token": "s3cret"}
        with httpx.Client(timeout=5) as client:
            assert client.get(f"{base}/healthz").status_code == 204  # exempt from the token
            assert client.get(f"{base}/healthz?appid=other").status_code == 500
            denied = client.get(f"{base}/state/mem/k")
            assert denied.status_code == 401 and denied.text == "invalid api token\n"
            assert client.get(f"{base}/state/mem/k", headers=token).status_code == 204
            meta = client.get(f"{base}/metadata", headers=token).json()
            assert meta["id"] == "guarded"
            assert {c["name"] for c in meta["components"]} == {"mem", "bus"}
            mem = next(c for c in meta["components"] if c["name"] == "mem")
            assert {"ETAG", "TRANSACTIONAL", "ACTOR"} <= set(mem["capabilities"])
            assert meta["subscriptions"][0]["type"] == "PROGRAMMATIC"
            published = client.post(f"{base}/publish/bus/t", json={"x": 1}, headers=token)
            assert published.status_code == 204
        assert calls == ["guarded"]  # /dapr/subscribe read once, with dapr-app-id
        wait_until(lambda: len(received) == 1)


def _deliveries(
    bg: BackgroundLoop,
    cluster: Cluster,
    resources: Path,
    plan: FaultPlan,
    count: int,
    done: Callable[[list[int]], bool] | None = None,
) -> list[int]:
    """Publish ``0..count-1`` and a final ``-1`` on ``pubsub.in-memory`` (strict FIFO,
    §3.7) and return the numbers the app received, in arrival order, without the ``-1``.

    Waits until ``done(received)`` (default: the ``-1`` or ``count`` messages arrived); the
    record is read after the sidecar stopped, so a late duplicate would be in it too.
    """
    app, received, _ = _subscriber()
    server = bg.run(AppServer(app).start())
    options = SidecarOptions(
        app_id="faulty", resources_paths=(resources,), app_port=server.port, faults=plan
    )
    sidecar = bg.run(start_sidecar(options, cluster))
    finished = done or (lambda got: -1 in got or len(got) >= count)
    try:
        base = f"http://127.0.0.1:{sidecar.http_port}/v1.0"
        with httpx.Client(timeout=10) as client:
            for i in [*range(count), -1]:
                assert client.post(f"{base}/publish/bus/t", json={"i": i}).status_code == 204
        wait_until(lambda: finished([r["data"]["i"] for r in received]), within=20)
    finally:
        bg.run(sidecar.stop())
        bg.run(server.stop())
    return [r["data"]["i"] for r in received if r["data"]["i"] >= 0]


@pytest.mark.sidecar_only("seeded pub/sub fault injection is the local sidecar's")
def test_seeded_pubsub_faults_are_reproducible(
    bg: BackgroundLoop, cluster: Cluster, resources: Path
) -> None:
    plan = FaultPlan(seed=7, pubsub=PubSubFaults(drop=0.3, duplicate=0.3))
    first = _deliveries(bg, cluster, resources, plan, 20)
    second = _deliveries(bg, cluster, resources, plan, 20)
    assert first == second
    assert len(set(first)) < 20  # some dropped
    assert len(first) > len(set(first))  # some duplicated


@pytest.mark.sidecar_only("seeded pub/sub fault injection is the local sidecar's")
def test_seeded_reorder_changes_the_delivery_order_reproducibly(
    bg: BackgroundLoop, cluster: Cluster, resources: Path
) -> None:
    # A long window: a held message is released by the next delivery, never by the clock,
    # so the order depends on the seed only.
    plan = FaultPlan(seed=3, pubsub=PubSubFaults(reorder=0.3, reorder_window=10.0))
    everything = {-1, *range(30)}

    def complete(got: list[int]) -> bool:
        return set(got) == everything

    first = _deliveries(bg, cluster, resources, plan, 30, complete)
    second = _deliveries(bg, cluster, resources, plan, 30, complete)
    assert first == second  # the same seed, the same order
    assert first != list(range(30))  # in-memory alone would keep the publish order
    assert sorted(first) == list(range(30))  # every message exactly once
    overtaken = [a for a, b in itertools.pairwise(first) if a > b]
    assert len(overtaken) >= 3, first


@pytest.mark.sidecar_only("state store fault injection is the local sidecar's")
def test_state_faults_fail_and_delay(bg: BackgroundLoop, cluster: Cluster, resources: Path) -> None:
    plan = FaultPlan(seed=1, state=StateFaults(fail=1.0, operations=frozenset({"set"})))
    options = SidecarOptions(app_id="flaky", resources_paths=(resources,), faults=plan)
    sidecar = bg.run(start_sidecar(options, cluster))
    try:
        base = f"http://127.0.0.1:{sidecar.http_port}/v1.0"
        with httpx.Client(timeout=5) as client:
            failed = client.post(f"{base}/state/mem", json=[{"key": "k", "value": 1}])
            assert failed.status_code == 500
            assert failed.json()["errorCode"] == "ERR_STATE_SAVE"
            assert client.get(f"{base}/state/mem/k").status_code == 204
    finally:
        bg.run(sidecar.stop())


@pytest.mark.sidecar_only("seeded pub/sub fault injection is the local sidecar's")
def test_a_cancelled_delivery_does_not_release_the_held_message_inside_it() -> None:
    """A closing subscription cancels its late deliveries; the one cancelled must end
    there, not deliver the message the fault holds back (a whole delivery, retried)."""
    subscription = Subscription("bus", "t", (RouteRule("", "/t"),))
    delivered: list[str] = []

    async def scenario() -> None:
        arrived, stuck = asyncio.Event(), asyncio.Event()

        async def inner(message: BrokerMessage) -> None:
            delivered.append(message.message_id)
            if message.message_id == "second":
                arrived.set()
                await stuck.wait()  # the app never answers

        # held for a window far longer than the test: only a delivery could release it
        plan = PubSubFaults(reorder=1.0, reorder_window=600.0)
        handler = faulty_handler(plan, random.Random(0), subscription, inner)
        await handler(BrokerMessage("t", b"", {}, "first"))
        assert delivered == []  # held back

        async def deliver_second() -> None:
            await handler(BrokerMessage("t", b"", {}, "second"))

        second = asyncio.create_task(deliver_second())
        await arrived.wait()
        second.cancel()
        with pytest.raises(asyncio.CancelledError):
            await second
        assert delivered == ["second"]  # "first" waits for its timer (asyncio.run ends it)

    asyncio.run(scenario())
