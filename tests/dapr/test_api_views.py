"""Real answers of every client route hold to the model the OpenAPI document names for
them (``executor_host._views``), strictly: a member the route sends that its model
does not describe fails, as does one the model wants that the route leaves out.

Runs of each kind: completed, failed (its error with traceback and attempts),
awaiting input (its pending request), cancelled; their checkpoints and topology; the
hosts and workflows; problems."""

from __future__ import annotations

import json
from typing import Any, TypeVar

import httpx
from pydantic import BaseModel, TypeAdapter

from executor_host._catalog import WorkflowInfo
from executor_host._views import (
    CancelAccepted,
    CheckpointView,
    HostView,
    ProblemDetails,
    ResponsesAccepted,
    RunStarted,
    RunSummary,
    RunView,
    TopologyView,
    TypedValue,
)
from runtime import RunStatus
from tests.dapr.conftest import Deployment

M = TypeVar("M", bound=BaseModel)

ORDERS = "tests.dapr.workflows:orders"
DECLINING = "runtime.testing.conformance._workflows:declining_workflow"


def _client(deployment: Deployment) -> httpx.AsyncClient:
    return httpx.AsyncClient(base_url=deployment.url, headers=deployment.headers, timeout=30)


def _strict(model: type[M], resp: httpx.Response, status: int = 200) -> M:
    assert resp.status_code == status, resp.text
    assert resp.headers["content-type"] == "application/json"
    return model.model_validate(resp.json(), extra="forbid")


def _strict_list(model: type[M], resp: httpx.Response) -> list[M]:
    assert resp.status_code == 200, resp.text
    return TypeAdapter(list[model]).validate_python(resp.json(), extra="forbid")  # type: ignore[valid-type]


async def _start(client: httpx.AsyncClient, body: dict[str, Any]) -> RunStarted:
    resp = await client.post("/runs", json=body)
    started = _strict(RunStarted, resp, 201)
    assert resp.headers["location"] == f"/runs/{started.run_id}"
    return started


async def _settled(client: httpx.AsyncClient, run_id: str, after: int = -1) -> tuple[str, int]:
    """The status the run reaches after event chunk ``after`` (its events stream ends
    with it), and the chunk of that status."""
    status: str | None = None
    chunk = after
    async with client.stream("GET", f"/runs/{run_id}/events", params={"after": after}) as resp:
        assert resp.status_code == 200, await resp.aread()
        async for line in resp.aiter_lines():
            if line.startswith("id:"):
                chunk = int(line[3:].strip().partition(".")[0])
            elif line.startswith("data:"):
                event = json.loads(line[5:])
                if event["type"] == "status":
                    status = event["data"]
    assert status is not None
    return status, chunk


async def _run(client: httpx.AsyncClient, run_id: str, encoding: str = "plain") -> RunView:
    return _strict(RunView, await client.get(f"/runs/{run_id}", params={"encoding": encoding}))


async def _checkpoints(client: httpx.AsyncClient, run_id: str) -> list[CheckpointView]:
    ids = TypeAdapter(list[str]).validate_python(
        (await client.get(f"/runs/{run_id}/checkpoints")).json()
    )
    assert ids
    return [_strict(CheckpointView, await client.get(f"/checkpoints/{i}")) for i in ids]


async def test_a_completed_run_its_listing_topology_and_checkpoints(
    deployment: Deployment,
) -> None:
    async with _client(deployment) as client:
        started = await _start(client, {"workflow": "fan", "input": "a b|c|d e f|g"})
        assert started.status is RunStatus.RUNNING and started.after == -1
        assert (await _settled(client, started.run_id))[0] == "completed"
        plain = await _run(client, started.run_id)
        codec = await _run(client, started.run_id, "codec")
        listed = await client.get("/runs", params={"workflow": "fan", "limit": 5})
        summaries = _strict_list(RunSummary, listed)
        topology = _strict(TopologyView, await client.get(f"/runs/{started.run_id}/topology"))
        checkpoints = await _checkpoints(client, started.run_id)
    assert plain.status is RunStatus.COMPLETED and plain.error is None
    [output] = plain.outputs
    assert isinstance(output, TypedValue) and output.type == "dict"
    assert output.value["words"] == 7
    assert codec.outputs == [output.value]  # a dict is its own codec form
    assert plain.waiting_for_hosts == {} and plain.pending_requests == []
    assert plain.checkpoints == [checkpoints[-1].checkpoint_id]
    assert started.run_id in {s.run_id for s in summaries}
    assert {e.executor_id for e in topology.executors} == {
        "split",
        "count-0",
        "count-1",
        "count-2",
        "total",
    }
    assert all(e.hosts for e in topology.executors)
    # the superstep after the fan-out holds the counters' messages in its inbox
    assert any(cp.run_state.inbox for cp in checkpoints)


