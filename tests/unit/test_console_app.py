"""The in-process console's API (``runtime.console``) without sockets: its routes, the
shapes the page reads, event ids and resuming after one, problems for bad input; and
the request parsing of its server."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest

from runtime.checkpoint import FileCheckpointStorage, InMemoryCheckpointStorage
from runtime.console import ConsoleApp
from runtime.console._app import EventLog, EventStream, Request, Response
from runtime.console._server import _loopback_name, _Refused, parse_head
from tests.cli import flows

JSON = {"content-type": "application/json"}


def _app(storage: Any = None) -> ConsoleApp:
    return ConsoleApp(
        [flows.approval, flows.failing, flows.greeting],
        storage if storage is not None else InMemoryCheckpointStorage(),
    )


async def _call(
    app: ConsoleApp, method: str, path: str, body: Any = None, **headers: str
) -> Response:
    raw = b"" if body is None else json.dumps(body).encode()
    answer = await app.handle(Request(method, path, {}, {**JSON, **headers}, raw))
    assert isinstance(answer, Response), answer
    return answer


def _json(response: Response) -> Any:
    return json.loads(response.body)


async def _settled(app: ConsoleApp, run_id: str, status: str) -> dict[str, Any]:
    async with asyncio.timeout(10):
        while True:
            view = _json(await _call(app, "GET", f"/runs/{run_id}"))
            if view["status"] == status:
                return view  # type: ignore[no-any-return]
            await asyncio.sleep(0.01)


async def _events(app: ConsoleApp, run_id: str, last: str | None = None) -> list[str]:
    headers = {"last-event-id": last} if last else {}
    answer = await app.handle(Request("GET", f"/runs/{run_id}/events", {}, headers))
    if isinstance(answer, Response):
        assert answer.status == 204
        return []
    assert isinstance(answer, EventStream)
    text = b"".join([chunk async for chunk in answer.chunks]).decode()
    return [line[4:] for line in text.splitlines() if line.startswith("id: ")]


async def test_the_page_and_its_files_are_served_with_their_headers() -> None:
    app = _app()
    page = await _call(app, "GET", "/")
    assert page.status == 200 and page.media_type.startswith("text/html")
    assert "default-src 'self'" in page.headers["content-security-policy"]
    settings = _json(await _call(app, "GET", "/console/settings.json"))
    assert settings["token_required"] is False
    assert (await _call(app, "GET", "/console/app.js")).media_type.startswith("text/javascript")
    assert (await _call(app, "POST", "/console/app.js")).status == 405


async def test_workflows_and_the_host_look_as_the_dapr_api_shows_them() -> None:
    app = _app()
    listed = _json(await _call(app, "GET", "/workflows"))
    by_name = {w["name"]: w for w in listed}
    greeter = by_name["workflow:greeter"]
    assert greeter["kind"] == "workflow" and greeter["start"] == "greeter"
    assert greeter["input_schema"]["properties"]["name"]["type"] == "string"
    assert greeter["edges"] == [
        {"kind": "edge", "sources": ["greeter"], "targets": ["shout"], "conditional": False}
    ]
    assert [e["id"] for e in greeter["executors"]] == ["greeter", "shout"]
    [host] = _json(await _call(app, "GET", "/hosts"))
    assert host["alive"] and host["host_id"].startswith("in-process:")


async def test_a_run_streams_its_events_and_pauses_for_a_response() -> None:
    app = _app()
    started = await _call(
        app, "POST", "/runs", {"workflow": "workflow:approver", "input": 7, "run_id": "a1"}
    )
    assert started.status == 201 and _json(started)["run_id"] == "a1"
    view = await _settled(app, "a1", "awaiting_input")
    [request] = view["pending_requests"]
    assert request["data"] == {"type": "tests.cli.flows.Approval", "value": {"amount": 7}}
    assert request["response_schema"] == {"type": "boolean"}
    assert view["checkpoints"] == ["a1@000001"]
    ids = await _events(app, "a1")  # the stream ends after the status event
    assert ids[0] == "0.0" and ids[-1] == "1.0"
    # a response of the wrong type is refused before the run goes on
    wrong = await _call(
        app, "POST", "/runs/a1/responses", {"responses": {request["request_id"]: 3}}
    )
    assert wrong.status == 400 and "must be bool" in _json(wrong)["detail"]
    assert wrong.media_type == "application/problem+json"
    answered = await _call(
        app, "POST", "/runs/a1/responses", {"responses": {request["request_id"]: True}}
    )
    assert answered.status == 202
    view = await _settled(app, "a1", "completed")
    assert view["outputs"] == [{"type": "str", "value": "7: approved"}]
    # resuming after the last event read gives the continuation's events only
    rest = await _events(app, "a1", ids[-1])
    assert rest and rest[0] == "2.0" and rest[-1] == "3.0"
    assert await _events(app, "a1", rest[-1]) == []  # 204: the run ended, all is read
    runs = _json(await _call(app, "GET", "/runs"))
    assert [(r["run_id"], r["status"], r["superstep"]) for r in runs] == [("a1", "completed", 2)]


async def test_a_failed_run_shows_its_exception_and_traceback() -> None:
    app = _app()
    await _call(app, "POST", "/runs", {"workflow": "workflow:boom", "input": 3, "run_id": "f"})
    view = await _settled(app, "f", "failed")
    cause = view["error"]["cause"]
    assert (cause["type"], cause["message"], cause["executor_id"]) == (
        "RuntimeError",
        "boom on 3",
        "boom",
    )
    assert 'raise RuntimeError(f"boom on {x}")' in cause["traceback"]
    cancel = await _call(app, "POST", "/runs/f/cancel")
    assert cancel.status == 409


async def test_a_checkpoint_folder_shows_its_runs_and_one_resumes_as_a_new_run(
    tmp_path: Path,
) -> None:
    storage = FileCheckpointStorage(tmp_path)
    wf = flows.approval()
    paused = await wf.run(5, checkpoint_storage=storage, run_id="old")
    assert paused.status.value == "awaiting_input"
    app = _app(FileCheckpointStorage(tmp_path))
    [run] = _json(await _call(app, "GET", "/runs"))
    assert (run["run_id"], run["status"], run["superstep"]) == ("old", "awaiting_input", 1)
    view = _json(await _call(app, "GET", "/runs/old"))
    assert view["pending_requests"][0]["data"]["value"] == {"amount": 5}
    checkpoint = _json(await _call(app, "GET", "/checkpoints/old@000001"))
    assert checkpoint["run_state"]["superstep"] == 1
    resumed = await _call(
        app,
        "POST",
        "/runs",
        {"workflow": "workflow:approver", "checkpoint_id": "old@000001", "run_id": "new"},
    )
    assert resumed.status == 201, resumed.body
    view = await _settled(app, "new", "awaiting_input")
    assert view["checkpoints"] == ["new@000001"]
    again = await _call(
        app,
        "POST",
        "/runs",
        {"workflow": "workflow:approver", "checkpoint_id": "old@000001", "run_id": "new"},
    )
    assert again.status == 409
    # the folder's own paused run is answered: it goes on under its id
    rid = view["pending_requests"][0]["request_id"]
    pending = _json(await _call(app, "GET", "/runs/old"))["pending_requests"][0]["request_id"]
    assert rid == pending
    answered = await _call(app, "POST", "/runs/old/responses", {"responses": {rid: False}})
    assert answered.status == 202
    view = await _settled(app, "old", "completed")
    assert view["outputs"] == [{"type": "str", "value": "5: rejected"}]


FACTORY = "tests.console.flows:rounds"


def _factories() -> ConsoleApp:
    """Workflows by name, and the factories of a module (``--workflow module:*``)."""
    return ConsoleApp(
        [flows.greeting], InMemoryCheckpointStorage(), modules=["tests.console.flows"]
    )


async def test_the_factories_of_a_module_are_listed_as_the_dapr_api_lists_them() -> None:
    app = _factories()
    listed = {w["name"]: w for w in _json(await _call(app, "GET", "/workflows"))}
    assert set(listed) == {"workflow:greeter", FACTORY}
    entry = listed[FACTORY]
    assert (entry["kind"], entry["workflow"], entry["start"]) == ("factory", "rounds", "hub")
    assert entry["description"].startswith("Rounds of a hub, its workers and a tally")
    params = {p["name"]: p for p in entry["parameters"]}
    assert list(params) == ["rounds", "workers", "pause_ms", "gates"]
    assert (params["workers"]["type"], params["workers"]["default"]) == ("integer", 2)
    assert not any(p["required"] for p in params.values())
    # the graph it builds with its defaults, each executor runnable here
    assert [(e["id"], e["placeable"]) for e in entry["executors"]] == [
        ("hub", True),
        ("w0", True),
        ("w1", True),
        ("tally", True),
    ]
    assert [g["kind"] for g in entry["edges"]] == ["fan_out", "fan_in", "edge"]
    assert entry["input_schema"] == {"type": "integer"}
    [host] = _json(await _call(app, "GET", "/hosts"))
    assert host["modules"] == ["tests.console.flows"]
    assert host["workflows"] == {"workflow:greeter": ["greeter", "shout"]}


async def test_a_factory_run_starts_with_its_parameters() -> None:
    app = _factories()
    body = {"factory": FACTORY, "params": {"rounds": 2, "workers": 3}, "input": 1, "run_id": "f1"}
    started = await _call(app, "POST", "/runs", body)
    assert started.status == 201, started.body
    view = await _settled(app, "f1", "completed")
    assert (view["workflow"], view["factory"], view["params"]) == (
        "rounds",
        FACTORY,
        {"rounds": 2, "workers": 3},
    )
    assert view["superstep"] == 6  # the hub, the workers, the tally: each round
    assert view["outputs"] == [{"type": "int", "value": 2}]
    [run] = _json(await _call(app, "GET", "/runs"))
    assert (run["workflow"], run["factory"]) == ("rounds", FACTORY)


async def test_a_factory_run_is_answered_and_resumed_with_its_parameters() -> None:
    app = _factories()
    params = {"rounds": 2, "workers": 1, "gates": [1]}
    body = {"factory": FACTORY, "params": params, "input": 1, "run_id": "g"}
    assert (await _call(app, "POST", "/runs", body)).status == 201
    view = await _settled(app, "g", "awaiting_input")
    [request] = view["pending_requests"]
    assert request["data"] == {"type": "tests.console.flows.Gate", "value": {"round": 1}}
    answer = {"responses": {request["request_id"]: True}}
    assert (await _call(app, "POST", "/runs/g/responses", answer)).status == 202
    view = await _settled(app, "g", "completed")  # the workflow built again from them
    assert view["outputs"] == [{"type": "int", "value": 2}]
    # a new run from the checkpoint at the gate, as the page resumes one
    resume = {"factory": FACTORY, "params": params, "checkpoint_id": "g@000003", "run_id": "g2"}
    assert (await _call(app, "POST", "/runs", resume)).status == 201
    view = await _settled(app, "g2", "awaiting_input")
    assert (view["factory"], view["params"]) == (FACTORY, params)
    # the parameters build another graph (two workers): not that checkpoint's
    other = {**resume, "params": {**params, "workers": 2}, "run_id": "g3"}
    refused = await _call(app, "POST", "/runs", other)
    assert refused.status == 409 and _json(refused)["title"] == "Checkpoint of another graph"


@pytest.mark.parametrize(
    ("body", "status", "detail"),
    [
        ({"factory": "tests.console.flows:nope"}, 404, "does not exist"),
        ({"factory": "tests.console.flows:Gate"}, 404, "does not exist"),
        ({"factory": "tests.cli.flows:greeting"}, 404, "listed as 'tests.cli.flows:*' in --workflow"),
        ({"factory": FACTORY, "params": {"laps": 2}}, 422, "does not take these parameters"),
        ({"factory": FACTORY, "params": {"rounds": "2"}}, 422, "parameter 'rounds'"),
        ({"factory": FACTORY, "params": {"rounds": 0}}, 422, "rounds must be at least 1"),
        ({"factory": FACTORY, "params": [2]}, 422, "params is a JSON object"),
        ({"factory": 3}, 422, "factory is module:function"),
    ],
)  # fmt: skip
async def test_a_factory_that_is_not_served_or_refuses_its_parameters_is_a_problem(
    body: dict[str, Any], status: int, detail: str
) -> None:
    answer = await _call(_factories(), "POST", "/runs", {"input": 1, **body})
    assert answer.status == status, answer.body
    problem = _json(answer)
    assert detail in problem["detail"]
    titles = {404: "Unknown workflow", 422: "Invalid workflow parameters"}
    assert problem["title"] == titles[status]


@pytest.mark.parametrize(
    ("method", "path", "body", "headers", "status", "title"),
    [
        ("POST", "/runs", {"workflow": "nope", "input": 1}, {}, 404, "Unknown workflow"),
        ("POST", "/runs", {"input": 1}, {}, 422, "No workflow"),
        ("POST", "/runs", {"workflow": "workflow:boom", "input": "x"}, {}, 422, "Input not accepted"),
        ("POST", "/runs", {"workflow": "workflow:boom", "input": 1, "run_id": "a/b"}, {}, 400, "Invalid run id"),
        ("POST", "/runs", [1], {}, 400, "Invalid body"),
        ("POST", "/runs", {"workflow": "workflow:boom"}, {"content-type": "text/plain"}, 415, "Unsupported media type"),
        ("GET", "/runs/nope", None, {}, 404, "Unknown run"),
        ("GET", "/runs/a%20b", None, {}, 422, "Invalid run id"),
        ("GET", "/checkpoints/nope", None, {}, 422, "Invalid checkpoint id"),
        ("GET", "/checkpoints/nope@000001", None, {}, 404, "Unknown checkpoint"),
        ("DELETE", "/runs", None, {}, 405, "Method not allowed"),
        ("GET", "/nothing", None, {}, 404, "Not found"),
    ],
)  # fmt: skip
async def test_bad_requests_get_a_problem(
    method: str, path: str, body: Any, headers: dict[str, str], status: int, title: str
) -> None:
    answer = await _call(_app(), method, path.replace("%20", " "), body, **headers)
    assert answer.status == status, answer.body
    assert answer.media_type == "application/problem+json"
    assert _json(answer)["title"] == title


async def test_a_body_that_is_no_json_is_a_problem() -> None:
    answer = await _app().handle(Request("POST", "/runs", {}, JSON, b"{not json"))
    assert isinstance(answer, Response) and answer.status == 400


async def test_event_ids_name_a_position_in_the_log() -> None:
    log = EventLog()
    log.append([{"type": "started"}, {"type": "superstep_completed"}, {"type": "output"}])
    log.append([{"type": "status"}])
    assert log.keys == [(0, 0), (0, 1), (1, 0), (1, 1)]
    assert log.after(None) == 0
    assert log.after("0.0") == 1
    assert log.after("0") == 2  # a bare chunk: after the whole chunk
    assert log.after("1.1") == 4
    with pytest.raises(ValueError, match="no event id"):
        log.after("x")


def test_request_heads_are_parsed_and_bad_ones_refused() -> None:
    request = parse_head(
        b"GET /runs/r%3A1/events?after=2 HTTP/1.1\r\nHost: 127.0.0.1:8301\r\n"
        b"Last-Event-ID: 1.2\r\n\r\n"
    )
    assert request.path == "/runs/r:1/events"
    assert request.query == {"after": "2"}
    assert request.headers["last-event-id"] == "1.2"
    for head in (
        b"GARBAGE\r\n\r\n",
        b"GET runs HTTP/1.1\r\n\r\n",
        b"GET / HTTP/1.1\r\nbad\r\n\r\n",
    ):
        with pytest.raises(_Refused):
            parse_head(head)
    assert parse_head(b"GET / HTTP/1.0\r\n\r\n").headers["connection"] == "close"
    assert _loopback_name("127.0.0.1:8301") and _loopback_name("localhost")
    assert _loopback_name("[::1]:8301")
    assert not _loopback_name("evil.example:8301")


async def test_it_keeps_a_bounded_number_of_finished_runs_and_their_checkpoints() -> None:
    storage = InMemoryCheckpointStorage()
    app = ConsoleApp([flows.greeting], storage, keep_runs=2)
    for i in range(4):
        body = {"workflow": "workflow:greeter", "input": {"name": "ada"}, "run_id": f"r{i}"}
        assert (await _call(app, "POST", "/runs", body)).status == 201
        await _settled(app, f"r{i}", "completed")
    listed = {run["run_id"] for run in _json(await _call(app, "GET", "/runs"))}
    assert listed == {"r2", "r3"}  # the two that ended last
    assert (await _call(app, "GET", "/runs/r0")).status == 404
    assert {info.run_id for info in await storage.list()} == {"r2", "r3"}
    with pytest.raises(ValueError, match="keep_runs"):
        ConsoleApp([flows.greeting], storage, keep_runs=0)


async def test_with_a_token_every_api_call_wants_it_and_the_page_stays_open() -> None:
    app = ConsoleApp([flows.greeting], InMemoryCheckpointStorage(), token="s3cret")
    assert (await _call(app, "GET", "/workflows")).status == 401
    assert (await _call(app, "GET", "/runs", authorization="Bearer wrong")).status == 401
    ok = await _call(app, "GET", "/workflows", authorization="bearer s3cret")
    assert ok.status == 200  # the scheme in any case
    assert (await _call(app, "GET", "/")).status == 200
    assert (await _call(app, "GET", "/healthz")).status == 200
    settings = _json(await _call(app, "GET", "/console/settings.json"))
    assert settings["token_required"] is True
    assert _json(await _call(_app(), "GET", "/console/settings.json"))["token_required"] is False
