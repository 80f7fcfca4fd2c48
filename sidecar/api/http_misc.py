"""HTTP publish, health, metadata and service-invocation endpoints (§3.1, §3.3, §5)."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from sidecar.api.http_common import (
    guarded,
    json_body,
    malformed,
    query_metadata,
    read_body,
    string_map,
)
from sidecar.app_channel import AppUnreachable
from sidecar.errors import ApiError
from sidecar.pubsub.envelope import is_cloudevent_content_type, media_type
from sidecar.pubsub.service import BulkEntry, bulk_failure_body

if TYPE_CHECKING:
    from sidecar.runtime import Sidecar

__all__ = ["misc_routes"]

_HOP_HEADERS = {"host", "content-length", "connection", "transfer-encoding", "dapr-api-token"}


def _bulk_event_bytes(event: Any, content_type: str) -> bytes:
    """The bytes of one bulk entry: strings as-is unless the type is JSON, else JSON."""
    json_type = media_type(content_type) == "application/json"
    if isinstance(event, str) and not json_type and not is_cloudevent_content_type(content_type):
        return event.encode()
    return json.dumps(event).encode()


def misc_routes(sidecar: Sidecar) -> list[Route]:
    async def publish(request: Request) -> Response:
        pubsub, topic = request.path_params["pubsub"], request.path_params["topic"]
        body = await read_body(
            request,
            lambda why: ApiError(
                500,
                "INTERNAL",
                "ERR_PUBSUB_PUBLISH_MESSAGE",
                f"error when publishing to topic {topic} in pubsub {pubsub}: {why}",
            ),
        )
        content_type = request.headers.get("content-type", "")
        await sidecar.pubsub.publish(pubsub, topic, body, content_type, query_metadata(request))
        return Response(status_code=204)

    async def bulk_publish(request: Request) -> Response:
        pubsub, topic = request.path_params["pubsub"], request.path_params["topic"]
        await read_body(
            request,
            lambda why: ApiError(
                400,
                "INVALID_ARGUMENT",
                "ERR_PUBSUB_EVENTS_SER",
                f"error when unmarshaling the request for topic {topic} pubsub {pubsub}: {why}",
            ),
        )
        raw = await json_body(request)
        if not isinstance(raw, list):
            raise malformed("the body must be a JSON array of entries")
        entries: list[BulkEntry] = []
        for item in raw:
            if not isinstance(item, dict):
                raise malformed("an entry must be an object")
            content_type = str(item.get("contentType") or "")
            entries.append(
                BulkEntry(
                    entry_id=str(item.get("entryId") or ""),
                    event=_bulk_event_bytes(item.get("event"), content_type),
                    content_type=content_type,
                    metadata=string_map(item.get("metadata"), "metadata"),
                )
            )
        failed = await sidecar.pubsub.bulk_publish(pubsub, topic, entries, query_metadata(request))
        if failed:
            return Response(bulk_failure_body(failed), 500, media_type="application/json")
        return Response(status_code=204)

    async def healthz(request: Request) -> Response:
        if not sidecar.ready:
            raise ApiError(
                500,
                "UNAVAILABLE",
                "ERR_HEALTH_NOT_READY",
                f"dapr is not ready: {sidecar.not_ready_reason()}",
            )
        wanted = request.query_params.get("appid")
        if wanted is not None and wanted != sidecar.app_id:
            raise ApiError(
                500,
                "UNAVAILABLE",
                "ERR_HEALTH_APPID_NOT_MATCH",
                "dapr app-id does not match",
            )
        return Response(status_code=204)

    async def outbound(request: Request) -> Response:
        if not sidecar.outbound_ready:
            raise ApiError(
                500, "UNAVAILABLE", "ERR_OUTBOUND_HEALTH_NOT_READY", "dapr outbound is not ready"
            )
        return Response(status_code=204)

    async def metadata(request: Request) -> Response:
        return JSONResponse(sidecar.metadata())

    async def set_metadata(request: Request) -> Response:
        sidecar.extended_metadata[request.path_params["key"]] = (await request.body()).decode()
        return Response(status_code=204)

    async def invoke(request: Request) -> Response:
        target = request.path_params["app_id"]
        path = request.path_params["path"]
        return await forward(request, target, path)

    async def forward(request: Request, target: str, path: str) -> Response:
        headers = {k: v for k, v in request.headers.items() if k.lower() not in _HOP_HEADERS}
        headers["dapr-caller-app-id"] = sidecar.app_id
        headers["dapr-callee-app-id"] = target
        try:
            answer = await sidecar.cluster.invoke_app(
                target,
                request.method,
                path,
                body=await request.body(),
                headers=headers,
                query=request.url.query,
            )
        except AppUnreachable as exc:
            raise ApiError(
                500, "INTERNAL", "ERR_DIRECT_INVOKE", f"failed to invoke {target}: {exc!r}"
            ) from exc
        out_headers = {k: v for k, v in answer.headers.items() if k.lower() not in _HOP_HEADERS}
        return Response(answer.body, answer.status, headers=out_headers)

    methods = ["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"]
    return [
        Route(
            "/v1.0-alpha1/publish/bulk/{pubsub}/{topic:path}",
            guarded(bulk_publish),
            methods=["POST", "PUT"],
        ),
        Route(
            "/v1.0/publish/bulk/{pubsub}/{topic:path}",
            guarded(bulk_publish),
            methods=["POST", "PUT"],
        ),
        # After the bulk routes: a static "bulk" segment wins, as in daprd's router.
        Route("/v1.0/publish/{pubsub}/{topic:path}", guarded(publish), methods=["POST", "PUT"]),
        Route("/v1.0/healthz", guarded(healthz), methods=["GET"]),
        Route("/v1.0/healthz/outbound", guarded(outbound), methods=["GET"]),
        Route("/v1.0/metadata", guarded(metadata), methods=["GET"]),
        Route("/v1.0/metadata/{key}", guarded(set_metadata), methods=["PUT"]),
        Route("/v1.0/invoke/{app_id}/method/{path:path}", guarded(invoke), methods=methods),
    ]
