"""``pubsub.redis``: Redis Streams with one consumer group per ``consumerID``.

A topic is a stream; every message is ``XADD <topic> * data <bytes> [metadata <json>]``.
Subscribers of the same ``consumerID`` (default: the app id) share a consumer group and
compete; different ids each get a copy. Up to ``concurrency`` deliveries run at once per
subscription (so no ordering). After a failed delivery the message is acknowledged, i.e.
discarded (contrib ≥ 1.17), unless ``processingTimeout`` had already passed: then it stays
pending and the reclaim loop (every ``redeliverInterval``) delivers it again. Messages
left pending by a crashed sidecar are reclaimed the same way.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
import uuid
from collections.abc import Mapping, Sequence
from typing import Any

import redis.asyncio as aioredis
from redis.exceptions import RedisError, ResponseError
from redis.typing import EncodableT, FieldT

from sidecar.errors import BrokerError
from sidecar.pubsub.base import Broker, BrokerMessage, Handler, TopicSubscription
from sidecar.redis_conn import redis_client
from sidecar.resources.model import Component

__all__ = ["RedisStreamsBroker"]

log = logging.getLogger(__name__)

SHUTDOWN_GRACE_S = 5.0
"""How long a closing subscription waits for its deliveries in flight (daprd's
``--dapr-graceful-shutdown-seconds`` is 5 by default)."""


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def _code(exc: ResponseError) -> str:
    """An error reply's code (``NOGROUP``, ``BUSYGROUP``)."""
    return str(exc).split(" ", 1)[0]


def _fields(data: bytes, metadata: Mapping[str, str]) -> dict[FieldT, EncodableT]:
    """A message as a stream entry's fields: ``data`` and, if any, ``metadata`` as JSON."""
    fields: dict[FieldT, EncodableT] = {"data": data}
    if metadata:
        fields["metadata"] = json.dumps(dict(metadata))
    return fields


class _StreamSubscription(TopicSubscription):
    def __init__(self, broker: RedisStreamsBroker, topic: str, handler: Handler) -> None:
        self.broker = broker
        self.topic = topic
        self.handler = handler
        self.group = broker.consumer_id
        self.consumer = f"{broker.consumer_id}-{uuid.uuid4().hex[:12]}"
        # the blocking read has a client (so a connection) of its own; acks and claims
        # share the broker's
        self.reader: aioredis.Redis = redis_client(broker.component)
        self.client: aioredis.Redis = broker.client
        self.slots = asyncio.Semaphore(broker.concurrency)
        self.workers: set[asyncio.Task[None]] = set()
        self.tasks: list[asyncio.Task[None]] = []
        self.closing = False

    async def _create_group(self) -> None:
        try:
            await self.client.xgroup_create(self.topic, self.group, id="0", mkstream=True)
        except ResponseError as exc:
            if _code(exc) != "BUSYGROUP":
                raise BrokerError(f"redis streams: cannot create group: {exc}") from exc
        except RedisError as exc:
            raise BrokerError(f"redis streams: {exc}") from exc

    async def start(self) -> None:
        await self._create_group()
        self.tasks.append(asyncio.create_task(self._read_loop()))
        if self.broker.redeliver_interval > 0:
            self.tasks.append(asyncio.create_task(self._reclaim_loop()))

    async def _read_loop(self) -> None:
        while not self.closing:
            try:
                reply: Any = await self.reader.xreadgroup(
                    self.group,
                    self.consumer,
                    {self.topic: ">"},
                    count=self.broker.queue_depth,
                    block=1000,
                )
            except RedisError as exc:
                log.warning("redis streams: read from %s failed: %s", self.topic, exc)
                if isinstance(exc, ResponseError) and _code(exc) == "NOGROUP":
                    # the stream or its group is gone (Redis restarted empty, or they were
                    # deleted): create them again and read on, as daprd's component does
                    log.warning("redis streams: recreating group %s of %s", self.group, self.topic)
                    with contextlib.suppress(BrokerError):
                        await self._create_group()
                    continue
                await asyncio.sleep(0.5)
                continue
            for _stream, entries in reply or []:
                for message_id, fields in entries:
                    await self._dispatch(_text(message_id), fields)

    async def _dispatch(self, message_id: str, fields: Mapping[bytes, bytes]) -> None:
        await self.slots.acquire()
        task = asyncio.create_task(self._handle(message_id, fields))
        self.workers.add(task)
        task.add_done_callback(self.workers.discard)

    async def _handle(self, message_id: str, fields: Mapping[bytes, bytes]) -> None:
        started = time.monotonic()
        try:
            metadata: dict[str, str] = {}
            raw_meta = fields.get(b"metadata")
            if raw_meta:
                with contextlib.suppress(ValueError):
                    metadata = {str(k): str(v) for k, v in json.loads(raw_meta).items()}
            message = BrokerMessage(
                self.topic, bytes(fields.get(b"data", b"")), metadata, message_id
            )
            try:
                await self.handler(message)
            except Exception as exc:  # the component decides: ack (drop) or keep pending
                if time.monotonic() - started >= self.broker.processing_timeout:
                    log.warning(
                        "redis streams: %s/%s left pending: %s", self.topic, message_id, exc
                    )
                    return
                log.warning("redis streams: dropping %s/%s: %s", self.topic, message_id, exc)
            with contextlib.suppress(RedisError):
                await self.client.xack(self.topic, self.group, message_id)
        finally:
            self.slots.release()

    async def _reclaim_loop(self) -> None:
        idle_ms = int(self.broker.processing_timeout * 1000)
        while not self.closing:
            await asyncio.sleep(self.broker.redeliver_interval)
            try:
                pending: Any = await self.client.xpending_range(
                    self.topic,
                    self.group,
                    min="-",
                    max="+",
                    count=self.broker.queue_depth,
                    idle=idle_ms,
                )
                ids = [p["message_id"] for p in pending]
                if not ids:
                    continue
                claimed: Any = await self.client.xclaim(
                    self.topic, self.group, self.consumer, idle_ms, ids
                )
            except RedisError as exc:
                log.warning("redis streams: reclaim on %s failed: %s", self.topic, exc)
                continue
            for message_id, fields in claimed:
                # an entry trimmed from the stream meanwhile comes back without fields or
                # as nil (Redis < 7), or not at all (Redis 7 drops it from the pending list
                # itself); every entry XADD wrote has a field
                if not fields:
                    if message_id is not None:
                        with contextlib.suppress(RedisError):
                            await self.client.xack(self.topic, self.group, message_id)
                    continue
                await self._dispatch(_text(message_id), fields)

    async def close(self) -> None:
        """Stop reading; let the deliveries in flight end for ``shutdown_grace`` seconds,
        then abandon the rest unacknowledged: they stay pending in the group, and a live
        consumer's reclaim delivers them again. A delivery that the app keeps answering
        with RETRY would otherwise hold the close for the whole retry policy."""
        self.closing = True
        for task in self.tasks:
            task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)
        if self.workers:
            workers = list(self.workers)
            _, late = await asyncio.wait(workers, timeout=self.broker.shutdown_grace)
            for task in late:
                log.warning("redis streams: %s: a delivery left pending at close", self.topic)
                task.cancel()
            await asyncio.gather(*workers, return_exceptions=True)
        await self.reader.aclose()
        with contextlib.suppress(RedisError):
            info: Any = await self.client.xinfo_consumers(self.topic, self.group)
            mine = [c for c in info if _text(c["name"]) == self.consumer]
            if mine and int(mine[0]["pending"]) == 0:
                await self.client.xgroup_delconsumer(self.topic, self.group, self.consumer)


