"""The sidecar's HTTP channel to its app (``appChannelAddress:appPort``).

One pooled aiohttp session per app: every pub/sub delivery, actor call, timer,
reminder and service invocation of a sidecar goes through it, so it sits on the
hot path of everything the app receives. (httpx cost several times more CPU per
call here, measured with py-spy on the distributed benchmarks.)
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Mapping

import aiohttp

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

    def __init__(self, app_id: str, host: str, port: int, *, timeout: float = 60.0) -> None:
        self.app_id = app_id
        self.host = host
        self.port = port
        self._base = f"http://{host}:{port}"
        self._timeout = aiohttp.ClientTimeout(total=timeout, connect=5.0)
        self._session: aiohttp.ClientSession | None = None

    def _client(self) -> aiohttp.ClientSession:
        # created lazily: a session belongs to the running event loop
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=256, limit_per_host=256, force_close=False),
                timeout=self._timeout,
                auto_decompress=False,
                skip_auto_headers=("User-Agent", "Accept", "Accept-Encoding"),
            )
        return self._session

    async def request(
        self,
        method: str,
        path: str,
        *,
        body: bytes = b"",
        headers: Mapping[str, str] | None = None,
        query: str = "",
    ) -> AppResponse:
        url = path if path.startswith("/") else f"/{path}"
        if query:
            url = f"{url}?{query}"
        out_headers = {"dapr-app-id": self.app_id, **(headers or {})}
        try:
            async with self._client().request(
                method, self._base + url, data=body, headers=out_headers
            ) as response:
                content = await response.read()
                return AppResponse(response.status, response.headers, content)
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise AppUnreachable(f"{method} {url}: {exc!r}") from exc

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
        if self._session is not None:
            await self._session.close()
            self._session = None