async def test_a_failed_run_shows_its_error_with_traceback_and_attempts(
    deployment: Deployment,
) -> None:
    async with _client(deployment) as client:
        started = await _start(client, {"factory": DECLINING, "params": {}, "input": 1})
        assert (await _settled(client, started.run_id))[0] == "failed"
        view = await _run(client, started.run_id)
    assert view.status is RunStatus.FAILED and view.error is not None
    assert view.factory == DECLINING
    cause = view.error.cause
    assert cause is not None and cause.executor_id == "card"
    assert cause.type == "Declined" and cause.traceback and "Declined" in cause.traceback
    assert [a.attempt for a in cause.attempts] == [1, 2]
    assert all(a.type == "Declined" and a.message.startswith("card") for a in cause.attempts)
    assert isinstance(view.outputs[0], TypedValue) and view.outputs[0].type == "list"


async def test_a_run_awaiting_input_shows_its_requests_and_takes_responses(
    deployment: Deployment,
) -> None:
    async with _client(deployment) as client:
        body = {"factory": ORDERS, "params": {"limit": 1}, "input": {"item": "ink", "quantity": 9}}
        started = await _start(client, body)
        assert (await _settled(client, started.run_id))[0] == "awaiting_input"
        plain = await _run(client, started.run_id)
        codec = await _run(client, started.run_id, "codec")
        checkpoints = await _checkpoints(client, started.run_id)
        [request] = plain.pending_requests
        answered = await client.post(
            f"/runs/{started.run_id}/responses",
            json={"responses": {request.request_id: {"approved": True}}},
        )
        accepted = _strict(ResponsesAccepted, answered, 202)
    assert request.executor_id == "desk"
    assert request.data == TypedValue(
        type="tests.dapr.workflows.Order", value={"item": "ink", "quantity": 9}
    )
    assert request.response_schema is not None
    assert request.response_schema["required"] == ["approved"]
    # the codec form: the codec's names, and no schema
    [coded] = codec.pending_requests
    assert "response_schema" not in codec.pending_requests[0].model_fields_set
    assert coded.request_id == request.request_id and not isinstance(coded.data, TypedValue)
    assert [p.request_id for p in checkpoints[-1].run_state.pending] == [request.request_id]
    assert accepted == ResponsesAccepted(run_id=started.run_id, accepted=[request.request_id])


async def test_a_cancel_is_accepted_and_a_finished_run_s_is_a_problem(
    deployment: Deployment,
) -> None:
    async with _client(deployment) as client:
        started = await _start(client, {"workflow": "hitl", "input": "leave"})
        status, paused = await _settled(client, started.run_id)
        assert status == "awaiting_input"
        taken = await client.post(f"/runs/{started.run_id}/cancel")
        cancelled = _strict(CancelAccepted, taken, 202)
        assert (await _settled(client, started.run_id, paused))[0] == "cancelled"
        again = await client.post(f"/runs/{started.run_id}/cancel")
        unknown = await client.get("/runs/no-such-run")
    assert cancelled.run_id == started.run_id
    for resp, code in ((again, 409), (unknown, 404)):
        assert resp.status_code == code
        assert resp.headers["content-type"] == "application/problem+json"
        problem = ProblemDetails.model_validate(resp.json())
        assert problem.status == code and problem.instance.startswith("/runs/")
    assert again.json()["run_status"] == "cancelled"


async def test_the_hosts_and_the_workflows(deployment: Deployment) -> None:
    async with _client(deployment) as client:
        hosts = _strict_list(HostView, await client.get("/hosts"))
        served = _strict_list(WorkflowInfo, await client.get("/workflows"))
    assert {h.pool for h in hosts if h.alive} >= {"default", "aux"}
    assert {"ping", "fan", "hitl", ORDERS, DECLINING} <= {w.name for w in served}
