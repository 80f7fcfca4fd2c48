"""Large message payloads travel by reference.

An activation carries its messages; a payload above a size limit (a fan-out of a
large batch, say) would otherwise be copied into every activation CloudEvent and
through every hop (coordinator -> broker -> host -> executor actor). Instead the
coordinator writes it once to the state store under a content-addressed key and
the activation names the key; hosts read each key once and share it between the
executor actors they run (keys are immutable, so caching them is safe).

Wire form (``ActivationEnvelope.payload_keys``): ``{"<message position>": "<key>"}``;
the message at that position of ``activation.messages`` has no ``data`` field. The
executor's snapshot goes the same way when it is large: ``{"snapshot": "<key>"}``, and
the envelope's ``snapshot`` is null.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

__all__ = ["SNAPSHOT", "PayloadCache", "PayloadSplitter", "restore_payloads"]

SNAPSHOT = "snapshot"
"""The ``payload_keys`` entry of an executor snapshot sent by reference."""


def _dumps(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


class PayloadSplitter:
    """Coordinator side: decides which payloads go by reference and writes them.

    One splitter per superstep publish: payloads are recognised by object identity
    (a fan-out shares one payload object between its messages), so each distinct
    payload is measured, hashed and written once."""

    def __init__(self, run_id: str, limit: int) -> None:
        self._run_id = run_id
        self._limit = limit
        self._by_id: dict[int, str | None] = {}
        self.to_write: dict[str, str] = {}
        """key -> JSON text of the payloads to write before publishing."""

    def split(self, activation: dict[str, Any]) -> tuple[dict[str, Any], dict[str, str]]:
        """The activation JSON with large payloads removed, and their keys by position."""
        if self._limit <= 0:
            return activation, {}
        keys: dict[str, str] = {}
        messages = activation["messages"]
        out_messages: list[dict[str, Any]] | None = None
        for i, message in enumerate(messages):
            data = message.get("data")
            if not isinstance(data, (dict, list, str)):
                continue
            key = self._key_of(data)
            if key is None:
                continue
            if out_messages is None:
                out_messages = list(messages)
            out_messages[i] = {k: v for k, v in message.items() if k != "data"}
            keys[str(i)] = key
        if out_messages is None:
            return activation, {}
        return {**activation, "messages": out_messages}, keys

    def refer(self, value: Any) -> str | None:
        """The key ``value`` goes by (and is written under) when it is large, else
        ``None`` (it travels inline)."""
        return self._key_of(value)

    def _key_of(self, data: Any) -> str | None:
        marker = id(data)
        if marker in self._by_id:
            return self._by_id[marker]
        if isinstance(data, str) and len(data) < self._limit:
            self._by_id[marker] = None
            return None
        text = _dumps(data)
        if len(text) < self._limit:
            self._by_id[marker] = None
            return None
        digest = hashlib.sha256(text.encode()).hexdigest()[:32]
        key = f"payload:{self._run_id}:{digest}"
        self._by_id[marker] = key
        self.to_write[key] = text
        return key


def restore_payloads(
    activation: dict[str, Any], keys: dict[str, str], values: dict[str, Any]
) -> dict[str, Any]:
    """Put the referenced payloads back into an activation's messages."""
    messages = list(activation["messages"])
    for position, key in keys.items():
        i = int(position)
        messages[i] = {**messages[i], "data": values[key]}
    return {**activation, "messages": messages}


class PayloadCache:
    """Host side: payloads by key, read once per process (concurrent readers of the
    same key share one read), kept while under ``max_bytes`` (least recently used
    first out)."""

    def __init__(
        self, load: Callable[[str], Awaitable[tuple[Any, int]]], max_bytes: int = 256 << 20
    ) -> None:
        self._load = load
        self._max = max_bytes
        self._size = 0
        self._items: OrderedDict[str, tuple[Any, int]] = OrderedDict()
        self._loading: dict[str, asyncio.Task[tuple[Any, int]]] = {}

    async def get_many(self, keys: Sequence[str]) -> dict[str, Any]:
        unique = list(dict.fromkeys(keys))
        values = await asyncio.gather(*(self.get(k) for k in unique))
        return dict(zip(unique, values, strict=True))

    async def get(self, key: str) -> Any:
        hit = self._items.get(key)
        if hit is not None:
            self._items.move_to_end(key)
            return hit[0]
        task = self._loading.get(key)
        if task is None:
            task = asyncio.ensure_future(self._load(key))
            self._loading[key] = task
            task.add_done_callback(lambda _t: self._loading.pop(key, None))
        value, size = await asyncio.shield(task)
        if key not in self._items:
            self._items[key] = (value, size)
            self._size += size
            while self._size > self._max and len(self._items) > 1:
                _, (_, dropped) = self._items.popitem(last=False)
                self._size -= dropped
        return value
