"""The gRPC API (``dapr.proto.runtime.v1.Dapr``) used by the Python SDK's ``DaprClient``.

Implemented: GetState, GetBulkState, SaveState, DeleteState, DeleteBulkState,
ExecuteStateTransaction, PublishEvent, BulkPublishEvent(+Alpha1), GetMetadata,
SetMetadata, InvokeActor, GetActorState. Everything else answers UNIMPLEMENTED.
"""

from __future__ import annotations

import hmac
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, NoReturn

import grpc
from dapr.proto.common.v1 import common_pb2 as common_v1
from dapr.proto.runtime.v1 import actors_pb2, metadata_pb2, pubsub_pb2, state_pb2
from dapr.proto.runtime.v1 import dapr_pb2_grpc as api_service_v1
from google.protobuf import empty_pb2  # type: ignore[import-untyped]  # no protobuf stubs installed

from sidecar.errors import ApiError
from sidecar.pubsub.service import BulkEntry
from sidecar.state.service import SaveItem

if TYPE_CHECKING:
    from sidecar.runtime import Sidecar

__all__ = ["DaprGrpcApi", "TokenInterceptor"]

_CONCURRENCY = {0: "", 1: "first-write", 2: "last-write"}
_CONSISTENCY = {0: "", 1: "eventual", 2: "strong"}


async def _abort(context: grpc.aio.ServicerContext[Any, Any], error: ApiError) -> NoReturn:
    await context.abort(grpc.StatusCode[error.grpc_code], error.message)
    raise AssertionError("unreachable")  # context.abort always raises


def _item(state: common_v1.StateItem) -> SaveItem:
    etag = state.etag.value if state.HasField("etag") else None
    options = state.options if state.HasField("options") else None
    return SaveItem(
        key=state.key,
        value=state.value,
        etag=etag,
        metadata=dict(state.metadata),
        concurrency=_CONCURRENCY.get(options.concurrency, "") if options else "",
        consistency=_CONSISTENCY.get(options.consistency, "") if options else "",
    )


