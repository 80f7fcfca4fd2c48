"""The HTTP/1.1 client of the app <-> sidecar hops (``runtime.http1``: the local
sidecar's app channel and the apps' calls into their sidecar), against small servers."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest

import runtime.http1

Reply = Callable[[bytes, bytes], bytes | None]
"""(request head, request body) -> raw response bytes, or None to hang."""


class Server:
    """A scripted HTTP server: each request is answered by ``reply``; counts connections."""

    def __init__(self, reply: Reply) -> None:
        self.reply = reply
        self.connections = 0
        self.requests: list[tuple[bytes, bytes]] = []
        self.server: asyncio.Server | None = None
        self.port = 0
        self.writers: list[asyncio.StreamWriter] = []
        self._seen = asyncio.Condition()

    async def wait_requests(self, n: int) -> None:
        """Until the server has read ``n`` requests in all."""
        async with self._seen:
            await self._seen.wait_for(lambda: len(self.requests) >= n)

    async def start(self) -> None:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = self.server.sockets[0].getsockname()[1]

    async def _serve(self, r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        self.connections += 1
        self.writers.append(w)
        try:
            while True:
                head = await r.readuntil(b"\r\n\r\n")
                length = 0
                for line in head.split(b"\r\n")[1:]:
                    name, _, value = line.partition(b":")
                    if name.strip().lower() == b"content-length":
                        length = int(value)
                body = await r.readexactly(length) if length else b""
                self.requests.append((head, body))
                async with self._seen:
                    self._seen.notify_all()
                out = self.reply(head, body)
                if out is None:
                    await asyncio.Event().wait()  # never answer
                    return
                w.write(out)
                await w.drain()
                if b"connection: close" in out.lower():
                    w.close()
                    return
        except (asyncio.IncompleteReadError, ConnectionError, asyncio.CancelledError):
            return

    async def drop_connections(self) -> None:
        for w in self.writers:
            w.close()
        self.writers.clear()

    async def stop(self) -> None:
        await self.drop_connections()
        if self.server is not None:
            self.server.close()


def ok(body: bytes = b"{}", extra: bytes = b"") -> bytes:
    return (
        b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n%scontent-length: %d\r\n\r\n%s"
        % (
            extra,
            len(body),
            body,
        )
    )


Serve = Callable[[Reply], Awaitable[Server]]


@pytest.fixture
async def serve() -> AsyncIterator[Serve]:
    servers: list[Server] = []

    async def start(reply: Reply) -> Server:
        s = Server(reply)
        await s.start()
        servers.append(s)
        return s

    yield start
    for s in servers:
        await s.stop()


@pytest.fixture
def h1() -> Any:
    """The client module under test."""
    return runtime.http1


async def test_requests_reuse_one_kept_alive_connection(serve: Serve, h1: Any) -> None:
    server = await serve(lambda head, body: ok(b'{"echo":' + body + b"}", b"ETag: 7\r\n"))
    pool = h1.Http1Pool("127.0.0.1", server.port)
    try:
        for i in range(5):
            r = await pool.request("POST", f"/v1.0/x?i={i}", body=b"%d" % i, headers={"a": "b"})
            assert (r.status, r.body, r.headers["etag"]) == (200, b'{"echo":%d}' % i, "7")
        assert server.connections == 1
        head, body = server.requests[0]
        assert head.startswith(b"POST /v1.0/x?i=0 HTTP/1.1\r\n")
        assert b"host: 127.0.0.1:%d\r\n" % server.port in head and b"a: b\r\n" in head
        assert body == b"0"
        # concurrent requests each take a connection of their own, then go back idle
        got = await asyncio.gather(*(pool.request("GET", "/") for _ in range(4)))
        assert [g.status for g in got] == [200] * 4 and server.connections == 4
    finally:
        await pool.close()


async def test_chunked_bodies_statuses_and_large_requests(serve: Serve, h1: Any) -> None:
    def reply(head: bytes, body: bytes) -> bytes:
        if head.startswith(b"GET /chunked"):
            return b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n"
        if head.startswith(b"GET /empty"):
            return b"HTTP/1.1 204 No Content\r\n\r\n"
        if head.startswith(b"GET /fail"):
            return ok(b"boom").replace(b"200 OK", b"500 Internal Server Error")
        return ok(b"%d" % len(body))

    server = await serve(reply)
    pool = h1.Http1Pool("127.0.0.1", server.port)
    try:
        assert (await pool.request("GET", "/chunked")).body == b"abcde"
        empty = await pool.request("GET", "/empty")
        assert (empty.status, empty.body) == (204, b"")
        assert (await pool.request("GET", "/fail")).status == 500  # an answer, not an error
        big = b"x" * 300_000
        assert (await pool.request("POST", "/big", body=big)).body == b"300000"
        assert server.connections == 1
    finally:
        await pool.close()


async def test_connection_close_and_a_server_dropping_idle_connections(
    serve: Serve, h1: Any
) -> None:
    server = await serve(lambda head, body: ok(extra=b"connection: close\r\n"))
    pool = h1.Http1Pool("127.0.0.1", server.port)
    try:
        for _ in range(3):
            assert (await pool.request("GET", "/")).status == 200
        assert server.connections == 3  # "connection: close" is honoured
    finally:
        await pool.close()
    server = await serve(lambda head, body: ok())
    pool = h1.Http1Pool("127.0.0.1", server.port)
    try:
        await pool.request("GET", "/")
        conn = pool._idle[0]
        seen = asyncio.get_running_loop().create_future()
        lost = conn.connection_lost

        def connection_lost(exc: Exception | None) -> None:
            lost(exc)
            seen.set_result(None)

        conn.connection_lost = connection_lost
        await server.drop_connections()  # the server closes the idle connection
        await seen
        assert conn.closed
        assert (await pool.request("GET", "/")).status == 200  # on a new connection
        assert server.connections == 2
    finally:
        await pool.close()


async def test_at_most_max_connections_at_once(serve: Serve, h1: Any) -> None:
    server = await serve(lambda head, body: ok())
    pool = h1.Http1Pool("127.0.0.1", server.port, max_connections=2)
    try:
        got = await asyncio.gather(*(pool.request("GET", f"/{i}") for i in range(8)))
        assert [g.status for g in got] == [200] * 8
        assert server.connections == 2  # the other six waited and reused them
    finally:
        await pool.close()


async def test_connections_idle_too_long_are_not_reused(serve: Serve, h1: Any) -> None:
    server = await serve(lambda head, body: ok())
    pool = h1.Http1Pool("127.0.0.1", server.port, idle_s=0.0)
    try:
        await pool.request("GET", "/")
        await pool.request("GET", "/")
        assert server.connections == 2
    finally:
        await pool.close()


async def test_no_answer_is_an_error_and_loses_the_connection(serve: Serve, h1: Any) -> None:
    server = await serve(lambda head, body: None if b"/hang" in head else ok())
    pool = h1.Http1Pool("127.0.0.1", server.port, timeout=0.2)
    try:
        with pytest.raises(h1.Http1Error, match=r"no answer within 0\.2 s"):
            await pool.request("GET", "/hang")
        assert pool._idle == []
        assert (await pool.request("GET", "/", timeout_s=5)).status == 200
        assert server.connections == 2
        # a cancelled caller drops its connection too (its answer could come later)
        task = asyncio.ensure_future(pool.request("GET", "/hang", timeout_s=30))
        await server.wait_requests(3)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert (await pool.request("GET", "/")).status == 200
        assert server.connections == 3
    finally:
        await pool.close()


async def test_malformed_answers_unreachable_servers_and_bad_headers(serve: Serve, h1: Any) -> None:
    server = await serve(lambda head, body: b"SMTP ready\r\n\r\n")
    pool = h1.Http1Pool("127.0.0.1", server.port)
    try:
        with pytest.raises(h1.Http1Error, match="malformed HTTP response"):
            await pool.request("GET", "/")
        with pytest.raises(ValueError, match="line break"):
            await pool.request("GET", "/", headers={"x": "a\r\nevil: 1"})
    finally:
        await pool.close()
    nowhere = h1.Http1Pool("127.0.0.1", 1, connect_timeout=1.0)
    with pytest.raises(h1.Http1Error, match=r"cannot connect to 127\.0\.0\.1:1\b"):
        await nowhere.request("GET", "/")
    cut = await serve(lambda head, body: b"HTTP/1.1 200 OK\r\ncontent-length: 10\r\n\r\nabc")
    pool = h1.Http1Pool("127.0.0.1", cut.port, timeout=5)
    try:
        task = asyncio.ensure_future(pool.request("GET", "/"))
        await cut.wait_requests(1)
        await cut.drop_connections()  # the body is cut short
        with pytest.raises(h1.Http1Error, match="before the response was complete"):
            await task
    finally:
        await pool.close()
    with pytest.raises(h1.Http1Error, match="closed"):
        await pool.request("GET", "/")
