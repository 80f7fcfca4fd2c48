"""What stands in front of the apps (executor_host/_edge.py): the app token on the
sidecar's routes, the API token on the client's, the body limit, unknown actor types,
the id alphabet and text checks at the API boundary, and an OpenAPI document for
clients only.

The apps are called in-process without their lifespan (no sidecar): every request here
is answered before a handler would need the sidecar."""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
import pytest
from dapr.actor import ActorRuntime
from fastapi import FastAPI
from starlette.types import Message, Receive, Scope, Send

from executor_host import api, host
from executor_host._auth import TokenAuth
from executor_host._ids import CHECKPOINT_ID_PATTERN, RUN_ID_PATTERN, is_run_id
from executor_host._limits import BodyLimit
from executor_host._settings import DEFAULT_MAX_BODY_BYTES, Settings
from runtime.checkpoint import checkpoint_id_for
from sidecar.actors.config import _duration

APP_TOKEN = "app-token-7d1e"
API_TOKEN = "api-token-33a0"
COORDINATOR = "SuperstepCoordinator"
EXECUTOR = "superstep-executor-default"

Dispatched = list[tuple[str, str, str]]


def _api(**settings: Any) -> FastAPI:
    return api.create_app(Settings(app_id="superstep-api", workflows=(), **settings))


def _host(**settings: Any) -> FastAPI:
    return host.create_app(Settings(app_id="superstep-default", workflows=(), **settings))


def _client(app: Any) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://app")


def _is_problem(resp: httpx.Response, status: int, title: str | None = None) -> bool:
    problem = resp.json()
    return (
        resp.status_code == status
        and resp.headers["content-type"] == "application/problem+json"
        and problem["status"] == status
        and (title is None or problem["title"] == title)
        and isinstance(problem["detail"], str)
    )


@pytest.fixture
def dispatched(monkeypatch: pytest.MonkeyPatch) -> Dispatched:
    """ActorRuntime.dispatch replaced: records the actor calls that got through."""
    calls: Dispatched = []

    async def dispatch(
        type_: str, id_: str, method: str, body: bytes, reentrancy: str | None = None
    ) -> bytes:
        calls.append((type_, id_, method))
        return b'{"accepted":1}'

    monkeypatch.setattr(ActorRuntime, "dispatch", dispatch)
    return calls


_RESULT = json.dumps(
    {
        "run_id": "r",
        "epoch": 1,
        "superstep": 1,
        "executor_id": "a",
        "host": "h",
        "result": {"executor_id": "a", "superstep": 1, "status": "completed"},
    }
).encode()
_CE = {"content-type": "application/cloudevents+json"}

# (app, method, path, body) of every kind of call the sidecar makes on the apps
SIDECAR_CALLS = [
    (_api, "PUT", f"/actors/{COORDINATOR}/r/method/Result", _RESULT),
    (_api, "PUT", f"/actors/{COORDINATOR}/r/method/Cancel", b""),
    (_api, "PUT", f"/actors/{COORDINATOR}/r/method/remind/deadline", b"{}"),
    (_api, "DELETE", f"/actors/{COORDINATOR}/r", b""),
    (_api, "GET", "/dapr/config", b""),
    (_api, "GET", "/dapr/subscribe", b""),
    (_host, "POST", "/events/activations", b"{}"),
    (_host, "PUT", f"/actors/{EXECUTOR}/r:0/method/Execute", b"{}"),
    (_host, "GET", "/dapr/config", b""),
    (_host, "GET", "/dapr/subscribe", b""),
]


@pytest.mark.parametrize(("make", "method", "path", "body"), SIDECAR_CALLS)
@pytest.mark.parametrize("headers", [{}, {"dapr-api-token": "wrong"}, {"dapr-api-token": ""}])
async def test_the_sidecar_routes_want_the_app_token(
    make: Callable[..., FastAPI],
    method: str,
    path: str,
    body: bytes,
    headers: dict[str, str],
    dispatched: Dispatched,
) -> None:
    # a result event with no credentials was taken, and the run completed with it
    app = make(app_token=APP_TOKEN, api_token=API_TOKEN)
    async with _client(app) as client:
        client_token = {"Authorization": f"Bearer {API_TOKEN}"}  # not the sidecar's
        resp = await client.request(method, path, content=body, headers={**headers, **_CE})
        with_client_token = await client.request(
            method, path, content=body, headers={**headers, **client_token, **_CE}
        )
    assert _is_problem(resp, 401, "Unauthorized"), resp.text
    assert "APP_API_TOKEN" in resp.json()["detail"]
    assert _is_problem(with_client_token, 401), "the API token does not open sidecar routes"
    assert dispatched == [], "no actor call got through"


