"""The actor API of one sidecar (§4.4): invoke, state, timers, reminders.

Invocations are routed through placement to the owning host (possibly another sidecar
of the cluster). State, timers and reminders act on the local host, like daprd.
"""

from __future__ import annotations

import asyncio
import json
import re
import time
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from sidecar.actors.host import ActorHost, NotOwner
from sidecar.actors.reminders import Reminder
from sidecar.app_channel import AppResponse
from sidecar.durations import Schedule, parse_due_time, parse_period, parse_rfc3339
from sidecar.errors import ApiError, StateStoreError
from sidecar.state.base import DeleteOp, SetOp
from sidecar.state.service import BoundStore

if TYPE_CHECKING:
    from sidecar.cluster import Cluster

__all__ = ["ActorService", "check_name"]

_BAD_NAME = re.compile(r"[#?/\\\x00-\x1f\x7f]")
LOOKUP_ATTEMPTS = 4
LOOKUP_DELAY = 1.0


def check_name(what: str, value: str) -> None:
    if not value or value in (".", "..") or _BAD_NAME.search(value):
        raise ApiError(400, "INVALID_ARGUMENT", "ERR_BAD_REQUEST", f"invalid {what}: {value!r}")


def _parse_ttl(ttl: str) -> float | None:
    if not ttl:
        return None
    try:
        return time.time() + parse_due_time(ttl)
    except ValueError:
        return parse_rfc3339(ttl).timestamp()


def _schedule(due: str, period: str) -> Schedule:
    try:
        seconds, repeats = parse_period(period)
        return Schedule(parse_due_time(due), seconds, repeats)
    except ValueError as exc:
        raise ApiError(
            400, "INVALID_ARGUMENT", "ERR_MALFORMED_REQUEST", f"invalid schedule: {exc}"
        ) from exc


