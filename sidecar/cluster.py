"""What the sidecars of one launcher share: the "control plane" of the local sidecar.

daprd relies on name resolution (mDNS), the Placement service and the Scheduler service.
The local sidecar runs every sidecar of a topology in one process and gives them one
:class:`Cluster`: an app directory for service invocation, a :class:`Placement` table
for actors and a :class:`ReminderScheduler` for reminders. Several sidecars may share an
app id (replicas); service invocation then picks them in turn.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
from collections.abc import Mapping
from typing import TYPE_CHECKING

from sidecar.actors.host import ActorHost, NotOwner
from sidecar.actors.placement import Placement
from sidecar.actors.reminders import Reminder, ReminderScheduler
from sidecar.actors.service import reminder_payload
from sidecar.app_channel import AppResponse
from sidecar.errors import ApiError

if TYPE_CHECKING:
    from sidecar.runtime import Sidecar

__all__ = ["Cluster"]

log = logging.getLogger(__name__)


class Cluster:
    def __init__(self) -> None:
        self.placement = Placement()
        self.reminders = ReminderScheduler(self._fire_reminder)
        self._sidecars: dict[str, list[Sidecar]] = {}
        self._turn = itertools.count()

    def add(self, sidecar: Sidecar) -> None:
        self._sidecars.setdefault(sidecar.app_id, []).append(sidecar)

    def remove(self, sidecar: Sidecar) -> None:
        group = self._sidecars.get(sidecar.app_id, [])
        if sidecar in group:
            group.remove(sidecar)
        if not group:
            self._sidecars.pop(sidecar.app_id, None)

    @property
    def sidecars(self) -> Mapping[str, list[Sidecar]]:
        return self._sidecars

    async def invoke_app(
        self,
        app_id: str,
        method: str,
        path: str,
        *,
        body: bytes,
        headers: Mapping[str, str],
        query: str,
    ) -> AppResponse:
        group = [s for s in self._sidecars.get(app_id, []) if s.app is not None]
        if not group:
            raise ApiError(
                500,
                "INTERNAL",
                "ERR_DIRECT_INVOKE",
                f"failed to invoke, id: {app_id}: app id not found",
            )
        target = group[next(self._turn) % len(group)]
        assert target.app is not None
        return await target.app.request(method, path, body=body, headers=headers, query=query)

    async def _fire_reminder(self, actor_type: str, actor_id: str, reminder: Reminder) -> bool:
        """Fire on the current owner; wait (and keep trying) while no host has the type."""
        while True:
            host = await self.placement.lookup(actor_type, actor_id)
            if host is None:
                await asyncio.sleep(0.2)
                continue
            assert isinstance(host, ActorHost)
            try:
                return await host.fire(
                    actor_type, actor_id, "remind", reminder.name, reminder_payload(reminder)
                )
            except NotOwner:
                continue
            except ApiError as exc:
                log.warning("reminder %s of %s/%s: %s", reminder.name, actor_type, actor_id, exc)
                return False

    async def close(self) -> None:
        await self.reminders.close()
