"""A small HTTP/1.1 server for ``ConsoleApp`` on asyncio streams (the standard library
only: the core install has no web framework).

It reads a request line, headers (at most 16 KiB) and a ``Content-Length`` body (at most
``MAX_BODY``), hands the parsed request to the app, and writes its answer: a whole
response (connections are kept alive between them), or an event stream written as it
comes (the connection closes after it). Anything it cannot read is answered with a
problem and the connection closed. Bound to a loopback address, it answers only requests
whose ``Host`` names a loopback address (a page of another site cannot reach it through a
name that resolves here).
"""

from __future__ import annotations

import asyncio
import contextlib
import http
import ipaddress
import logging
from urllib.parse import parse_qsl, unquote, urlsplit

from runtime.console._app import MAX_BODY, ConsoleApp, EventStream, Problem, Request, Response

__all__ = ["ConsoleServer", "serve_console"]

log = logging.getLogger("runtime.console")

MAX_HEAD = 16 * 1024
"""The most bytes a request line and its headers may take."""
HEAD_TIMEOUT_S = 10.0
IDLE_TIMEOUT_S = 60.0
"""How long a kept-alive connection may wait for its next request."""


class _Refused(Exception):
    """A request that cannot be read: answered with ``problem``, then the connection closes."""

    def __init__(self, problem: Problem) -> None:
        super().__init__(problem.detail)
        self.problem = problem


class ConsoleServer:
    """``app`` served on ``host``:``port`` (port 0: a free one)."""

    def __init__(self, app: ConsoleApp, host: str = "127.0.0.1", port: int = 8301) -> None:
        self.app = app
        self.host = host
        self.port = port
        self._server: asyncio.Server | None = None
        self._loopback = _is_loopback(host)
        self._connections: set[asyncio.Task[None]] = set()

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}/"

    async def start(self) -> None:
        self._server = await asyncio.start_server(
            self._connection, self.host, self.port, limit=MAX_HEAD
        )
        self.port = self._server.sockets[0].getsockname()[1]

    async def serve_forever(self) -> None:
        assert self._server is not None, "start() first"
        await self._server.serve_forever()

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
        for task in list(self._connections):
            task.cancel()
        await self.app.close()

    # -- one connection -------------------------------------------------------------------
    async def _connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        if task is not None:
            self._connections.add(task)
        try:
            first = True
            while True:
                try:
                    request = await self._read(reader, HEAD_TIMEOUT_S if first else IDLE_TIMEOUT_S)
                except _Refused as refused:
                    await _write(writer, refused.problem.response("/"), head=False, keep=False)
                    return
                if request is None:
                    return
                first = False
                answer = await self.app.handle(request)
                keep = request.headers.get("connection", "").lower() != "close"
                if isinstance(answer, EventStream):
                    await _stream(writer, answer)
                    return
                await _write(writer, answer, head=request.method == "HEAD", keep=keep)
                if not keep:
                    return
        except (ConnectionError, asyncio.IncompleteReadError, TimeoutError):
            pass  # the client went away (or sat idle): nothing to answer
        except asyncio.CancelledError:
            pass
        finally:
            if task is not None:
                self._connections.discard(task)
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()

    async def _read(self, reader: asyncio.StreamReader, wait_s: float) -> Request | None:
        """The next request; None when the client closed the connection before one."""
        try:
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), wait_s)
        except asyncio.IncompleteReadError as exc:
            if not exc.partial.strip():
                return None
            raise _Refused(Problem(400, "Bad request", "the request ends early")) from exc
        except asyncio.LimitOverrunError as exc:
            raise _Refused(
                Problem(431, "Headers too large", f"request headers take at most {MAX_HEAD} bytes")
            ) from exc
        request = parse_head(head)
        if self._loopback and not _loopback_name(request.headers.get("host", "")):
            raise _Refused(
                Problem(421, "Misdirected request", "this console answers loopback names only")
            )
        if "transfer-encoding" in request.headers:
            raise _Refused(Problem(411, "Length required", "send the body with Content-Length"))
        length = request.headers.get("content-length", "0")
        if not length.isdigit():
            raise _Refused(Problem(400, "Bad request", f"Content-Length {length!r}"))
        size = int(length)
        if size > MAX_BODY:
            raise _Refused(
                Problem(413, "Body too large", f"a request body takes at most {MAX_BODY} bytes")
            )
        body = await asyncio.wait_for(reader.readexactly(size), HEAD_TIMEOUT_S) if size else b""
        return Request(request.method, request.path, request.query, request.headers, body)


def parse_head(head: bytes) -> Request:
    """A request line and headers (``\\r\\n`` separated, ending with a blank line), as a
    ``Request`` without body; ``_Refused`` when they are no HTTP/1.x request."""
    try:
        text = head.decode("latin-1")
        line, *lines = text[:-4].split("\r\n")
        method, target, version = line.split(" ")
    except ValueError as exc:
        raise _Refused(Problem(400, "Bad request", "not an HTTP request line")) from exc
    if not version.startswith("HTTP/1.") or not method.isalpha() or not target.startswith("/"):
        raise _Refused(Problem(400, "Bad request", "not an HTTP/1.x request"))
    headers: dict[str, str] = {}
    for raw in lines:
        name, sep, value = raw.partition(":")
        if not sep or not name or name != name.strip():
            raise _Refused(Problem(400, "Bad request", f"malformed header line {raw[:40]!r}"))
        key = name.lower()
        value = value.strip()
        headers[key] = f"{headers[key]}, {value}" if key in headers else value
    if version == "HTTP/1.0" and headers.get("connection", "").lower() != "keep-alive":
        headers["connection"] = "close"
    parts = urlsplit(target)
    query = dict(parse_qsl(parts.query))
    return Request(method.upper(), unquote(parts.path), query, headers)


async def _write(
    writer: asyncio.StreamWriter, response: Response, *, head: bool, keep: bool
) -> None:
    lines = [
        f"HTTP/1.1 {response.status} {http.HTTPStatus(response.status).phrase}",
        f"Content-Length: {len(response.body)}",
        f"Connection: {'keep-alive' if keep else 'close'}",
    ]
    if response.status != 204:
        lines.append(f"Content-Type: {response.media_type}")
    lines += [f"{k}: {v}" for k, v in response.headers.items()]
    writer.write(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1"))
    if not head and response.status != 204:
        writer.write(response.body)
    await writer.drain()


async def _stream(writer: asyncio.StreamWriter, answer: EventStream) -> None:
    writer.write(
        b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream; charset=utf-8\r\n"
        b"Cache-Control: no-cache\r\nX-Accel-Buffering: no\r\nConnection: close\r\n\r\n"
    )
    chunks = answer.chunks
    try:
        async for chunk in chunks:
            writer.write(chunk)
            await writer.drain()
    finally:
        aclose = getattr(chunks, "aclose", None)
        if aclose is not None:
            await aclose()


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _loopback_name(host_header: str) -> bool:
    """Whether a ``Host`` header names a loopback address (``127.0.0.1:8301``,
    ``localhost``, ``[::1]:8301``)."""
    name = host_header.strip()
    if name.startswith("["):
        name = name[1 : name.find("]")] if "]" in name else ""
    else:
        name = name.rpartition(":")[0] if ":" in name else name
    return _is_loopback(name.lower())


async def serve_console(
    app: ConsoleApp, host: str = "127.0.0.1", port: int = 8301
) -> ConsoleServer:
    """``app`` served on ``host``:``port``, started (its ``url`` says where)."""
    server = ConsoleServer(app, host, port)
    await server.start()
    return server
