"""A small asyncio Redis client (RESP2) for the sidecar's Redis components.

The sidecar sends about a dozen Redis commands per superstep; through redis-py 8 each
costs about twice the CPU of the round trip itself (connection pool, retry wrapper,
metrics hooks, the pure-Python RESP3 parser). This client keeps only what the
components need:

* one connection per client, shared by every caller: a command is written at once
  and its reply is matched by order (Redis answers in order), so concurrent callers
  never wait for a free connection, and a ``MULTI ... EXEC`` block or a pipeline goes
  out in one write and stays contiguous;
* a separate connection for each blocking reader (``XREADGROUP ... BLOCK``), from
  :meth:`RespClient.dedicated`, so a blocked read holds up no one else;
* ``AUTH``, ``SELECT`` and TLS at connect, from the component's metadata; a lost
  connection fails the commands in flight with :class:`RespConnectionError` and the
  next command connects again.

Replies: simple strings and bulk strings are ``bytes``, integers ``int``, arrays
``list``, nulls ``None``; an error reply is raised as :class:`RespError` by
:meth:`~RespClient.execute`, and returned in place by :meth:`~RespClient.pipeline`
and :meth:`~RespClient.transaction` (one per command, like redis-py's
``raise_on_error=False``).
"""

from __future__ import annotations

import asyncio
import collections
import ssl as ssl_module
from collections.abc import Sequence
from typing import Any, cast

__all__ = [
    "Arg",
    "RedisFailure",
    "RespClient",
    "RespConnectionError",
    "RespError",
    "RespProtocolError",
    "field_map",
]

Arg = bytes | str | int | float
_CRLF = b"\r\n"


class RedisFailure(Exception):
    """Any failure of a Redis command: an error reply or a lost connection."""


class RespError(RedisFailure):
    """An error reply from Redis (``-ERR ...``, ``-NOSCRIPT ...``)."""

    @property
    def code(self) -> str:
        return str(self).split(" ", 1)[0]


class RespConnectionError(RedisFailure, ConnectionError):
    """Redis could not be reached, or the connection was lost with commands in flight."""


class RespProtocolError(RespConnectionError):
    """Redis sent bytes that are not RESP (the connection is dropped)."""


def _arg(a: Arg) -> bytes:
    if isinstance(a, bytes):
        return a
    if isinstance(a, str):
        return a.encode()
    if isinstance(a, bool):  # bool is an int: refuse it rather than send 1/0 silently
        raise TypeError("a Redis argument cannot be a bool")
    if isinstance(a, int | float):
        return repr(a).encode()
    raise TypeError(f"a Redis argument cannot be a {type(a).__name__}")


def field_map(flat: list[bytes] | None) -> dict[bytes, bytes]:
    """A flat ``[field, value, field, value, ...]`` reply (HGETALL, a stream entry's
    fields, XINFO) as a dict; a nil reply as an empty one."""
    return {} if not flat else dict(zip(flat[::2], flat[1::2], strict=True))


def encode_command(args: Sequence[Arg]) -> bytes:
    """``args`` as a RESP array of bulk strings."""
    parts = [b"*%d\r\n" % len(args)]
    for a in args:
        b = _arg(a)
        parts.append(b"$%d\r\n" % len(b))
        parts.append(b)
        parts.append(_CRLF)
    return b"".join(parts)


_INCOMPLETE: Any = object()


def _parse(buf: bytes | bytearray, pos: int) -> tuple[Any, int]:
    """One reply from ``buf[pos:]``: (value, position after it), or (``_INCOMPLETE``, -1)
    when the buffer does not hold all of it yet."""
    end = buf.find(_CRLF, pos)
    if end < 0:
        return _INCOMPLETE, -1
    kind = buf[pos]
    line = bytes(buf[pos + 1 : end])
    nxt = end + 2
    if kind == 0x24:  # $ bulk string
        n = int(line)
        if n < 0:
            return None, nxt
        if len(buf) < nxt + n + 2:
            return _INCOMPLETE, -1
        return bytes(buf[nxt : nxt + n]), nxt + n + 2
    if kind == 0x2A:  # * array
        n = int(line)
        if n < 0:
            return None, nxt
        items = []
        for _ in range(n):
            item, nxt = _parse(buf, nxt)
            if nxt < 0:
                return _INCOMPLETE, -1
            items.append(item)
        return items, nxt
    if kind == 0x2B:  # + simple string
        return line, nxt
    if kind == 0x3A:  # : integer
        return int(line), nxt
    if kind == 0x2D:  # - error
        return RespError(line.decode(errors="replace")), nxt
    raise RespProtocolError(f"not a RESP reply: {bytes(buf[pos : pos + 40])!r}")


