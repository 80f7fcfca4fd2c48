"""Calling actor methods through the Dapr sidecar's HTTP API with one pooled client.

Same request as the SDK's ``ActorProxy`` (``POST /v1.0/actors/<type>/<id>/method/
<method>``, JSON body, ``dapr-api-token`` when set), but over a kept-alive
connection pool instead of a new HTTP session per call, which halves the cost of
an invocation on the superstep's critical path.
"""

from __future__ import annotations

import json
import os
from typing import Any
from urllib.parse import quote

import httpx

__all__ = ["ActorInvokeError", "ActorInvoker"]


class ActorInvokeError(Exception):
    """An actor call failed (the sidecar's status and error body are attached)."""

    def __init__(self, message: str, status: int | None) -> None:
        super().__init__(message)
        self.status = status


class ActorInvoker:
    def __init__(self, *, timeout_s: float = 300.0) -> None:
        host = os.environ.get("DAPR_RUNTIME_HOST", "127.0.0.1")
        port = os.environ.get("DAPR_HTTP_PORT", "3500")
        base = os.environ.get("DAPR_HTTP_ENDPOINT") or f"http://{host}:{port}"
        headers = {"content-type": "application/json"}
        token = os.environ.get("DAPR_API_TOKEN")
        if token:
            headers["dapr-api-token"] = token
        self._client = httpx.AsyncClient(
            base_url=f"{base.rstrip('/')}/v1.0", headers=headers, timeout=timeout_s
        )

    async def invoke(self, actor_type: str, actor_id: str, method: str, body: Any) -> Any:
        url = f"/actors/{quote(actor_type, safe='')}/{quote(actor_id, safe='')}/method/{method}"
        try:
            resp = await self._client.post(url, content=json.dumps(body))
        except httpx.HTTPError as exc:
            raise ActorInvokeError(f"{actor_type}/{actor_id}.{method}: {exc}", None) from exc
        if resp.status_code != 200:
            raise ActorInvokeError(
                f"{actor_type}/{actor_id}.{method} answered {resp.status_code}: {resp.text[:500]}",
                resp.status_code,
            )
        return resp.json() if resp.content else None

    async def aclose(self) -> None:
        await self._client.aclose()
