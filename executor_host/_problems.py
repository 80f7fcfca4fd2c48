"""RFC 9457 problem details for every error the HTTP API returns."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException
from starlette.types import Send

from executor_host._views import ProblemDetails

__all__ = [
    "PROBLEM_MEDIA_TYPE",
    "Problem",
    "install_problem_handlers",
    "problem_body",
    "problems",
    "send_problem",
]

PROBLEM_MEDIA_TYPE = "application/problem+json"

_PROBLEM_SCHEMA: dict[str, Any] = ProblemDetails.model_json_schema()
_PROBLEM_REF = {"$ref": "#/components/schemas/Problem"}


class Problem(Exception):
    """An error with an HTTP status and a human-readable detail."""

    def __init__(
        self,
        status: int,
        title: str,
        detail: str,
        *,
        headers: Mapping[str, str] | None = None,
        **extra: Any,
    ) -> None:
        super().__init__(detail)
        self.status = status
        self.title = title
        self.detail = detail
        self.headers = dict(headers or {})
        """Headers of the answer besides the problem's own (``Retry-After``, say)."""
        self.extra = extra


def problems(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """The ``responses`` of a route that answers these statuses with a problem."""
    return {
        status: {"content": {PROBLEM_MEDIA_TYPE: {"schema": _PROBLEM_REF}}} for status in statuses
    }


def problem_body(
    status: int, title: str, detail: str, instance: str, **extra: Any
) -> dict[str, Any]:
    """The JSON members of a problem."""
    return {
        "type": "about:blank",
        "title": title,
        "status": status,
        "detail": detail,
        "instance": instance,
        **extra,
    }


def _render(body: dict[str, Any]) -> bytes:
    # ASCII with escapes: a detail quoting the request (a lone surrogate, say) always
    # encodes, where UTF-8 output would fail and turn the problem into a 500
    return json.dumps(body, separators=(",", ":")).encode()


class _ProblemResponse(JSONResponse):
    media_type = PROBLEM_MEDIA_TYPE

    def render(self, content: Any) -> bytes:
        return _render(content)


def _response(status: int, title: str, detail: str, instance: str, **extra: Any) -> JSONResponse:
    body = problem_body(status, title, detail, instance, **extra)
    return _ProblemResponse(body, status_code=status)


async def send_problem(
    send: Send,
    status: int,
    title: str,
    detail: str,
    instance: str,
    *,
    headers: Iterable[tuple[bytes, bytes]] = (),
    **extra: Any,
) -> None:
    """Answer an ASGI request with a problem (for middleware, which has no FastAPI)."""
    body = _render(problem_body(status, title, detail, instance, **extra))
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", PROBLEM_MEDIA_TYPE.encode()),
                (b"content-length", str(len(body)).encode()),
                *headers,
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


def install_problem_handlers(app: FastAPI) -> None:
    """Problems for raised ``Problem``s, invalid requests and the router's own errors
    (unknown path, method not allowed), and an OpenAPI schema that says so."""

    async def on_problem(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, Problem)
        response = _response(exc.status, exc.title, exc.detail, request.url.path, **exc.extra)
        response.headers.update(exc.headers)
        return response

    async def on_validation(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, RequestValidationError)
        errors = [{"loc": list(e.get("loc", ())), "msg": e.get("msg", "")} for e in exc.errors()]
        return _response(
            422,
            "Invalid request",
            "the request does not match the schema",
            request.url.path,
            errors=errors,
        )

    async def on_http_error(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, HTTPException)
        response = _response(
            exc.status_code, _phrase(exc.status_code), str(exc.detail), request.url.path
        )
        response.headers.update(exc.headers or {})
        return response

    app.add_exception_handler(Problem, on_problem)
    app.add_exception_handler(RequestValidationError, on_validation)
    app.add_exception_handler(HTTPException, on_http_error)
    app.openapi = _problem_openapi(app.openapi)  # type: ignore[method-assign]


def _phrase(status: int) -> str:
    from http import HTTPStatus

    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Error"


def _problem_openapi(generate: Callable[[], dict[str, Any]]) -> Callable[[], dict[str, Any]]:
    """FastAPI describes its validation errors (422) as its own JSON: they are problems."""

    def openapi() -> dict[str, Any]:
        schema = generate()
        schemas = schema.setdefault("components", {}).setdefault("schemas", {})
        if "Problem" not in schemas:
            schemas["Problem"] = _PROBLEM_SCHEMA
            for path in schema.get("paths", {}).values():
                for operation in path.values():
                    invalid = operation.get("responses", {}).get("422")
                    if invalid is not None and "application/json" in invalid.get("content", {}):
                        invalid["content"] = {PROBLEM_MEDIA_TYPE: {"schema": _PROBLEM_REF}}
            schemas.pop("HTTPValidationError", None)
            schemas.pop("ValidationError", None)
        return schema

    return openapi
