"""The sidecar's HTTP channel to its app (``appChannelAddress:appPort``)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Mapping

import httpx

__all__ = ["AppChannel", "AppResponse"]


class AppResponse:
    """Status, headers and body of one app answer."""

    __slots__ = ("body", "headers", "status")

    def __init__(self, status: int, headers: Mapping[str, str], body: bytes) -> None:
        self.status = status
        self.headers = dict(headers)
        self.body = body


class AppChannel:
    """Calls into the app; a connection error raises ``httpx.TransportError``."""

    def __init__(self, app_id: str, host: str, port: int, *, timeout: float = 60.0) -> None:
        self.app_id = app_id
        self.host = host
        self.port = port
        self._client = httpx.AsyncClient(
            base_url=f"http://{host}:{port}",
            timeout=httpx.Timeout(timeout, connect=5.0),
            limits=httpx.Limits(max_connections=256, max_keepalive_connections=64),
        )

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
        response = await self._client.request(method, url, content=body, headers=out_headers)
        return AppResponse(response.status_code, response.headers, response.content)

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
        await self._client.aclose()
