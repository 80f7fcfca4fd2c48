"""Reminders: persisted in the actor state store, fired on whichever host owns the actor.

daprd keeps reminders in the Scheduler service; the local sidecar keeps one
:class:`ReminderScheduler` per cluster (next to placement) and persists every reminder of
an actor type in one document of the actor state store, key
``sidecar-reminders||<actorType>``, written under ETag concurrency. A reminder therefore
survives an app restart (the scheduler keeps it) and a restart of the whole topology (it is
reloaded when a host registers the type), and fires on the new owner when an app dies.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass, replace
from typing import Any

from sidecar.errors import ETagMismatch, StateStoreError
from sidecar.state.base import SetOp, StateStore

__all__ = ["Reminder", "ReminderScheduler"]

log = logging.getLogger(__name__)

# (actor_type, actor_id, reminder) -> True when the app answered 200.
Firer = Callable[[str, str, "Reminder"], Awaitable[bool]]

FAILURE_RETRIES = 3
FAILURE_DELAY = 1.0


def index_key(actor_type: str) -> str:
    return f"sidecar-reminders||{actor_type}"


@dataclass(frozen=True)
class Reminder:
    actor_type: str
    actor_id: str
    name: str
    due_time: str
    period: str
    ttl: str
    data: Any
    next_fire: float  # wall-clock seconds
    period_seconds: float | None
    remaining: int | None  # repetitions left; None = until deleted
    expires: float | None  # wall-clock seconds

    @property
    def key(self) -> str:
        return f"{self.actor_id}||{self.name}"

    def to_api(self) -> dict[str, Any]:
        return {
            "actorID": self.actor_id,
            "actorType": self.actor_type,
            "dueTime": self.due_time,
            "period": self.period,
            "ttl": self.ttl,
            "data": self.data,
        }


class ReminderScheduler:
    """Holds and fires every reminder of a cluster."""

    def __init__(self, firer: Firer) -> None:
        self._firer = firer
        self._reminders: dict[tuple[str, str], Reminder] = {}  # (type, key)
        self._tasks: dict[tuple[str, str], asyncio.Task[None]] = {}
        self._stores: dict[str, StateStore] = {}
        self._locks: dict[str, asyncio.Lock] = {}
        self.fired = 0

    def get(self, actor_type: str, actor_id: str, name: str) -> Reminder | None:
        return self._reminders.get((actor_type, f"{actor_id}||{name}"))

    async def load(self, actor_type: str, store: StateStore) -> None:
        """Adopt the reminders persisted for ``actor_type`` (once per type). A sidecar
        binding the type again (after a restart) lends its store from then on: the store
        of the one that bound it first may be closed."""
        if actor_type in self._stores:
            self._stores[actor_type] = store
            return
        self._stores[actor_type] = store
        stored = await store.get(index_key(actor_type))
        if stored is None:
            return
        try:
            records = json.loads(stored.value)
        except ValueError:
            log.error("reminders of %s: unreadable index, ignoring it", actor_type)
            return
        for raw in records.values():
            reminder = Reminder(**raw)
            self._schedule(reminder)
        log.info("reminders of %s: %d loaded", actor_type, len(records))

    def _lock(self, actor_type: str) -> asyncio.Lock:
        return self._locks.setdefault(actor_type, asyncio.Lock())

    async def _persist(self, actor_type: str) -> None:
        store = self._stores.get(actor_type)
        if store is None:
            return
        records = {r.key: asdict(r) for (t, _), r in self._reminders.items() if t == actor_type}
        body = json.dumps(records, separators=(",", ":")).encode()
        async with self._lock(actor_type):
            for _ in range(20):
                current = await store.get(index_key(actor_type))
                etag = current.etag if current is not None and current.etag else None
                try:
                    await store.set(SetOp(index_key(actor_type), body, etag=etag))
                    return
                except ETagMismatch:
                    continue
            raise StateStoreError(f"could not persist the reminders of {actor_type}")

    def _schedule(self, reminder: Reminder) -> None:
        slot = (reminder.actor_type, reminder.key)
        old = self._tasks.pop(slot, None)
        if old is not None and old is not asyncio.current_task():
            old.cancel()
        self._reminders[slot] = reminder
        self._tasks[slot] = asyncio.create_task(self._run(slot))

    async def create(self, reminder: Reminder, store: StateStore) -> None:
        # the store of the sidecar asking: a live one (an earlier sidecar's may be closed)
        self._stores[reminder.actor_type] = store
        self._schedule(reminder)
        await self._persist(reminder.actor_type)

    async def delete(self, actor_type: str, actor_id: str, name: str) -> None:
        slot = (actor_type, f"{actor_id}||{name}")
        task = self._tasks.pop(slot, None)
        if task is not None and task is not asyncio.current_task():
            task.cancel()
        if self._reminders.pop(slot, None) is not None:
            await self._persist(actor_type)

    async def _run(self, slot: tuple[str, str]) -> None:
        while True:
            reminder = self._reminders.get(slot)
            if reminder is None:
                return
            await asyncio.sleep(max(0.0, reminder.next_fire - time.time()))
            if reminder.expires is not None and time.time() >= reminder.expires:
                break
            ok = False
            for attempt in range(FAILURE_RETRIES + 1):
                ok = await self._firer(reminder.actor_type, reminder.actor_id, reminder)
                if ok:
                    break
                if attempt < FAILURE_RETRIES:
                    await asyncio.sleep(FAILURE_DELAY)
            self.fired += 1
            remaining = None if reminder.remaining is None else reminder.remaining - 1
            if reminder.period_seconds is None or remaining == 0:
                break
            nxt = replace(
                reminder, next_fire=time.time() + reminder.period_seconds, remaining=remaining
            )
            self._reminders[slot] = nxt
            with contextlib.suppress(StateStoreError):
                await self._persist(reminder.actor_type)
        self._tasks.pop(slot, None)
        if self._reminders.pop(slot, None) is not None:
            with contextlib.suppress(StateStoreError):
                await self._persist(slot[0])

    async def close(self) -> None:
        tasks = list(self._tasks.values())
        self._tasks.clear()
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._reminders.clear()
        self._stores.clear()
