"""The coordinator in the API app, as the sidecar sees it: the ``SuperstepCoordinator``
actor type, and the subscription to the executors' results, which go on to the run's
coordinator actor.

The counterpart of ``_pool.PoolHost`` (an executor pool in an app): made with the app,
subscribed at its creation, started in its lifespan. The fast lane (``_fastlane``) calls
``take_result`` for each delivery; the FastAPI route it also subscribes serves a
delivery the lane does not take.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from typing import Any

from dapr.ext.fastapi import DaprActor, DaprApp
from fastapi import Request

from executor_host._actors import COORDINATOR_TYPE, CoordinatorDeps, coordinator_class
from executor_host._batching import GroupCaller
from executor_host._bus import Bus, deliver
from executor_host._serializer import EnvelopeSerializer
from executor_host._services import APIServices
from executor_host._sidecar import ActorInvokeError
from executor_host.protocol import ActivationEnvelope, ResultEnvelope, results_topic

__all__ = ["CoordinatorHost"]


class CoordinatorHost:
    """The coordinator actor type and the results subscription of the API app."""

    route = "/events/results"
    actor_type = COORDINATOR_TYPE

    def __init__(self, services: APIServices) -> None:
        self._services = services
        # results of one run arriving while a call to its coordinator is in flight go
        # together in the next call
        self._results = GroupCaller(self._send_results)
        self._bus: Bus | None = None

    def subscribe(self, dapr_app: DaprApp) -> None:
        """Subscribe the app to the results topic (at app creation)."""
        settings = self._services.settings

        @dapr_app.subscribe(  # type: ignore[untyped-decorator]  # untyped SDK
            pubsub=settings.pubsub,
            topic=results_topic(settings.namespace),
            route=self.route,
        )
        async def on_result(request: Request) -> dict[str, str]:
            return await self.take_result(dict(request.headers), await request.body())

    async def take_result(self, headers: Mapping[str, str], body: bytes) -> dict[str, str]:
        async def take(env: ResultEnvelope) -> None:
            await self._results.submit(env.run_id, env.model_dump(mode="json"), size=len(body))

        return await deliver(headers, body, ResultEnvelope, take, ActorInvokeError)

    async def _send_results(self, run_id: str, payloads: list[Any]) -> None:
        await self._services.sidecar.invoke(COORDINATOR_TYPE, run_id, "Results", payloads)

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
