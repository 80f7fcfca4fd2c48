"""The sidecar's HTTP API as one Starlette app, behind the ``dapr-api-token`` check and
daprd's request body limit (``--max-body-size``, 4 MiB by default)."""

from __future__ import annotations

import hmac
from typing import TYPE_CHECKING

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from sidecar.api.http_actors import actor_routes
from sidecar.api.http_common import BodyTooLarge, unauthorized
from sidecar.api.http_misc import misc_routes
from sidecar.api.http_state import state_routes

if TYPE_CHECKING:
    from sidecar.runtime import Sidecar

__all__ = ["build_http_app"]

_EXEMPT = ("/v1.0/healthz", "/v1.0/healthz/outbound")


class _TokenCheck:
    """401 ``invalid api token`` unless the request carries the configured token."""

    def __init__(self, app: ASGIApp, token: str) -> None:
        self.app = app
        self.token = token.encode()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["path"] not in _EXEMPT:
            given = b""
            for name, value in scope["headers"]:
                if name == b"dapr-api-token":
                    given = value
                    break
            if not hmac.compare_digest(given, self.token):
                await unauthorized()(scope, receive, send)
                return
        await self.app(scope, receive, send)


class _BodyLimit:
    """A request body past ``limit`` bytes fails where its handler reads it, with
    :class:`BodyTooLarge` ("stream too large"), which each handler answers as daprd's
    does; a declared ``Content-Length`` past it fails at the first read."""

    def __init__(self, app: ASGIApp, limit: int) -> None:
        self.app = app
        self.limit = limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = 0
        for name, value in scope["headers"]:
            if name == b"content-length" and value.isdigit():
                declared = int(value)
        limit, seen = self.limit, 0

        async def limited() -> Message:
            nonlocal seen
            if declared > limit:
                raise BodyTooLarge()
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > limit:
                    raise BodyTooLarge()
            return message

        await self.app(scope, limited, send)


def build_http_app(sidecar: Sidecar, api_token: str | None, max_body_bytes: int) -> Starlette:
    routes = [
        *state_routes(sidecar.state),
        *misc_routes(sidecar),
        *actor_routes(sidecar),
    ]
    middleware = [Middleware(_BodyLimit, limit=max_body_bytes)]
    if api_token:
        middleware.insert(0, Middleware(_TokenCheck, token=api_token))
    return Starlette(routes=routes, middleware=middleware)