class _Protocol(asyncio.Protocol):
    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.waiting: collections.deque[asyncio.Future[Any]] = collections.deque()
        self.buf = bytearray()
        self.lost: BaseException | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # a stream transport (uvloop's do not derive from asyncio.Transport)
        self.transport = cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        buf = self.buf
        buf += data
        pos = 0
        waiting = self.waiting
        try:
            while pos < len(buf):
                value, nxt = _parse(buf, pos)
                if nxt < 0:
                    break
                pos = nxt
                if not waiting:
                    raise RespProtocolError("a reply no command was waiting for")
                fut = waiting.popleft()
                if not fut.done():  # a caller that was cancelled still takes its reply
                    fut.set_result(value)
        except (RespProtocolError, ValueError) as exc:
            self._fail(RespProtocolError(f"redis: malformed reply: {exc}"))
            if self.transport is not None:
                self.transport.abort()
            return
        if pos:
            del buf[:pos]

    def connection_lost(self, exc: Exception | None) -> None:
        self._fail(RespConnectionError(f"redis: connection lost ({exc or 'closed'})"))

    def _fail(self, exc: BaseException) -> None:
        self.lost = exc
        while self.waiting:
            fut = self.waiting.popleft()
            if not fut.done():
                fut.set_exception(exc)
        self.buf.clear()


class RespClient:
    """A Redis client over one connection (see the module docstring)."""

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 6379,
        *,
        db: int = 0,
        username: str | None = None,
        password: str | None = None,
        ssl: bool = False,
        connect_timeout: float = 5.0,
    ) -> None:
        self.host, self.port, self.db = host, port, db
        self.username, self.password = username, password
        self.ssl, self.connect_timeout = ssl, connect_timeout
        self._proto: _Protocol | None = None
        self._connecting: asyncio.Future[_Protocol] | None = None
        self._closed = False

    def dedicated(self) -> RespClient:
        """A new client with the same settings and its own connection (blocking reads)."""
        return RespClient(
            self.host,
            self.port,
            db=self.db,
            username=self.username,
            password=self.password,
            ssl=self.ssl,
            connect_timeout=self.connect_timeout,
        )

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"

    async def _connect(self) -> _Protocol:
        loop = asyncio.get_running_loop()
        ctx = ssl_module.create_default_context() if self.ssl else None
        try:
            _, proto = await asyncio.wait_for(
                loop.create_connection(_Protocol, self.host, self.port, ssl=ctx),
                self.connect_timeout,
            )
        except (OSError, TimeoutError) as exc:
            raise RespConnectionError(f"redis: cannot connect to {self.address}: {exc}") from exc
        setup: list[Sequence[Arg]] = []
        if self.password:
            setup.append(
                ("AUTH", self.username, self.password) if self.username else ("AUTH", self.password)
            )
        if self.db:
            setup.append(("SELECT", self.db))
        if setup:
            for reply in await self._send(proto, setup):
                if isinstance(reply, RespError):
                    assert proto.transport is not None
                    proto.transport.close()
                    raise RespConnectionError(f"redis: {reply}")
        return proto

    async def _protocol(self) -> _Protocol:
        proto = self._proto
        if proto is not None and proto.lost is None:
            return proto
        if self._closed:
            raise RespConnectionError("redis: the client is closed")
        if self._connecting is None:
            # one connect for every caller waiting now; a caller that is cancelled
            # while it waits does not cancel it for the others
            self._connecting = asyncio.ensure_future(self._connect_and_keep())
        return await asyncio.shield(self._connecting)

    async def _connect_and_keep(self) -> _Protocol:
        try:
            self._proto = await self._connect()
            return self._proto
        finally:
            self._connecting = None

    @staticmethod
    def _send(proto: _Protocol, commands: Sequence[Sequence[Arg]]) -> asyncio.Future[list[Any]]:
        if proto.lost is not None or proto.transport is None:
            raise RespConnectionError(f"redis: connection lost ({proto.lost})")
        loop = asyncio.get_running_loop()
        futs = [loop.create_future() for _ in commands]
        proto.transport.write(b"".join(encode_command(c) for c in commands))
        proto.waiting.extend(futs)
        return asyncio.gather(*futs)

    async def execute(self, *args: Arg) -> Any:
        """Run one command; an error reply raises :class:`RespError`."""
        proto = self._proto
        if proto is None or proto.lost is not None:
            proto = await self._protocol()
        if proto.transport is None:
            raise RespConnectionError("redis: not connected")
        fut: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        proto.transport.write(encode_command(args))
        proto.waiting.append(fut)
        reply = await fut
        if isinstance(reply, RespError):
            raise reply
        return reply

    async def pipeline(self, commands: Sequence[Sequence[Arg]]) -> list[Any]:
        """Run several commands in one write; the replies in order, errors in place."""
        if not commands:
            return []
        return await self._send(await self._protocol(), commands)

    async def transaction(self, commands: Sequence[Sequence[Arg]]) -> list[Any]:
        """``MULTI``, the commands, ``EXEC`` in one write: the commands' replies in order,
        errors in place (Redis applies the others: there is no rollback). A command
        Redis refuses to queue aborts the whole block: that raises :class:`RespError`."""
        if not commands:
            return []
        replies = await self._send(await self._protocol(), [("MULTI",), *commands, ("EXEC",)])
        result = replies[-1]
        if isinstance(result, RespError):  # EXECABORT: one command could not be queued
            queued = [r for r in replies[1:-1] if isinstance(r, RespError)]
            raise RespError(f"{result}: {queued[0]}" if queued else str(result))
        if result is None:  # a WATCH failed; this client never WATCHes
            raise RespError("EXECABORT the transaction was aborted")
        assert isinstance(result, list)
        return result

    async def aclose(self) -> None:
        self._closed = True
        proto, self._proto = self._proto, None
        if proto is not None and proto.transport is not None:
            proto.transport.close()
