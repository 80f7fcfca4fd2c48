"""Bearer-token authentication of the HTTP API.

With ``SUPERSTEP_API_TOKEN`` set, every request to the API needs
``Authorization: Bearer <token>``; a missing or wrong token gets 401 with a
problem+json body. Exempt are the routes the Dapr sidecar calls on the app
(``/dapr/*``, ``/actors/*``, the pub/sub deliveries under ``/events/*``) and the
health probes ``/healthz`` and ``/readyz``: those are reached from the sidecar or the platform, not
from clients. (Dapr's own ``APP_API_TOKEN`` protects the sidecar-to-app channel.)
"""

from __future__ import annotations

import hmac
import json
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

__all__ = ["EXEMPT_PREFIXES", "BearerAuth"]

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

EXEMPT_PREFIXES = ("/dapr/", "/actors/", "/events/")
EXEMPT_PATHS = frozenset({"/healthz", "/readyz"})


class BearerAuth:
    """ASGI middleware: 401 for HTTP requests without the right bearer token."""

    def __init__(self, app: ASGIApp, token: str) -> None:
        self.app = app
        self._expected = f"Bearer {token}".encode()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or self._exempt(scope["path"]) or self._allowed(scope):
            await self.app(scope, receive, send)
            return
        body = json.dumps(
            {
                "type": "about:blank",
                "title": "Unauthorized",
                "status": 401,
                "detail": "this API needs 'Authorization: Bearer <token>' (SUPERSTEP_API_TOKEN)",
                "instance": scope["path"],
            }
        ).encode()
        await send(
            {
                "type": "http.response.start",
                "status": 401,
                "headers": [
                    (b"content-type", b"application/problem+json"),
                    (b"content-length", str(len(body)).encode()),
                    (b"www-authenticate", b'Bearer realm="superstep"'),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})

    @staticmethod
    def _exempt(path: str) -> bool:
        return path in EXEMPT_PATHS or path.startswith(EXEMPT_PREFIXES)

    def _allowed(self, scope: Scope) -> bool:
        for name, value in scope.get("headers", ()):
            if name == b"authorization":
                return hmac.compare_digest(value, self._expected)
        return False
