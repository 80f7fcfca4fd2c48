"""HTTP state endpoints (dapr-contract §2.2-2.4)."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

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
from sidecar.errors import ApiError
from sidecar.state.service import SaveItem, StateService

__all__ = ["state_routes"]


def _options(raw: object) -> tuple[str, str]:
    if raw is None:
        return "", ""
    if not isinstance(raw, Mapping):
        raise malformed("options must be an object")
    lowered = {str(k).lower(): v for k, v in raw.items()}
    concurrency = lowered.get("concurrency") or ""
    consistency = lowered.get("consistency") or ""
    if not isinstance(concurrency, str) or not isinstance(consistency, str):
        raise malformed("options values must be strings")
    return concurrency, consistency


def _encode_value(value: Any) -> bytes:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode()


def _item(raw: object, *, with_value: bool) -> SaveItem:
    if not isinstance(raw, Mapping):
        raise malformed("a state item must be an object")
    key = raw.get("key", "")
    if not isinstance(key, str):
        raise malformed('"key" must be a string')
    etag = raw.get("etag")
    if etag is not None and not isinstance(etag, str):
        raise malformed('"etag" must be a string')
    concurrency, consistency = _options(raw.get("options"))
    value = _encode_value(raw.get("value")) if with_value else b""
    return SaveItem(
        key=key,
        value=value,
        etag=etag,
        metadata=string_map(raw.get("metadata"), "metadata"),
        concurrency=concurrency,
        consistency=consistency,
    )


def _raw_json(data: bytes) -> Any:
    try:
        return json.loads(data)
    except ValueError:
        return data.decode("utf-8", errors="replace")


def state_routes(service: StateService) -> list[Route]:
    async def save(request: Request) -> Response:
        store = request.path_params["store"]
        await read_body(request, malformed)  # daprd: 400 "stream too large" past the limit
        body = await json_body(request)
        if not isinstance(body, list):
            raise malformed("the body must be a JSON array of state items")
        service.store(store)
        items = [_item(raw, with_value=True) for raw in body]
        await service.save(store, items, query_metadata(request))
        return Response(status_code=204)

    async def get(request: Request) -> Response:
        store, key = request.path_params["store"], request.path_params["key"]
        item = await service.get(store, key)
        if item is None:
            return Response(status_code=204)
        headers = {f"metadata.{k}": v for k, v in item.metadata.items()}
        if item.etag:
            headers["ETag"] = item.etag
        return Response(item.value, headers=headers, media_type="application/json")

    async def bulk(request: Request) -> Response:
        store = request.path_params["store"]
        body = await json_body(request)
        keys = body.get("keys") if isinstance(body, dict) else None
        if not isinstance(keys, list) or not all(isinstance(k, str) for k in keys):
            raise malformed('"keys" must be a list of strings')
        out: list[dict[str, Any]] = []
        for entry in await service.bulk_get(store, keys):
            element: dict[str, Any] = {"key": entry.key}
            if entry.item is not None:
                element["data"] = _raw_json(entry.item.value)
                if entry.item.etag:
                    element["etag"] = entry.item.etag
                if entry.item.metadata:
                    element["metadata"] = dict(entry.item.metadata)
            if entry.error:
                element["error"] = entry.error
            out.append(element)
        return JSONResponse(out)

    async def delete(request: Request) -> Response:
        store, key = request.path_params["store"], request.path_params["key"]
        etag = request.headers.get("if-match") or None
        item = SaveItem(
            key=key,
            etag=etag,
            metadata=query_metadata(request),
            concurrency=request.query_params.get("concurrency", ""),
            consistency=request.query_params.get("consistency", ""),
        )
        await service.delete(store, item)
        return Response(status_code=204)

    async def transaction(request: Request) -> Response:
        store = request.path_params["store"]
        body = await json_body(request)
        if not isinstance(body, dict):
            raise malformed("the body must be an object with operations")
        service.store(store)
        raw_ops = body.get("operations") or []
        if not isinstance(raw_ops, list):
            raise malformed('"operations" must be a list')
        ops: list[tuple[str, SaveItem]] = []
        for raw in raw_ops:
            if not isinstance(raw, Mapping):
                raise malformed("an operation must be an object")
            kind = raw.get("operation")
            if kind not in ("upsert", "delete"):
                raise ApiError(
                    400,
                    "INVALID_ARGUMENT",
                    "ERR_NOT_SUPPORTED_STATE_OPERATION",
                    f"operation type {kind} not supported",
                )
            ops.append((kind, _item(raw.get("request"), with_value=kind == "upsert")))
        metadata = {**query_metadata(request), **string_map(body.get("metadata"), "metadata")}
        await service.transact(store, ops, metadata)
        return Response(status_code=204)

    base = "/v1.0/state/{store}"
    return [
        Route(base, guarded(save), methods=["POST", "PUT"]),
        Route(f"{base}/bulk", guarded(bulk), methods=["POST", "PUT"]),
        Route(f"{base}/transaction", guarded(transaction), methods=["POST", "PUT"]),
        Route(base + "/{key}", guarded(get), methods=["GET"]),
        Route(base + "/{key}", guarded(delete), methods=["DELETE"]),
    ]
