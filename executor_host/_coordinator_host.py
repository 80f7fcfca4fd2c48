"""The coordinator in the API app, as the sidecar sees it: the ``SuperstepCoordinator``
actor type, which the executor actors call with their results, and the publishing of
its activations to the pools' topics.

The counterpart of ``_pool.PoolHost`` (an executor pool in an app): made with the app,
started in its lifespan. The fast lane (``_fastlane``) hands the actor calls to the
SDK's actor runtime without FastAPI.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

from dapr.ext.fastapi import DaprActor

from executor_host._actors import COORDINATOR_TYPE, CoordinatorDeps, coordinator_class
from executor_host._bus import Bus
from executor_host._serializer import EnvelopeSerializer
from executor_host._services import APIServices
from executor_host.protocol import ActivationEnvelope

__all__ = ["CoordinatorHost"]


class CoordinatorHost:
    """The coordinator actor type of the API app."""

    actor_type = COORDINATOR_TYPE

    def __init__(self, services: APIServices) -> None:
        self._services = services
        self._bus: Bus | None = None

    async def start(self, actors: DaprActor) -> None:
        """Register the coordinator actor type (in the app's lifespan, once the services
        have started)."""
        services = self._services
        settings = services.settings
        self._bus = Bus(services.sidecar, settings.pubsub, settings.app_id, settings.namespace)
        deps = CoordinatorDeps(
            store=services.store,
            registry=services.registry,
            publish=self._publish,
            deadline_s=settings.deadline_s,
            inline_state_limit=settings.inline_state_limit,
            payload_ref_bytes=settings.payload_ref_bytes,
            payload_ttl_s=settings.payload_ttl_s,
            on_change=services.watch.committed,
            live_pools=services.live_pools,
            no_host_s=settings.no_host_deadline_s,
            store_failing_s=settings.store_failing_s,
        )
        cls = coordinator_class()
        await actors.register_actor(
            cls,
            actor_factory=lambda ctx, actor_id: cls(ctx, actor_id, deps),
            message_serializer=EnvelopeSerializer(),
        )

    async def _publish(self, envs: Sequence[ActivationEnvelope]) -> None:
        """Publish activations to their executors' pools, one batch per pool."""
        assert self._bus is not None, "activations before the app started"
        bus = self._bus
        registry = self._services.registry
        by_pool: dict[str, list[ActivationEnvelope]] = {}
        for env in envs:
            wf = registry.resolve(env.workflow, env.factory, env.params)
            pool = wf.graph.nodes[env.executor_id].placement.pool
            by_pool.setdefault(pool, []).append(env)
        await asyncio.gather(
            *(bus.publish_activations(batch, pool) for pool, batch in by_pool.items())
        )
