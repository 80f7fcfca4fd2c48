"""Pub/sub components (in-memory, Redis Streams), envelopes, delivery and the publish API."""

from __future__ import annotations

from sidecar.pubsub.base import Broker, BrokerMessage, Handler, TopicSubscription
from sidecar.pubsub.delivery import DeliveryFailed, Outcome, SubscriptionDelivery, outcome_of
from sidecar.pubsub.service import BoundBroker, BulkEntry, PubSubService
from sidecar.resources.model import Component

__all__ = [
    "BoundBroker",
    "Broker",
    "BrokerMessage",
    "BulkEntry",
    "DeliveryFailed",
    "Handler",
    "Outcome",
    "PubSubService",
    "SubscriptionDelivery",
    "TopicSubscription",
    "open_broker",
    "outcome_of",
]


def open_broker(component: Component, app_id: str) -> Broker:
    """A new (not yet started) broker for a ``pubsub.*`` component."""
    if component.type == "pubsub.in-memory":
        from sidecar.pubsub.memory import MemoryBroker

        return MemoryBroker()
    if component.type == "pubsub.redis":
        from sidecar.pubsub.redis_bus import RedisStreamsBroker

        return RedisStreamsBroker(component, app_id)
    raise ValueError(f"not a pub/sub type: {component.type}")
