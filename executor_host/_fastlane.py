"""The hot routes of the apps, served without FastAPI's per-request machinery.

Each superstep the sidecars call three routes of the apps: an activation delivery
(``POST`` to a pool's subscription route) and the executor actor's call (``PUT
/actors/<type>/<id>/method/<method>``) in a host, the coordinator actor's call in the
API app. FastAPI's routing,
dependency solving and response handling cost CPU on the superstep's critical path for
each of them; measured on real daprd, the lane pays for itself (bench/README.md,
"Speed tricks measured on daprd").

``FastLane`` is an ASGI middleware that answers exactly those requests itself, the
way the FastAPI routes answer them: an actor method call goes to the Dapr SDK's
``ActorRuntime.dispatch`` and is answered as ``dapr-ext-fastapi`` answers it (200 with
the serialized result; 500 with the error otherwise), and a delivery goes to the
same handler as the subscription's FastAPI route, a malformed event answered with
its problem. Every other request — the HTTP API, ``/dapr/subscribe``, actor
deactivation, timers and reminders, OpenAPI — goes to the FastAPI app unchanged, and
the routes above stay registered there too (they serve a request the lane does not
take, e.g. a delivery with another method).

Given the app's ``actor_types``, the lane answers any request under ``/actors/`` for
another type itself, with a 404 problem: the SDK's routes would answer it with a 500
(dapr-contract §9.4), where 404 tells daprd "not found", a permanent error.

The lane sits behind the apps' ``TokenAuth`` and ``BodyLimit`` (``_edge``): a request
it takes has passed the app token check and the body limit.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Collection, Mapping
from typing import Any

import orjson
from dapr.actor import ActorRuntime
from dapr.clients.exceptions import ERROR_CODE_UNKNOWN, DaprInternalError
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from executor_host._problems import Problem, send_problem

__all__ = ["Delivery", "FastLane"]

Delivery = Callable[[Mapping[str, str], bytes], Awaitable[dict[str, str]]]
"""(request headers, lower-cased names; request body) -> the JSON answer to Dapr."""

_JSON = b"application/json"
_ACTOR_JSON = b"application/json; utf-8"  # dapr-ext-fastapi's media type for results
_REENTRANCY = b"dapr-reentrancy-id"


class FastLane:
    """ASGI middleware: actor method calls and the given deliveries, straight to their
    handlers; calls for actor types not in ``actor_types`` (when given) refused with a
    404 problem; everything else to ``app``."""

    def __init__(
        self,
        app: ASGIApp,
        deliveries: Mapping[str, Delivery] | None = None,
        actor_types: Collection[str] | None = None,
    ) -> None:
        self.app = app
        self.deliveries = dict(deliveries or {})
        self.actor_types = None if actor_types is None else frozenset(actor_types)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            method = scope["method"]
            path: str = scope["path"]
            if path.startswith("/actors/"):
                parts = path.split("/")
                if self.actor_types is not None and parts[2] not in self.actor_types:
                    await send_problem(
                        send,
                        404,
                        "Unknown actor type",
                        f"this app hosts no actor type {parts[2]!r}; it hosts "
                        f"{sorted(self.actor_types)}",
                        path,
                    )
                    return
                # /actors/<type>/<id>/method/<name>: timers and reminders have one more
                if (
                    method == "PUT"
                    and len(parts) == 6
                    and parts[4] == "method"
                    and all(parts[2:4])
                    and parts[5]
                ):
                    await self._actor_call(scope, receive, send, parts[2], parts[3], parts[5])
                    return
            elif method == "POST":
                delivery = self.deliveries.get(path)
                if delivery is not None:
                    await self._delivery(scope, receive, send, delivery)
                    return
        await self.app(scope, receive, send)

    async def _actor_call(
        self, scope: Scope, receive: Receive, send: Send, type_: str, id_: str, name: str
    ) -> None:
        body = await _read_body(receive)
        if body is None:
            return
        reentrancy = _header(scope, _REENTRANCY)
        try:
            result = await ActorRuntime.dispatch(type_, id_, name, body, reentrancy)
        except DaprInternalError as exc:
            safe = exc.as_json_safe_dict()  # type: ignore[no-untyped-call]  # untyped SDK
            await _answer(send, 500, _JSON, orjson.dumps(safe))
            return
        except Exception as exc:  # answered as dapr-ext-fastapi answers it
            error = {"message": repr(exc), "errorCode": ERROR_CODE_UNKNOWN}
            await _answer(send, 500, _JSON, orjson.dumps(error))
            return
        await _answer(send, 200, _ACTOR_JSON, result)  # the serializer's bytes

    async def _delivery(self, scope: Scope, receive: Receive, send: Send, handle: Delivery) -> None:
        body = await _read_body(receive)
        if body is None:
            return
        headers: dict[str, str] = {}
        for name, value in scope["headers"]:
            headers.setdefault(name.decode("latin-1"), value.decode("latin-1"))
        try:
            answer = await handle(headers, body)
        except Problem as exc:
            await send_problem(send, exc.status, exc.title, exc.detail, scope["path"], **exc.extra)
            return
        await _answer(send, 200, _JSON, orjson.dumps(answer))


async def _read_body(receive: Receive) -> bytes | None:
    """The whole request body; None when the client went away before sending it (the
    request is then not handled at all, as FastAPI does not run a route on a partial
    body)."""
    chunks: list[bytes] = []
    while True:
        message: Message = await receive()
        if message["type"] != "http.request":
            return None
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            return chunks[0] if len(chunks) == 1 else b"".join(chunks)


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope["headers"]:
        if key == name:
            return str(value.decode("latin-1"))
    return None


async def _answer(send: Send, status: int, media_type: bytes, body: bytes) -> None:
    headers: list[tuple[bytes, Any]] = [
        (b"content-length", str(len(body)).encode()),
        (b"content-type", media_type),
    ]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