class RedisStreamsBroker(Broker):
    def __init__(self, component: Component, app_id: str) -> None:
        self.component = component
        self.consumer_id = component.get("consumerID") or app_id
        self.concurrency = max(1, component.integer("concurrency", 10))
        self.queue_depth = max(1, component.integer("queueDepth", 100))
        self.processing_timeout = component.seconds("processingTimeout", 15.0)
        self.redeliver_interval = component.seconds("redeliverInterval", 60.0)
        self.shutdown_grace = SHUTDOWN_GRACE_S
        self.max_len = component.integer("maxLenApprox", 0)
        self.client: aioredis.Redis = redis_client(component)
        self._subs: list[_StreamSubscription] = []

    async def start(self) -> None:
        try:
            await self.client.ping()
        except RedisError as exc:
            raise BrokerError(
                f"redis pub/sub {self.component.name!r}: cannot reach "
                f"{self.component.get('redisHost')}: {exc}"
            ) from exc

    async def publish(self, topic: str, data: bytes, metadata: Mapping[str, str]) -> None:
        try:
            await self.client.xadd(
                topic,
                _fields(data, metadata),
                maxlen=self.max_len or None,
                approximate=True,
            )
        except RedisError as exc:
            raise BrokerError(f"redis streams: publish to {topic} failed: {exc}") from exc

    async def publish_many(
        self, topic: str, items: Sequence[tuple[bytes, Mapping[str, str]]]
    ) -> list[BrokerError | None]:
        """Every XADD of a bulk publish in one pipelined round trip, in order."""
        async with self.client.pipeline(transaction=False) as pipe:
            for data, metadata in items:
                pipe.xadd(
                    topic,
                    _fields(data, metadata),
                    maxlen=self.max_len or None,
                    approximate=True,
                )
            try:
                replies: list[object] = await pipe.execute(raise_on_error=False)
            except RedisError as exc:
                error = BrokerError(f"redis streams: publish to {topic} failed: {exc}")
                return [error] * len(items)
        return [
            BrokerError(f"redis streams: publish to {topic} failed: {r}")
            if isinstance(r, ResponseError)
            else None
            for r in replies
        ]

    async def subscribe(self, topic: str, handler: Handler) -> TopicSubscription:
        sub = _StreamSubscription(self, topic, handler)
        await sub.start()
        self._subs.append(sub)
        return sub

    async def close(self) -> None:
        subs, self._subs = self._subs, []
        await asyncio.gather(*(s.close() for s in subs), return_exceptions=True)
        await self.client.aclose()
