"""The Dapr runtime end to end: runs started through the client runtime over HTTP,
against a local deployment (API app + executor hosts, each with its sidecar)."""

from __future__ import annotations

import json

import httpx

from runtime import RunStatus, WorkflowEvent
from tests.dapr import workflows
from tests.dapr.conftest import APP_TOKEN, Deployment


async def test_ping_runs_with_the_in_process_trace(deployment: Deployment) -> None:
    remote = await workflows.ping().run(0, runtime=deployment.runtime())
    local = await workflows.ping().run(0)
    assert remote.status is RunStatus.COMPLETED
    assert remote.outputs == local.outputs == [11]
    assert remote.trace_hash == local.trace_hash
    assert remote.trace == local.trace


async def test_a_run_shows_its_outputs_of_every_superstep_and_a_resume_its_own(
    deployment: Deployment,
) -> None:
    """Each superstep yields an output, each written once in its barrier's output
    chunk: GET /runs/{id} shows them all in order. Resumed from a checkpoint, the run
    shows the outputs from the resume on, as in-process."""
    runtime = deployment.runtime()
    wf = workflows.ticks(count=30)
    remote = await wf.run(1, runtime=runtime)
    local = await workflows.ticks(count=30).run(1)
    assert remote.status is RunStatus.COMPLETED, remote.error
    assert remote.outputs == local.outputs and len(local.outputs) == 30
    view = await runtime.run_view(remote.run_id)
    assert [wf.graph.codec.decode(o) for o in view["outputs"]] == local.outputs

    checkpoint_id = f"{remote.run_id}@{10:06d}"
    resumed = await workflows.ticks(count=30).run(checkpoint_id=checkpoint_id, runtime=runtime)
    assert resumed.status is RunStatus.COMPLETED, resumed.error
    assert resumed.outputs == local.outputs[10:]
    view = await runtime.run_view(remote.run_id)
    assert [wf.graph.codec.decode(o) for o in view["outputs"]] == local.outputs[10:]


async def test_events_equal_the_in_process_stream(deployment: Deployment) -> None:
    remote = await workflows.fan().run("a b|c|d e f|g", runtime=deployment.runtime())
    local = await workflows.fan().run("a b|c|d e f|g")

    def shape(events: list[WorkflowEvent]) -> list[tuple[object, ...]]:
        return [(e.type, e.executor_id, e.superstep, repr(e.data)) for e in events]

    assert shape(remote.events[1:]) == shape(local.events[1:])  # "started" carries the run id
    assert remote.outputs == [
        {"words": 7, "order": 312, "parts": 4}
    ]  # sources 0,1,2 in group order
    assert remote.trace_hash == local.trace_hash


async def test_strings_that_look_like_dates_or_durations_stay_strings(
    deployment: Deployment,
) -> None:
    # the actor SDK's default message serializer turns such strings into datetime and
    # timedelta objects (or fails on them): actor calls must carry JSON as it is
    texts = ["2024-01-01", "2024-01-01 report", "1h2m3s", "10s", "0h0m5s", "plain"]
    remote = await workflows.echo().run(texts, runtime=deployment.runtime())
    local = await workflows.echo().run(texts)
    assert remote.status is RunStatus.COMPLETED, remote.error
    assert remote.outputs == local.outputs == [texts]
    assert remote.trace_hash == local.trace_hash


async def test_integers_beyond_64_bits_cross_the_hosts_exactly(deployment: Deployment) -> None:
    # orjson refuses to write them and reads them as floats without an error: every hop
    # (activation and result events, actor calls, state) must keep them exact
    values: list[str | int] = [2**64, 2**70 + 1, -(2**100) - 3, 12]
    remote = await workflows.echo().run(values, runtime=deployment.runtime())
    local = await workflows.echo().run(values)
    assert remote.status is RunStatus.COMPLETED, remote.error
    assert remote.outputs == local.outputs == [values]
    assert all(type(v) is int for v in remote.outputs[0])
    assert remote.trace_hash == local.trace_hash


