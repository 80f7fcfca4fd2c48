"""An actor host app for the actor contract tests (FastAPI + the SDK's ``DaprActor``).

Hosts the ``Counter`` actor type. ``GET /debug`` reports what this process saw:
activations, deactivations, fired reminders and timers, and the highest number of
turns that ever ran at once for one actor (must stay 1: turn-based concurrency).

    APP_ID=host-a uvicorn tests.sidecar.apps.actor_app:app --port 8201
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import timedelta
from typing import Any, TypeVar, cast

from dapr.actor import Actor, ActorInterface, Remindable, actormethod
from dapr.actor.runtime.config import ActorRuntimeConfig
from dapr.actor.runtime.runtime import ActorRuntime
from dapr.ext.fastapi import DaprActor
from fastapi import FastAPI

APP = os.environ.get("APP_ID", "actor-app")
EVENTS: list[dict[str, Any]] = []
IN_FLIGHT: dict[str, int] = {}
MAX_IN_FLIGHT: dict[str, int] = {}


F = TypeVar("F", bound=Callable[..., Any])


def _method(name: str) -> Callable[[F], F]:
    """The SDK's ``actormethod`` decorator, typed."""
    return cast(Callable[[F], F], actormethod(name=name))


class CounterInterface(ActorInterface):
    @_method("Incr")
    async def incr(self, n: int) -> int:
        raise NotImplementedError

    @_method("Slow")
    async def slow(self, ms: int) -> dict[str, Any]:
        raise NotImplementedError

    @_method("WhoAmI")
    async def who(self) -> dict[str, Any]:
        raise NotImplementedError

    @_method("Fail")
    async def fail(self) -> None:
        raise NotImplementedError

    @_method("Remind")
    async def remind(self, spec: dict[str, Any]) -> None:
        raise NotImplementedError

    @_method("Tick")
    async def tick(self, spec: dict[str, Any]) -> None:
        raise NotImplementedError


class Counter(Actor, CounterInterface, Remindable):
    async def _on_activate(self) -> None:
        EVENTS.append({"kind": "activate", "actor": self.id.id})

    async def _on_deactivate(self) -> None:
        EVENTS.append({"kind": "deactivate", "actor": self.id.id})

    async def incr(self, n: int) -> int:
        found, value = await self._state_manager.try_get_state("count")
        total = int(value) + n if found and isinstance(value, int) else n
        await self._state_manager.set_state("count", total)
        return int(total)

    async def slow(self, ms: int) -> dict[str, Any]:
        key = self.id.id
        IN_FLIGHT[key] = IN_FLIGHT.get(key, 0) + 1
        MAX_IN_FLIGHT[key] = max(MAX_IN_FLIGHT.get(key, 0), IN_FLIGHT[key])
        # the system's monotonic clock: turns of apps on one machine compare
        start = time.monotonic()
        await asyncio.sleep(ms / 1000)
        IN_FLIGHT[key] -= 1
        return {"app": APP, "max": MAX_IN_FLIGHT[key], "start": start, "end": time.monotonic()}

    async def who(self) -> dict[str, Any]:
        return {"app": APP, "pid": os.getpid()}

    async def fail(self) -> None:
        raise RuntimeError("this method always fails")

    async def remind(self, spec: dict[str, Any]) -> None:
        await self.register_reminder(
            spec["name"],
            spec["name"].encode(),
            timedelta(seconds=float(spec.get("due", 0.1))),
            timedelta(seconds=float(spec.get("period", 0.5))),
        )

    async def tick(self, spec: dict[str, Any]) -> None:
        await self.register_timer(
            spec["name"],
            self.on_tick,
            spec["name"],
            timedelta(seconds=float(spec.get("due", 0.1))),
            timedelta(seconds=float(spec.get("period", 0.3))),
        )

    async def on_tick(self, name: str) -> None:
        EVENTS.append({"kind": "timer", "actor": self.id.id, "name": name})

    async def receive_reminder(
        self,
        name: str,
        state: bytes,
        due_time: timedelta,
        period: timedelta,
        ttl: timedelta | None = None,
    ) -> None:
        EVENTS.append({"kind": "reminder", "actor": self.id.id, "name": name})


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    idle = float(os.environ.get("ACTOR_IDLE_SECONDS", "3600"))
    ActorRuntime.set_actor_config(ActorRuntimeConfig(actor_idle_timeout=timedelta(seconds=idle)))
    await actors.register_actor(Counter)
    yield


app = FastAPI(lifespan=lifespan)
actors = DaprActor(app)


@app.get("/debug")
async def debug() -> dict[str, Any]:
    return {"app": APP, "pid": os.getpid(), "events": EVENTS, "max_in_flight": MAX_IN_FLIGHT}
