"""The executor host app: the actor type of one executor pool and that pool's
activation subscription. Several replicas of a pool share the work: the
subscription's consumer group hands each activation to one of them, and actor
placement runs each (run, executor) on one of them at a time.

Run it with ``uvicorn --factory executor_host.host:create_app`` next to a Dapr
sidecar, with ``SUPERSTEP_POOL`` naming the pool.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from dapr.ext.fastapi import DaprActor, DaprApp
from fastapi import FastAPI

from executor_host import _probes
from executor_host._docs import install_docs
from executor_host._edge import install_edge
from executor_host._pool import PoolHost
from executor_host._problems import install_problem_handlers
from executor_host._services import AppServices, configure_actors
from executor_host._settings import Settings
from runtime.registry import WorkflowRegistry

__all__ = ["create_app"]

log = logging.getLogger(__name__)


def create_app(config: Settings | None = None) -> FastAPI:
    settings: Settings = config or Settings.from_env()
    registry = WorkflowRegistry.load(settings.workflows)
    services = AppServices(settings, ready={"status": "ok", "pool": settings.pool, "dapr": "ok"})
    pool = PoolHost(
        settings.pool,
        settings,
        registry,
        route="/events/activations",
        own_host_id=lambda resolved: resolved.host_id,
    )

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await services.start()
        await pool.start(actors, services)
        yield
        await pool.stop()
        await services.close()

    app = FastAPI(
        title=f"superstep executor host ({settings.pool})",
        lifespan=lifespan,
        docs_url=None,  # install_docs serves them, with their files
        redoc_url=None,
    )
    app.state.services = services
    install_problem_handlers(app)
    app.include_router(_probes.router)
    configure_actors(settings)
    actors = DaprActor(app)
    pool.subscribe(DaprApp(app))

    # the sidecar's calls each superstep (this delivery, the actor call) skip FastAPI
    install_edge(
        app,
        settings,
        actor_types=[pool.actor_type],
        deliveries={pool.route: pool.take_activation},
        open_paths=install_docs(app),
    )
    return app
