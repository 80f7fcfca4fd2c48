"""The sidecar's HTTP API as one Starlette app, behind the ``dapr-api-token`` check."""

from __future__ import annotations

import hmac
from typing import TYPE_CHECKING

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.types import ASGIApp, Receive, Scope, Send

from sidecar.api.http_actors import actor_routes
from sidecar.api.http_common import unauthorized
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


def build_http_app(sidecar: Sidecar, api_token: str | None) -> Starlette:
    routes = [
        *state_routes(sidecar.state),
        *misc_routes(sidecar),
        *actor_routes(sidecar),
    ]
    middleware = [Middleware(_TokenCheck, token=api_token)] if api_token else []
    return Starlette(routes=routes, middleware=middleware)