async def test_malformed_events_get_a_404_problem_and_change_nothing(
    deployment: Deployment,
) -> None:
    # what a subscription endpoint answers a poison delivery: 404, the status Dapr drops
    # it on, with a problem description (a DROP answer carries none; another 4xx would
    # be retried); the apps go on serving
    ports = deployment.local.app_ports()
    # sent as the sidecar sends them, with the app token
    ce = {"content-type": "application/cloudevents+json", "dapr-api-token": APP_TOKEN}
    event = {"specversion": "1.0", "id": "x", "source": "s", "type": "t"}
    forwarded = {**event, "subject": "r:0", "datacontenttype": "application/json"}
    bodies = [
        b"{not json",
        json.dumps({**event, "data": {"run_id": "r"}}).encode(),  # not an envelope
        json.dumps({"id": "x", "data": {}}).encode(),  # not a CloudEvent
        json.dumps({**event, "datacontenttype": "application/json", "data": "[1"}).encode(),
        # forwarded to the executor actor it names, which refuses it
        json.dumps({**forwarded, "data": "[1"}).encode(),
        json.dumps({**forwarded, "data": '{"run_id": "r"}'}).encode(),
    ]
    async with httpx.AsyncClient() as client:
        for url in (f"http://127.0.0.1:{ports['superstep-default-1']}/events/activations",):
            for body in bodies:
                resp = await client.post(url, content=body, headers=ce)
                assert resp.status_code == 404, (url, body, resp.text)
                assert resp.headers["content-type"].startswith("application/problem+json")
                assert resp.json()["title"] == "Malformed event"
    result = await workflows.ping().run(0, runtime=deployment.runtime())
    assert result.status is RunStatus.COMPLETED and result.outputs == [11]


async def test_calls_into_the_apps_without_the_app_token_are_refused(
    deployment: Deployment,
) -> None:
    """A forged result, cancel or actor call that reaches an app's port without the
    token its sidecar sends gets 401 and changes nothing; runs go on."""
    ports = deployment.local.app_ports()
    forged = {
        "specversion": "1.0",
        "id": "forged",
        "source": "s",
        "type": "t",
        "datacontenttype": "application/json",
        "data": {"run_id": "r", "superstep": 1, "executor_id": "x"},
    }
    body = json.dumps(forged).encode()
    forged_result = json.dumps(forged["data"]).encode()
    calls = [
        ("PUT", f"{deployment.url}/actors/SuperstepCoordinator/r/method/Result", forged_result),
        ("POST", f"{deployment.url}/actors/Coordinator/r/method/Cancel", b"{}"),
        ("GET", f"{deployment.url}/dapr/config", b""),
        ("POST", f"http://127.0.0.1:{ports['superstep-aux-1']}/events/activations", body),
    ]
    async with httpx.AsyncClient() as client:
        for method, url, content in calls:
            for token in (None, "wrong"):
                headers = {"content-type": "application/cloudevents+json"}
                if token is not None:
                    headers["dapr-api-token"] = token
                resp = await client.request(method, url, headers=headers, content=content)
                assert resp.status_code == 401, (url, token, resp.text)
                assert resp.headers["content-type"].startswith("application/problem+json")
    result = await workflows.ping().run(0, runtime=deployment.runtime())
    assert result.status is RunStatus.COMPLETED and result.outputs == [11]


async def test_placement_puts_each_executor_on_its_pool(deployment: Deployment) -> None:
    result = await workflows.ping().run(0, runtime=deployment.runtime())
    async with httpx.AsyncClient(base_url=deployment.url, headers=deployment.headers) as client:
        topo = (await client.get(f"/runs/{result.run_id}/topology")).json()
    hosts = {e["executor_id"]: e["hosts"] for e in topo["executors"]}
    assert hosts["a"] and all(h.startswith("superstep-default-") for h in hosts["a"])
    assert hosts["b"] == ["superstep-aux-1"]


async def test_unplaceable_run_is_refused_naming_the_executor(deployment: Deployment) -> None:
    async with httpx.AsyncClient(base_url=deployment.url, headers=deployment.headers) as client:
        resp = await client.post("/runs", json={"workflow": "unplaceable", "input": 0})
    assert resp.status_code == 409
    assert resp.headers["content-type"].startswith("application/problem+json")
    problem = resp.json()
    assert problem["executors"] == ["gpu-worker"]
    assert "'gpu-worker' needs a live host in pool 'gpu'" in problem["detail"]