class TokenInterceptor(grpc.aio.ServerInterceptor):  # type: ignore[misc]  # grpc is untyped
    """UNAUTHENTICATED unless the call carries metadata ``dapr-api-token``."""

    def __init__(self, token: str) -> None:
        self._token = token.encode()

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler]],
        details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler:
        given = b""
        for key, value in details.invocation_metadata or ():
            if key == "dapr-api-token":
                given = value.encode() if isinstance(value, str) else value
        if hmac.compare_digest(given, self._token):
            return await continuation(details)

        async def deny(request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> None:
            await context.abort(grpc.StatusCode.UNAUTHENTICATED, "invalid api token")

        return grpc.unary_unary_rpc_method_handler(deny)


class DaprGrpcApi(api_service_v1.DaprServicer):
    def __init__(self, sidecar: Sidecar) -> None:
        self.sidecar = sidecar

    def attach(self, server: grpc.aio.Server) -> None:
        api_service_v1.add_DaprServicer_to_server(self, server)  # type: ignore[no-untyped-call]  # generated

    # -- state -------------------------------------------------------------------------

    async def GetState(self, request: Any, context: Any) -> state_pb2.GetStateResponse:
        try:
            item = await self.sidecar.state.get(request.store_name, request.key)
        except ApiError as exc:
            await _abort(context, exc)
        if item is None:
            return state_pb2.GetStateResponse()
        return state_pb2.GetStateResponse(data=item.value, etag=item.etag, metadata=item.metadata)

    async def GetBulkState(self, request: Any, context: Any) -> state_pb2.GetBulkStateResponse:
        try:
            items = await self.sidecar.state.bulk_get(request.store_name, list(request.keys))
        except ApiError as exc:
            await _abort(context, exc)
        out = []
        for entry in items:
            if entry.item is None:
                out.append(state_pb2.BulkStateItem(key=entry.key, error=entry.error))
            else:
                out.append(
                    state_pb2.BulkStateItem(
                        key=entry.key,
                        data=entry.item.value,
                        etag=entry.item.etag,
                        metadata=entry.item.metadata,
                    )
                )
        return state_pb2.GetBulkStateResponse(items=out)

    async def SaveState(self, request: Any, context: Any) -> empty_pb2.Empty:
        try:
            self.sidecar.state.store(request.store_name)
            items = [_item(s) for s in request.states]
            for item in items:
                if not item.key:
                    raise ApiError(
                        400, "INVALID_ARGUMENT", "ERR_MALFORMED_REQUEST", "key is required"
                    )
            await self.sidecar.state.save(request.store_name, items)
        except ApiError as exc:
            await _abort(context, exc)
        return empty_pb2.Empty()

    async def DeleteState(self, request: Any, context: Any) -> empty_pb2.Empty:
        options = request.options if request.HasField("options") else None
        item = SaveItem(
            key=request.key,
            etag=request.etag.value if request.HasField("etag") else None,
            metadata=dict(request.metadata),
            concurrency=_CONCURRENCY.get(options.concurrency, "") if options else "",
            consistency=_CONSISTENCY.get(options.consistency, "") if options else "",
        )
        try:
            await self.sidecar.state.delete(request.store_name, item)
        except ApiError as exc:
            await _abort(context, exc)
        return empty_pb2.Empty()

    async def DeleteBulkState(self, request: Any, context: Any) -> empty_pb2.Empty:
        try:
            for state in request.states:
                await self.sidecar.state.delete(request.store_name, _item(state))
        except ApiError as exc:
            await _abort(context, exc)
        return empty_pb2.Empty()

    async def ExecuteStateTransaction(self, request: Any, context: Any) -> empty_pb2.Empty:
        try:
            self.sidecar.state.store(request.storeName)
            ops: list[tuple[str, SaveItem]] = []
            for op in request.operations:
                if op.operationType not in ("upsert", "delete"):
                    raise ApiError(
                        501,
                        "UNIMPLEMENTED",
                        "ERR_NOT_SUPPORTED_STATE_OPERATION",
                        f"operation type {op.operationType} not supported",
                    )
                ops.append((op.operationType, _item(op.request)))
            await self.sidecar.state.transact(request.storeName, ops, dict(request.metadata))
        except ApiError as exc:
            await _abort(context, exc)
        return empty_pb2.Empty()

    # -- pub/sub -----------------------------------------------------------------------

    async def PublishEvent(self, request: Any, context: Any) -> empty_pb2.Empty:
        try:
            await self.sidecar.pubsub.publish(
                request.pubsub_name,
                request.topic,
                request.data,
                request.data_content_type,
                dict(request.metadata),
            )
        except ApiError as exc:
            await _abort(context, exc)
        return empty_pb2.Empty()

    async def BulkPublishEvent(self, request: Any, context: Any) -> pubsub_pb2.BulkPublishResponse:
        entries = [
            BulkEntry(e.entry_id, e.event, e.content_type, dict(e.metadata))
            for e in request.entries
        ]
        try:
            failed = await self.sidecar.pubsub.bulk_publish(
                request.pubsub_name, request.topic, entries, dict(request.metadata)
            )
        except ApiError as exc:
            await _abort(context, exc)
        return pubsub_pb2.BulkPublishResponse(
            failedEntries=[
                pubsub_pb2.BulkPublishResponseFailedEntry(entry_id=e, error=err)
                for e, err in failed
            ]
        )

    async def BulkPublishEventAlpha1(
        self, request: Any, context: Any
    ) -> pubsub_pb2.BulkPublishResponse:
        return await self.BulkPublishEvent(request, context)

    # -- metadata ----------------------------------------------------------------------

    async def GetMetadata(self, request: Any, context: Any) -> metadata_pb2.GetMetadataResponse:
        meta = self.sidecar.metadata()
        return metadata_pb2.GetMetadataResponse(
            id=meta["id"],
            runtime_version=meta["runtimeVersion"],
            extended_metadata=meta["extended"],
            active_actors_count=[
                metadata_pb2.ActiveActorsCount(type=a["type"], count=a["count"])
                for a in meta.get("actors", [])
            ],
            registered_components=[
                metadata_pb2.RegisteredComponents(
                    name=c["name"],
                    type=c["type"],
                    version=c["version"],
                    capabilities=c.get("capabilities", []),
                )
                for c in meta["components"]
            ],
            subscriptions=[
                metadata_pb2.PubsubSubscription(
                    pubsub_name=s["pubsubname"],
                    topic=s["topic"],
                    metadata=s["metadata"],
                    rules=metadata_pb2.PubsubSubscriptionRules(
                        rules=[
                            metadata_pb2.PubsubSubscriptionRule(match=r["match"], path=r["path"])
                            for r in s["rules"]
                        ]
                    ),
                    dead_letter_topic=s["deadLetterTopic"],
                )
                for s in meta["subscriptions"]
            ],
        )

    async def SetMetadata(self, request: Any, context: Any) -> empty_pb2.Empty:
        self.sidecar.extended_metadata[request.key] = request.value
        return empty_pb2.Empty()

    # -- actors ------------------------------------------------------------------------

    async def InvokeActor(self, request: Any, context: Any) -> actors_pb2.InvokeActorResponse:
        try:
            answer = await self.sidecar.actors.invoke(
                request.actor_type,
                request.actor_id,
                request.method,
                body=request.data,
                headers=dict(request.metadata),
            )
        except ApiError as exc:
            await _abort(context, exc)
        return actors_pb2.InvokeActorResponse(data=answer.body)

    async def GetActorState(self, request: Any, context: Any) -> actors_pb2.GetActorStateResponse:
        try:
            value = await self.sidecar.actors.get_state(
                request.actor_type, request.actor_id, request.key
            )
        except ApiError as exc:
            await _abort(context, exc)
        return actors_pb2.GetActorStateResponse(data=value or b"")
