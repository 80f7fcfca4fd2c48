"""One sidecar's actor host: activations, turn locks, timers, idle deactivation.

An actor is *active* on this host from its first turn until it is deactivated (idle
timeout, rebalancing, shutdown); deactivation sends ``DELETE /actors/{type}/{id}`` to the
app. Only HTTP 200 from the app counts as success (§4.2).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from sidecar.actors.config import ActorConfig, TypeConfig
from sidecar.actors.turns import TurnLock
from sidecar.app_channel import AppChannel, AppResponse, AppUnreachable
from sidecar.durations import Schedule
from sidecar.errors import ApiError, LocalSidecarError

__all__ = ["ActorHost", "NotOwner"]

log = logging.getLogger(__name__)

REENTRANCY_HEADER = "Dapr-Reentrancy-Id"
ActorKey = tuple[str, str]


class NotOwner(LocalSidecarError):
    """The actor moved to another host while the call was queued; route it again."""


@dataclass
class _Active:
    lock: TurnLock
    last_used: float
    timers: dict[str, asyncio.Task[None]] = field(default_factory=dict)


def invoke_error(response: AppResponse) -> ApiError:
    text = response.body.decode("utf-8", errors="replace")
    return ApiError(
        500,
        "INTERNAL",
        "ERR_ACTOR_INVOKE_METHOD",
        f"error invoke actor method: error from actor service: ({response.status}) {text}",
    )


class ActorHost:
    """Actors of the types this app hosts, as placed on this sidecar."""

    def __init__(self, name: str, app_id: str, app: AppChannel, config: ActorConfig) -> None:
        self._name = name
        self.app_id = app_id
        self.app = app
        self.config = config
        self._active: dict[ActorKey, _Active] = {}
        self._owner: Callable[[str, str], str | None] = lambda t, i: None
        self._idle_task: asyncio.Task[None] | None = None
        self.activations = 0
        self.app_reachable = True
        """False once the app is known to be gone (a failed health probe, a stopped app):
        deactivations then drop their actors without calling it."""

    @property
    def name(self) -> str:
        return self._name

    def hosts(self, actor_type: str) -> bool:
        return actor_type in self.config.types

    def type_config(self, actor_type: str) -> TypeConfig:
        return self.config.types.get(actor_type, TypeConfig())

    def is_active(self, actor_type: str, actor_id: str) -> bool:
        return (actor_type, actor_id) in self._active

    def active_counts(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for actor_type, _ in self._active:
            counts[actor_type] = counts.get(actor_type, 0) + 1
        return counts

    def start(self) -> None:
        self._idle_task = asyncio.create_task(self._idle_loop())

    def _entry(self, key: ActorKey) -> _Active:
        entry = self._active.get(key)
        if entry is None:
            depth = self.type_config(key[0]).max_stack_depth
            entry = _Active(TurnLock(max_depth=depth), time.monotonic())
            self._active[key] = entry
            self.activations += 1
        return entry

    async def _turn_call(
        self,
        key: ActorKey,
        path: str,
        *,
        body: bytes,
        headers: Mapping[str, str],
        query: str = "",
        reentrancy_id: str | None = None,
    ) -> AppResponse:
        if self._owner(*key) != self._name:
            raise NotOwner(f"{key[0]}/{key[1]} is not placed on {self._name}")
        entry = self._entry(key)
        cfg = self.type_config(key[0])
        rid = None
        out_headers = dict(headers)
        if cfg.reentrancy:
            rid = reentrancy_id or str(uuid.uuid4())
            out_headers[REENTRANCY_HEADER] = rid
        async with entry.lock.turn(rid):
            if self._active.get(key) is not entry or self._owner(*key) != self._name:
                raise NotOwner(f"{key[0]}/{key[1]} moved while the call was queued")
            try:
                return await self.app.request(
                    "PUT", path, body=body, headers=out_headers, query=query
                )
            finally:
                entry.last_used = time.monotonic()

    async def invoke(
        self,
        actor_type: str,
        actor_id: str,
        method: str,
        *,
        body: bytes,
        headers: Mapping[str, str],
        query: str = "",
        reentrancy_id: str | None = None,
    ) -> AppResponse:
        """Run one method turn; a non-200 answer becomes 500 ``ERR_ACTOR_INVOKE_METHOD``."""
        try:
            response = await self._turn_call(
                (actor_type, actor_id),
                f"/actors/{actor_type}/{actor_id}/method/{method}",
                body=body,
                headers=headers,
                query=query,
                reentrancy_id=reentrancy_id,
            )
        except AppUnreachable as exc:
            raise ApiError(
                500,
                "INTERNAL",
                "ERR_ACTOR_INVOKE_METHOD",
                f"error invoke actor method: app unreachable: {exc!r}",
            ) from exc
        if response.status != 200 and "x-daprerrorresponseheader" not in {
            k.lower() for k in response.headers
        }:
            raise invoke_error(response)
        return response

    async def fire(
        self, actor_type: str, actor_id: str, kind: str, name: str, payload: object
    ) -> bool:
        """Fire a timer (``kind="timer"``) or reminder (``"remind"``) through the turn lock.

        Returns True on HTTP 200; raises :class:`NotOwner` if the actor is placed elsewhere.
        """
        body = json.dumps(payload).encode()
        try:
            response = await self._turn_call(
                (actor_type, actor_id),
                f"/actors/{actor_type}/{actor_id}/method/{kind}/{name}",
                body=body,
                headers={"Content-Type": "application/json"},
            )
        except AppUnreachable as exc:
            log.warning(
                "%s: %s %s of %s/%s failed: %r", self.app_id, kind, name, actor_type, actor_id, exc
            )
            return False
        if response.status != 200:
            log.warning(
                "%s: %s %s of %s/%s answered %d",
                self.app_id,
                kind,
                name,
                actor_type,
                actor_id,
                response.status,
            )
        return response.status == 200

    # -- timers ------------------------------------------------------------------------

    def create_timer(
        self,
        actor_type: str,
        actor_id: str,
        name: str,
        schedule: Schedule,
        payload: dict[str, object],
    ) -> None:
        entry = self._entry((actor_type, actor_id))
        old = entry.timers.pop(name, None)
        if old is not None:
            old.cancel()
        entry.timers[name] = asyncio.create_task(
            self._run_timer(actor_type, actor_id, name, schedule, payload)
        )

    def delete_timer(self, actor_type: str, actor_id: str, name: str) -> None:
        entry = self._active.get((actor_type, actor_id))
        if entry is not None:
            task = entry.timers.pop(name, None)
            if task is not None and task is not asyncio.current_task():
                task.cancel()

    async def _run_timer(
        self,
        actor_type: str,
        actor_id: str,
        name: str,
        schedule: Schedule,
        payload: dict[str, object],
    ) -> None:
        await asyncio.sleep(schedule.due)
        fired = 0
        while True:
            try:
                await self.fire(actor_type, actor_id, "timer", name, payload)
            except (NotOwner, ApiError):
                return
            fired += 1
            if schedule.period is None or (
                schedule.repeats is not None and fired >= schedule.repeats
            ):
                break
            await asyncio.sleep(schedule.period)
        entry = self._active.get((actor_type, actor_id))
        if entry is not None:
            entry.timers.pop(name, None)

    # -- deactivation ------------------------------------------------------------------

    async def deactivate(self, actor_type: str, actor_id: str, *, call_app: bool = True) -> None:
        entry = self._active.pop((actor_type, actor_id), None)
        if entry is None:
            return
        for task in entry.timers.values():
            if task is not asyncio.current_task():
                task.cancel()
        if not (call_app and self.app_reachable):
            return
        try:
            response = await self.app.request(
                "DELETE",
                f"/actors/{actor_type}/{actor_id}",
                headers={"Content-Type": "application/x-protobuf"},
            )
            if response.status != 200:
                log.info(
                    "%s: deactivating %s/%s answered %d",
                    self.app_id,
                    actor_type,
                    actor_id,
                    response.status,
                )
        except AppUnreachable as exc:
            log.info("%s: deactivating %s/%s failed: %r", self.app_id, actor_type, actor_id, exc)

    async def _idle_loop(self) -> None:
        while True:
            shortest = min((c.idle_timeout for c in self.config.types.values()), default=60.0)
            await asyncio.sleep(min(max(shortest / 4, 0.05), 1.0))
            now = time.monotonic()
            for key, entry in list(self._active.items()):
                idle = self.type_config(key[0]).idle_timeout
                if not entry.lock.busy and now - entry.last_used >= idle:
                    await self.deactivate(*key)

    async def rebalance(self, owner: Callable[[str, str], str | None]) -> None:
        self._owner = owner
        moved = [k for k in self._active if owner(*k) != self._name]
        await asyncio.gather(*(self._drain_and_deactivate(k) for k in moved))

    async def _drain_and_deactivate(self, key: ActorKey) -> None:
        entry = self._active.get(key)
        if entry is None:
            return
        cfg = self.type_config(key[0])
        if cfg.drain_rebalanced:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(entry.lock.wait_idle(), cfg.drain_timeout)
        await self.deactivate(*key)

    async def close(self) -> None:
        if self._idle_task is not None:
            self._idle_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._idle_task
        for key in list(self._active):
            await self.deactivate(*key)
