"""Calling actor methods through the Dapr sidecar's HTTP API with one pooled client.

Same request as the SDK's ``ActorProxy`` (``POST /v1.0/actors/<type>/<id>/method/
<method>``, JSON body, ``dapr-api-token`` when set), but over kept-alive
connections of one aiohttp session instead of a new HTTP session per call: the
call sits on the superstep's critical path.
"""

from __future__ import annotations

import json
import os
from typing import Any
from urllib.parse import quote

import aiohttp

__all__ = ["ActorInvokeError", "ActorInvoker"]


class ActorInvokeError(Exception):
    """An actor call failed (the sidecar's status and error body are attached)."""

    def __init__(self, message: str, status: int | None) -> None:
        super().__init__(message)
        self.status = status


class ActorInvoker:
    """Create inside the running event loop (an aiohttp session belongs to one)."""

    def __init__(self, *, timeout_s: float = 300.0) -> None:
        host = os.environ.get("DAPR_RUNTIME_HOST", "127.0.0.1")
        port = os.environ.get("DAPR_HTTP_PORT", "3500")
        base = os.environ.get("DAPR_HTTP_ENDPOINT") or f"http://{host}:{port}"
        self._base = f"{base.rstrip('/')}/v1.0"
        self._headers = {"content-type": "application/json"}
        token = os.environ.get("DAPR_API_TOKEN")
        if token:
            self._headers["dapr-api-token"] = token
        self._session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=256),
            timeout=aiohttp.ClientTimeout(total=timeout_s, connect=10.0),
            skip_auto_headers=("User-Agent", "Accept", "Accept-Encoding"),
        )

    async def invoke(self, actor_type: str, actor_id: str, method: str, body: Any) -> Any:
        url = (
            f"{self._base}/actors/{quote(actor_type, safe='')}/"
            f"{quote(actor_id, safe='')}/method/{method}"
        )
        try:
            async with self._session.post(
                url, data=json.dumps(body), headers=self._headers
            ) as resp:
                content = await resp.read()
                status = resp.status
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise ActorInvokeError(f"{actor_type}/{actor_id}.{method}: {exc!r}", None) from exc
        if status != 200:
            text = content[:500].decode(errors="replace")
            raise ActorInvokeError(
                f"{actor_type}/{actor_id}.{method} answered {status}: {text}", status
            )
        return json.loads(content) if content else None

    async def sidecar_ready(self, timeout_s: float = 2.0) -> str | None:
        """None when the sidecar's outbound health (components loaded, APIs up) is
        good, else why not. (Its ``/v1.0/healthz`` waits for this app, so a readiness
        probe of the app must not depend on that one.)"""
        url = f"{self._base}/healthz/outbound"
        try:
            async with self._session.get(
                url, timeout=aiohttp.ClientTimeout(total=timeout_s)
            ) as resp:
                await resp.read()
                if resp.status in (200, 204):
                    return None
                return f"the Dapr sidecar's outbound health answered {resp.status}"
        except (aiohttp.ClientError, TimeoutError) as exc:
            return f"the Dapr sidecar is unreachable: {exc!r}"

    async def aclose(self) -> None:
        await self._session.close()
