"""Unknown query parameters are refused on the client routes.

FastAPI ignores a query parameter a route does not declare, so ``GET /runs?stauts=failed``
(a typo) answered every run as if unfiltered, and a client could not tell. ``KnownQuery``
answers 400 with a problem naming the parameters the route does not take and the ones it
does. The sidecar's routes are left alone (Dapr may add parameters of its own), and a
request without a query string costs one check.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from urllib.parse import parse_qsl

from fastapi import FastAPI
from starlette.types import ASGIApp, Receive, Scope, Send

from executor_host._auth import is_sidecar_route
from executor_host._problems import send_problem

__all__ = ["KnownQuery"]


class KnownQuery:
    """ASGI middleware: 400 for a query parameter the matched client route does not
    declare. The client routes and their parameters are those of ``fastapi_app``'s
    OpenAPI document (read at the first request with a query): the routes a client
    sees, the ones it may call."""

    def __init__(self, app: ASGIApp, *, fastapi_app: FastAPI) -> None:
        self.app = app
        self._fastapi = fastapi_app
        self._routes: Sequence[tuple[re.Pattern[str], str, frozenset[str]]] | None = None

    def _known(self) -> Sequence[tuple[re.Pattern[str], str, frozenset[str]]]:
        if self._routes is None:
            routes = []
            for path, operations in self._fastapi.openapi().get("paths", {}).items():
                regex = re.compile("^" + re.sub(r"\\{[^}/]+\\}", "[^/]+", re.escape(path)) + "$")
                for method, operation in operations.items():
                    names = frozenset(
                        str(p["name"])
                        for p in operation.get("parameters", ())
                        if p.get("in") == "query"
                    )
                    routes.append((regex, method.upper(), names))
            self._routes = routes
        return self._routes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        query = scope.get("query_string", b"") if scope["type"] == "http" else b""
        path = scope.get("path", "")
        if not query or is_sidecar_route(path):
            await self.app(scope, receive, send)
            return
        names = {name for name, _ in parse_qsl(query.decode("latin-1"), keep_blank_values=True)}
        for regex, method, allowed in self._known():
            if scope["method"] == method and regex.match(path):
                unknown = sorted(names - allowed)
                if unknown:
                    takes = ", ".join(sorted(allowed)) or "none"
                    await send_problem(
                        send,
                        400,
                        "Unknown query parameter",
                        f"{scope['method']} {path} takes no query parameter "
                        f"{', '.join(repr(n) for n in unknown)} (it takes: {takes})",
                        path,
                    )
                    return
                break
        await self.app(scope, receive, send)