async def test_with_the_app_token_the_sidecar_reaches_its_routes(dispatched: Dispatched) -> None:
    sidecar = {"dapr-api-token": APP_TOKEN}
    async with _client(_api(app_token=APP_TOKEN, api_token=API_TOKEN)) as client:
        config = await client.get("/dapr/config", headers=sidecar)
        subscriptions = await client.get("/dapr/subscribe", headers=sidecar)
        call = await client.put(
            f"/actors/{COORDINATOR}/r/method/Result", content=_RESULT, headers=sidecar
        )
        api_route = await client.get("/runs", headers=sidecar)
    assert config.status_code == subscriptions.status_code == call.status_code == 200
    # results come as the executor actors' calls, not over pub/sub
    assert subscriptions.json() == []
    assert dispatched == [(COORDINATOR, "r", "Result")]
    assert _is_problem(api_route, 401), "the app token does not open client routes"


async def test_without_an_app_token_the_sidecar_routes_are_open(dispatched: Dispatched) -> None:
    async with _client(_host(api_token=API_TOKEN)) as client:
        config = await client.get("/dapr/config")
        call = await client.put(f"/actors/{EXECUTOR}/r:0/method/Execute", content=b"{}")
    assert config.status_code == call.status_code == 200
    assert dispatched == [(EXECUTOR, "r:0", "Execute")]


@pytest.mark.parametrize("make", [_api, _host])
async def test_one_liveness_route_the_sdks(make: Callable[..., FastAPI]) -> None:
    """``/healthz`` is the Dapr SDK's (``DaprActor`` registers it first, and the first
    route of a path wins): the apps add no second one that would never be reached."""
    app = make()
    assert not [r for r in app.routes if getattr(r, "path", None) == "/healthz"]
    async with _client(app) as client:
        answer = await client.get("/healthz")
    assert answer.status_code == 200 and answer.json() == {"status": "ok"}


@pytest.mark.parametrize("make", [_api, _host])
async def test_probes_and_the_api_document_are_open_with_both_tokens_set(
    make: Callable[..., FastAPI],
) -> None:
    async with _client(make(app_token=APP_TOKEN, api_token=API_TOKEN)) as client:
        answers = {
            path: await client.get(path)
            for path in ("/healthz", "/openapi.json", "/docs", "/docs/oauth2-redirect", "/redoc")
        }
    assert {path: r.status_code for path, r in answers.items()} == dict.fromkeys(answers, 200)
    assert answers["/openapi.json"].json()["openapi"].startswith("3.")


@pytest.mark.parametrize("make", [_api, _host])
@pytest.mark.parametrize("page", ["/docs", "/redoc"])
async def test_the_docs_pages_load_every_file_from_the_app(
    make: Callable[..., FastAPI], page: str
) -> None:
    """Offline, or with a token set, the pages still open: nothing they load comes from
    another host, and each file they name answers (without the token)."""
    async with _client(make(app_token=APP_TOKEN, api_token=API_TOKEN)) as client:
        html = (await client.get(page)).text
        assert re.findall(r"(?:https?:)?//[\w.-]+", html) == [], "no URL of another host"
        named = re.findall(r"""(?:src|href|url)\s*[=:]\s*['"]([^'"]+)['"]""", html)
        files = {path: await client.get(path) for path in named}
    assert "/openapi.json" in files
    assert len(files) >= 3, named  # the script, and the stylesheet or font, the favicon
    for path, resp in files.items():
        assert resp.status_code == 200, path
        assert len(resp.content) > 100, path
    scripts = [p for p in files if p.endswith(".js")]
    assert scripts and all(
        files[p].headers["content-type"].startswith("text/javascript") for p in scripts
    )


