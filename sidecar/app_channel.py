"""The sidecar's HTTP channel to its app (``appChannelAddress:appPort``).

One pool of keep-alive connections per app (:mod:`sidecar.http1`): every pub/sub
delivery, actor call, timer, reminder and service invocation of a sidecar goes
through it, so it sits on the hot path of everything the app receives. (aiohttp's
client cost about three times the CPU per call, httpx more still.)
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Mapping

from runtime.http1 import Http1Error, Http1Pool

__all__ = ["AppChannel", "AppResponse", "AppUnreachable"]


class AppUnreachable(Exception):
    """The app could not be reached or did not answer (connection refused, reset,
    timed out): the call never produced an HTTP status."""


class AppResponse:
    """Status, headers and body of one app answer."""

    __slots__ = ("body", "headers", "status")

    def __init__(self, status: int, headers: Mapping[str, str], body: bytes) -> None:
        self.status = status
        self.headers = dict(headers)
        self.body = body


class AppChannel:
    """Calls into the app; a connection error raises :class:`AppUnreachable`."""

    def __init__(
        self,
        app_id: str,
        host: str,
        port: int,
        *,
        timeout: float = 60.0,
        app_token: str | None = None,
    ) -> None:
        self.app_token = app_token
        self.app_id = app_id
        self.host = host
        self.port = port
        self._timeout = timeout
        self._pool = self._new_pool()

    def _new_pool(self) -> Http1Pool:
        return Http1Pool(self.host, self.port, timeout=self._timeout, connect_timeout=5.0)

    async def request(
        self,
        method: str,
        path: str,
        *,
        body: bytes = b"",
        headers: Mapping[str, str] | None = None,
        query: str = "",
        timeout_s: float | None = None,
    ) -> AppResponse:
        url = path if path.startswith("/") else f"/{path}"
        if query:
            url = f"{url}?{query}"
        out_headers = {"dapr-app-id": self.app_id, **(headers or {})}
        if self.app_token:  # daprd sends APP_API_TOKEN on every call, over any caller's
            out_headers["dapr-api-token"] = self.app_token
        try:
            response = await self._pool.request(
                method, url, body=body, headers=out_headers, timeout_s=timeout_s
            )
        except Http1Error as exc:
            raise AppUnreachable(f"{method} {url}: {exc}") from exc
        return AppResponse(response.status, response.headers, response.body)

    async def healthy(self, path: str, timeout_s: float) -> bool:
        """daprd's HTTP app health probe: ``GET path`` answers 2xx within ``timeout_s``
        (a stopped process keeps accepting TCP connections; it answers nothing)."""
        try:
            answer = await self.request("GET", path, timeout_s=timeout_s)
        except AppUnreachable:
            return False
        return 200 <= answer.status < 300

    async def port_open(self) -> bool:
        """True when the app port accepts TCP connections."""
        try:
            _, writer = await asyncio.open_connection(self.host, self.port)
        except OSError:
            return False
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()
        return True

    async def close(self) -> None:
        # a closed channel opens new connections if it is used again
        pool, self._pool = self._pool, self._new_pool()
        await pool.close()
