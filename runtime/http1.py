"""A small HTTP/1.1 client for the Dapr hops between an app and its sidecar.

Both ends use it: the apps (``executor_host._sidecar``) for their calls into the sidecar
(publishes, actor calls, state reads and writes), and the local sidecar
(``sidecar.app_channel``) for its deliveries, actor calls, timers and reminders to the
app. Their CPU is on every superstep's critical path: keep-alive connections with
httptools parsing the responses spend a fraction of the CPU per call of aiohttp's or
httpx's client; with httpx in its place the apps were several times slower on real
daprd (``bench/README.md``, "Speed tricks measured on daprd"). It lives here, in the
package both may import, so that neither imports the other; it needs ``httptools``
(the ``dapr`` extra), and nothing in the core imports it. It does what these hops need and no more:

* one request at a time per connection, at most ``max_connections`` at once (more
  requests wait for one), idle connections kept for reuse (up to ``max_idle``) and
  dropped once idle for ``idle_s`` (before a server's keep-alive timeout closes them
  under a request) or when the server closes them;
* ``Content-Length`` request bodies; responses with ``Content-Length`` or chunked
  bodies (a response whose body ends with the connection, or an answer to ``HEAD``,
  is not supported: neither occurs on these hops); ``https`` through ``ssl``;
* a total ``timeout`` per request and a ``connect_timeout``; a request that fails or
  is cancelled drops its connection. A request is never sent twice.

Failures to get an HTTP answer (refused, reset, timed out, malformed) raise
:class:`Http1Error`; any status, 5xx included, is an answer.
"""

from __future__ import annotations

import asyncio
import ssl as ssl_module
import time
from collections.abc import Mapping

import httptools

__all__ = ["Http1Error", "Http1Pool", "Http1Response"]


class Http1Error(ConnectionError):
    """The request produced no HTTP answer."""


class Http1Response:
    """Status, headers (names in lower case) and body of one answer."""

    __slots__ = ("body", "headers", "status")

    def __init__(self, status: int, headers: dict[str, str], body: bytes) -> None:
        self.status = status
        self.headers = headers
        self.body = body


class _Conn(asyncio.Protocol):
    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.parser = httptools.HttpResponseParser(self)
        self.waiter: asyncio.Future[Http1Response] | None = None
        self.headers: dict[str, str] = {}
        self.body: list[bytes] = []
        self.closed = False
        self.keep_alive = False
        self.idle_since = 0.0

    # -- asyncio.Protocol -----------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]  # a stream transport

    def data_received(self, data: bytes) -> None:
        if self.waiter is None:  # bytes nobody asked for: the connection is not usable
            self.close()
            return
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError as exc:
            self._fail(Http1Error(f"malformed HTTP response: {exc}"))
            self.close()

    def eof_received(self) -> bool:
        return False  # close; connection_lost fails a request still waiting

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self._fail(Http1Error(f"connection closed before the response was complete ({exc})"))

    # -- httptools callbacks ------------------------------------------------------------
    def on_header(self, name: bytes, value: bytes) -> None:
        key = name.decode("latin-1").lower()
        text = value.decode("latin-1")
        have = self.headers.get(key)
        self.headers[key] = text if have is None else f"{have}, {text}"

    def on_body(self, body: bytes) -> None:
        self.body.append(body)

    def on_message_complete(self) -> None:
        # asked here: once the message is complete the parser has reset and says False
        self.keep_alive = self.parser.should_keep_alive()
        waiter, self.waiter = self.waiter, None
        if waiter is not None and not waiter.done():
            waiter.set_result(
                Http1Response(self.parser.get_status_code(), self.headers, b"".join(self.body))
            )

    # -- ours ---------------------------------------------------------------------------
    def start(self) -> asyncio.Future[Http1Response]:
        self.headers, self.body, self.keep_alive = {}, [], False
        self.waiter = asyncio.get_running_loop().create_future()
        return self.waiter

    def _fail(self, exc: Http1Error) -> None:
        waiter, self.waiter = self.waiter, None
        if waiter is not None and not waiter.done():
            waiter.set_exception(exc)

    def close(self) -> None:
        self.closed = True
        if self.transport is not None:
            self.transport.abort()


class Http1Pool:
    """Keep-alive connections to one ``host:port``; :meth:`request` sends one request."""

    def __init__(
        self,
        host: str,
        port: int,
        *,
        ssl: ssl_module.SSLContext | None = None,
        timeout: float = 60.0,
        connect_timeout: float = 5.0,
        idle_s: float = 2.0,
        max_idle: int = 64,
        max_connections: int = 256,
    ) -> None:
        self.host, self.port, self.ssl = host, port, ssl
        self.timeout, self.connect_timeout = timeout, connect_timeout
        self.idle_s, self.max_idle = idle_s, max_idle
        default_port = 443 if ssl is not None else 80
        self._host_header = host if port == default_port else f"{host}:{port}"
        self._idle: list[_Conn] = []
        self._slots = asyncio.Semaphore(max_connections)
        self._closed = False

    async def _connection(self) -> _Conn:
        now = time.monotonic()
        idle = self._idle
        while idle:
            conn = idle.pop()
            if not conn.closed and now - conn.idle_since < self.idle_s:
                return conn
            conn.close()
        if self._closed:
            raise Http1Error("the client is closed")
        loop = asyncio.get_running_loop()
        try:
            _, conn = await asyncio.wait_for(
                loop.create_connection(_Conn, self.host, self.port, ssl=self.ssl),
                self.connect_timeout,
            )
        except (OSError, TimeoutError) as exc:
            raise Http1Error(f"cannot connect to {self.host}:{self.port}: {exc!r}") from exc
        return conn

    async def request(
        self,
        method: str,
        target: str,
        *,
        body: bytes = b"",
        headers: Mapping[str, str] | None = None,
        timeout_s: float | None = None,
    ) -> Http1Response:
        """``method target`` (a path with its query) with ``body``; the whole answer
        within ``timeout_s`` (the pool's ``timeout`` when None)."""
        async with self._slots:
            return await self._send(method, target, body, headers, timeout_s)

    async def _send(
        self,
        method: str,
        target: str,
        body: bytes,
        headers: Mapping[str, str] | None,
        timeout_s: float | None,
    ) -> Http1Response:
        limit = self.timeout if timeout_s is None else timeout_s
        lines = [f"{method} {target} HTTP/1.1\r\nhost: {self._host_header}\r\n"]
        if headers:
            for k, v in headers.items():
                if "\n" in k or "\n" in v or "\r" in k or "\r" in v:
                    raise ValueError(f"header {k!r} holds a line break")
                lines.append(f"{k}: {v}\r\n")
        lines.append(f"content-length: {len(body)}\r\n\r\n")
        head = "".join(lines).encode("latin-1")
        conn = await self._connection()
        waiter = conn.start()
        assert conn.transport is not None
        conn.transport.write(head + body if len(body) < 65536 else head)
        if len(body) >= 65536:
            conn.transport.write(body)
        timer = asyncio.get_running_loop().call_later(
            limit, conn._fail, Http1Error(f"no answer within {limit} s")
        )
        try:
            response = await waiter
        except BaseException:
            conn.close()  # a half-read answer would be read as the next one's
            raise
        finally:
            timer.cancel()
        if conn.closed or not conn.keep_alive or self._closed:
            conn.close()
        elif len(self._idle) < self.max_idle:
            conn.idle_since = time.monotonic()
            self._idle.append(conn)
        else:
            conn.close()
        return response

    async def close(self) -> None:
        self._closed = True
        idle, self._idle = self._idle, []
        for conn in idle:
            conn.close()