async def test_the_api_s_client_routes_want_the_bearer_token() -> None:
    async with _client(_api(app_token=APP_TOKEN, api_token=API_TOKEN)) as client:
        missing = await client.get("/runs")
        wrong = await client.get("/runs", headers={"Authorization": "Bearer wrong"})
        basic = await client.get("/runs", headers={"Authorization": f"Basic {API_TOKEN}"})
    for resp in (missing, wrong, basic):
        assert _is_problem(resp, 401, "Unauthorized"), resp.text
        assert resp.headers["www-authenticate"].startswith("Bearer")
        assert "SUPERSTEP_API_TOKEN" in resp.json()["detail"]


# -- TokenAuth on its own -----------------------------------------------------------------
async def _reached(scope: Scope, receive: Receive, send: Send) -> None:
    body = scope["path"].encode()
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": body})


@pytest.mark.parametrize(
    "authorization",
    [f"Bearer {API_TOKEN}", f"bearer {API_TOKEN}", f"BEARER {API_TOKEN}", f"beaRer   {API_TOKEN}"],
)
async def test_the_bearer_scheme_is_case_insensitive(authorization: str) -> None:
    guard = TokenAuth(_reached, api_token=API_TOKEN)
    async with _client(guard) as client:
        resp = await client.get("/runs", headers={"Authorization": authorization})
    assert resp.status_code == 200 and resp.text == "/runs"


@pytest.mark.parametrize(
    ("path", "wants"),
    [
        ("/events/activations", "app"),
        ("/events", "app"),
        ("/actors/T/a/method/m", "app"),
        ("/dapr/config", "app"),
        ("/eventsx", "api"),
        ("/dapr-like", "api"),
        ("/runs/events/x", "api"),
        ("/healthz", None),
        ("/readyz", None),
        ("/docs", None),
        ("/docs/sub", "api"),
    ],
)
async def test_each_path_wants_its_own_token(path: str, wants: str | None) -> None:
    guard = TokenAuth(_reached, app_token=APP_TOKEN, api_token=API_TOKEN, open_paths=["/docs"])
    credentials = {
        "app": {"dapr-api-token": APP_TOKEN},
        "api": {"Authorization": f"Bearer {API_TOKEN}"},
    }
    async with _client(guard) as client:
        bare = await client.get(path)
        answers = {kind: await client.get(path, headers=h) for kind, h in credentials.items()}
    if wants is None:
        assert bare.status_code == 200
    else:
        assert bare.status_code == 401
        assert {k: r.status_code for k, r in answers.items()} == {
            k: 200 if k == wants else 401 for k in answers
        }


# -- body limit ---------------------------------------------------------------------------
async def test_a_body_over_the_default_limit_is_refused_by_content_length() -> None:
    # a 50 MB start was read whole and took the API app to 906 MB
    body = b" " * (DEFAULT_MAX_BODY_BYTES + 1)
    async with _client(_api()) as client:
        resp = await client.post(
            "/runs", content=body, headers={"content-type": "application/json"}
        )
    assert _is_problem(resp, 413, "Request body too large"), resp.text
    assert resp.json()["limit"] == DEFAULT_MAX_BODY_BYTES == 4 * 1024 * 1024
    assert resp.headers["connection"] == "close"


@pytest.mark.parametrize(
    ("make", "path", "headers"),
    [
        (_api, "/runs", {"Authorization": f"Bearer {API_TOKEN}"}),
        (_api, f"/actors/{COORDINATOR}/r/method/Result", {"dapr-api-token": APP_TOKEN}),
        (_host, "/events/activations", {"dapr-api-token": APP_TOKEN}),
        (_host, f"/actors/{EXECUTOR}/r:0/method/Execute", {"dapr-api-token": APP_TOKEN}),
    ],
)
async def test_a_chunked_body_is_refused_once_it_passes_the_limit_and_not_read_further(
    make: Callable[..., FastAPI], path: str, headers: dict[str, str], dispatched: Dispatched
) -> None:
    pulled = 0

    async def chunks() -> AsyncIterator[bytes]:
        nonlocal pulled
        for _ in range(100):
            pulled += 1
            yield b"x" * 1000

    app = make(app_token=APP_TOKEN, api_token=API_TOKEN, max_body_bytes=2500)
    async with _client(app) as client:
        method = "PUT" if path.startswith("/actors/") else "POST"
        resp = await client.request(method, path, content=chunks(), headers=headers)
    assert _is_problem(resp, 413), resp.text
    assert pulled == 3, "reading stopped at the chunk that passed the limit"
    assert dispatched == []


