"""One executor pool served by an app: its actor type, its activation subscription, and
its host record kept alive by a heartbeat.

The executor host app (``executor_host.host``) serves one pool; the API app serves the
pools named in ``SUPERSTEP_POOLS`` beside the coordinator, so that one app (one sidecar)
can run a whole workflow — the shape in-memory components need, which live inside one
sidecar (``dapr.inmemory.yaml``).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import Callable, Mapping

from dapr.ext.fastapi import DaprActor, DaprApp
from fastapi import Request

from executor_host._actors import (
    ExecutorDeps,
    ResultReporter,
    RunInstances,
    executor_actor_class,
    executor_actor_type,
)
from executor_host._bus import forwardable, malformed, read_event
from executor_host._payloads import PayloadCache
from executor_host._problems import Problem
from executor_host._serializer import EnvelopeSerializer
from executor_host._services import AppServices
from executor_host._settings import Settings
from executor_host._sidecar import ActorInvokeError, SidecarClient
from executor_host.protocol import (
    ActivationEnvelope,
    HostRecord,
    activation_topic,
    executor_actor_id,
)
from runtime.ports import PortError
from runtime.registry import WorkflowRegistry

__all__ = ["PoolHost"]

log = logging.getLogger(__name__)


class PoolHost:
    """An executor pool in an app. ``own_host_id`` names the host of this pool from the
    app's settings (the executor host app: the host id itself; the API app: one per
    pool); ``route`` is the pool's subscription route."""

    def __init__(
        self,
        pool: str,
        settings: Settings,
        registry: WorkflowRegistry,
        *,
        route: str,
        own_host_id: Callable[[Settings], str],
        ack_on_receipt: bool = False,
    ) -> None:
        self.pool = pool
        self.route = route
        self.actor_type = executor_actor_type(pool)
        self._settings = settings
        self._registry = registry
        self._own_host_id = own_host_id
        self._sidecar: SidecarClient | None = None
        self._beat: asyncio.Task[None] | None = None
        self._ack_on_receipt = ack_on_receipt
        self._running: set[asyncio.Task[None]] = set()

    @property
    def host_id(self) -> str:
        return self._own_host_id(self._settings)

    def host_record(self) -> HostRecord:
        settings = self._settings
        served: dict[str, list[str]] = {}
        for name in self._registry.names:
            graph = self._registry.resolve(name).graph
            served[name] = [
                n.id
                for n in graph.executors
                if n.placement.pool == self.pool
                and all(settings.labels.get(k) == v for k, v in n.placement.labels.items())
            ]
        return HostRecord(
            app_id=settings.app_id,
            host_id=self.host_id,
            pool=self.pool,
            labels=dict(settings.labels),
            workflows=served,
            modules=list(self._registry.modules),
            heartbeat_at=time.time(),
        )

    def subscribe(self, dapr_app: DaprApp) -> None:
        """Subscribe the app to the pool's activations (at app creation)."""

        @dapr_app.subscribe(  # type: ignore[untyped-decorator]  # untyped SDK
            pubsub=self._settings.pubsub,
            topic=activation_topic(self.pool, self._settings.namespace),
            route=self.route,
        )
        async def on_activation(request: Request) -> dict[str, str]:
            return await self.take_activation(dict(request.headers), await request.body())

    async def take_activation(self, headers: Mapping[str, str], body: bytes) -> dict[str, str]:
        """A delivery's answer to Dapr. An activation event as the coordinator publishes
        it goes to its executor actor (the event's ``subject``) as it came, its envelope
        not decoded here; any other event is read whole first (and dropped with a 404
        problem when it is no activation)."""
        forward = forwardable(headers, body)
        if forward is None:
            env = read_event(headers, body, ActivationEnvelope)
            data = json.dumps(env.model_dump(mode="json")).encode()
            forward = (executor_actor_id(env.run_id, env.executor_index), data)
        try:
            await self._take(*forward)
        except ActorInvokeError as exc:
            log.warning("activation not taken, to be retried: %s", exc)
            return {"status": "RETRY"}
        return {"status": "SUCCESS"}

    async def _take(self, actor_id: str, envelope: bytes) -> None:
        if not self._ack_on_receipt:
            await self._execute(actor_id, envelope)
            return
        # Run the activation after the delivery is answered. An in-memory pub/sub holds
        # a publish until the topic's previous delivery has ended: with the coordinator
        # and the executors behind one sidecar, the coordinator publishing the next
        # activations (in an executor's call to it) and that executor's own delivery
        # would wait on each other for good. An activation that fails here is not
        # delivered again by the broker: the coordinator publishes it again at its
        # deadline (``SUPERSTEP_DEADLINE_S``).
        task = asyncio.create_task(self._execute_logged(actor_id, envelope))
        self._running.add(task)
        task.add_done_callback(self._running.discard)

    async def _execute(self, actor_id: str, envelope: bytes) -> None:
        assert self._sidecar is not None, "an activation before the app started"
        answer = await self._sidecar.invoke_json(self.actor_type, actor_id, "Execute", envelope)
        why = answer.get("malformed") if isinstance(answer, dict) else None
        if why is not None:
            log.warning("dropping a malformed activation for %s: %s", actor_id, why)
            raise malformed(str(why))

    async def _execute_logged(self, actor_id: str, envelope: bytes) -> None:
        try:
            await self._execute(actor_id, envelope)
        except Problem:
            pass  # a malformed activation, logged and dropped
        except ActorInvokeError as exc:
            log.warning(
                "activation of executor actor %s failed (published again at the "
                "coordinator's deadline): %s",
                actor_id,
                exc,
            )

    async def start(self, actors: DaprActor, services: AppServices) -> None:
        """Register the pool's actor type and its host record, and keep the record
        alive (in the app's lifespan, once the app's services have started)."""
        settings = self._settings = services.settings
        sidecar = self._sidecar = services.sidecar
        store = services.store
        host_id = self.host_id
        deps = ExecutorDeps(
            host_id=host_id,
            store=store,
            registry=self._registry,
            instances=RunInstances(self._registry),
            report_result=ResultReporter(sidecar),
            payloads=PayloadCache(store.load_payload),
        )
        cls = executor_actor_class(self.pool)
        await actors.register_actor(
            cls,
            actor_factory=lambda ctx, actor_id: cls(ctx, actor_id, deps),
            message_serializer=EnvelopeSerializer(),
        )
        await store.register_host(host_id, self.host_record().model_dump(mode="json"))

        async def heartbeat() -> None:
            while True:
                await asyncio.sleep(settings.heartbeat_s)
                try:
                    await store.register_host(host_id, self.host_record().model_dump(mode="json"))
                except PortError as exc:
                    log.warning("heartbeat of %s failed: %s", host_id, exc)

        self._beat = asyncio.create_task(heartbeat())

    async def stop(self) -> None:
        for task in list(self._running):
            task.cancel()
        await asyncio.gather(*self._running, return_exceptions=True)
        if self._beat is not None:
            self._beat.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._beat
            self._beat = None
