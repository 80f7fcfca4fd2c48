"""State stores (in-memory, Redis, PostgreSQL v2) and the transport-neutral state API."""

from __future__ import annotations

from sidecar.resources.model import Component
from sidecar.state.base import DeleteOp, SetOp, StateStore, StoredItem, key_prefix
from sidecar.state.service import BoundStore, BulkItem, SaveItem, StateService, bind_store

__all__ = [
    "BoundStore",
    "BulkItem",
    "DeleteOp",
    "SaveItem",
    "SetOp",
    "StateService",
    "StateStore",
    "StoredItem",
    "bind_store",
    "key_prefix",
    "open_state_store",
]


def open_state_store(component: Component) -> StateStore:
    """A new (not yet started) store for a ``state.*`` component."""
    if component.type == "state.in-memory":
        from sidecar.state.memory import MemoryStateStore

        return MemoryStateStore()
    if component.type == "state.redis":
        from sidecar.state.redis_store import RedisStateStore

        return RedisStateStore(component)
    if component.type == "state.postgresql":
        from sidecar.state.postgres import PostgresStateStore

        return PostgresStateStore(component)
    raise ValueError(f"not a state store type: {component.type}")
