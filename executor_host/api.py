"""The API/coordinator app: the HTTP API and the ``SuperstepCoordinator`` actor type.

Run it with ``uvicorn --factory executor_host.api:create_app`` next to a Dapr
sidecar (``dapr run -f dapr.yaml`` or the local sidecar). Set-up happens in the
lifespan; the routes live in routers by concern (``_runs``, ``_checkpoints``,
``_discovery``, ``_probes``) over the app's ``APIServices`` (``_services``), the
coordinator's side of the sidecar in ``_coordinator_host``, and the semantics in
``runtime.engine``.

With ``SUPERSTEP_POOLS`` set it also serves those executor pools (``_pool``), so one app
runs a whole workflow: the shape of ``dapr.inmemory.yaml``, whose in-memory components
live inside one sidecar.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from functools import partial

from dapr.ext.fastapi import DaprActor, DaprApp
from fastapi import FastAPI

from executor_host import _checkpoints, _discovery, _probes, _runs
from executor_host._console import install_console
from executor_host._coordinator_host import CoordinatorHost
from executor_host._docs import install_docs
from executor_host._edge import install_edge
from executor_host._pool import PoolHost
from executor_host._problems import install_problem_handlers
from executor_host._retention import Retention
from executor_host._services import APIServices, configure_actors
from executor_host._settings import Settings
from runtime.registry import WorkflowRegistry

__all__ = ["create_app"]

log = logging.getLogger(__name__)


def create_app(config: Settings | None = None) -> FastAPI:
    settings: Settings = config or Settings.from_env()
    registry = WorkflowRegistry.load(settings.workflows)
    services = APIServices(settings, registry)
    coordinator = CoordinatorHost(services)
    retention = Retention(lambda: services.store, registry, settings.run_retention_s)
    # the executor pools this app serves itself (SUPERSTEP_POOLS), each a host of its own
    pools = [
        PoolHost(
            pool,
            settings,
            registry,
            route=f"/events/activations/{pool}",
            own_host_id=partial(_pool_host_id, pool),
            # behind the coordinator's own sidecar (an in-memory pub/sub's publish
            # waits for the topic's previous delivery): PoolHost._take_on_receipt
            ack_on_receipt=True,
        )
        for pool in settings.pools
    ]

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await services.start()
        await coordinator.start(actors)
        for pool in pools:
            await pool.start(actors, services)
        retention.start()
        yield
        await retention.stop()
        for pool in pools:
            await pool.stop()
        await services.close()

    app = FastAPI(
        title="superstep",
        version="1",
        description="Start, watch, answer and cancel workflow runs on the Dapr runtime.",
        lifespan=lifespan,
        docs_url=None,  # install_docs serves them, with their files
        redoc_url=None,
    )
    app.state.services = services
    install_problem_handlers(app)
    if settings.api_token and not settings.app_token:
        log.warning(
            "SUPERSTEP_API_TOKEN is set but APP_API_TOKEN is not: the routes the Dapr "
            "sidecar calls (/dapr/*, /actors/*, /events/*) take requests from anyone who "
            "reaches the app"
        )
    # the client routes first: each request is matched against the routes in order, and
    # the SDK's actor routes (a router of their own) come after them
    for router in (_runs.router, _checkpoints.router, _discovery.router, _probes.router):
        app.include_router(router)
    configure_actors(settings)
    actors = DaprActor(app)
    dapr_app = DaprApp(app)
    for pool in pools:
        pool.subscribe(dapr_app)
    # the run console's page and files (no run data in them: open, as the API's docs)
    console = install_console(app, token_required=bool(settings.api_token))
    docs = install_docs(app)
    # the sidecar's calls each superstep (the coordinator's actor calls, the deliveries of
    # the pools this app serves) skip FastAPI
    install_edge(
        app,
        settings,
        actor_types=[coordinator.actor_type, *(pool.actor_type for pool in pools)],
        deliveries={pool.route: pool.take_activation for pool in pools},
        api_token=settings.api_token,
        open_paths=[*console, *docs],
    )
    return app


def _pool_host_id(pool: str, settings: Settings) -> str:
    """The host of a pool the API app serves itself: ``<host id>:<pool>``."""
    return f"{settings.host_id}:{pool}"
