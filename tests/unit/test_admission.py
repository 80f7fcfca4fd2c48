"""Admission of run starts (executor_host/_admission.py): a bounded number at once, a
bounded queue behind them, 503 with Retry-After beyond; ``RemoteRuntime`` waits and
starts again."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import httpx
import pytest

from executor_host import _services as services_module
from executor_host import api
from executor_host._admission import Busy, StartGate
from executor_host._problems import Problem
from executor_host._services import APIServices
from executor_host._settings import Settings
from executor_host._sidecar import ActorInvokeError, SidecarClient
from runtime import RunStatus, WorkflowBuilder
from runtime.client import RemoteRuntime
from runtime.errors import RemoteError
from runtime.registry import WorkflowRegistry
from tests.unit.test_remote_events import Echo, run_view


async def test_the_gate_admits_its_limit_queues_the_next_and_refuses_beyond() -> None:
    gate = StartGate(limit=2, queue=1)
    release = asyncio.Event()
    inside: list[int] = []

    async def start(i: int) -> None:
        async with gate.admit():
            inside.append(i)
            await release.wait()

    first = [asyncio.create_task(start(i)) for i in range(3)]
    await asyncio.sleep(0)  # one turn of the loop: each task runs to its first wait
    assert (gate.active, gate.waiting, inside) == (2, 1, [0, 1])
    with pytest.raises(Busy, match="2 run starts are being worked on and 1 wait"):
        async with gate.admit():
            raise AssertionError("admitted beyond the queue")
    release.set()
    await asyncio.gather(*first)
    assert sorted(inside) == [0, 1, 2] and (gate.active, gate.waiting) == (0, 0)


async def test_a_waiting_start_whose_client_went_away_leaves_the_queue() -> None:
    gate = StartGate(limit=1, queue=1)
    async with gate.admit():
        waiter = asyncio.create_task(gate.admit().__aenter__())
        await asyncio.sleep(0)  # one turn of the loop: the waiter runs to its wait
        assert gate.waiting == 1
        waiter.cancel()
        with pytest.raises(asyncio.CancelledError):
            await waiter
        assert gate.waiting == 0
    async with gate.admit():  # its slot was not taken
        assert gate.active == 1


@pytest.mark.parametrize(("limit", "queue"), [(0, 1), (1, -1)])
def test_a_gate_needs_a_slot_and_a_queue_of_zero_or_more(limit: int, queue: int) -> None:
    with pytest.raises(ValueError, match="limit >= 1 and queue >= 0"):
        StartGate(limit, queue)


def test_the_settings_read_the_gate_from_the_environment() -> None:
    base = {"SUPERSTEP_WORKFLOWS": "m:a"}
    assert (Settings.from_env(base).max_starts, Settings.from_env(base).start_queue) == (32, 512)
    custom = Settings.from_env({**base, "SUPERSTEP_MAX_STARTS": "4", "SUPERSTEP_START_QUEUE": "0"})
    assert (custom.max_starts, custom.start_queue) == (4, 0)
    with pytest.raises(ValueError, match="SUPERSTEP_MAX_STARTS: expected 1 or more, got 0"):
        Settings.from_env({**base, "SUPERSTEP_MAX_STARTS": "0"})
    with pytest.raises(ValueError, match="SUPERSTEP_START_QUEUE: expected a whole number"):
        Settings.from_env({**base, "SUPERSTEP_START_QUEUE": "lots"})


async def test_a_start_beyond_the_gate_is_answered_503_with_retry_after() -> None:
    app = api.create_app(Settings(app_id="superstep-api", workflows=("runtime.demo:*",)))
    services = app.state.services
    services.starts = StartGate(limit=1, queue=0)
    body = {"workflow": "demo", "factory": "runtime.demo:build_workflow", "input": {"docs": 1}}
    transport = httpx.ASGITransport(app=app)
    async with (
        services.starts.admit(),
        httpx.AsyncClient(transport=transport, base_url="http://app") as client,
    ):
        resp = await client.post("/runs", json=body)
    assert resp.status_code == 503, resp.text
    assert resp.headers["retry-after"] == "1"
    assert resp.headers["content-type"] == "application/problem+json"
    assert resp.json()["title"] == "Too many starts"
    assert "SUPERSTEP_MAX_STARTS=1" in resp.json()["detail"]


class BusyApi:
    """An API that answers the first ``busy`` starts 503 with Retry-After, then runs."""

    def __init__(self, busy: int, retry_after: str = "0") -> None:
        self.busy = busy
        self.retry_after = retry_after
        self.starts = 0

    async def handle(self, request: httpx.Request) -> httpx.Response:
        path = request.url.path
        if request.method == "POST" and path == "/runs":
            self.starts += 1
            if self.starts <= self.busy:
                problem = {"title": "Too many starts", "status": 503, "detail": "busy"}
                return httpx.Response(503, json=problem, headers={"retry-after": self.retry_after})
            return httpx.Response(201, json={"run_id": "r", "status": "running", "after": -1})
        if path == "/runs/r/events":
            event = {"type": "status", "data": "completed", "superstep": 1, "details": {}}
            body = f"id: 0.0\nevent: status\ndata: {json.dumps(event)}\n\n".encode()
            return httpx.Response(200, headers={"content-type": "text/event-stream"}, content=body)
        return httpx.Response(200, json=run_view("completed"))


def _echo() -> Any:
    return WorkflowBuilder(start_executor=Echo("echo"), name="echo").build()


async def test_the_client_waits_and_starts_again_while_the_api_is_busy() -> None:
    api_ = BusyApi(busy=3)
    runtime = RemoteRuntime("http://api", transport=httpx.MockTransport(api_.handle))
    result = await _echo().run("hi", runtime=runtime)
    assert result.status is RunStatus.COMPLETED and api_.starts == 4


async def test_the_client_gives_up_once_waiting_would_pass_its_budget() -> None:
    api_ = BusyApi(busy=10**6, retry_after="30")
    runtime = RemoteRuntime("http://api", transport=httpx.MockTransport(api_.handle), busy_s=10)
    with pytest.raises(RemoteError, match="503") as caught:
        await _echo().run("hi", runtime=runtime)
    assert caught.value.retry_after == 30 and api_.starts == 1


class FlakySidecar(SidecarClient):
    """A sidecar whose coordinator calls fail ``failures`` times with ``status``."""

    def __init__(self, failures: int, status: int | None) -> None:
        super().__init__()
        self.failures = failures
        self.status = status
        self.calls: list[tuple[str, str, Any]] = []

    async def invoke(self, actor_type: str, actor_id: str, method: str, body: Any) -> Any:
        self.calls.append((actor_id, method, body))
        if len(self.calls) <= self.failures:
            raise ActorInvokeError("error invoke actor method: context canceled", self.status)
        return {"created": True, "status": "running", "after": -1}


def _services(sidecar: SidecarClient) -> APIServices:
    services = APIServices(Settings(app_id="superstep-api", workflows=()), WorkflowRegistry({}))
    services._sidecar = sidecar
    return services


async def test_a_start_the_sidecar_got_no_answer_to_is_tried_again_with_its_key(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(services_module, "START_RETRY_DELAYS", (0.0, 0.0, 0.0))
    sidecar = FlakySidecar(failures=2, status=500)
    answer = await _services(sidecar).start_run("r1", {"workflow": "w"})
    assert answer["created"] is True and len(sidecar.calls) == 3
    keys = {body["start_key"] for _, _, body in sidecar.calls}
    assert len(keys) == 1, "every try carries the same start key"


async def test_a_start_refused_or_unanswered_for_good_is_a_502_problem(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(services_module, "START_RETRY_DELAYS", (0.0, 0.0))
    gone = FlakySidecar(failures=10, status=None)
    with pytest.raises(Problem) as caught:
        await _services(gone).start_run("r1", {"workflow": "w"})
    assert caught.value.status == 502 and len(gone.calls) == 3
    refused = FlakySidecar(failures=10, status=400)  # not the app's fault: no second try
    with pytest.raises(Problem):
        await _services(refused).start_run("r1", {"workflow": "w"})
    assert len(refused.calls) == 1
