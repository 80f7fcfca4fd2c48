"""Who may call which route of the apps.

Each request falls in one of three kinds, by its path:

* **sidecar routes** — ``/dapr/*``, ``/actors/*``, ``/events/*``: the Dapr sidecar's
  calls (configuration, subscriptions, actor calls, pub/sub deliveries). With
  ``APP_API_TOKEN`` set they want header ``dapr-api-token: <token>``: daprd reads the
  same variable from its environment and sends that header on every call to its app
  (dapr-contract §4.1), health probes included.
* **open routes** — the probes ``/healthz`` and ``/readyz`` (a kubelet's liveness probe
  carries no token) and the OpenAPI document with its pages (``/openapi.json``,
  ``/docs``, ``/redoc``): none of them shows run data.
* **client routes** — everything else, the HTTP API: with ``SUPERSTEP_API_TOKEN`` set
  they want ``Authorization: Bearer <token>`` (the scheme in any case, RFC 7235).

A missing or wrong credential gets 401 with a problem+json body. Tokens are compared
in constant time. The sidecar's token opens only the sidecar routes and the client's
token only the client routes.
"""

from __future__ import annotations

import hmac
from collections.abc import Iterable

from starlette.types import ASGIApp, Receive, Scope, Send

from executor_host._problems import send_problem
from runtime.bearer import bearer_matches

__all__ = ["OPEN_PATHS", "SIDECAR_PREFIXES", "TokenAuth", "is_sidecar_route"]

SIDECAR_PREFIXES = ("/dapr", "/actors", "/events")
OPEN_PATHS = frozenset({"/healthz", "/readyz"})


def is_sidecar_route(path: str) -> bool:
    """Whether ``path`` is one of the routes the Dapr sidecar calls on an app."""
    return any(path == p or path.startswith(f"{p}/") for p in SIDECAR_PREFIXES)


def _header(scope: Scope, name: bytes) -> bytes | None:
    for key, value in scope["headers"]:
        if key == name:
            return bytes(value)
    return None


class TokenAuth:
    """ASGI middleware: 401 for a request without the credential its route wants.

    ``app_token`` guards the sidecar routes, ``api_token`` the client routes; an empty
    token leaves its routes open. ``open_paths`` are served to anyone (besides the
    probes: the app's OpenAPI document and documentation pages)."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        app_token: str = "",
        api_token: str = "",
        open_paths: Iterable[str] = (),
    ) -> None:
        self.app = app
        self._app_token = app_token.encode()
        self._api_token = api_token.encode()
        self._open = OPEN_PATHS | frozenset(open_paths)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        refusal = self._refusal(scope) if scope["type"] == "http" else None
        if refusal is None:
            await self.app(scope, receive, send)
            return
        detail, headers = refusal
        await send_problem(send, 401, "Unauthorized", detail, scope["path"], headers=headers)

    def _refusal(self, scope: Scope) -> tuple[str, list[tuple[bytes, bytes]]] | None:
        """Why the request is refused (its problem's detail and extra headers), or None."""
        path: str = scope["path"]
        if is_sidecar_route(path):
            if not self._app_token or _same(_header(scope, b"dapr-api-token"), self._app_token):
                return None
            detail = (
                "the routes the Dapr sidecar calls want header 'dapr-api-token' with the "
                "app token (APP_API_TOKEN)"
            )
            return detail, []
        if path in self._open or not self._api_token:
            return None
        if bearer_matches(_header(scope, b"authorization"), self._api_token):
            return None
        detail = "this API needs 'Authorization: Bearer <token>' (SUPERSTEP_API_TOKEN)"
        return detail, [(b"www-authenticate", b'Bearer realm="superstep"')]


def _same(presented: bytes | None, expected: bytes) -> bool:
    return presented is not None and hmac.compare_digest(presented, expected)
