"""What the apps' routes and actors work with, one object per app on ``app.state``.

``AppServices`` (both apps): the settings, resolved once the sidecar answers, and the
sidecar client and run store, made when the app starts (``start``, in its lifespan).
``APIServices`` (the API app) adds the workflows served, the run watch and the look-ups
its routes share (a run's record, its workflow, the live hosts, its coordinator).

The object is made with the app, so every request finds it; a route reads it through a
typed dependency (``Services``, ``AnyServices``), which costs one attribute look-up. A
handler that reaches the sidecar before the app started gets a ``RuntimeError`` (a
500), as a request validated and refused before that point never does.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import Mapping, Sequence
from datetime import timedelta
from typing import Annotated, Any

from dapr.actor import ActorRuntime
from dapr.actor.runtime.config import ActorRuntimeConfig
from fastapi import Depends, Request

from executor_host._actors import COORDINATOR_TYPE
from executor_host._admission import StartGate
from executor_host._problems import Problem
from executor_host._settings import Settings, resolve_app_id
from executor_host._sidecar import ActorInvokeError, SidecarClient
from executor_host._store import RunRecord, RunStore
from executor_host._watch import RunWatch
from executor_host.protocol import HostRecord
from runtime.engine import JsonCodec
from runtime.registry import WorkflowRegistry
from runtime.workflow import Workflow

__all__ = ["APIServices", "AnyServices", "AppServices", "Services"]


def configure_actors(settings: Settings) -> None:
    """The actor runtime configuration the app's sidecar reads at start-up
    (``GET /dapr/config``): idle actors leave memory after ``actor_idle_s``."""
    ActorRuntime.set_actor_config(
        ActorRuntimeConfig(actor_idle_timeout=timedelta(seconds=settings.actor_idle_s))
    )


class AppServices:
    """An app's settings, sidecar client and run store. ``ready``: the answer of
    ``/readyz`` while the sidecar is ready."""

    def __init__(self, settings: Settings, *, ready: Mapping[str, str]) -> None:
        self.settings = settings
        self.ready = dict(ready)
        self._sidecar: SidecarClient | None = None
        self._store: RunStore | None = None

    async def start(self) -> None:
        """Connect to the sidecar, once it listens, and resolve the settings (the app
        id from the sidecar's metadata when the environment gives none)."""
        sidecar = self._sidecar = SidecarClient()
        await sidecar.wait_outbound()  # the app may start before its daprd listens
        self.settings = await resolve_app_id(self.settings)
        self._store = RunStore(sidecar, self.settings.state_store, self.settings.namespace)

    async def close(self) -> None:
        if self._sidecar is not None:
            await self._sidecar.aclose()

    @property
    def sidecar(self) -> SidecarClient:
        if self._sidecar is None:
            raise RuntimeError("the app has not started: it has no sidecar client yet")
        return self._sidecar

    @property
    def store(self) -> RunStore:
        if self._store is None:
            raise RuntimeError("the app has not started: it has no run store yet")
        return self._store


log = logging.getLogger(__name__)

START_RETRY_DELAYS = (0.25, 0.5, 1.0, 2.0, 4.0)
"""Waits between tries of a start the sidecar could not get answered: about 8 s in all,
longer than daprd takes to find a busy app healthy again (two probes a second apart)."""


class APIServices(AppServices):
    """The API app's services: ``registry``, the workflows it serves; ``watch``, which
    wakes the event streams of a run when its coordinator commits."""

    def __init__(self, settings: Settings, registry: WorkflowRegistry) -> None:
        super().__init__(settings, ready={"status": "ok", "dapr": "ok"})
        self.registry = registry
        self.watch = RunWatch()
        self.starts = StartGate(settings.max_starts, settings.start_queue)

    async def coordinator(
        self, run_id: str, method: str, body: Any = None, *, retry: Sequence[float] = ()
    ) -> Any:
        """Call a run's coordinator actor; a 502 problem when the call fails. With
        ``retry``, a call the sidecar got no answer to (it is unreachable, or a 5xx:
        daprd cancels calls to an app it holds for unhealthy) is made again after each
        of those waits; one it refused (a 4xx) is not."""
        waits = iter(retry)
        while True:
            try:
                return await self.sidecar.invoke(COORDINATOR_TYPE, run_id, method, body)
            except ActorInvokeError as exc:
                wait = next(waits, None)
                if wait is None or (exc.status is not None and exc.status < 500):
                    raise Problem(502, "Coordinator unavailable", str(exc)) from exc
                log.warning("%s of run %s not answered (%s); trying again", method, run_id, exc)
            await asyncio.sleep(wait)

    async def start_run(self, run_id: str, payload: dict[str, Any]) -> Any:
        """The run's coordinator's ``Start``, tried again after each of
        ``START_RETRY_DELAYS`` while the sidecar gets no answer from it. A start key
        makes a repeat of a start that did go through answer as the first did, never
        "exists" (``RunDriver.begin``)."""
        payload = {**payload, "start_key": uuid.uuid4().hex}
        return await self.coordinator(run_id, "Start", payload, retry=START_RETRY_DELAYS)

    async def record(self, run_id: str) -> RunRecord:
        """A run's record; a 404 problem for a run there is no record of."""
        record = await self.store.load_run(run_id)
        if record is None:
            raise Problem(404, "Unknown run", f"no run {run_id!r}")
        return record

    def workflow(
        self, name: str, factory: str | None = None, params: dict[str, Any] | None = None
    ) -> Workflow:
        """A served workflow, by name or factory; a problem when none is served."""
        return self.registry.resolve(name, factory, params, refuse=Problem)

    def codec_of(self, record: RunRecord) -> JsonCodec | None:
        """The codec of a run's workflow (None when it is no longer served here)."""
        try:
            return self.registry.resolve(record.workflow, record.factory, record.params).graph.codec
        except (LookupError, ValueError, TypeError):
            return None

    async def hosts(self) -> list[dict[str, Any]]:
        """The registered executor hosts, each with whether it is alive (a heartbeat
        within ``SUPERSTEP_HOST_TTL_S``)."""
        now = time.time()
        ttl = self.settings.host_ttl_s
        out = []
        for raw in await self.store.list_hosts():
            try:
                rec = HostRecord.model_validate(raw)
            except ValueError:
                continue
            out.append({**rec.model_dump(), "alive": now - rec.heartbeat_at < ttl})
        return out

    async def live_pools(self) -> set[str]:
        return {str(h["pool"]) for h in await self.hosts() if h["alive"]}


async def _app_services(request: Request) -> AppServices:
    services: AppServices = request.app.state.services
    return services


async def _api_services(request: Request) -> APIServices:
    services: APIServices = request.app.state.services
    return services


AnyServices = Annotated[AppServices, Depends(_app_services)]
"""The services of the app serving the request (either app)."""

Services = Annotated[APIServices, Depends(_api_services)]
"""The API app's services."""
