"""The apps' HTTP client of their Dapr sidecar: actor calls, state reads and writes, and
publishing, over kept-alive connections (:mod:`runtime.http1`: aiohttp's and httpx's
clients cost several times its CPU per call, on the critical path of every superstep;
bench/README.md, "Speed tricks measured on daprd").

Actor calls are the SDK's ``ActorProxy`` request (``POST /v1.0/actors/<type>/<id>/
method/<method>``, JSON body, ``dapr-api-token`` when set) without a new HTTP session
per call. State (``GET``/``POST /v1.0/state/<store>...``) and publishing
(``POST /v1.0/publish/...``, the body's bytes and content type, as gRPC
``PublishEvent`` takes them) go over HTTP too: a gRPC call through the SDK's aio client
cost more CPU than the same call over this session, on both ends, and took longer for a
commit's state transaction (bench/transport_cpu.py; docs/protocol.md).

State values are written as JSON *strings* holding our JSON text: the HTTP save API
takes ``value`` as decoded JSON and the store keeps its re-serialisation, so an object
sent as an object would come back with its keys in another order, and with integers
above 2^53 rounded by a sidecar that decodes numbers into doubles. A string crosses
unchanged; the stored bytes are that string quoted (``"{\"a\":1}"``), and readers
decode twice (``RunStore``).
"""

from __future__ import annotations

import asyncio
import json
import os
import ssl
from collections.abc import Sequence
from typing import Any
from urllib.parse import quote, urlsplit

from runtime.http1 import Http1Error, Http1Pool
from runtime.ports import ETagMismatch, PortError, Refused, StateDelete, StateWrite, refuses

__all__ = [
    "ActorInvokeError",
    "SidecarClient",
    "SidecarError",
    "StateConflict",
    "StateRefused",
    "StateWrite",
]


class SidecarError(PortError):
    """A call to the sidecar failed (its status and error body are attached; no status
    when the sidecar could not be reached)."""

    def __init__(self, message: str, status: int | None) -> None:
        super().__init__(message)
        self.status = status


class ActorInvokeError(SidecarError):
    """An actor call failed."""


class StateConflict(SidecarError, ETagMismatch):
    """A state write carried an ETag that no longer matches (someone wrote first)."""


class StateRefused(SidecarError, Refused):
    """The sidecar refused a state call for good (``runtime.ports.refuses``: a 4xx that
    is not a conflict, as daprd's 400 ``ERR_MALFORMED_REQUEST``)."""


def _state_item(write: StateWrite) -> dict[str, Any]:
    """The JSON state item of one write, as the save and transaction APIs take it."""
    key, value, etag = write
    item: dict[str, Any] = {"key": key, "value": value}
    if etag is not None:
        item["etag"] = etag
    return item


def _answered(
    what: str, status: int, content: bytes, error: type[SidecarError] = SidecarError
) -> SidecarError:
    """The error for an unexpected answer: the status and the start of the body."""
    return error(f"{what} answered {status}: {content[:500].decode(errors='replace')}", status)


def _state_answered(what: str, status: int, content: bytes) -> SidecarError:
    """The error for an unexpected answer of the state API: ``StateRefused`` when its
    status refuses the call for good, else a ``SidecarError`` (an outage)."""
    return _answered(what, status, content, StateRefused if refuses(status) else SidecarError)


