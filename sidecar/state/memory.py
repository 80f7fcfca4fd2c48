"""``state.in-memory``: private to one sidecar, strict ETag model (dapr-contract §2.5).

ETags are random UUIDs renewed on every write. An ETag on a missing key is a mismatch;
``first-write`` without an ETag on an existing key is a mismatch; transactions check
every ETag first and then apply everything, so they are atomic.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from types import MappingProxyType

from sidecar.errors import ETagMismatch
from sidecar.state.base import FIRST_WRITE, DeleteOp, SetOp, StateStore, StoredItem

__all__ = ["MemoryStateStore"]


@dataclass
class _Entry:
    value: bytes
    etag: str
    expires_at: float | None  # wall-clock seconds


class MemoryStateStore(StateStore):
    features = frozenset({"ETAG", "TRANSACTIONAL", "TTL", "DELETE_WITH_PREFIX", "KEYS_LIKE"})

    def __init__(self) -> None:
        self._data: dict[str, _Entry] = {}

    def _live(self, key: str) -> _Entry | None:
        entry = self._data.get(key)
        if entry is not None and entry.expires_at is not None and entry.expires_at <= time.time():
            del self._data[key]
            return None
        return entry

    async def get(self, key: str) -> StoredItem | None:
        entry = self._live(key)
        if entry is None:
            return None
        meta: dict[str, str] = {}
        if entry.expires_at is not None:
            expiry = datetime.fromtimestamp(entry.expires_at, UTC).replace(microsecond=0)
            meta["ttlExpireTime"] = expiry.isoformat().replace("+00:00", "Z")
        return StoredItem(entry.value, entry.etag, MappingProxyType(meta))

    def _check(self, op: SetOp | DeleteOp) -> None:
        entry = self._live(op.key)
        if op.has_etag:
            if entry is None or entry.etag != op.etag:
                raise ETagMismatch(f"etag mismatch for key {op.key}")
        elif isinstance(op, SetOp) and op.concurrency == FIRST_WRITE and entry is not None:
            raise ETagMismatch(f"key {op.key} already exists (first-write)")

    def _apply(self, op: SetOp | DeleteOp) -> None:
        if isinstance(op, DeleteOp):
            self._data.pop(op.key, None)
            return
        ttl = op.ttl if op.ttl is not None and op.ttl > 0 else None
        expires = time.time() + ttl if ttl else None
        self._data[op.key] = _Entry(op.value, str(uuid.uuid4()), expires)

    async def set(self, op: SetOp) -> None:
        self._check(op)
        self._apply(op)

    async def delete(self, op: DeleteOp) -> None:
        self._check(op)
        self._apply(op)

    async def transact(self, ops: Sequence[SetOp | DeleteOp]) -> None:
        # No await between check and apply: nothing else runs in between.
        for op in ops:
            self._check(op)
        for op in ops:
            self._apply(op)
