"""HTTP actor endpoints (dapr-contract §4.4)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from sidecar.actors.host import REENTRANCY_HEADER
from sidecar.actors.service import ActorService, encode_value
from sidecar.api.http_common import guarded, json_body, malformed, read_body, string_map
from sidecar.errors import ApiError

if TYPE_CHECKING:
    from sidecar.runtime import Sidecar

__all__ = ["actor_routes"]

_DROP = {"host", "content-length", "connection", "transfer-encoding", "dapr-api-token"}


def _service(sidecar: Sidecar) -> ActorService:
    return sidecar.actors


async def _object_body(request: Request) -> Mapping[str, Any]:
    if not await request.body():
        return {}
    body = await json_body(request)
    if not isinstance(body, dict):
        raise malformed("the body must be a JSON object")
    return body


def actor_routes(sidecar: Sidecar) -> list[Route]:
    async def invoke(request: Request) -> Response:
        p = request.path_params
        headers = {k: v for k, v in request.headers.items() if k.lower() not in _DROP}
        answer = await _service(sidecar).invoke(
            p["type"],
            p["id"],
            p["method"],
            body=await read_body(
                request,
                lambda why: ApiError(
                    400,
                    "INVALID_ARGUMENT",
                    "ERR_BAD_REQUEST",
                    f"invalid request: failed to read body: {why}",
                ),
            ),
            headers=headers,
            query=request.url.query,
            reentrancy_id=request.headers.get(REENTRANCY_HEADER),
        )
        out = {k: v for k, v in answer.headers.items() if k.lower() not in _DROP}
        return Response(answer.body, answer.status, headers=out)

    async def get_state(request: Request) -> Response:
        p = request.path_params
        value = await _service(sidecar).get_state(p["type"], p["id"], p["key"])
        if value is None:
            return Response(status_code=204)
        return Response(value, media_type="application/json")

    async def transact(request: Request) -> Response:
        p = request.path_params
        body = await json_body(request)
        if not isinstance(body, list):
            raise malformed("the body must be a JSON array of operations")
        ops: list[tuple[str, str, bytes, Mapping[str, str]]] = []
        for raw in body:
            if not isinstance(raw, dict) or raw.get("operation") not in ("upsert", "delete"):
                raise malformed("each operation needs operation upsert|delete and a request")
            req = raw.get("request")
            if not isinstance(req, dict) or not isinstance(req.get("key"), str):
                raise malformed("each operation request needs a key")
            value = encode_value(req.get("value")) if raw["operation"] == "upsert" else b""
            ops.append(
                (raw["operation"], req["key"], value, string_map(req.get("metadata"), "metadata"))
            )
        await _service(sidecar).transact_state(p["type"], p["id"], ops)
        return Response(status_code=204)

    async def put_reminder(request: Request) -> Response:
        p = request.path_params
        body = await _object_body(request)
        await _service(sidecar).create_reminder(p["type"], p["id"], p["name"], body)
        return Response(status_code=204)

    async def get_reminder(request: Request) -> Response:
        p = request.path_params
        return JSONResponse(_service(sidecar).get_reminder(p["type"], p["id"], p["name"]))

    async def delete_reminder(request: Request) -> Response:
        p = request.path_params
        await _service(sidecar).delete_reminder(p["type"], p["id"], p["name"])
        return Response(status_code=204)

    async def put_timer(request: Request) -> Response:
        p = request.path_params
        body = await _object_body(request)
        _service(sidecar).create_timer(p["type"], p["id"], p["name"], body)
        return Response(status_code=204)

    async def delete_timer(request: Request) -> Response:
        p = request.path_params
        _service(sidecar).delete_timer(p["type"], p["id"], p["name"])
        return Response(status_code=204)

    base = "/v1.0/actors/{type}/{id}"
    return [
        Route(
            base + "/method/{method:path}",
            guarded(invoke),
            methods=["GET", "POST", "PUT", "DELETE"],
        ),
        Route(base + "/state/{key}", guarded(get_state), methods=["GET"]),
        Route(base + "/state", guarded(transact), methods=["POST", "PUT"]),
        Route(base + "/reminders/{name}", guarded(put_reminder), methods=["POST", "PUT"]),
        Route(base + "/reminders/{name}", guarded(get_reminder), methods=["GET"]),
        Route(base + "/reminders/{name}", guarded(delete_reminder), methods=["DELETE"]),
        Route(base + "/timers/{name}", guarded(put_timer), methods=["POST", "PUT"]),
        Route(base + "/timers/{name}", guarded(delete_timer), methods=["DELETE"]),
    ]