async def test_a_body_at_the_limit_reaches_the_app_whole_in_one_message() -> None:
    seen: list[Message] = []

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        seen.append(await receive())
        await send({"type": "http.response.start", "status": 204, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    async def chunks() -> AsyncIterator[bytes]:
        for part in (b"ab", b"cd", b"e"):
            yield part

    async with _client(BodyLimit(app, limit=5)) as client:
        chunked = await client.post("/x", content=chunks())
        sized = await client.post("/x", content=b"12345")
        empty = await client.get("/x")
    assert chunked.status_code == sized.status_code == empty.status_code == 204
    assert [(m["body"], m["more_body"]) for m in seen] == [
        (b"abcde", False),
        (b"12345", False),
        (b"", False),
    ]


async def test_a_refused_content_length_reads_nothing_and_a_gone_client_runs_nothing() -> None:
    called: list[Scope] = []

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        called.append(scope)

    sent: list[Message] = []

    async def send(message: Message) -> None:
        sent.append(message)

    async def unread() -> Message:
        raise AssertionError("the body was read")

    def scope(*headers: tuple[bytes, bytes]) -> Scope:
        return {"type": "http", "method": "POST", "path": "/runs", "headers": list(headers)}

    limit = BodyLimit(app, limit=10)
    await limit(scope((b"content-length", b"11")), unread, send)
    await limit(scope((b"content-length", b"9" * 5000)), unread, send)
    await limit(scope((b"content-length", "\u00b2".encode("latin-1"))), unread, send)
    statuses = [m["status"] for m in sent if m["type"] == "http.response.start"]
    assert statuses == [413, 413, 400]

    sent.clear()
    parts = iter([{"type": "http.request", "body": b"12345", "more_body": True}])

    async def gone() -> Message:
        return next(parts, {"type": "http.disconnect"})

    await limit(scope(), gone, send)
    assert called == [] and sent == [], "no route runs on a partial body, and no answer"


def test_the_limit_and_the_app_token_come_from_the_environment() -> None:
    env = {"SUPERSTEP_WORKFLOWS": "m:w"}
    assert Settings.from_env(env).max_body_bytes == 4 * 1024 * 1024
    assert Settings.from_env(env).app_token == ""
    configured = Settings.from_env(
        {**env, "SUPERSTEP_MAX_BODY_BYTES": "1024", "APP_API_TOKEN": APP_TOKEN}
    )
    assert configured.max_body_bytes == 1024 and configured.app_token == APP_TOKEN
    assert Settings.from_env({**env, "SUPERSTEP_MAX_BODY_BYTES": "0"}).max_body_bytes == 0
    for bad in ("-1", "4MiB"):
        with pytest.raises(ValueError, match="SUPERSTEP_MAX_BODY_BYTES"):
            Settings.from_env({**env, "SUPERSTEP_MAX_BODY_BYTES": bad})


def test_the_api_app_s_own_pools_come_from_the_environment() -> None:
    env = {"SUPERSTEP_WORKFLOWS": "m:w"}
    assert Settings.from_env(env).pools == ()
    pools = Settings.from_env({**env, "SUPERSTEP_POOLS": " default, gpu_a,analysis,default"})
    assert pools.pools == ("default", "gpu_a", "analysis")
    for bad in ("a/b", "x y", "dé"):
        with pytest.raises(ValueError, match=f"SUPERSTEP_POOLS: '{bad}' is not a pool name"):
            Settings.from_env({**env, "SUPERSTEP_POOLS": f"default,{bad}"})


async def test_the_api_app_with_pools_takes_their_actor_calls_and_deliveries(
    dispatched: Dispatched,
) -> None:
    """With SUPERSTEP_POOLS, the API app subscribes to each pool's activations (a route
    per pool) and takes calls for each pool's actor type beside the coordinator's (the
    types are registered in the lifespan: tests/dapr/test_run_template.py runs them)."""
    async with _client(_api(pools=("default", "analysis"))) as client:
        subscriptions = (await client.get("/dapr/subscribe")).json()
        call = await client.put(f"/actors/{EXECUTOR}/r:0/method/Execute", content=b"{}")
        other = await client.put("/actors/superstep-executor-gpu/r:0/method/Execute")
    routes = {s["topic"]: s.get("route") or s["routes"]["default"] for s in subscriptions}
    assert routes == {
        "superstep.activations.default": "/events/activations/default",
        "superstep.activations.analysis": "/events/activations/analysis",
    }
    assert call.status_code == 200 and dispatched == [(EXECUTOR, "r:0", "Execute")]
    assert _is_problem(other, 404)


# -- actor types, the OpenAPI document ------------------------------------------------------
@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("PUT", "/actors/Nope/x/method/Execute"),
        ("PUT", "/actors/Nope/x/method/remind/deadline"),
        ("PUT", "/actors/Nope/x/method/timer/tick"),
        ("DELETE", "/actors/Nope/x"),
        ("PUT", f"/actors/{EXECUTOR}/x/method/Execute"),  # the hosts' type, not the API's
    ],
)
async def test_calls_for_actor_types_the_app_does_not_host_are_404_problems(
    method: str, path: str, dispatched: Dispatched
) -> None:
    async with _client(_api()) as client:
        resp = await client.request(method, path, content=b"{}")
    assert _is_problem(resp, 404, "Unknown actor type"), resp.text
    assert COORDINATOR in resp.json()["detail"]
    assert dispatched == []