class SidecarClient:
    """The sidecar at ``DAPR_HTTP_ENDPOINT``, else ``http://DAPR_RUNTIME_HOST:DAPR_HTTP_PORT``."""

    def __init__(self, *, timeout_s: float = 300.0) -> None:
        host = os.environ.get("DAPR_RUNTIME_HOST", "127.0.0.1")
        port = os.environ.get("DAPR_HTTP_PORT", "3500")
        base = os.environ.get("DAPR_HTTP_ENDPOINT") or f"http://{host}:{port}"
        parts = urlsplit(base)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"DAPR_HTTP_ENDPOINT {base!r} is not an http(s) URL")
        secure = parts.scheme == "https"
        prefix = parts.path.rstrip("/")
        self._base = f"{prefix}/v1.0"
        self._alpha = f"{prefix}/v1.0-alpha1"
        self._headers = {"content-type": "application/json"}
        self._auth: dict[str, str] = {}
        token = os.environ.get("DAPR_API_TOKEN")
        if token:
            self._auth["dapr-api-token"] = token
            self._headers["dapr-api-token"] = token
        self._pool = Http1Pool(
            parts.hostname,
            parts.port or (443 if secure else 80),
            ssl=ssl.create_default_context() if secure else None,
            timeout=timeout_s,
            connect_timeout=10.0,
        )

    async def _call(
        self,
        method: str,
        url: str,
        what: str,
        *,
        data: bytes | str | None = None,
        headers: dict[str, str] | None = None,
        error: type[SidecarError] = SidecarError,
        timeout_s: float | None = None,
    ) -> tuple[int, bytes, str | None]:
        """(status, body, ETag header) of one request; ``error`` when unreachable."""
        body = data.encode() if isinstance(data, str) else (data or b"")
        try:
            resp = await self._pool.request(
                method, url, body=body, headers=headers or self._auth, timeout_s=timeout_s
            )
        except Http1Error as exc:
            raise error(f"{what}: {exc}", None) from exc
        return resp.status, resp.body, resp.headers.get("etag")

    async def invoke(self, actor_type: str, actor_id: str, method: str, body: Any) -> Any:
        """Call an actor method with ``body`` as JSON; its decoded answer."""
        return await self.invoke_json(actor_type, actor_id, method, json.dumps(body).encode())

    async def invoke_json(self, actor_type: str, actor_id: str, method: str, data: bytes) -> Any:
        """Call an actor method with ``data``, JSON text made by the caller (forwarded
        or serialised once); its decoded answer."""
        what = f"{actor_type}/{actor_id}.{method}"
        url = (
            f"{self._base}/actors/{quote(actor_type, safe='')}/"
            f"{quote(actor_id, safe='')}/method/{method}"
        )
        status, content, _ = await self._call(
            "POST", url, what, data=data, headers=self._headers, error=ActorInvokeError
        )
        if status != 200:
            raise _answered(what, status, content, ActorInvokeError)
        return json.loads(content) if content else None

    async def get_state(self, store: str, key: str) -> tuple[bytes | None, str | None]:
        """The stored bytes and ETag of ``key``; (None, None) when it does not exist."""
        url = f"{self._base}/state/{quote(store, safe='')}/{quote(key, safe='')}"
        status, content, etag = await self._call("GET", url, f"reading {key!r}")
        if status == 204:
            return None, None
        if status != 200:
            raise _state_answered(f"reading {key!r}", status, content)
        return content, etag

    async def save_state(
        self,
        store: str,
        items: Sequence[StateWrite],
        metadata: dict[str, str] | None = None,
    ) -> None:
        """Save items (``POST /v1.0/state/<store>``); ``StateConflict`` on a 409,
        ``StateRefused`` on an answer that refuses them for good."""
        entries = [_state_item(write) for write in items]
        if metadata:
            for entry in entries:
                entry["metadata"] = metadata
        body = json.dumps(entries)
        url = f"{self._base}/state/{quote(store, safe='')}"
        what = f"writing {items[0][0]!r}" if len(items) == 1 else f"writing {len(items)} keys"
        status, content, _ = await self._call("POST", url, what, data=body, headers=self._headers)
        if status == 409:
            raise _answered(what, status, content, StateConflict)
        if status != 204:
            raise _state_answered(what, status, content)

    async def transact_state(self, store: str, upserts: Sequence[StateWrite]) -> None:
        """Upsert items in one transaction (``POST /v1.0/state/<store>/transaction``).

        daprd answers an ETag conflict inside a transaction with 500
        ``ERR_STATE_TRANSACTION`` like any other failure, with the store's own text
        (on Redis it does not mention ETags; dapr-contract §2.4): a failed transaction
        is a ``SidecarError`` here, and only the caller, by reading the guarded key
        again, can tell a conflict from an outage (``RunStore.commit_barrier``). What
        daprd refuses before the store sees it (a body over its limit, a malformed
        request: 400) is ``StateRefused``."""
        ops = [{"operation": "upsert", "request": _state_item(write)} for write in upserts]
        await self._transaction(store, ops, "state transaction")

    async def _transaction(self, store: str, ops: list[dict[str, Any]], what: str) -> None:
        url = f"{self._base}/state/{quote(store, safe='')}/transaction"
        status, content, _ = await self._call(
            "POST", url, what, data=json.dumps({"operations": ops}), headers=self._headers
        )
        if status == 204:
            return
        raise _state_answered(what, status, content)

    async def get_bulk_state(
        self, store: str, keys: Sequence[str]
    ) -> list[tuple[bytes | None, str | None]]:
        """The stored bytes and ETags of ``keys`` (``POST /v1.0/state/<store>/bulk``), in
        their order; (None, None) for an absent key. The answer holds each value as
        JSON (``data``); its text is what ``get_state`` answers, up to escapes."""
        if not keys:
            return []
        url = f"{self._base}/state/{quote(store, safe='')}/bulk"
        what = f"reading {len(keys)} keys"
        body = json.dumps({"keys": list(keys), "parallelism": min(len(keys), 16)})
        status, content, _ = await self._call("POST", url, what, data=body, headers=self._headers)
        if status != 200:
            raise _state_answered(what, status, content)
        found: dict[str, tuple[bytes | None, str | None]] = {}
        for item in json.loads(content):
            if item.get("error"):
                raise SidecarError(f"{what}: {item['key']!r}: {item['error']}", status)
            if "data" in item and item["data"] is not None:
                found[item["key"]] = (json.dumps(item["data"]).encode(), item.get("etag"))
        return [found.get(key, (None, None)) for key in keys]

    async def delete_state(self, store: str, deletes: Sequence[StateDelete]) -> None:
        """Delete keys: one by ``DELETE /v1.0/state/<store>/<key>`` (its ETag in
        ``If-Match``; ``StateConflict`` on a 409), several in one transaction."""
        if len(deletes) == 1:
            key, etag = deletes[0]
            url = f"{self._base}/state/{quote(store, safe='')}/{quote(key, safe='')}"
            headers = {**self._auth, **({"if-match": etag} if etag is not None else {})}
            what = f"deleting {key!r}"
            status, content, _ = await self._call("DELETE", url, what, headers=headers)
            if status == 409:
                raise _answered(what, status, content, StateConflict)
            if status not in (200, 204):
                raise _state_answered(what, status, content)
            return
        ops = [
            {"operation": "delete", "request": {"key": key, **({"etag": etag} if etag else {})}}
            for key, etag in deletes
        ]
        await self._transaction(store, ops, f"deleting {len(deletes)} keys")

    async def publish(self, pubsub: str, topic: str, body: bytes, content_type: str) -> None:
        url = f"{self._base}/publish/{quote(pubsub, safe='')}/{quote(topic, safe='/')}"
        headers = {**self._auth, "content-type": content_type}
        status, content, _ = await self._call(
            "POST", url, f"publishing to {topic}", data=body, headers=headers
        )
        if status != 204:
            raise _answered(f"publishing to {topic}", status, content)

    async def publish_bulk(
        self, pubsub: str, topic: str, entries: Sequence[tuple[str, bytes]], content_type: str
    ) -> list[tuple[str, str]]:
        """Bulk publish of (entry id, JSON event bytes) entries; the failed entries as
        (entry id, error), empty when all went out."""
        head = f'"contentType":{json.dumps(content_type)},"event":'.encode()
        body = (
            b"["
            + b",".join(
                b'{"entryId":' + json.dumps(entry_id).encode() + b"," + head + event + b"}"
                for entry_id, event in entries
            )
            + b"]"
        )
        url = f"{self._alpha}/publish/bulk/{quote(pubsub, safe='')}/{quote(topic, safe='/')}"
        status, content, _ = await self._call(
            "POST", url, f"publishing to {topic}", data=body, headers=self._headers
        )
        if status == 204:
            return []
        try:
            failed = json.loads(content)["failedEntries"]
            return [(str(f["entryId"]), str(f.get("error", ""))) for f in failed]
        except (ValueError, KeyError, TypeError):
            raise _answered(f"publishing to {topic}", status, content) from None

    async def wait_outbound(self, within_s: float | None = None) -> None:
        """Wait until the sidecar's APIs are up (``/v1.0/healthz/outbound`` answers
        204), at most ``within_s`` seconds (``SUPERSTEP_SIDECAR_WAIT_S``, 60 by default).

        ``dapr run -f`` (and Kubernetes, without the sidecar-first ordering) starts an
        app before its daprd listens: an app that uses its sidecar while starting up
        must wait for it first, or die on a refused connection."""
        if within_s is None:
            within_s = float(os.environ.get("SUPERSTEP_SIDECAR_WAIT_S", "60"))
        loop = asyncio.get_running_loop()
        deadline = loop.time() + within_s
        while True:
            why = await self.sidecar_ready(timeout_s=2.0)
            if why is None:
                return
            if loop.time() >= deadline:
                raise SidecarError(
                    f"the Dapr sidecar was not ready within {within_s:g}s: {why}", None
                )
            await asyncio.sleep(0.1)

    async def sidecar_ready(self, timeout_s: float = 2.0) -> str | None:
        """None when the sidecar's outbound health (components loaded, APIs up) is
        good, else why not. (Its ``/v1.0/healthz`` waits for this app, so a readiness
        probe of the app must not depend on that one.)"""
        url = f"{self._base}/healthz/outbound"
        try:
            status, _, _ = await self._call("GET", url, "the Dapr sidecar", timeout_s=timeout_s)
        except SidecarError as exc:
            return f"the Dapr sidecar is unreachable: {exc}"
        if status in (200, 204):
            return None
        return f"the Dapr sidecar's outbound health answered {status}"

    async def aclose(self) -> None:
        await self._pool.close()
