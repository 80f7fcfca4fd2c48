"""Seeded, reproducible fault injection for tests.

A :class:`FaultPlan` is handed to a sidecar (or to every sidecar of a topology). Each
sidecar draws from its own ``random.Random`` seeded with ``(seed, app id, kind)``, so a
given seed makes the same decisions in the same order on every run.

* pub/sub deliveries: ``drop`` (lose the message), ``duplicate`` (deliver twice),
  ``delay`` (wait before delivering), ``reorder`` (hold a message back and deliver it
  right after the next message of that subscription, or after ``reorder_window``
  seconds when none comes). A held message is taken from the component at once, so a
  broker with one delivery in flight (``pubsub.in-memory``) moves on to the next one;
  if the held delivery later fails, the failure is only logged (the component already
  counted the message as handled, as Redis Streams does with a failed delivery);
* state operations: ``delay`` and ``fail`` (the store raises, so the API answers 500);
* killing an app process is :meth:`sidecar.launcher.Topology.kill_app`.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Sequence
from dataclasses import dataclass, field

from sidecar.errors import StateStoreError
from sidecar.pubsub.base import BrokerMessage, Handler
from sidecar.resources.model import Subscription
from sidecar.state.base import DeleteOp, SetOp, StateStore, StoredItem

__all__ = ["FaultPlan", "FaultyStore", "PubSubFaults", "StateFaults", "faulty_handler"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class PubSubFaults:
    """Probabilities (0..1) per delivery; ``topics`` limits them (empty = every topic)."""

    drop: float = 0.0
    duplicate: float = 0.0
    delay: float = 0.0
    delay_seconds: tuple[float, float] = (0.05, 0.2)
    reorder: float = 0.0
    reorder_window: float = 0.5
    topics: frozenset[str] = frozenset()


@dataclass(frozen=True)
class StateFaults:
    """Probabilities (0..1) per state operation in ``operations`` (get/set/delete/transact)."""

    fail: float = 0.0
    delay: float = 0.0
    delay_seconds: tuple[float, float] = (0.05, 0.2)
    operations: frozenset[str] = frozenset({"get", "set", "delete", "transact"})


@dataclass(frozen=True)
class FaultPlan:
    seed: int = 0
    pubsub: PubSubFaults = field(default_factory=PubSubFaults)
    state: StateFaults = field(default_factory=StateFaults)

    def rng(self, app_id: str, kind: str) -> random.Random:
        return random.Random(f"{self.seed}:{app_id}:{kind}")


def faulty_handler(
    plan: PubSubFaults, rng: random.Random, subscription: Subscription, inner: Handler
) -> Handler:
    """Wrap a subscription's delivery handler with the pub/sub faults of ``plan``."""
    held: list[BrokerMessage] = []  # at most one message
    timers: set[asyncio.Task[None]] = set()

    async def deliver_held(message: BrokerMessage) -> None:
        try:
            await inner(message)
        except Exception as exc:  # the component already took the message back
            log.warning("fault: held message %s failed: %s", message.message_id, exc)

    async def release_held() -> None:
        while held:
            await deliver_held(held.pop(0))

    async def release_after_window(message: BrokerMessage) -> None:
        await asyncio.sleep(plan.reorder_window)
        if held and held[0] is message:
            held.pop(0)
            await deliver_held(message)

    async def handler(message: BrokerMessage) -> None:
        if plan.topics and message.topic not in plan.topics:
            await inner(message)
            return
        if rng.random() < plan.drop:
            log.info("fault: dropping %s on %s", message.message_id, message.topic)
            await release_held()
            return
        if rng.random() < plan.delay:
            await asyncio.sleep(rng.uniform(*plan.delay_seconds))
        if not held and rng.random() < plan.reorder:
            log.info("fault: holding %s on %s back", message.message_id, message.topic)
            held.append(message)
            timer = asyncio.create_task(release_after_window(message))
            timers.add(timer)
            timer.add_done_callback(timers.discard)
            return
        duplicate = rng.random() < plan.duplicate
        try:
            await inner(message)
            if duplicate:
                log.info("fault: duplicating %s on %s", message.message_id, message.topic)
                await inner(message)
        except Exception:
            await release_held()
            raise
        # not on cancellation (a closing subscription abandons its late deliveries): a
        # whole delivery of the held message there would run, uncancelled, inside the
        # cancelled one and hold the close for its retry policy; its timer releases it
        await release_held()

    return handler


class FaultyStore(StateStore):
    """A state store that delays or fails operations as ``plan`` says."""

    def __init__(self, inner: StateStore, plan: StateFaults, rng: random.Random) -> None:
        self.inner = inner
        self.plan = plan
        self.rng = rng
        self.features = inner.features

    async def _maybe(self, operation: str) -> None:
        if operation not in self.plan.operations:
            return
        if self.rng.random() < self.plan.delay:
            await asyncio.sleep(self.rng.uniform(*self.plan.delay_seconds))
        if self.rng.random() < self.plan.fail:
            raise StateStoreError(f"injected fault: {operation} failed")

    async def start(self) -> None:
        await self.inner.start()

    async def close(self) -> None:
        await self.inner.close()

    async def get(self, key: str) -> StoredItem | None:
        await self._maybe("get")
        return await self.inner.get(key)

    async def set(self, op: SetOp) -> None:
        await self._maybe("set")
        await self.inner.set(op)

    async def delete(self, op: DeleteOp) -> None:
        await self._maybe("delete")
        await self.inner.delete(op)

    async def transact(self, ops: Sequence[SetOp | DeleteOp]) -> None:
        await self._maybe("transact")
        await self.inner.transact(ops)