@pytest.mark.parametrize("make", [_api, _host])
async def test_the_openapi_document_describes_the_client_api_only(
    make: Callable[..., FastAPI],
) -> None:
    async with _client(make()) as client:
        paths = set((await client.get("/openapi.json")).json()["paths"])
    hidden = {
        p for p in paths if p.split("/")[1] in ("dapr", "actors", "events", "healthz", "readyz")
    }
    assert hidden == set()
    if make is _api:
        assert {"/runs", "/runs/{run_id}", "/runs/{run_id}/cancel", "/hosts"} <= paths


# -- ids and text at the API boundary -------------------------------------------------------
def test_the_ids_the_runtime_makes_are_in_the_alphabet() -> None:
    import re
    import uuid

    for run_id in (uuid.uuid4().hex, "c0123456789.run-1", "a:b", "a.b", "_", "-.-", "x" * 200):
        assert is_run_id(run_id), run_id
        assert re.fullmatch(CHECKPOINT_ID_PATTERN, checkpoint_id_for(run_id, 3))
    for bad in ("", ".", "..", "...", "a||b", "a/b", "../x", "a b", "a%2F", "a\n", "é", "x" * 201):
        assert not is_run_id(bad), bad
        assert not re.fullmatch(RUN_ID_PATTERN, bad) or len(bad) > 200, bad


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("GET", "/runs/a%7C%7Cb", None),
        ("GET", "/runs/a%7C%7Cb/events", None),
        ("GET", "/runs/a%7C%7Cb/checkpoints", None),
        ("GET", "/runs/a%7C%7Cb/topology", None),
        ("POST", "/runs/a%7C%7Cb/cancel", None),
        ("POST", "/runs/a%7C%7Cb/responses", {"responses": {"q": 1}}),
        ("GET", "/runs/%2E%2E%2E", None),
        ("GET", "/runs/a%20b", None),
        ("GET", "/checkpoints/x%7C%7Cy@000001", None),
        ("GET", "/checkpoints/x@", None),
        ("GET", "/checkpoints/x", None),
        ("GET", "/checkpoints/..@000001", None),
        ("POST", "/runs", {"workflow": "w", "has_input": False, "checkpoint_id": "../x@1"}),
        ("POST", "/runs", {"workflow": "w", "has_input": False, "checkpoint_id": "a||b@1"}),
        ("POST", "/runs", {"workflow": "w", "input": 0, "run_id": "a||b"}),
    ],
)
async def test_ids_outside_the_alphabet_are_refused_before_the_sidecar(
    method: str, path: str, body: Any
) -> None:
    # they answered 500, the raw id sent on in the state store's URL
    async with _client(_api()) as client:
        resp = await client.request(method, path, json=body)
    assert _is_problem(resp, 422, "Invalid request"), resp.text