async def test_human_in_the_loop_over_http(deployment: Deployment) -> None:
    runtime = deployment.runtime()
    wf = workflows.hitl()
    first = await wf.run("release", runtime=runtime)
    assert first.status is RunStatus.AWAITING_INPUT
    [request] = first.pending_requests
    assert request.data == workflows.Question("approve release?")
    second = await wf.run(responses={request.request_id: True}, runtime=runtime)
    assert second.status is RunStatus.COMPLETED
    assert second.outputs == ["approve release? -> yes"]


async def test_malformed_requests_get_problem_details(deployment: Deployment) -> None:
    async with httpx.AsyncClient(base_url=deployment.url, headers=deployment.headers) as client:
        bad_json = await client.post(
            "/runs", content=b"{not json", headers={"content-type": "application/json"}
        )
        unknown_wf = await client.post("/runs", json={"workflow": "nope", "input": 1})
        wrong_type = await client.post("/runs", json={"workflow": "ping", "input": "text"})
        unknown_run = await client.get("/runs/does-not-exist")
        bad_id = await client.post("/runs", json={"workflow": "ping", "input": 0, "run_id": "a/b"})
    assert bad_json.status_code == 422
    assert unknown_wf.status_code == 404 and "nope" in unknown_wf.json()["detail"]
    assert wrong_type.status_code == 422 and wrong_type.json()["detail"] == (
        "the input does not fit the start executor 'a', which handles int "
        "(as int: Input should be a valid integer)"
    )
    assert unknown_run.status_code == 404
    assert bad_id.status_code == 422
    for resp in (bad_json, unknown_wf, wrong_type, unknown_run, bad_id):
        assert resp.headers["content-type"].startswith("application/problem+json")


def _is_problem(resp: httpx.Response, status: int) -> bool:
    problem = resp.json()
    return (
        resp.status_code == status
        and resp.headers["content-type"] == "application/problem+json"
        and problem["status"] == status
        and bool(problem["title"])
        and isinstance(problem["detail"], str)
    )


async def test_router_errors_and_unparsable_bodies_are_problems(deployment: Deployment) -> None:
    # the router's own answers and the body parser's were FastAPI's {"detail": ...} JSON
    async with httpx.AsyncClient(base_url=deployment.url, headers=deployment.headers) as client:
        unknown_path = await client.get("/no/such/route")
        wrong_method = await client.delete("/runs")
        unparsable = await client.post(
            "/runs/x/responses",
            content=b"\xafh,A\xe3\x80",
            headers={"content-type": "application/json"},  # not UTF-8
        )
    assert _is_problem(unknown_path, 404), unknown_path.text
    assert _is_problem(wrong_method, 405), wrong_method.text
    assert wrong_method.headers["allow"]  # what the path does take
    assert _is_problem(unparsable, 400), unparsable.text


async def test_run_ids_of_dots_only_are_refused(deployment: Deployment) -> None:
    # "." and ".." as a coordinator's actor id vanish from the sidecar's URL: the start
    # answered 502 Coordinator unavailable
    runtime = deployment.runtime()
    done = await workflows.ping().run(0, runtime=runtime)
    async with httpx.AsyncClient(base_url=deployment.url, headers=deployment.headers) as client:
        [checkpoint_id, *_] = (await client.get(f"/runs/{done.run_id}/checkpoints")).json()
        checkpoint = (await client.get(f"/checkpoints/{checkpoint_id}")).json()
        checkpoint["run_state"]["run_id"] = ".."
        for run_id in (".", "..", "..."):
            resp = await client.post(
                "/runs", json={"workflow": "ping", "input": 0, "run_id": run_id}
            )
            assert _is_problem(resp, 422), resp.text
        resumed = await client.post("/runs", json={"workflow": "ping", "checkpoint": checkpoint})
        fine = await client.post("/runs", json={"workflow": "ping", "input": 11, "run_id": "a.b"})
    assert _is_problem(resumed, 400) and resumed.json()["title"] == "Invalid run id", resumed.text
    assert fine.status_code == 201, fine.text


