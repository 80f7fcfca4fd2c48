"""``executor_host.serving``: uvicorn's httptools protocol with a response's head and body
in one write — the proxy's rules with a recording transport, and real requests through
a uvicorn server that uses it (plain, empty, streamed and keep-alive responses)."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from executor_host.serving import HttpProtocol, _HeadWithBody

HEAD = b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\n"


class Recording:
    def __init__(self) -> None:
        self.writes: list[bytes] = []
        self.closed = False

    def write(self, data: bytes) -> None:
        self.writes.append(bytes(data))

    def is_closing(self) -> bool:
        return self.closed

    def close(self) -> None:
        self.closed = True

    def get_extra_info(self, name: str) -> Any:
        return f"info:{name}"


def proxy() -> tuple[_HeadWithBody, Recording]:
    rec = Recording()
    return _HeadWithBody(rec, asyncio.get_running_loop()), rec  # type: ignore[arg-type]


async def test_a_head_waits_for_its_body_and_both_go_out_in_one_write() -> None:
    p, rec = proxy()
    p.write(HEAD)
    assert rec.writes == []
    p.write(b"ok")
    assert rec.writes == [HEAD + b"ok"]


async def test_a_head_without_a_body_goes_out_at_the_end_of_the_loop_turn() -> None:
    p, rec = proxy()
    p.write(b"HTTP/1.1 204 No Content\r\n\r\n")
    assert rec.writes == []
    await asyncio.sleep(0)  # one turn of the loop
    assert rec.writes == [b"HTTP/1.1 204 No Content\r\n\r\n"]
    p.write(b"later chunk")  # nothing held any more: written as it comes
    assert rec.writes[-1] == b"later chunk"


async def test_closing_sends_a_held_head_first_and_other_calls_reach_the_transport() -> None:
    p, rec = proxy()
    p.write(HEAD)
    p.close()
    assert rec.writes == [HEAD] and rec.closed
    assert p.get_extra_info("peername") == "info:peername"


async def test_writes_that_are_not_a_head_are_not_held() -> None:
    p, rec = proxy()
    p.write(b"5\r\nhello\r\n")
    assert rec.writes == [b"5\r\nhello\r\n"]


async def _json(request: Request) -> Response:
    return JSONResponse({"echo": (await request.body()).decode()})


async def _empty(request: Request) -> Response:
    return Response(status_code=204)


async def _stream(request: Request) -> Response:
    async def chunks() -> AsyncIterator[bytes]:
        for i in range(3):
            await asyncio.sleep(0.01)
            yield f"chunk{i};".encode()

    return StreamingResponse(chunks(), media_type="text/plain")


@pytest.fixture
async def server() -> AsyncIterator[str]:
    app = Starlette(
        routes=[
            Route("/json", _json, methods=["POST"]),
            Route("/empty", _empty),
            Route("/stream", _stream),
        ]
    )
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    srv = uvicorn.Server(
        uvicorn.Config(app, http=HttpProtocol, log_level="warning", lifespan="off")
    )
    task = asyncio.create_task(srv.serve(sockets=[sock]))
    while not srv.started:
        assert not task.done(), "the server did not start"
        await asyncio.sleep(0.005)
    yield f"http://127.0.0.1:{port}"
    srv.should_exit = True
    await task


async def test_responses_through_a_server_using_the_protocol(server: str) -> None:
    async with httpx.AsyncClient(base_url=server) as client:  # one kept-alive connection
        for i in range(20):
            r = await client.post("/json", content=f"body {i}")
            assert r.status_code == 200 and r.json() == {"echo": f"body {i}"}
            r = await client.get("/empty")
            assert r.status_code == 204 and r.content == b""
        r = await client.get("/stream")
        assert r.status_code == 200 and r.text == "chunk0;chunk1;chunk2;"
