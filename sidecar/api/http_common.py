"""Helpers shared by the HTTP handlers: error answers, body parsing, query metadata."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response

from sidecar.errors import ApiError

__all__ = [
    "error_response",
    "guarded",
    "json_body",
    "malformed",
    "query_metadata",
]

Endpoint = Callable[[Request], Awaitable[Response]]


def error_response(error: ApiError) -> Response:
    return JSONResponse(error.body(), status_code=error.http_status)


def malformed(message: str) -> ApiError:
    return ApiError(400, "INVALID_ARGUMENT", "ERR_MALFORMED_REQUEST", message)


async def json_body(request: Request) -> Any:
    raw = await request.body()
    try:
        return json.loads(raw)
    except ValueError as exc:
        raise malformed(f"failed deserializing HTTP body: {exc}") from None


def query_metadata(request: Request) -> dict[str, str]:
    """Query params named ``metadata.<k>`` (first value wins, names case-sensitive)."""
    out: dict[str, str] = {}
    for key, value in request.query_params.multi_items():
        if key.startswith("metadata.") and key[9:] not in out:
            out[key[9:]] = value
    return out


def string_map(value: object, field: str) -> dict[str, str]:
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise malformed(f"{field} must be an object of strings")
    return {str(k): v if isinstance(v, str) else json.dumps(v) for k, v in value.items()}


def guarded(endpoint: Endpoint) -> Endpoint:
    """Turn :class:`ApiError` into its JSON answer."""

    async def wrapper(request: Request) -> Response:
        try:
            return await endpoint(request)
        except ApiError as exc:
            return error_response(exc)

    wrapper.__name__ = endpoint.__name__
    return wrapper


def unauthorized() -> Response:
    return PlainTextResponse("invalid api token", status_code=401)
