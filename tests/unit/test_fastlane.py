"""The apps' fast lane (executor_host/_fastlane.py): the sidecar's per-superstep calls
answered without FastAPI, exactly as the FastAPI routes answer them."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import httpx
import pytest
from dapr.actor import ActorRuntime
from dapr.clients.exceptions import DaprInternalError
from dapr.ext.fastapi import DaprActor
from fastapi import FastAPI

from executor_host._bus import parse_event
from executor_host._fastlane import FastLane
from executor_host._problems import Problem, install_problem_handlers
from executor_host.protocol import ResultEnvelope

Calls = list[tuple[str, str, str, bytes, str | None]]


def _app(*, lane: bool, deliveries: Mapping[str, Any] | None = None) -> FastAPI:
    app = FastAPI()
    install_problem_handlers(app)
    DaprActor(app)

    @app.post("/events/activations")
    async def through_fastapi() -> dict[str, str]:
        return {"status": "FASTAPI"}

    if lane:
        app.add_middleware(FastLane, deliveries=deliveries or {})
    return app


@pytest.fixture
def dispatched(monkeypatch: pytest.MonkeyPatch) -> Calls:
    """ActorRuntime.dispatch replaced: records its calls, answers by method name."""
    calls: Calls = []

    async def dispatch(
        type_: str, id_: str, method: str, body: bytes, reentrancy: str | None = None
    ) -> bytes:
        calls.append((type_, id_, method, body, reentrancy))
        if method == "Internal":
            raise DaprInternalError("the actor failed", "ERR_ACTOR", b"details")
        if method == "Broken":
            raise ValueError("no such method")
        return b'{"duplicate":false}'

    monkeypatch.setattr(ActorRuntime, "dispatch", dispatch)
    return calls


def _client(app: FastAPI) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://app")


async def test_actor_calls_are_dispatched_with_their_body_and_reentrancy_id(
    dispatched: Calls,
) -> None:
    async with _client(_app(lane=True)) as client:
        resp = await client.put(
            "/actors/superstep-executor-default/run-1:2/method/Execute",
            content=b'{"x":1}',
            headers={"Dapr-Reentrancy-Id": "r-7"},
        )
    assert resp.status_code == 200 and resp.content == b'{"duplicate":false}'
    assert dispatched == [("superstep-executor-default", "run-1:2", "Execute", b'{"x":1}', "r-7")]


@pytest.mark.parametrize("method", ["Execute", "Internal", "Broken"])
async def test_actor_answers_equal_dapr_ext_fastapi_s(dispatched: Calls, method: str) -> None:
    path = f"/actors/T/a1/method/{method}"
    async with _client(_app(lane=False)) as plain, _client(_app(lane=True)) as fast:
        want = await plain.put(path, content=b"{}")
        got = await fast.put(path, content=b"{}")
    assert got.status_code == want.status_code
    assert got.headers["content-type"] == want.headers["content-type"]
    assert json.loads(got.content) == json.loads(want.content)
    assert len(dispatched) == 2, "both went to ActorRuntime.dispatch"


async def test_timers_reminders_and_other_routes_go_to_fastapi(
    dispatched: Calls, monkeypatch: pytest.MonkeyPatch
) -> None:
    fired: list[tuple[str, str, str]] = []

    async def fire(type_: str, id_: str, name: str, body: bytes) -> None:
        fired.append((type_, id_, name))

    monkeypatch.setattr(ActorRuntime, "fire_reminder", fire)
    monkeypatch.setattr(ActorRuntime, "fire_timer", fire)
    async with _client(_app(lane=True)) as client:
        reminder = await client.put("/actors/T/a1/method/remind/deadline", content=b"{}")
        timer = await client.put("/actors/T/a1/method/timer/tick", content=b"{}")
        health = await client.get("/healthz")
        # an empty segment is not an actor call: FastAPI's router answers it
        empty = await client.put("/actors/T//method/Execute", content=b"{}")
        delivery = await client.post("/events/activations", content=b"{}")
    assert reminder.status_code == timer.status_code == health.status_code == 200
    assert fired == [("T", "a1", "deadline"), ("T", "a1", "tick")]
    assert empty.status_code == 404 and empty.json()["status"] == 404
    assert delivery.json() == {"status": "FASTAPI"}, "no delivery handler given for it"
    assert dispatched == []


async def test_deliveries_reach_their_handler_with_headers_and_body() -> None:
    seen: list[tuple[dict[str, str], bytes]] = []

    async def take(headers: Mapping[str, str], body: bytes) -> dict[str, str]:
        seen.append((dict(headers), body))
        return {"status": "RETRY"}

    async with _client(_app(lane=True, deliveries={"/events/activations": take})) as client:
        resp = await client.post(
            "/events/activations",
            content=b"event bytes",
            headers={"Content-Type": "application/cloudevents+json", "X-Extra": "1"},
        )
        other_method = await client.get("/events/activations")
    assert resp.status_code == 200 and resp.json() == {"status": "RETRY"}
    assert resp.headers["content-type"] == "application/json"
    [(headers, body)] = seen
    assert body == b"event bytes"
    assert headers["content-type"] == "application/cloudevents+json" and headers["x-extra"] == "1"
    assert other_method.status_code == 405, "only POST takes the lane"


async def test_a_refused_delivery_is_answered_with_its_problem() -> None:
    async def take(headers: Mapping[str, str], body: bytes) -> dict[str, str]:
        raise Problem(404, "Malformed event", "not a CloudEvent", hint="dropped")

    async with _client(_app(lane=True, deliveries={"/events/activations": take})) as client:
        resp = await client.post("/events/activations", content=b"{")
    assert resp.status_code == 404
    assert resp.headers["content-type"] == "application/problem+json"
    assert resp.json() == {
        "type": "about:blank",
        "title": "Malformed event",
        "status": 404,
        "detail": "not a CloudEvent",
        "instance": "/events/activations",
        "hint": "dropped",
    }


async def test_a_body_in_several_chunks_is_joined_and_a_gone_client_runs_nothing(
    dispatched: Calls,
) -> None:
    lane = FastLane(_app(lane=False))
    sent: list[dict[str, Any]] = []

    async def send(message: Any) -> None:
        sent.append(message)

    def scope(path: str) -> dict[str, Any]:
        return {"type": "http", "method": "PUT", "path": path, "headers": []}

    chunks = iter(
        [
            {"type": "http.request", "body": b'{"a":', "more_body": True},
            {"type": "http.request", "body": b"1}", "more_body": False},
        ]
    )

    async def receive() -> Any:
        return next(chunks)

    await lane(scope("/actors/T/a/method/Execute"), receive, send)
    assert dispatched[0][3] == b'{"a":1}' and sent[0]["status"] == 200

    async def gone() -> Any:
        return {"type": "http.disconnect"}

    sent.clear()
    await lane(scope("/actors/T/b/method/Execute"), gone, send)
    assert len(dispatched) == 1 and sent == [], "no dispatch and no answer"


_EVENT: dict[str, Any] = {
    "specversion": "1.0",
    "id": "ev-1",
    "source": "superstep/h1",
    "type": "io.superstep.result.v1",
    "datacontenttype": "application/json",
    "topic": "superstep.activations.default",
    "pubsubname": "pubsub",
    "traceparent": "",
    "data": {
        "run_id": "r",
        "epoch": 1,
        "superstep": 3,
        "executor_id": "w",
        "host": "h1",
        "result": {"executor_id": "w", "superstep": 3, "status": "completed"},
    },
}


@pytest.mark.parametrize(
    "content_type",
    ["application/cloudevents+json", "Application/CloudEvents+JSON; charset=utf-8"],
)
def test_a_structured_event_is_read_as_from_http_reads_it(content_type: str) -> None:
    headers = {"content-type": content_type}
    env = parse_event(headers, json.dumps(_EVENT).encode(), ResultEnvelope)
    assert env.run_id == "r" and env.superstep == 3 and env.host == "h1"


def test_events_the_structured_reader_does_not_take_go_through_from_http() -> None:
    data = _EVENT["data"]
    # binary mode: attributes in ce- headers, the data as the body
    binary = {
        "content-type": "application/json",
        "ce-specversion": "1.0",
        "ce-id": "ev-2",
        "ce-source": "s",
        "ce-type": "t",
    }
    assert parse_event(binary, json.dumps(data).encode(), ResultEnvelope).superstep == 3
    # data as a JSON string
    as_text = {**_EVENT, "data": json.dumps({**data, "superstep": 4})}
    ce = {"content-type": "application/cloudevents+json"}
    assert parse_event(ce, json.dumps(as_text).encode(), ResultEnvelope).superstep == 4


def test_integers_beyond_64_bits_in_event_data_stay_exact() -> None:
    # orjson would read 2**70 as a float without an error
    big = 2**70 + 1
    data = {**_EVENT["data"], "result": {**_EVENT["data"]["result"], "outputs": [big]}}
    event = json.dumps({**_EVENT, "data": data}).encode()
    env = parse_event({"content-type": "application/cloudevents+json"}, event, ResultEnvelope)
    [value] = env.result["outputs"]
    assert value == big and isinstance(value, int)