@pytest.mark.parametrize(
    "body",
    [
        b'{"workflow": "nope", "input": "\\ud800"}',
        b'{"workflow": "nope", "input": ["ok", {"k": "a\\udfffb"}]}',
        b'{"workflow": "nope", "params": {"\\udc00": 1}}',
        b'{"workflow": "nope", "input": "\\ude00\\ud83d"}',  # a pair in the wrong order
    ],
)
async def test_a_lone_surrogate_in_a_start_is_a_400(body: bytes) -> None:
    # it answered 502 Coordinator unavailable
    async with _client(_api()) as client:
        resp = await client.post(
            "/runs", content=body, headers={"content-type": "application/json"}
        )
    assert _is_problem(resp, 400, "Invalid text"), resp.text


async def test_a_lone_surrogate_in_responses_is_a_400_and_a_pair_is_text() -> None:
    json_type = {"content-type": "application/json"}
    async with _client(_api()) as client:
        lone = await client.post(
            "/runs/r/responses", content=b'{"responses": {"q": "\\ud800"}}', headers=json_type
        )
        in_name = await client.post(
            "/runs", content=b'{"workflow": "\\ud800", "input": 1}', headers=json_type
        )
        # a surrogate pair is one character: past the text check to the workflow lookup
        pair = await client.post(
            "/runs", content=b'{"workflow": "nope", "input": "\\ud83d\\ude00"}', headers=json_type
        )
    assert _is_problem(lone, 400, "Invalid text"), lone.text
    assert _is_problem(in_name, 422), in_name.text
    assert _is_problem(pair, 404, "Unknown workflow"), pair.text


async def test_the_openapi_document_declares_the_api_token_when_one_is_set() -> None:
    async with _client(_api(api_token=API_TOKEN)) as client:
        document = (await client.get("/openapi.json")).json()
    assert document["components"]["securitySchemes"] == {
        "apiToken": {"type": "http", "scheme": "bearer"}
    }
    assert document["security"] == [{"apiToken": []}]
    async with _client(_api()) as client:
        open_document = (await client.get("/openapi.json")).json()
    assert "security" not in open_document
    assert "securitySchemes" not in open_document.get("components", {})


async def test_a_query_parameter_a_route_does_not_take_is_a_400_naming_it() -> None:
    async with _client(_api(api_token=API_TOKEN)) as client:
        auth = {"Authorization": f"Bearer {API_TOKEN}"}
        typo = await client.get("/runs?stauts=failed", headers=auth)
        blank = await client.get("/runs?offset=1&=", headers=auth)
        nothing = await client.get("/hosts?x=1", headers=auth)
        anonymous = await client.get("/runs?stauts=failed")
    assert typo.status_code == blank.status_code == nothing.status_code == 400
    assert typo.headers["content-type"].startswith("application/problem+json")
    assert "'stauts'" in typo.json()["detail"] and "status" in typo.json()["detail"]
    assert "''" in blank.json()["detail"]
    assert "takes: none" in nothing.json()["detail"]
    assert anonymous.status_code == 401  # the token is checked first


@pytest.mark.parametrize("make", [_api, _host])
async def test_the_sidecar_is_told_how_long_idle_actors_stay(make: Callable[..., FastAPI]) -> None:
    async with _client(make(actor_idle_s=42)) as client:
        config = (await client.get("/dapr/config")).json()
    # the SDK writes Dapr's duration form, which both sidecars read
    assert config["actorIdleTimeout"] == "0h0m42s0ms0μs"
    assert _duration(config["actorIdleTimeout"], 3600.0, "actorIdleTimeout") == 42.0
