"""The state API of one sidecar, independent of HTTP and gRPC.

Prefixes keys (``keyPrefix``), validates requests and maps store errors to the exact
answers of dapr-contract §2.4: a single save/delete ETag conflict is 409/ABORTED, the
same conflict inside a transaction is 500/INTERNAL ``ERR_STATE_TRANSACTION``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType

from sidecar.errors import ApiError, ETagInvalid, ETagMismatch, StateStoreError
from sidecar.resources.model import Component
from sidecar.state.base import (
    FIRST_WRITE,
    LAST_WRITE,
    DeleteOp,
    SetOp,
    StateStore,
    StoredItem,
    key_prefix,
    parse_ttl,
)

__all__ = ["BoundStore", "BulkItem", "SaveItem", "StateService"]

_CONCURRENCY = ("", FIRST_WRITE, LAST_WRITE)
_CONSISTENCY = ("", "strong", "eventual")


def _empty() -> Mapping[str, str]:
    return MappingProxyType({})


@dataclass(frozen=True)
class SaveItem:
    """One item of a save request or an upsert/delete inside a transaction, as sent."""

    key: str
    value: bytes = b""
    etag: str | None = None
    metadata: Mapping[str, str] = field(default_factory=_empty)
    concurrency: str = ""
    consistency: str = ""


@dataclass(frozen=True)
class BulkItem:
    key: str
    item: StoredItem | None = None
    error: str = ""


@dataclass(frozen=True)
class BoundStore:
    """A state store component as one app sees it (its key prefix)."""

    component: Component
    store: StateStore
    prefix: str

    @property
    def name(self) -> str:
        return self.component.name

    @property
    def is_actor_store(self) -> bool:
        return self.component.flag("actorStateStore")


def bind_store(component: Component, store: StateStore, app_id: str) -> BoundStore:
    return BoundStore(
        component, store, key_prefix(component.get("keyPrefix"), app_id, component.name)
    )


def _illegal(what: str, value: str) -> ApiError:
    return ApiError(
        400,
        "INVALID_ARGUMENT",
        "ERR_MALFORMED_REQUEST",
        f"input {what} {value!r} can't contain '||'",
        reason="DAPR_STATE_ILLEGAL_KEY",
    )


class StateService:
    """State operations of one sidecar over its state store components."""

    def __init__(self, stores: Mapping[str, BoundStore]) -> None:
        self._stores = dict(stores)

    @property
    def stores(self) -> Mapping[str, BoundStore]:
        return MappingProxyType(self._stores)

    def store(self, name: str) -> BoundStore:
        if not self._stores:
            raise ApiError(
                500,
                "FAILED_PRECONDITION",
                "ERR_STATE_STORE_NOT_CONFIGURED",
                "state store is not configured",
            )
        bound = self._stores.get(name)
        if bound is None:
            raise ApiError(
                400,
                "INVALID_ARGUMENT",
                "ERR_STATE_STORE_NOT_FOUND",
                f"state store {name} is not found",
                reason="DAPR_STATE_NOT_FOUND",
            )
        return bound

    @staticmethod
    def full_key(bound: BoundStore, key: str) -> str:
        if "||" in key:
            raise _illegal("key", key)
        if "||" in bound.prefix:
            raise _illegal("key prefix", bound.prefix)
        return f"{bound.prefix}||{key}" if bound.prefix else key

    @staticmethod
    def _set_op(bound: BoundStore, item: SaveItem, extra: Mapping[str, str]) -> SetOp:
        if not item.key:
            raise ApiError(
                400, "INVALID_ARGUMENT", "ERR_MALFORMED_REQUEST", '"key" is a required field'
            )
        meta = {**extra, **item.metadata}
        return SetOp(
            key=StateService.full_key(bound, item.key),
            value=item.value,
            etag=item.etag,
            concurrency=item.concurrency,
            ttl=parse_ttl(meta),
            metadata=MappingProxyType(meta),
        )

    @staticmethod
    def _delete_op(bound: BoundStore, item: SaveItem) -> DeleteOp:
        if not item.key:
            raise ApiError(
                400, "INVALID_ARGUMENT", "ERR_MALFORMED_REQUEST", '"key" is a required field'
            )
        return DeleteOp(
            key=StateService.full_key(bound, item.key),
            etag=item.etag or None,
            concurrency=item.concurrency,
            metadata=item.metadata,
        )

    @staticmethod
    def _check_options(item: SaveItem) -> None:
        if item.concurrency not in _CONCURRENCY:
            raise StateStoreError(f"unknown concurrency option {item.concurrency!r}")
        if item.consistency not in _CONSISTENCY:
            raise StateStoreError(f"unknown consistency option {item.consistency!r}")

    async def get(self, store: str, key: str) -> StoredItem | None:
        bound = self.store(store)
        full = self.full_key(bound, key)
        try:
            return await bound.store.get(full)
        except StateStoreError as exc:
            raise ApiError(
                500,
                "INTERNAL",
                "ERR_STATE_GET",
                f"fail to get {key} from state store {store}: {exc}",
            ) from exc

    async def bulk_get(self, store: str, keys: Sequence[str]) -> list[BulkItem]:
        bound = self.store(store)
        full = [self.full_key(bound, k) for k in keys]
        try:
            items = await bound.store.bulk_get(full)
        except StateStoreError as exc:
            raise ApiError(
                500, "INTERNAL", "ERR_STATE_BULK_GET", f"failed getting state in bulk: {exc}"
            ) from exc
        return [BulkItem(k, item) for k, item in zip(keys, items, strict=True)]

    async def save(
        self, store: str, items: Sequence[SaveItem], metadata: Mapping[str, str] | None = None
    ) -> None:
        bound = self.store(store)
        extra = metadata or {}
        ops: list[tuple[SaveItem, SetOp | None, StateStoreError | None]] = []
        for item in items:
            try:
                self._check_options(item)
                ops.append((item, self._set_op(bound, item, extra), None))
            except StateStoreError as exc:
                ops.append((item, None, exc))
        errors = await asyncio.gather(*(self._one_set(bound, op, err) for _, op, err in ops))
        failures = [e for e in errors if e is not None]
        if not failures:
            return
        if all(isinstance(e, ETagMismatch | ETagInvalid) for e in failures):
            invalid = any(isinstance(e, ETagInvalid) for e in failures)
            raise ApiError(
                400 if invalid else 409,
                "INVALID_ARGUMENT" if invalid else "ABORTED",
                "ERR_STATE_SAVE",
                f"failed saving state in state store {store}: "
                f"{'invalid etag value' if invalid else 'possible etag mismatch'}: {failures[0]}",
            )
        raise ApiError(
            500,
            "INTERNAL",
            "ERR_STATE_SAVE",
            f"failed saving state in state store {store}: {failures[0]}",
        )

    @staticmethod
    async def _one_set(
        bound: BoundStore, op: SetOp | None, error: StateStoreError | None
    ) -> StateStoreError | None:
        if op is None:
            return error
        try:
            await bound.store.set(op)
        except StateStoreError as exc:
            return exc
        return None

    async def delete(self, store: str, item: SaveItem) -> None:
        bound = self.store(store)
        op = self._delete_op(bound, item)
        try:
            self._check_options(item)
            await bound.store.delete(op)
        except ETagMismatch as exc:
            raise ApiError(
                409,
                "ABORTED",
                "ERR_STATE_DELETE",
                f"failed deleting state with key {item.key}: possible etag mismatch: {exc}",
            ) from exc
        except ETagInvalid as exc:
            raise ApiError(
                400,
                "INVALID_ARGUMENT",
                "ERR_STATE_DELETE",
                f"failed deleting state with key {item.key}: invalid etag value: {exc}",
            ) from exc
        except StateStoreError as exc:
            raise ApiError(
                500,
                "INTERNAL",
                "ERR_STATE_DELETE",
                f"failed deleting state with key {item.key}: {exc}",
            ) from exc

    async def transact(
        self,
        store: str,
        operations: Sequence[tuple[str, SaveItem]],
        metadata: Mapping[str, str] | None = None,
    ) -> None:
        """``operations`` are ``("upsert"|"delete", item)`` pairs, already validated."""
        bound = self.store(store)
        if "TRANSACTIONAL" not in bound.store.features:
            raise ApiError(
                500,
                "UNIMPLEMENTED",
                "ERR_STATE_STORE_NOT_SUPPORTED",
                f"state store {store} doesn't support transactions",
            )
        extra = metadata or {}
        ops: list[SetOp | DeleteOp] = []
        try:
            for kind, item in operations:
                if kind == "upsert":
                    ops.append(self._set_op(bound, item, extra))
                else:
                    ops.append(self._delete_op(bound, item))
            if not ops:
                return
            await bound.store.transact(ops)
        except StateStoreError as exc:
            hint = " (possible etag mismatch)" if isinstance(exc, ETagMismatch) else ""
            raise ApiError(
                500,
                "INTERNAL",
                "ERR_STATE_TRANSACTION",
                f"error while executing state transaction{hint}: {exc}",
            ) from exc