async def test_the_schema_describes_errors_as_problems(deployment: Deployment) -> None:
    async with httpx.AsyncClient(base_url=deployment.url, headers=deployment.headers) as client:
        schema = (await client.get("/openapi.json")).json()
    problem = {"application/problem+json": {"schema": {"$ref": "#/components/schemas/Problem"}}}
    start = schema["paths"]["/runs"]["post"]["responses"]
    assert {s: start[s]["content"] for s in ("400", "401", "404", "409", "422", "502")} == {
        s: problem for s in ("400", "401", "404", "409", "422", "502")
    }
    assert schema["paths"]["/runs/{run_id}"]["get"]["responses"]["404"]["content"] == problem
    # FastAPI's own description of a validation error is gone, also on the SDK's routes
    assert "HTTPValidationError" not in schema["components"]["schemas"]
    assert schema["components"]["schemas"]["Problem"]["required"] == [
        "type",
        "title",
        "status",
        "detail",
        "instance",
    ]


async def test_the_event_stream_of_an_unknown_run_is_a_404_problem(deployment: Deployment) -> None:
    async with httpx.AsyncClient(base_url=deployment.url, headers=deployment.headers) as client:
        unknown = await client.get("/runs/no-such-run/events")
        bad_after = await client.get("/runs/no-such-run/events", params={"after": -2})
    assert _is_problem(unknown, 404) and "no-such-run" in unknown.json()["detail"]
    assert _is_problem(bad_after, 422), bad_after.text


async def test_the_api_wants_its_token_but_dapr_callbacks_and_health_do_not(
    deployment: Deployment,
) -> None:
    # (the sidecar's routes want the app token instead, which this deployment sets:
    # test_calls_into_the_apps_without_the_app_token_are_refused)
    async with httpx.AsyncClient(base_url=deployment.url) as client:
        for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": "Basic x"}):
            resp = await client.get("/runs", headers=headers)
            assert resp.status_code == 401, headers
            assert resp.headers["content-type"] == "application/problem+json"
            assert resp.headers["www-authenticate"].startswith("Bearer")
            assert "SUPERSTEP_API_TOKEN" in resp.json()["detail"]
        assert (await client.post("/runs", json={"workflow": "ping"})).status_code == 401
        assert (await client.get("/healthz")).status_code == 200
        ready = await client.get("/readyz")
        assert ready.status_code == 200 and ready.json()["dapr"] == "ok"
        # the sidecar's callbacks are not behind the client's token (it does not have it)
        config = await client.get("/dapr/config", headers={"dapr-api-token": APP_TOKEN})
        assert config.status_code == 200
        # nor is the API's description (it shows no run data)
        assert (await client.get("/openapi.json")).status_code == 200
        ok = await client.get("/runs", headers=deployment.headers)
        assert ok.status_code == 200


async def test_cancelling_a_finished_run_is_a_409_naming_its_status(
    deployment: Deployment,
) -> None:
    # it answered 202 and did nothing
    done = await workflows.ping().run(0, runtime=deployment.runtime())
    assert done.status is RunStatus.COMPLETED
    async with httpx.AsyncClient(base_url=deployment.url, headers=deployment.headers) as client:
        resp = await client.post(f"/runs/{done.run_id}/cancel")
        after = (await client.get(f"/runs/{done.run_id}")).json()
    assert _is_problem(resp, 409), resp.text
    assert resp.json()["run_status"] == "completed" and "completed" in resp.json()["detail"]
    assert after["status"] == "completed"
    assert after["outputs"] == [{"type": "int", "value": 11}]


async def test_hostile_ids_and_text_are_4xx_problems_through_the_sidecar(
    deployment: Deployment,
) -> None:
    # each answered 500 (the raw id in the state store's URL) or 502 (a lone surrogate
    # made the coordinator fail)
    json_type = {"content-type": "application/json"}
    async with httpx.AsyncClient(base_url=deployment.url, headers=deployment.headers) as client:
        run = await client.get("/runs/a%7C%7Cb")
        checkpoint = await client.get("/checkpoints/x%7C%7Cy@000001")
        resume = await client.post(
            "/runs", json={"workflow": "ping", "has_input": False, "checkpoint_id": "../x@1"}
        )
        surrogate = await client.post(
            "/runs", content=b'{"workflow": "echo", "input": ["\\ud800"]}', headers=json_type
        )
        pair = await client.post(
            "/runs", content=b'{"workflow": "echo", "input": ["\\ud83d\\ude00"]}', headers=json_type
        )
    for resp in (run, checkpoint, resume):
        assert _is_problem(resp, 422), resp.text
    assert _is_problem(surrogate, 400) and surrogate.json()["title"] == "Invalid text"
    assert pair.status_code == 201, pair.text
