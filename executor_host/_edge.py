"""What stands in front of both apps, in one order.

Outermost first: ``TokenAuth`` (the app token on the sidecar's routes, the API token on
the client's), ``BodyLimit`` (413 beyond ``SUPERSTEP_MAX_BODY_BYTES``), ``KnownQuery``
(400 for a query parameter a client route does not take), ``FastLane``
(the sidecar's per-superstep calls without FastAPI; unknown actor types refused), then
the FastAPI app. A request is authenticated before any of its body is read, and the
fast lane serves only requests that passed both checks.

The sidecar's routes (the SDK's ``/dapr/*``, ``/actors/*``, its ``/healthz``, and the
subscriptions under ``/events/*``) are left out of the OpenAPI document, which
describes the HTTP API of clients only; they keep working for the sidecar.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping
from typing import Any

from fastapi import FastAPI

from executor_host._auth import OPEN_PATHS, TokenAuth, is_sidecar_route
from executor_host._fastlane import Delivery, FastLane
from executor_host._limits import BodyLimit
from executor_host._problems import problems
from executor_host._query import KnownQuery
from executor_host._settings import Settings

__all__ = ["install_edge"]

UNKNOWN_QUERY = {
    "description": "Bad Request (a query parameter the route does not take, among others)",
    "content": {"application/problem+json": {"schema": {"$ref": "#/components/schemas/Problem"}}},
}
BEARER = "apiToken"
"""The OpenAPI security scheme of the API token (``SUPERSTEP_API_TOKEN``)."""


def install_edge(
    app: FastAPI,
    settings: Settings,
    *,
    actor_types: Collection[str],
    deliveries: Mapping[str, Delivery],
    api_token: str = "",
    open_paths: Collection[str] = (),
) -> None:
    """Put the middleware in front of ``app`` and filter its OpenAPI document (once).

    ``actor_types``: the actor types the app hosts; ``deliveries``: its subscription
    routes the fast lane answers; ``api_token``: the token of its client routes (the
    API app's ``SUPERSTEP_API_TOKEN``; the executor hosts have no client routes);
    ``open_paths``: more paths served without a token (the API app's console files)."""
    app.openapi = _clients_only(app.openapi, bearer=bool(api_token))  # type: ignore[method-assign]
    docs = (app.openapi_url, app.docs_url, app.redoc_url, app.swagger_ui_oauth2_redirect_url)
    # add_middleware puts each in front of the ones before it: innermost first
    app.add_middleware(FastLane, deliveries=deliveries, actor_types=actor_types)
    app.add_middleware(KnownQuery, fastapi_app=app)
    app.add_middleware(BodyLimit, limit=settings.max_body_bytes)
    app.add_middleware(
        TokenAuth,
        app_token=settings.app_token,
        api_token=api_token,
        open_paths=[*(path for path in docs if path), *open_paths],
    )


def _clients_only(
    generate: Callable[[], dict[str, Any]], *, bearer: bool
) -> Callable[[], dict[str, Any]]:
    """The OpenAPI document without the sidecar's routes and the probes (the SDK adds
    its routes through an included router, which FastAPI keeps apart from
    ``app.routes``: the document is filtered rather than each route flagged). With
    ``bearer`` (an API token is set) every operation it lists needs the token, as an
    HTTP bearer scheme: Swagger UI's *Authorize* then sends it; and each answers 401
    with a problem (``TokenAuth``'s), listed after its successes."""

    def openapi() -> dict[str, Any]:
        schema = generate()
        paths: dict[str, Any] = schema.get("paths", {})
        for path in [p for p in paths if is_sidecar_route(p) or p in OPEN_PATHS]:
            del paths[path]
        has_problem = "Problem" in schema.get("components", {}).get("schemas", {})
        for operations in paths.values() if has_problem else ():
            for operation in operations.values():
                # KnownQuery's answer to a query parameter the route does not take
                operation.setdefault("responses", {}).setdefault("400", UNKNOWN_QUERY)
        if bearer:
            schemes = schema.setdefault("components", {}).setdefault("securitySchemes", {})
            schemes[BEARER] = {"type": "http", "scheme": "bearer"}
            schema["security"] = [{BEARER: []}]
            for item in paths.values():
                for operation in item.values():
                    operation["responses"] = _with_unauthorized(operation["responses"])
        return schema

    return openapi


def _with_unauthorized(responses: dict[str, Any]) -> dict[str, Any]:
    """An operation's responses with the token's 401 problem after the successes."""
    if "401" in responses:
        return responses
    successes = {status: r for status, r in responses.items() if status.startswith("2")}
    others = {status: r for status, r in responses.items() if status not in successes}
    return {**successes, "401": {**problems(401)[401], "description": "Unauthorized"}, **others}
