"""The pub/sub component port: publish bytes, subscribe a handler per topic.

A handler returns normally for success and raises for failure; what happens after a
failure is the component's business (dapr-contract §3.6): in-memory discards, Redis
Streams acknowledges (discards) unless the processing timeout already expired.
"""

from __future__ import annotations

import abc
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType

from sidecar.errors import BrokerError

__all__ = ["Broker", "BrokerMessage", "Handler", "TopicSubscription"]


def _empty() -> Mapping[str, str]:
    return MappingProxyType({})


@dataclass(frozen=True)
class BrokerMessage:
    """One message as the component hands it to daprd."""

    topic: str
    data: bytes
    metadata: Mapping[str, str] = field(default_factory=_empty)
    message_id: str = ""


Handler = Callable[[BrokerMessage], Awaitable[None]]


class TopicSubscription(abc.ABC):
    """A running subscription; :meth:`close` stops delivering."""

    @abc.abstractmethod
    async def close(self) -> None:
        """Stop and wait for in-flight deliveries."""


class Broker(abc.ABC):
    """One pub/sub component instance."""

    #: True when the component enforces message TTL itself (then no ``expiration`` field).
    native_ttl: bool = False

    @abc.abstractmethod
    async def publish(self, topic: str, data: bytes, metadata: Mapping[str, str]) -> None:
        """Hand one message to the broker; raise ``BrokerError`` on failure."""

    async def publish_many(
        self, topic: str, items: Sequence[tuple[bytes, Mapping[str, str]]]
    ) -> list[BrokerError | None]:
        """Publish several messages in order (a bulk publish); the error of each, or
        None. Components without a native batch publish them one by one, as daprd does."""
        errors: list[BrokerError | None] = []
        for data, metadata in items:
            try:
                await self.publish(topic, data, metadata)
            except BrokerError as exc:
                errors.append(exc)
            else:
                errors.append(None)
        return errors

    @abc.abstractmethod
    async def subscribe(self, topic: str, handler: Handler) -> TopicSubscription:
        """Start delivering ``topic`` to ``handler``."""

    async def start(self) -> None:  # noqa: B027 - optional hook
        """Connect."""

    async def close(self) -> None:  # noqa: B027 - optional hook
        """Stop every subscription and release connections."""
