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
from fastapi.routing import APIRoute
from starlette.types import ASGIApp, Receive, Scope, Send

from executor_host._auth import is_sidecar_route
from executor_host._problems import send_problem

__all__ = ["KnownQuery"]


class KnownQuery:
    """ASGI middleware: 400 for a query parameter the matched client route does not
    declare (``fastapi_app``'s routes, read at the first request with a query)."""

    def __init__(self, app: ASGIApp, *, fastapi_app: FastAPI) -> None:
        self.app = app
        self._fastapi = fastapi_app
        self._routes: Sequence[tuple[re.Pattern[str], frozenset[str], frozenset[str]]] | None
        self._routes = None

    def _known(self) -> Sequence[tuple[re.Pattern[str], frozenset[str], frozenset[str]]]:
        if self._routes is None:
            self._routes = [
                (
                    route.path_regex,
                    frozenset(route.methods or ()),
                    frozenset(p.alias for p in route.dependant.query_params),
                )
                for route in self._fastapi.routes
                if isinstance(route, APIRoute)
            ]
        return self._routes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        query = scope.get("query_string", b"") if scope["type"] == "http" else b""
        path = scope.get("path", "")
        if not query or is_sidecar_route(path):
            await self.app(scope, receive, send)
            return
        names = {name for name, _ in parse_qsl(query.decode("latin-1"), keep_blank_values=True)}
        for regex, methods, allowed in self._known():
            if scope["method"] in methods and regex.match(path):
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
