"""``SidecarClient`` against a small scripted HTTP server: what each answer becomes
(a status is an answer, 5xx included; no answer is an error without a status), and
one kept-alive connection for calls one after another."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field

import pytest

from executor_host._sidecar import (
    ActorInvokeError,
    SidecarClient,
    SidecarError,
    StateConflict,
    StateRefused,
)
from runtime.ports import Refused, refuses
from sidecar.testing import free_port

Answer = Callable[[str, str, bytes], bytes | None]
"""(method, target, body) -> the raw HTTP response to send; None: close without one;
b"": never answer."""


@dataclass
class Server:
    answer: Answer
    connections: int = 0
    requests: list[tuple[str, str, dict[str, str], bytes]] = field(default_factory=list)


def _response(status: int, body: bytes = b"", **headers: str) -> bytes:
    head = [f"HTTP/1.1 {status} X", f"content-length: {len(body)}"]
    head += [f"{k.replace('_', '-')}: {v}" for k, v in headers.items()]
    return ("\r\n".join(head) + "\r\n\r\n").encode() + body


@pytest.fixture
async def server(monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Server]:
    state = Server(answer=lambda m, t, b: _response(204))
    stop = asyncio.Event()

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        state.connections += 1
        try:
            while line := await reader.readline():
                method, target, _ = line.decode().split(" ", 2)
                headers = {}
                while (h := await reader.readline()) not in (b"\r\n", b""):
                    name, _, value = h.decode().partition(":")
                    headers[name.strip().lower()] = value.strip()
                body = await reader.readexactly(int(headers.get("content-length", "0")))
                state.requests.append((method, target, headers, body))
                raw = state.answer(method, target, body)
                if raw is None:
                    break
                if raw == b"":
                    await stop.wait()
                    break
                writer.write(raw)
                await writer.drain()
        finally:
            writer.close()

    port = free_port()
    srv = await asyncio.start_server(serve, "127.0.0.1", port)
    monkeypatch.setenv("DAPR_HTTP_PORT", str(port))
    monkeypatch.delenv("DAPR_HTTP_ENDPOINT", raising=False)
    monkeypatch.setenv("DAPR_API_TOKEN", "tok-1")
    try:
        yield state
    finally:
        stop.set()
        srv.close()
        await srv.wait_closed()


async def test_calls_carry_the_token_and_reuse_one_connection(server: Server) -> None:
    server.answer = lambda m, t, b: (
        _response(200, b'{"ok":true}') if "/actors/" in t else _response(204)
    )
    client = SidecarClient()
    try:
        assert await client.invoke("T", "run:1", "Execute", {"x": 1}) == {"ok": True}
        await client.publish("pubsub", "a/b", b"{}", "application/cloudevents+json")
        await client.save_state("store", [("k", "v", "3")])
        await client.transact_state("store", [("k", "v", None)])
    finally:
        await client.aclose()
    assert server.connections == 1
    [invoke, publish, save, transact] = server.requests
    assert invoke[:2] == ("POST", "/v1.0/actors/T/run%3A1/method/Execute")
    assert json.loads(invoke[3]) == {"x": 1}
    assert publish[:2] == ("POST", "/v1.0/publish/pubsub/a/b")
    assert publish[2]["content-type"] == "application/cloudevents+json"
    assert json.loads(save[3]) == [{"key": "k", "value": "v", "etag": "3"}]
    assert json.loads(transact[3]) == {
        "operations": [{"operation": "upsert", "request": {"key": "k", "value": "v"}}]
    }
    assert all(r[2]["dapr-api-token"] == "tok-1" for r in server.requests)


async def test_state_reads_give_bytes_and_etag_or_nothing(server: Server) -> None:
    server.answer = lambda m, t, b: (
        _response(200, b'"{}"', etag="7") if t.endswith("/here") else _response(204)
    )
    client = SidecarClient()
    try:
        assert await client.get_state("store", "here") == (b'"{}"', "7")
        assert await client.get_state("store", "gone") == (None, None)
    finally:
        await client.aclose()


async def test_unexpected_statuses_are_errors_with_their_status(server: Server) -> None:
    server.answer = lambda m, t, b: (
        _response(409, b"etag mismatch") if t == "/v1.0/state/store" else _response(500, b"boom")
    )
    client = SidecarClient()
    try:
        with pytest.raises(ActorInvokeError, match="500: boom") as invoke:
            await client.invoke("T", "a", "M", {})
        with pytest.raises(StateConflict) as conflict:
            await client.save_state("store", [("k", "v", "1")])
        with pytest.raises(SidecarError, match="state transaction answered 500") as transaction:
            await client.transact_state("store", [("k", "v", "1")])
    finally:
        await client.aclose()
    assert invoke.value.status == transaction.value.status == 500
    assert conflict.value.status == 409


def test_a_4xx_but_a_conflict_or_come_back_later_refuses_a_call_for_good() -> None:
    assert [s for s in (400, 401, 403, 404, 413, 422) if refuses(s)] == [
        400,
        401,
        403,
        404,
        413,
        422,
    ]
    assert not any(refuses(s) for s in (None, 200, 204, 408, 409, 425, 429, 500, 502, 503))


async def test_a_state_call_refused_for_good_is_state_refused(server: Server) -> None:
    """daprd's 400 for a body over its limit is a refusal (``Refused``); a 5xx, a 429
    and no answer are outages, which may pass; a 409 on a save is a conflict."""
    stream = b'{"errorCode":"ERR_MALFORMED_REQUEST","message":"stream too large"}'
    statuses = iter([400, 400, 400, 429, 500, 409])
    server.answer = lambda m, t, b: _response(next(statuses), stream)
    client = SidecarClient()
    try:
        errors: list[SidecarError] = []
        for call in (
            client.get_state("store", "k"),
            client.save_state("store", [("k", "v", None)]),
            client.transact_state("store", [("k", "v", "1")]),
            client.transact_state("store", [("k", "v", "1")]),
            client.transact_state("store", [("k", "v", "1")]),
            client.save_state("store", [("k", "v", "1")]),
        ):
            with pytest.raises(SidecarError) as failed:
                await call
            errors.append(failed.value)
    finally:
        await client.aclose()
    assert [type(e) for e in errors] == [StateRefused] * 3 + [SidecarError] * 2 + [StateConflict]
    assert all(isinstance(e, Refused) == (e.status == 400) for e in errors)
    assert "answered 400" in str(errors[2]) and "stream too large" in str(errors[2])
    assert [e.status for e in errors] == [400, 400, 400, 429, 500, 409]


async def test_no_answer_is_an_error_without_a_status(server: Server) -> None:
    server.answer = lambda m, t, b: None  # the connection closes without an answer
    client = SidecarClient(timeout_s=0.3)
    try:
        with pytest.raises(ActorInvokeError) as closed:
            await client.invoke("T", "a", "M", {})
        server.answer = lambda m, t, b: b""  # never answers
        with pytest.raises(SidecarError) as silent:
            await client.publish("pubsub", "t", b"{}", "application/json")
    finally:
        await client.aclose()
    assert closed.value.status is None and silent.value.status is None
    with pytest.raises(SidecarError, match="closed") as after_close:
        await client.get_state("store", "k")
    assert after_close.value.status is None


async def test_an_unreachable_sidecar_is_an_error_without_a_status(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("DAPR_HTTP_PORT", str(free_port()))  # nothing listens there
    client = SidecarClient()
    try:
        with pytest.raises(SidecarError) as refused:
            await client.get_state("store", "k")
    finally:
        await client.aclose()
    assert refused.value.status is None


def test_the_endpoint_must_be_an_http_url(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DAPR_HTTP_ENDPOINT", "unix:///tmp/dapr.sock")
    with pytest.raises(ValueError, match="not an http"):
        SidecarClient()
