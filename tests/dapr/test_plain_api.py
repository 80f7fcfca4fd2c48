"""What a user of the HTTP API and of ``RemoteRuntime`` meets: every served workflow
and factory listed with its parameters and input schema, runs of factory-built
workflows, and plain JSON in and out (values named by their type going out)."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import httpx

from runtime import RunStatus
from tests.dapr import workflows
from tests.dapr.conftest import Deployment

ORDERS = "tests.dapr.workflows:orders"
RECEIPT = "tests.dapr.workflows.Receipt"


def _client(deployment: Deployment) -> httpx.AsyncClient:
    return httpx.AsyncClient(base_url=deployment.url, headers=deployment.headers, timeout=30)


async def _events(
    client: httpx.AsyncClient, run_id: str, after: int = -1
) -> tuple[list[dict[str, Any]], int]:
    """The run's events after event chunk ``after`` as the stream sends them, to the
    next ``status``, and the chunk of that status."""
    out: list[dict[str, Any]] = []
    chunk = after
    url = f"/runs/{run_id}/events"
    async with client.stream("GET", url, params={"after": after}) as resp:
        assert resp.status_code == 200, await resp.aread()
        async for line in resp.aiter_lines():
            if line.startswith("id:"):
                chunk = int(line[3:].strip().partition(".")[0])
            elif line.startswith("data:"):
                out.append(json.loads(line[5:]))
    assert out[-1]["type"] == "status", out
    return out, chunk


def _one_line_problem(resp: httpx.Response, status: int) -> str:
    assert resp.status_code == status, resp.text
    assert resp.headers["content-type"] == "application/problem+json"
    detail = resp.json()["detail"]
    assert isinstance(detail, str) and "\n" not in detail, detail
    for internal in ("pydantic", "type=", "input_value", "Traceback"):
        assert internal not in detail, detail
    return detail


async def test_a_workflow_built_by_a_served_factory_runs_remotely(
    deployment: Deployment,
) -> None:
    # the user builds it with the factory and runs it: no private attribute set
    remote = await workflows.orders(limit=3).run(
        workflows.Order("pens", 2), runtime=deployment.runtime()
    )
    local = await workflows.orders(limit=3).run(workflows.Order("pens", 2))
    assert remote.status is RunStatus.COMPLETED, remote.error
    assert remote.outputs == local.outputs == [workflows.Receipt("pens", 2, "within the limit")]
    assert remote.trace_hash == local.trace_hash


async def test_a_factory_built_run_awaits_and_takes_its_response_remotely(
    deployment: Deployment,
) -> None:
    runtime = deployment.runtime()
    wf = workflows.orders(limit=1)
    first = await wf.run(workflows.Order("desks", 4), runtime=runtime)
    assert first.status is RunStatus.AWAITING_INPUT, first.error
    [request] = first.pending_requests
    assert request.data == workflows.Order("desks", 4)
    second = await wf.run(
        responses={request.request_id: workflows.Approval(True, "ok")}, runtime=runtime
    )
    assert second.status is RunStatus.COMPLETED, second.error
    assert second.outputs == [workflows.Receipt("desks", 4, "ok")]


async def test_the_workflows_route_lists_named_workflows_and_every_factory(
    deployment: Deployment,
) -> None:
    async with _client(deployment) as client:
        listed = (await client.get("/workflows")).json()
    by_name = {w["name"]: w for w in listed}
    ping = by_name["ping"]
    assert ping["kind"] == "workflow" and ping["parameters"] == []
    assert ping["input_schema"] == {"type": "integer"}
    assert {e["id"] for e in ping["executors"]} == {"a", "b"}

    orders = by_name[ORDERS]
    assert orders["kind"] == "factory"
    assert orders["workflow"] == "orders" and orders["start"] == "desk"
    assert orders["description"].startswith("Orders of up to ``limit`` pass")
    assert orders["parameters"] == [
        {
            "name": "limit",
            "type": "integer",
            "json_schema": {"type": "integer"},
            "required": False,
            "default": 10,
        }
    ]
    schema = orders["input_schema"]
    assert schema["required"] == ["item", "quantity"]
    assert schema["properties"]["quantity"]["type"] == "integer"
    assert [e["placeable"] for e in orders["executors"]] == [True]

    # every factory of every module:* module; a required parameter leaves the graph open
    parallel = by_name["runtime.testing.conformance._workflows:parallel_workflow"]
    assert [(p["name"], p["type"], p["required"]) for p in parallel["parameters"]] == [
        ("n", "integer", True),
        ("probe", None, True),
    ]
    assert parallel["input_schema"] is None and parallel["executors"] == []
    # functions of those modules that build no workflow are no factories
    assert "runtime.testing.conformance._workflows:add" not in by_name
    assert "tests.dapr.workflows:all_workflows" not in by_name


async def test_plain_json_in_and_values_named_by_type_out(deployment: Deployment) -> None:
    async with _client(deployment) as client:
        started = await client.post(
            "/runs",
            json={
                "factory": ORDERS,
                "params": {"limit": 5},
                "input": {"item": "ink", "quantity": 3},
            },
        )
        assert started.status_code == 201, started.text
        run_id = started.json()["run_id"]
        events, _ = await _events(client, run_id)
        view = (await client.get(f"/runs/{run_id}")).json()
    value = {"item": "ink", "quantity": 3, "note": "within the limit"}
    [output] = [e for e in events if e["type"] == "output"]
    assert output["data"] == {"type": RECEIPT, "value": value}
    assert events[-1]["data"] == "completed"  # the runtime's own events keep their data
    assert view["workflow"] == "orders" and view["status"] == "completed"
    assert view["outputs"] == [{"type": RECEIPT, "value": value}]
    assert "$type" not in json.dumps([events, view])


async def test_pending_requests_and_responses_are_plain_json(deployment: Deployment) -> None:
    async with _client(deployment) as client:
        started = await client.post(
            "/runs",
            json={
                "factory": ORDERS,
                "params": {"limit": 1},
                "input": {"item": "ink", "quantity": 9},
            },
        )
        run_id = started.json()["run_id"]
        _, paused = await _events(client, run_id)
        [pending] = (await client.get(f"/runs/{run_id}")).json()["pending_requests"]
        rid = pending["request_id"]
        wrong = await client.post(
            f"/runs/{run_id}/responses", json={"responses": {rid: {"approved": "maybe"}}}
        )
        answered = await client.post(
            f"/runs/{run_id}/responses",
            json={"responses": {rid: {"approved": True, "note": "fine"}}},
        )
        assert answered.status_code == 202, answered.text
        events, _ = await _events(client, run_id, after=paused)
    assert pending["data"] == {
        "type": "tests.dapr.workflows.Order",
        "value": {"item": "ink", "quantity": 9},
    }
    assert pending["response_type"] == "tests.dapr.workflows.Approval"
    assert pending["response_schema"]["required"] == ["approved"]
    assert "approved: Input should be a valid boolean" in _one_line_problem(wrong, 400)
    outputs = [e["data"] for e in events if e["type"] == "output"]
    assert outputs == [{"type": RECEIPT, "value": {"item": "ink", "quantity": 9, "note": "fine"}}]


async def test_input_that_does_not_fit_is_a_422_naming_the_field(deployment: Deployment) -> None:
    async with _client(deployment) as client:
        wrong_field = await client.post(
            "/runs", json={"factory": ORDERS, "input": {"item": "ink", "quantity": "three"}}
        )
        missing = await client.post("/runs", json={"factory": ORDERS, "input": {"item": "ink"}})
        wrong_type = await client.post("/runs", json={"workflow": "ping", "input": "text"})
        tagged = await client.post(
            "/runs", json={"workflow": "ping", "input": {"$type": "no.such.Type", "$value": 1}}
        )
    assert "quantity: Input should be a valid integer" in _one_line_problem(wrong_field, 422)
    assert "quantity: Field required" in _one_line_problem(missing, 422)
    assert "'a', which handles int" in _one_line_problem(wrong_type, 422)
    assert "unknown message type 'no.such.Type'" in _one_line_problem(tagged, 422)


async def test_bad_factory_parameters_are_one_line_problems(deployment: Deployment) -> None:
    async with _client(deployment) as client:

        async def start(body: dict[str, Any]) -> httpx.Response:
            return await client.post("/runs", json={"input": {"item": "a", "quantity": 1}, **body})

        wrong_type = await start({"factory": ORDERS, "params": {"limit": "ten"}})
        unknown = await start({"factory": ORDERS, "params": {"bogus": 1}})
        no_factory = await start({"factory": "tests.dapr.workflows:nope"})
        not_a_factory = await start({"factory": "tests.dapr.workflows:all_workflows"})
        nothing = await start({})
    assert "parameter 'limit': Input should be a valid integer" in _one_line_problem(
        wrong_type, 422
    )
    assert "unexpected keyword argument 'bogus'" in _one_line_problem(unknown, 422)
    assert "does not exist" in _one_line_problem(no_factory, 404)
    assert "is not a workflow factory" in _one_line_problem(not_a_factory, 404)
    assert "names its workflow, or its factory" in _one_line_problem(nothing, 422)


async def test_runs_are_listed_newest_first_filtered_and_paged(deployment: Deployment) -> None:
    async with httpx.AsyncClient(base_url=deployment.url, headers=deployment.headers) as client:
        started = []
        for i in range(3):
            resp = await client.post(
                "/runs", json={"workflow": "hitl", "input": f"t{i}", "run_id": f"list-{i}"}
            )
            assert resp.status_code == 201
            assert resp.headers["location"] == f"/runs/list-{i}"
            started.append(f"list-{i}")
            await _until_status(client, f"list-{i}", "awaiting_input")
        paused = await client.get(
            "/runs", params={"status": "awaiting_input", "workflow": "hitl", "limit": 2}
        )
        assert paused.status_code == 200
        ids = [r["run_id"] for r in paused.json()]
        assert ids == ["list-2", "list-1"]  # newest first
        rest = await client.get(
            "/runs",
            params={
                "status": "awaiting_input",
                "workflow": "hitl",
                "cursor": paused.headers["x-next-cursor"],
            },
        )
        assert rest.json()[0]["run_id"] == "list-0"
        skipped = await client.get(
            "/runs", params={"status": "awaiting_input", "workflow": "hitl", "offset": 2}
        )
        assert skipped.json()[0]["run_id"] == "list-0"
        assert all(r["status"] == "awaiting_input" for r in paused.json() + rest.json())
        done = await client.get("/runs", params={"status": "completed", "workflow": "hitl"})
        assert not set(started) & {r["run_id"] for r in done.json()}
        bad = await client.get("/runs", params={"status": "sleeping"})
        assert bad.status_code == 422
        assert bad.headers["content-type"] == "application/problem+json"


async def _until_status(client: httpx.AsyncClient, run_id: str, status: str) -> None:
    """Poll the run until it has ``status`` (it pauses within a few supersteps)."""
    deadline = asyncio.get_running_loop().time() + 30
    while (await client.get(f"/runs/{run_id}")).json()["status"] != status:
        assert asyncio.get_running_loop().time() < deadline, f"{run_id} never {status}"
        await asyncio.sleep(0.05)
