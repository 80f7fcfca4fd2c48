"""The state store port: requests, stored items, and the key-prefix rules of daprd.

Keys reaching a store are already prefixed (``<appId>||<key>`` by default). Stores raise
:class:`~sidecar.errors.ETagMismatch`, :class:`~sidecar.errors.ETagInvalid` or
:class:`~sidecar.errors.StateStoreError`; the state service maps those to API answers.
"""

from __future__ import annotations

import abc
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType

from sidecar.errors import StateStoreError

__all__ = [
    "DeleteOp",
    "SetOp",
    "StateStore",
    "StoredItem",
    "key_prefix",
    "parse_ttl",
]

FIRST_WRITE = "first-write"
LAST_WRITE = "last-write"


def _empty() -> Mapping[str, str]:
    return MappingProxyType({})


@dataclass(frozen=True)
class SetOp:
    """Write ``value`` under ``key``.

    ``etag`` is ``None`` when the caller sent none; an empty string is kept because
    Redis treats "an ETag was sent" differently from "no ETag" on errors.
    ``concurrency`` is ``""``, ``"first-write"`` or ``"last-write"``.
    """

    key: str
    value: bytes
    etag: str | None = None
    concurrency: str = ""
    ttl: int | None = None
    metadata: Mapping[str, str] = field(default_factory=_empty)

    @property
    def has_etag(self) -> bool:
        return bool(self.etag)


@dataclass(frozen=True)
class DeleteOp:
    """Delete ``key``, optionally only if its ETag matches."""

    key: str
    etag: str | None = None
    concurrency: str = ""
    metadata: Mapping[str, str] = field(default_factory=_empty)

    @property
    def has_etag(self) -> bool:
        return bool(self.etag)


@dataclass(frozen=True)
class StoredItem:
    """A value read back: raw bytes, its ETag and response metadata (``ttlExpireTime``)."""

    value: bytes
    etag: str
    metadata: Mapping[str, str] = field(default_factory=_empty)


def parse_ttl(metadata: Mapping[str, str]) -> int | None:
    """``ttlInSeconds`` from request metadata; a store error when it is not an integer."""
    raw = metadata.get("ttlInSeconds")
    if raw is None or raw == "":
        return None
    try:
        return int(raw)
    except ValueError:
        raise StateStoreError(f"incorrect value for metadata ttlInSeconds: {raw!r}") from None


def key_prefix(mode: str, app_id: str, store_name: str) -> str:
    """The prefix daprd puts before ``||`` for a component's ``keyPrefix`` metadata."""
    lowered = mode.lower()
    if lowered in ("", "appid"):
        return app_id
    if lowered == "name":
        return store_name
    if lowered == "namespace":
        namespace = os.environ.get("NAMESPACE", "")
        return f"{namespace}.{app_id}" if namespace else app_id
    if lowered == "none":
        return ""
    return mode


class StateStore(abc.ABC):
    """One state store component instance."""

    #: Feature names reported by the metadata API (``ETAG``, ``TRANSACTIONAL``, ``TTL``...).
    features: frozenset[str] = frozenset()

    @abc.abstractmethod
    async def get(self, key: str) -> StoredItem | None:
        """The stored item, or ``None`` when the key is missing or expired."""

    @abc.abstractmethod
    async def set(self, op: SetOp) -> None:
        """Write one item."""

    @abc.abstractmethod
    async def delete(self, op: DeleteOp) -> None:
        """Delete one item (a missing key without an ETag is not an error)."""

    @abc.abstractmethod
    async def transact(self, ops: Sequence[SetOp | DeleteOp]) -> None:
        """Apply ``ops`` with this store's transaction semantics."""

    async def start(self) -> None:  # noqa: B027 - optional hook
        """Connect and prepare (tables, scripts)."""

    async def close(self) -> None:  # noqa: B027 - optional hook
        """Release connections."""

    async def bulk_get(self, keys: Sequence[str]) -> list[StoredItem | None]:
        """Read several keys; stores without a native bulk read loop over :meth:`get`."""
        return [await self.get(k) for k in keys]
