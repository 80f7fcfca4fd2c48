"""``pubsub.in-memory``: a bus inside one sidecar (dapr-contract §3.7).

Strict FIFO per subscription with one delivery in flight; a publish waits until the
previous delivery to every subscriber of that topic finished. That is why a handler that
publishes to its own topic through the same sidecar deadlocks under daprd; here the
publish gives up after ``publish_wait`` seconds with a :class:`BrokerError` that says so.
Failed deliveries are logged and discarded.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Mapping

from sidecar.errors import BrokerError
from sidecar.pubsub.base import Broker, BrokerMessage, Handler, TopicSubscription

__all__ = ["MemoryBroker"]

log = logging.getLogger(__name__)


class _MemorySubscription(TopicSubscription):
    def __init__(self, broker: MemoryBroker, topic: str, handler: Handler) -> None:
        self.broker = broker
        self.topic = topic
        self.handler = handler

    async def close(self) -> None:
        subs = self.broker.subscribers.get(self.topic, [])
        if self in subs:
            subs.remove(self)


class MemoryBroker(Broker):
    def __init__(self, *, publish_wait: float = 30.0) -> None:
        self.subscribers: dict[str, list[_MemorySubscription]] = {}
        self._inflight: dict[str, list[asyncio.Task[None]]] = {}
        self._publish_wait = publish_wait

    async def publish(self, topic: str, data: bytes, metadata: Mapping[str, str]) -> None:
        previous = [t for t in self._inflight.get(topic, []) if not t.done()]
        if previous:
            _, pending = await asyncio.wait(previous, timeout=self._publish_wait)
            if pending:
                raise BrokerError(
                    f"in-memory pub/sub: the previous delivery on topic {topic!r} is still "
                    f"running after {self._publish_wait:g}s (a handler publishing to its own "
                    "topic through the same sidecar deadlocks with pubsub.in-memory)"
                )
        message = BrokerMessage(topic, data, dict(metadata), str(uuid.uuid4()))
        self._inflight[topic] = [
            asyncio.create_task(self._deliver(sub, message))
            for sub in self.subscribers.get(topic, [])
        ]

    @staticmethod
    async def _deliver(sub: _MemorySubscription, message: BrokerMessage) -> None:
        try:
            await sub.handler(message)
        except Exception as exc:  # the component's policy: log and discard
            log.warning("in-memory pub/sub: discarding message on %s: %s", message.topic, exc)

    async def subscribe(self, topic: str, handler: Handler) -> TopicSubscription:
        sub = _MemorySubscription(self, topic, handler)
        self.subscribers.setdefault(topic, []).append(sub)
        return sub

    async def close(self) -> None:
        self.subscribers.clear()
        tasks = [t for ts in self._inflight.values() for t in ts if not t.done()]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._inflight.clear()
