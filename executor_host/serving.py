"""uvicorn's httptools HTTP protocol, sending each response's head and body in one write.

uvicorn writes a response's status line and headers as soon as the app starts the
response, and the body in a second write when it comes, a moment later in the same
turn of the loop. With ``TCP_NODELAY`` (which the apps and the sidecar set) that is two
segments for every answer: two sends here, and two wake-ups and reads in the client,
which gets the head first and then waits for the body. Holding the head until the body
follows makes it one of each. On this machine that was 30 us less CPU in the server
and 35 us less in the client per request, and 55 us less round trip (one aiohttp client
against a Starlette app, 4,000 requests, alternating); a W1 superstep answers about
eleven requests between its three processes.

The head waits at most until the end of the current turn of the event loop: a response
whose body comes later (an event stream) has its head flushed then. Writes are never
reordered, and closing the transport sends what is held first.

Used by the apps (``uvicorn --http executor_host.serving:HttpProtocol``, as in
``dapr.yaml`` and ``deploy/entrypoint.sh``) and by the local sidecar's HTTP API.
"""

from __future__ import annotations

import asyncio
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

__all__ = ["HttpProtocol"]


class _HeadWithBody:
    """A transport proxy that holds a response head until the next write (or the end of
    the loop's current turn) and sends both as one."""

    __slots__ = ("_held", "_loop", "_transport")

    def __init__(self, transport: asyncio.Transport, loop: asyncio.AbstractEventLoop) -> None:
        self._transport = transport
        self._loop = loop
        self._held: bytes | None = None

    def write(self, data: bytes | bytearray | memoryview) -> None:
        held = self._held
        if held is not None:
            self._held = None
            self._transport.write(b"".join((held, data)))
        elif data[:5] == b"HTTP/" and data[-4:] == b"\r\n\r\n":
            self._held = bytes(data)
            self._loop.call_soon(self._flush)
        else:
            self._transport.write(data)

    def _flush(self) -> None:
        held = self._held
        if held is not None:
            self._held = None
            if not self._transport.is_closing():
                self._transport.write(held)

    def close(self) -> None:
        self._flush()
        self._transport.close()

    def write_eof(self) -> None:
        self._flush()
        self._transport.write_eof()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._transport, name)


class HttpProtocol(HttpToolsProtocol):
    """``HttpToolsProtocol`` whose responses go out as one write each."""

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self.transport = _HeadWithBody(transport, self.loop)  # type: ignore[assignment]
