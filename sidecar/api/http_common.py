"""Helpers shared by the HTTP handlers: error answers, body parsing, query metadata."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response

from sidecar.errors import ApiError

__all__ = [
    "BodyTooLarge",
    "error_response",
    "guarded",
    "json_body",
    "malformed",
    "query_metadata",
    "read_body",
]

Endpoint = Callable[[Request], Awaitable[Response]]


class BodyTooLarge(Exception):
    """The request body is past the sidecar's limit (daprd's ``--max-body-size``): daprd
    reads "stream too large" where the handler reads the body, and each API wraps that
    in its own error."""

    def __str__(self) -> str:
        return "stream too large"


def error_response(error: ApiError) -> Response:
    return JSONResponse(error.body(), status_code=error.http_status)


def malformed(message: str) -> ApiError:
    return ApiError(400, "INVALID_ARGUMENT", "ERR_MALFORMED_REQUEST", message)


async def read_body(request: Request, too_large: Callable[[str], ApiError]) -> bytes:
    """The request body; past the size limit, the error ``too_large`` makes of daprd's
    "stream too large"."""
    try:
        return await request.body()
    except BodyTooLarge as exc:
        raise too_large(str(exc)) from None


async def json_body(request: Request) -> Any:
    try:
        raw = await request.body()
    except BodyTooLarge as exc:
        raise malformed(f"failed deserializing HTTP body: {exc}") from None
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
        except BodyTooLarge as exc:
            return error_response(malformed(str(exc)))

    wrapper.__name__ = endpoint.__name__
    return wrapper


def unauthorized() -> Response:
    return PlainTextResponse("invalid api token\n", status_code=401)  # daprd: http.Error
