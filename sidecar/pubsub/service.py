"""The pub/sub API of one sidecar: publish, bulk publish, and running subscriptions."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType

from sidecar.app_channel import AppChannel
from sidecar.errors import ApiError, BrokerError
from sidecar.pubsub.base import Broker, BrokerMessage, Handler, TopicSubscription
from sidecar.pubsub.delivery import SubscriptionDelivery
from sidecar.pubsub.envelope import wrap
from sidecar.resources.model import Component, Resources, Subscription

__all__ = ["BoundBroker", "BulkEntry", "PubSubService"]

log = logging.getLogger(__name__)

HandlerWrapper = Callable[[Subscription, Handler], Handler]


def _empty() -> Mapping[str, str]:
    return MappingProxyType({})


@dataclass(frozen=True)
class BoundBroker:
    component: Component
    broker: Broker


@dataclass(frozen=True)
class BulkEntry:
    entry_id: str
    event: bytes
    content_type: str
    metadata: Mapping[str, str] = field(default_factory=_empty)


class PubSubService:
    """Publishing and subscriptions of one sidecar."""

    def __init__(self, app_id: str, brokers: Mapping[str, BoundBroker]) -> None:
        self.app_id = app_id
        self._brokers = dict(brokers)
        self._running: list[TopicSubscription] = []
        self._stopping: set[asyncio.Task[None]] = set()
        self.subscriptions: list[Subscription] = []

    @property
    def brokers(self) -> Mapping[str, BoundBroker]:
        return MappingProxyType(self._brokers)

    def broker(self, name: str) -> BoundBroker:
        if not self._brokers:
            raise ApiError(
                400, "FAILED_PRECONDITION", "ERR_PUBSUB_NOT_CONFIGURED", "no pubsub is configured"
            )
        if not name:
            raise ApiError(404, "INVALID_ARGUMENT", "ERR_PUBSUB_EMPTY", "pubsub name is empty")
        bound = self._brokers.get(name)
        if bound is None:
            raise ApiError(
                404,
                "INVALID_ARGUMENT",
                "ERR_PUBSUB_NOT_FOUND",
                f"pubsub {name} is not found",
                reason="DAPR_PUBSUB_NOT_FOUND",
            )
        return bound

    def _envelope(
        self,
        bound: BoundBroker,
        topic: str,
        data: bytes,
        content_type: str,
        metadata: Mapping[str, str],
    ) -> bytes:
        raw = metadata.get("rawPayload")
        if raw is not None and raw.lower() not in ("true", "false", ""):
            raise ApiError(
                400,
                "INVALID_ARGUMENT",
                "ERR_PUBSUB_REQUEST_METADATA",
                f"rawPayload value {raw!r} is not a boolean",
            )
        try:
            return wrap(
                body=data,
                content_type=content_type,
                topic=topic,
                pubsub_name=bound.component.name,
                source=self.app_id,
                metadata=metadata,
            )
        except ValueError as exc:
            raise ApiError(
                400,
                "INVALID_ARGUMENT",
                "ERR_PUBSUB_CLOUD_EVENTS_SER",
                f"cannot read the CloudEvent: {exc}",
            ) from exc

    async def publish(
        self,
        pubsub: str,
        topic: str,
        data: bytes,
        content_type: str,
        metadata: Mapping[str, str] | None = None,
    ) -> None:
        bound = self.broker(pubsub)
        if not topic:
            raise ApiError(
                404,
                "INVALID_ARGUMENT",
                "ERR_TOPIC_NAME_EMPTY",
                "topic is empty in pubsub " + pubsub,
            )
        meta = dict(metadata or {})
        payload = self._envelope(bound, topic, data, content_type, meta)
        try:
            await bound.broker.publish(topic, payload, meta)
        except BrokerError as exc:
            raise ApiError(
                500,
                "INTERNAL",
                "ERR_PUBSUB_PUBLISH_MESSAGE",
                f"error when publish to topic {topic} in pubsub {pubsub}: {exc}",
            ) from exc

    async def bulk_publish(
        self,
        pubsub: str,
        topic: str,
        entries: Sequence[BulkEntry],
        metadata: Mapping[str, str] | None = None,
    ) -> list[tuple[str, str]]:
        """Publish every entry; returns ``(entryId, error)`` for the failed ones."""
        bound = self.broker(pubsub)
        if not topic:
            raise ApiError(
                404,
                "INVALID_ARGUMENT",
                "ERR_TOPIC_NAME_EMPTY",
                "topic is empty in pubsub " + pubsub,
            )
        seen: set[str] = set()
        for entry in entries:
            if not entry.entry_id or entry.entry_id in seen:
                raise ApiError(
                    400,
                    "INVALID_ARGUMENT",
                    "ERR_PUBSUB_EVENTS_SER",
                    f"entryId {entry.entry_id!r} is missing or duplicated",
                )
            seen.add(entry.entry_id)
        common = dict(metadata or {})
        payloads = [
            (e, self._envelope(bound, topic, e.event, e.content_type, {**common, **e.metadata}))
            for e in entries
        ]
        errors = await bound.broker.publish_many(
            topic, [(payload, {**common, **entry.metadata}) for entry, payload in payloads]
        )
        return [
            (entry.entry_id, str(error))
            for (entry, _), error in zip(payloads, errors, strict=True)
            if error is not None
        ]

    async def dead_letter(self, pubsub: str, topic: str, message: BrokerMessage) -> None:
        """Re-publish the original broker message to a dead-letter topic (30 s budget)."""
        bound = self.broker(pubsub)
        await asyncio.wait_for(bound.broker.publish(topic, message.data, message.metadata), 30)

    async def start_subscriptions(
        self,
        subscriptions: Sequence[Subscription],
        app: AppChannel,
        resources: Resources,
        wrap_handler: HandlerWrapper | None = None,
    ) -> None:
        """Subscribe every subscription whose pub/sub exists (others are logged)."""
        seen: set[tuple[str, str]] = set()
        for sub in subscriptions:
            key = (sub.pubsub_name, sub.topic)
            if key in seen:
                log.warning("%s: duplicate subscription to %s/%s ignored", self.app_id, *key)
                continue
            seen.add(key)
            bound = self._brokers.get(sub.pubsub_name)
            if bound is None:
                log.error("%s: subscription to unknown pubsub %r", self.app_id, sub.pubsub_name)
                continue

            async def dlq(topic: str, msg: BrokerMessage, name: str = sub.pubsub_name) -> None:
                await self.dead_letter(name, topic, msg)

            handler: Handler = SubscriptionDelivery(
                sub,
                app,
                retry=resources.inbound_retry(sub.pubsub_name, "pubsub"),
                dead_letter=dlq,
            )
            if wrap_handler is not None:
                handler = wrap_handler(sub, handler)
            self._running.append(await bound.broker.subscribe(sub.topic, handler))
            self.subscriptions.append(sub)

    async def stop_subscriptions(self) -> None:
        """Stop reading every subscription, as daprd does when its app turns unhealthy:
        nothing new is delivered; deliveries in flight end on their own (an
        unacknowledged message stays pending and is delivered again to a live
        consumer). ``start_subscriptions`` starts them again."""
        running, self._running = self._running, []
        self.subscriptions = []
        for subscriber in running:
            task = asyncio.create_task(subscriber.close())
            self._stopping.add(task)
            task.add_done_callback(self._stopping.discard)

    async def close_subscriptions(self) -> None:
        """Stop reading every subscription and wait for them to close (each lets its
        deliveries in flight end for a grace period); the brokers stay open for
        publishing."""
        await asyncio.gather(*list(self._stopping), return_exceptions=True)
        running, self._running = self._running, []
        self.subscriptions = []
        await asyncio.gather(*(s.close() for s in running), return_exceptions=True)

    async def close(self) -> None:
        await self.close_subscriptions()
        await asyncio.gather(
            *(b.broker.close() for b in self._brokers.values()), return_exceptions=True
        )


def bulk_failure_body(failed: Sequence[tuple[str, str]]) -> bytes:
    return json.dumps(
        {
            "failedEntries": [{"entryId": e, "error": err} for e, err in failed],
            "errorCode": "ERR_PUBSUB_PUBLISH_MESSAGE",
        }
    ).encode()
