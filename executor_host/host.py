"""The executor host app: the actor type of one executor pool and that pool's
activation subscription. Several replicas of a pool share the work: the
subscription's consumer group hands each activation to one of them, and actor
placement runs each (run, executor) on one of them at a time.

Run it with ``uvicorn --factory executor_host.host:create_app`` next to a Dapr
sidecar, with ``SUPERSTEP_POOL`` naming the pool.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager

from dapr.ext.fastapi import DaprActor, DaprApp
from fastapi import FastAPI, Request

from executor_host._actors import (
    ExecutorDeps,
    RunInstances,
    executor_actor_class,
    executor_actor_id,
    executor_actor_type,
)
from executor_host._bus import Bus, deliver
from executor_host._docs import install_docs
from executor_host._edge import install_edge
from executor_host._payloads import PayloadCache
from executor_host._problems import Problem, install_problem_handlers
from executor_host._serializer import EnvelopeSerializer
from executor_host._settings import Settings, resolve_app_id
from executor_host._sidecar import ActorInvokeError, SidecarClient
from executor_host._store import RunStore, StoreError
from executor_host._workflows import WorkflowRegistry
from executor_host.protocol import ActivationEnvelope, HostRecord, activation_topic

__all__ = ["create_app"]

log = logging.getLogger(__name__)


def create_app(config: Settings | None = None) -> FastAPI:
    settings: Settings = config or Settings.from_env()
    registry = WorkflowRegistry.load(settings.workflows)
    actor_type = executor_actor_type(settings.pool)

    def host_record() -> HostRecord:
        served: dict[str, list[str]] = {}
        for name in registry.names:
            graph = registry.resolve(name).graph
            served[name] = [
                n.id
                for n in graph.executors
                if n.placement.pool == settings.pool
                and all(settings.labels.get(k) == v for k, v in n.placement.labels.items())
            ]
        return HostRecord(
            app_id=settings.app_id,
            host_id=settings.host_id,
            pool=settings.pool,
            labels=dict(settings.labels),
            workflows=served,
            modules=list(registry.modules),
            heartbeat_at=time.time(),
        )

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        nonlocal settings
        sidecar = services["sidecar"] = SidecarClient()
        await sidecar.wait_outbound()  # the app may start before its daprd listens
        settings = await resolve_app_id(settings)
        store = RunStore(sidecar, settings.state_store, settings.namespace)
        bus = Bus(sidecar, settings.pubsub, settings.host_id, settings.namespace)
        deps = ExecutorDeps(
            host_id=settings.host_id,
            store=store,
            registry=registry,
            instances=RunInstances(registry),
            publish_result=bus.publish_result,
            payloads=PayloadCache(store.load_payload),
        )
        cls = executor_actor_class(settings.pool)
        await actors.register_actor(
            cls,
            actor_factory=lambda ctx, actor_id: cls(ctx, actor_id, deps),
            message_serializer=EnvelopeSerializer(),
        )
        await store.register_host(settings.host_id, host_record().model_dump(mode="json"))

        async def heartbeat() -> None:
            while True:
                await asyncio.sleep(settings.heartbeat_s)
                try:
                    await store.register_host(
                        settings.host_id, host_record().model_dump(mode="json")
                    )
                except StoreError as exc:
                    log.warning("heartbeat of %s failed: %s", settings.host_id, exc)

        beat = asyncio.create_task(heartbeat())
        yield
        await services["sidecar"].aclose()
        beat.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await beat

    services: dict[str, SidecarClient] = {}
    app = FastAPI(
        title=f"superstep executor host ({settings.pool})",
        lifespan=lifespan,
        docs_url=None,  # install_docs serves them, with their files
        redoc_url=None,
    )
    install_problem_handlers(app)
    actors = DaprActor(app)
    dapr_app = DaprApp(app)

    @dapr_app.subscribe(  # type: ignore[untyped-decorator]  # untyped SDK
        pubsub=settings.pubsub,
        topic=activation_topic(settings.pool, settings.namespace),
        route="/events/activations",
    )
    async def on_activation(request: Request) -> dict[str, str]:
        return await take_activation(dict(request.headers), await request.body())

    async def take_activation(headers: Mapping[str, str], body: bytes) -> dict[str, str]:
        async def take(env: ActivationEnvelope) -> None:
            actor_id = executor_actor_id(env.run_id, env.executor_index)
            await services["sidecar"].invoke(
                actor_type, actor_id, "Execute", env.model_dump(mode="json")
            )

        return await deliver(headers, body, ActivationEnvelope, take, ActorInvokeError)

    @app.get("/healthz", include_in_schema=False)
    async def healthz() -> dict[str, str]:
        return {"status": "ok", "pool": settings.pool}

    @app.get("/readyz", include_in_schema=False)
    async def readyz() -> dict[str, str]:
        """Ready when the Dapr sidecar is (liveness stays on ``/healthz``)."""
        reason = await services["sidecar"].sidecar_ready()
        if reason is not None:
            raise Problem(503, "Not ready", reason)
        return {"status": "ok", "pool": settings.pool, "dapr": "ok"}

    # the sidecar's calls each superstep (this delivery, the actor call) skip FastAPI
    install_edge(
        app,
        settings,
        actor_types=[actor_type],
        deliveries={"/events/activations": take_activation},
        open_paths=install_docs(app),
    )
    return app