class ActorService:
    def __init__(self, app_id: str, cluster: Cluster, store: BoundStore | None) -> None:
        self.app_id = app_id
        self.cluster = cluster
        self.store = store
        self.host: ActorHost | None = None

    # -- invoke ------------------------------------------------------------------------

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
        check_name("actor type", actor_type)
        check_name("actor id", actor_id)
        for attempt in range(LOOKUP_ATTEMPTS * 10):
            host = await self.cluster.placement.lookup(actor_type, actor_id)
            if host is None:
                if attempt >= LOOKUP_ATTEMPTS - 1:
                    raise ApiError(
                        500,
                        "INTERNAL",
                        "ERR_ACTOR_INVOKE_METHOD",
                        f"error invoke actor method: did not find address for actor "
                        f"{actor_type}/{actor_id}",
                    )
                await asyncio.sleep(LOOKUP_DELAY)
                continue
            assert isinstance(host, ActorHost)
            try:
                return await host.invoke(
                    actor_type,
                    actor_id,
                    method,
                    body=body,
                    headers=headers,
                    query=query,
                    reentrancy_id=reentrancy_id,
                )
            except NotOwner:
                continue
        raise ApiError(
            500, "INTERNAL", "ERR_ACTOR_INVOKE_METHOD", "actor kept moving between hosts"
        )

    # -- state -------------------------------------------------------------------------

    def _store(self) -> BoundStore:
        if self.store is None:
            raise ApiError(
                500,
                "INTERNAL",
                "ERR_ACTOR_RUNTIME_NOT_FOUND",
                "the state store is not configured to use the actor runtime. "
                'Have you set the - name: actorStateStore value: "true" in your state '
                "store component file?",
            )
        return self.store

    def _key(self, actor_type: str, actor_id: str, key: str) -> str:
        return f"{self.app_id}||{actor_type}||{actor_id}||{key}"

    async def get_state(self, actor_type: str, actor_id: str, key: str) -> bytes | None:
        store = self._store()
        check_name("actor type", actor_type)
        check_name("actor id", actor_id)
        try:
            item = await store.store.get(self._key(actor_type, actor_id, key))
        except StateStoreError as exc:
            raise ApiError(500, "INTERNAL", "ERR_ACTOR_STATE_GET", str(exc)) from exc
        return None if item is None else item.value

    async def transact_state(
        self,
        actor_type: str,
        actor_id: str,
        operations: Sequence[tuple[str, str, bytes, Mapping[str, str]]],
    ) -> None:
        """``operations``: ``(upsert|delete, key, value, metadata)``."""
        store = self._store()
        if self.host is None or not self.host.is_active(actor_type, actor_id):
            raise ApiError(
                400,
                "INVALID_ARGUMENT",
                "ERR_ACTOR_INSTANCE_MISSING",
                f"actor instance {actor_type}/{actor_id} is missing on this host",
            )
        partition = {"partitionKey": f"{self.app_id}||{actor_type}||{actor_id}"}
        ops: list[SetOp | DeleteOp] = []
        for kind, key, value, metadata in operations:
            if "ttlInSeconds" in metadata:
                raise ApiError(
                    500,
                    "INTERNAL",
                    "ERR_ACTOR_STATE_TRANSACTION_SAVE",
                    "ttlInSeconds is not supported without the ActorStateTTL feature",
                )
            full = self._key(actor_type, actor_id, key)
            if kind == "upsert":
                ops.append(SetOp(full, value, metadata={**metadata, **partition}))
            else:
                ops.append(DeleteOp(full, metadata=partition))
        try:
            await store.store.transact(ops)
        except StateStoreError as exc:
            raise ApiError(500, "INTERNAL", "ERR_ACTOR_STATE_TRANSACTION_SAVE", str(exc)) from exc

    # -- timers ------------------------------------------------------------------------

    def create_timer(
        self, actor_type: str, actor_id: str, name: str, body: Mapping[str, Any]
    ) -> None:
        for what, value in (("actor type", actor_type), ("actor id", actor_id), ("timer", name)):
            check_name(what, value)
        if self.host is None or not self.host.hosts(actor_type):
            raise ApiError(
                500,
                "INTERNAL",
                "ERR_ACTOR_TIMER_CREATE",
                f"actor type {actor_type} is not hosted by app {self.app_id}",
            )
        due, period = str(body.get("dueTime") or ""), str(body.get("period") or "")
        schedule = _schedule(due, period)
        payload = {
            "callback": body.get("callback", ""),
            "data": body.get("data"),
            "dueTime": due,
            "period": period,
        }
        self.host.create_timer(actor_type, actor_id, name, schedule, payload)

    def delete_timer(self, actor_type: str, actor_id: str, name: str) -> None:
        if self.host is not None:
            self.host.delete_timer(actor_type, actor_id, name)

    # -- reminders ---------------------------------------------------------------------

    async def create_reminder(
        self, actor_type: str, actor_id: str, name: str, body: Mapping[str, Any]
    ) -> None:
        for what, value in (("actor type", actor_type), ("actor id", actor_id), ("reminder", name)):
            check_name(what, value)
        if self.host is None or not self.host.hosts(actor_type):
            raise ApiError(
                403,
                "PERMISSION_DENIED",
                "ERR_ACTOR_REMINDER_NON_HOSTED",
                f"reminder for actor type {actor_type} is not hosted by app {self.app_id}",
            )
        store = self._store()
        scheduler = self.cluster.reminders
        if body.get("overwrite") is False and scheduler.get(actor_type, actor_id, name):
            raise ApiError(
                409, "ALREADY_EXISTS", "ERR_ACTOR_REMINDER_CREATE", f"reminder {name} exists"
            )
        due, period = str(body.get("dueTime") or ""), str(body.get("period") or "")
        ttl = str(body.get("ttl") or "")
        schedule = _schedule(due, period)
        try:
            expires = _parse_ttl(ttl)
        except ValueError as exc:
            raise ApiError(
                400, "INVALID_ARGUMENT", "ERR_MALFORMED_REQUEST", f"invalid ttl: {exc}"
            ) from exc
        reminder = Reminder(
            actor_type=actor_type,
            actor_id=actor_id,
            name=name,
            due_time=due,
            period=period,
            ttl=ttl,
            data=body.get("data"),
            next_fire=time.time() + schedule.due,
            period_seconds=schedule.period,
            remaining=schedule.repeats,
            expires=expires,
        )
        try:
            await scheduler.create(reminder, store.store)
        except StateStoreError as exc:
            raise ApiError(500, "INTERNAL", "ERR_ACTOR_REMINDER_CREATE", str(exc)) from exc

    def get_reminder(self, actor_type: str, actor_id: str, name: str) -> dict[str, Any]:
        reminder = self.cluster.reminders.get(actor_type, actor_id, name)
        if reminder is None:
            raise ApiError(500, "INTERNAL", "ERR_ACTOR_REMINDER_GET", f"reminder {name} not found")
        return reminder.to_api()

    async def delete_reminder(self, actor_type: str, actor_id: str, name: str) -> None:
        try:
            await self.cluster.reminders.delete(actor_type, actor_id, name)
        except StateStoreError as exc:
            raise ApiError(500, "INTERNAL", "ERR_ACTOR_REMINDER_DELETE", str(exc)) from exc


def reminder_payload(reminder: Reminder) -> dict[str, Any]:
    return {"data": reminder.data, "dueTime": reminder.due_time, "period": reminder.period}


def encode_value(value: Any) -> bytes:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode()
