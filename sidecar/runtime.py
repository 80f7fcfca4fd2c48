"""One sidecar: components, the HTTP and gRPC APIs, and the start-up handshake with its app.

Start-up follows dapr-contract §4.1: load components; start the APIs (from here
``/v1.0/healthz/outbound`` is 204); wait until the app port accepts TCP; ``GET
/dapr/config`` (register actor types with placement); ``GET /dapr/subscribe`` (start
subscriptions); then ``/v1.0/healthz`` is 204. Afterwards the app port is probed; an app
that stops answering is taken out of placement (its actors move), and put back when it
comes back.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import socket
from collections.abc import Generator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc
import uvicorn

from sidecar.actors.config import ActorConfig, parse_app_config
from sidecar.actors.host import ActorHost
from sidecar.actors.service import ActorService
from sidecar.api.grpc_api import DaprGrpcApi, TokenInterceptor
from sidecar.api.http_app import build_http_app
from sidecar.app_channel import AppChannel, AppUnreachable
from sidecar.cluster import Cluster
from sidecar.errors import ApiError, BrokerError, ResourceError, StartupError, StateStoreError
from sidecar.faults import FaultPlan, FaultyStore, faulty_handler
from sidecar.pubsub import BoundBroker, Broker, Handler, PubSubService, open_broker
from sidecar.resiliency import OutboundPolicy, ResilientBroker, ResilientStore
from sidecar.resources import Resources, Subscription, load_resources, subscription_from_json
from sidecar.state import BoundStore, StateService, StateStore, bind_store, open_state_store

__all__ = ["Sidecar", "SidecarOptions"]

log = logging.getLogger(__name__)

RUNTIME_VERSION = "superstep-local-sidecar/0.1"


@dataclass(frozen=True)
class SidecarOptions:
    """How to run one sidecar. Ports of 0 mean "pick a free one"."""

    app_id: str
    resources_paths: tuple[Path, ...] = ()
    app_port: int | None = None
    app_host: str = "127.0.0.1"
    http_port: int = 0
    grpc_port: int = 0
    listen_host: str = "127.0.0.1"
    api_token: str | None = None
    faults: FaultPlan | None = None
    probe_interval: float = 0.5
    probe_threshold: int = 3
    health_check_path: str | None = None
    """With a path, the app is probed as daprd's app health checks do (``GET path``,
    2xx within ``probe_timeout``); without one, by a TCP connect to its port."""
    probe_timeout: float = 0.5
    app_api_token: str | None = field(default_factory=lambda: os.environ.get("APP_API_TOKEN"))
    """Sent to the app as ``dapr-api-token`` on every call (daprd reads it from
    ``APP_API_TOKEN`` in its environment), so the app can refuse callers without it."""
    max_body_bytes: int = 4 << 20
    """The largest request body the HTTP and gRPC APIs take (daprd's ``--max-body-size``,
    4 MiB by default): bigger ones fail as daprd's do ("stream too large")."""
    extra_subscriptions: tuple[Subscription, ...] = field(default_factory=tuple)


class _Server(uvicorn.Server):
    """A uvicorn server that leaves signal handling to the launcher."""

    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        yield


async def _wait_for_port(app: AppChannel) -> None:
    """Dial the app port every 100 ms until it accepts (no time limit, like daprd)."""
    while True:
        if await app.port_open():
            return
        await asyncio.sleep(0.1)


class Sidecar:
    def __init__(
        self, options: SidecarOptions, cluster: Cluster, resources: Resources | None = None
    ) -> None:
        self.options = options
        self.app_id = options.app_id
        self.cluster = cluster
        self.resources = resources
        self.state = StateService({})
        self.pubsub = PubSubService(options.app_id, {})
        self.actors = ActorService(options.app_id, cluster, None)
        self.app: AppChannel | None = None
        self.outbound_ready = False
        self.ready = False
        self.app_healthy = False
        self.extended_metadata: dict[str, str] = {}
        self.http_port = 0
        self.grpc_port = 0
        self._http: _Server | None = None
        self._http_task: asyncio.Task[None] | None = None
        self._grpc: grpc.aio.Server | None = None
        self._http_socket: socket.socket | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._ready_event = asyncio.Event()
        self._failed: BaseException | None = None
        self._actor_config = ActorConfig({})

    # -- lifecycle ---------------------------------------------------------------------

    async def start(self) -> None:
        """Load components and start both APIs; the app handshake continues in background."""
        opts = self.options
        if self.resources is None:
            self.resources = load_resources(opts.resources_paths, opts.app_id)
        await self._open_components(self.resources)
        await self._start_http()
        await self._start_grpc()
        self.cluster.add(self)
        self.outbound_ready = True
        log.info(
            "%s: sidecar APIs up (HTTP %d, gRPC %d)", self.app_id, self.http_port, self.grpc_port
        )
        if opts.app_port is None:
            await self._start_subscriptions(None, [])
            self._mark_ready()
        else:
            self.app = AppChannel(
                opts.app_id, opts.app_host, opts.app_port, app_token=opts.app_api_token
            )
            self._tasks.append(asyncio.create_task(self._handshake()))

    async def _open_components(self, resources: Resources) -> None:
        stores: dict[str, BoundStore] = {}
        brokers: dict[str, BoundBroker] = {}
        faults = self.options.faults
        try:
            for comp in resources.components:
                outbound = resources.outbound(comp.name, comp.category)
                if comp.category == "state":
                    store: StateStore = open_state_store(comp)
                    if faults is not None:
                        store = FaultyStore(store, faults.state, faults.rng(self.app_id, "state"))
                    if outbound:
                        policy = OutboundPolicy(comp.name, outbound, StateStoreError)
                        store = ResilientStore(store, policy)
                    await store.start()
                    stores[comp.name] = bind_store(comp, store, self.app_id)
                elif comp.category == "pubsub":
                    broker: Broker = open_broker(comp, self.app_id)
                    if outbound:
                        broker = ResilientBroker(
                            broker, OutboundPolicy(comp.name, outbound, BrokerError)
                        )
                    await broker.start()
                    brokers[comp.name] = BoundBroker(comp, broker)
        except Exception as exc:
            for bound in stores.values():
                await bound.store.close()
            for b in brokers.values():
                await b.broker.close()
            if isinstance(exc, ResourceError):
                raise
            raise StartupError(f"{self.app_id}: component failed to start: {exc}") from exc
        self.state = StateService(stores)
        self.pubsub = PubSubService(self.app_id, brokers)
        actor_store = next((b for b in stores.values() if b.is_actor_store), None)
        self.actors = ActorService(self.app_id, self.cluster, actor_store)

    async def _start_http(self) -> None:
        opts = self.options
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        # Accepted connections inherit this; without it a response's headers and body go
        # out as two segments and Nagle + delayed ACK add ~40 ms per request.
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sock.bind((opts.listen_host, opts.http_port))
        self.http_port = sock.getsockname()[1]
        config = uvicorn.Config(
            build_http_app(self, opts.api_token, opts.max_body_bytes),
            log_level="warning",
            lifespan="off",
            access_log=False,
        )
        self._http = _Server(config)
        self._http_task = asyncio.create_task(self._http.serve(sockets=[sock]))
        while not self._http.started:
            if self._http_task.done():
                self._http_task.result()
                raise StartupError(f"{self.app_id}: HTTP API did not start")
            await asyncio.sleep(0.005)
        self._http_socket = sock

    async def _start_grpc(self) -> None:
        opts = self.options
        interceptors = [TokenInterceptor(opts.api_token)] if opts.api_token else []
        self._grpc = grpc.aio.server(
            interceptors=interceptors,
            options=[("grpc.max_receive_message_length", opts.max_body_bytes)],
        )
        DaprGrpcApi(self).attach(self._grpc)
        self.grpc_port = self._grpc.add_insecure_port(f"{opts.listen_host}:{opts.grpc_port}")
        if self.grpc_port == 0:
            raise StartupError(f"{self.app_id}: gRPC port {opts.grpc_port} is not free")
        await self._grpc.start()

    def _mark_ready(self) -> None:
        self.ready = True
        self._ready_event.set()

    async def wait_ready(self, within: float = 30.0) -> None:
        """Wait until ``/v1.0/healthz`` would answer 204 (or the handshake failed)."""
        try:
            await asyncio.wait_for(self._ready_event.wait(), within)
        except TimeoutError:
            raise StartupError(f"{self.app_id}: not ready after {within:g}s") from None
        if self._failed is not None:
            raise StartupError(f"{self.app_id}: start-up failed: {self._failed}")

    def not_ready_reason(self) -> str:
        if not self.outbound_ready:
            return "[components]"
        return "[app channel]" if self.app is not None and not self.app_healthy else "[init]"

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks.clear()
        self.ready = False
        # The subscriptions first: a delivery in flight may be an activation for an actor
        # of this very host, which it can only finish while the actor is still placed
        # here (with the actors gone first it failed, was retried by the pub/sub's
        # resiliency policy against no host, and held the stop for the whole policy).
        # The components close last, after the API servers: a publish that reached the
        # API before it stopped would otherwise open a new connection on a closed client
        # (redis-py's pool connects again after a disconnect) that nobody closes.
        await self.pubsub.close_subscriptions()
        if self.actors.host is not None:
            # leaving placement deactivates every actor here (they move or have no host)
            self.actors.host.app_reachable = self.app_healthy
            await self.cluster.placement.unregister(self.actors.host)
            await self.actors.host.close()
        self.cluster.remove(self)
        if self._http is not None and self._http_task is not None:
            self._http.should_exit = True
            await asyncio.gather(self._http_task, return_exceptions=True)
        if self._http_socket is not None:
            self._http_socket.close()
        if self._grpc is not None:
            await self._grpc.stop(grace=0.2)
        await self.pubsub.close()
        for bound in self.state.stores.values():
            await bound.store.close()
        if self.app is not None:
            await self.app.close()
        self.outbound_ready = False

    # -- handshake with the app ---------------------------------------------------------

    async def _handshake(self) -> None:
        app = self.app
        assert app is not None
        try:
            await _wait_for_port(app)
            self.app_healthy = True
            await self._register_actors(app)
            subs = await self._programmatic_subscriptions(app)
            await self._start_subscriptions(app, subs)
        except Exception as exc:  # report through wait_ready, keep the sidecar up
            log.exception("%s: handshake with the app failed", self.app_id)
            self._failed = exc
            self._ready_event.set()
            return
        self._mark_ready()
        self._tasks.append(asyncio.create_task(self._probe_app(app)))

    async def _register_actors(self, app: AppChannel) -> None:
        try:
            answer = await app.request("GET", "/dapr/config")
            body: Any = json.loads(answer.body) if answer.status == 200 else None
        except (AppUnreachable, ValueError) as exc:
            log.info("%s: /dapr/config unavailable (%s): no actors", self.app_id, exc)
            body = None
        self._actor_config = parse_app_config(body)
        if not self._actor_config.types:
            return
        if self.actors.store is None:
            log.error("%s: hosts actors but has no actorStateStore component", self.app_id)
        host = ActorHost(f"{self.app_id}@{self.http_port}", self.app_id, app, self._actor_config)
        self.actors.host = host
        host.start()
        await self._join_placement()

    async def _join_placement(self) -> None:
        host = self.actors.host
        if host is None:
            return
        if self.actors.store is not None:
            for actor_type in self._actor_config.types:
                await self.cluster.reminders.load(actor_type, self.actors.store.store)
        await self.cluster.placement.register(host, self._actor_config.entities)

    async def _programmatic_subscriptions(self, app: AppChannel) -> list[Subscription]:
        delay = 0.5
        for attempt in range(3):
            try:
                answer = await app.request("GET", "/dapr/subscribe")
            except AppUnreachable as exc:
                if attempt == 2:
                    log.error("%s: GET /dapr/subscribe failed: %r", self.app_id, exc)
                    return []
                await asyncio.sleep(delay)
                delay *= 1.5
                continue
            if answer.status == 404:
                return []
            if answer.status != 200:
                log.error("%s: GET /dapr/subscribe answered %d", self.app_id, answer.status)
                return []
            try:
                entries = json.loads(answer.body)
                return [
                    subscription_from_json(e, f"{self.app_id} GET /dapr/subscribe")
                    for e in entries or []
                ]
            except (ValueError, TypeError, AttributeError, ResourceError) as exc:
                log.error("%s: bad /dapr/subscribe answer: %s", self.app_id, exc)
                return []
        return []

    async def _start_subscriptions(
        self, app: AppChannel | None, programmatic: list[Subscription]
    ) -> None:
        assert self.resources is not None
        if app is None:
            return
        declared = [*self.resources.subscriptions, *self.options.extra_subscriptions]
        faults = self.options.faults
        wrapper = None
        if faults is not None:
            rng = faults.rng(self.app_id, "pubsub")

            def wrapper(sub: Subscription, handler: Handler) -> Handler:
                return faulty_handler(faults.pubsub, rng, sub, handler)

        await self.pubsub.start_subscriptions(
            [*declared, *programmatic], app, self.resources, wrapper
        )

    async def _probe_app(self, app: AppChannel) -> None:
        failures = 0
        while True:
            await asyncio.sleep(self.options.probe_interval)
            path = self.options.health_check_path
            if await (app.healthy(path, self.options.probe_timeout) if path else app.port_open()):
                failures = 0
                if not self.app_healthy:
                    log.warning("%s: app is reachable again", self.app_id)
                    self.app_healthy = True
                    with contextlib.suppress(ApiError):
                        await self._rejoin(app)
                    await self._start_subscriptions(
                        app, await self._programmatic_subscriptions(app)
                    )
                continue
            failures += 1
            if failures >= self.options.probe_threshold and self.app_healthy:
                log.warning(
                    "%s: app unhealthy, leaving actor placement and its subscriptions",
                    self.app_id,
                )
                self.app_healthy = False
                await self.pubsub.stop_subscriptions()
                if self.actors.host is not None:
                    self.actors.host.app_reachable = False
                    await self.cluster.placement.unregister(self.actors.host)
                    await self.actors.host.close()
                    self.actors.host = None

    async def _rejoin(self, app: AppChannel) -> None:
        await self._register_actors(app)

    # -- metadata API --------------------------------------------------------------------

    def metadata(self) -> dict[str, Any]:
        components = []
        for bound in self.state.stores.values():
            caps = sorted(bound.store.features)
            if "ETAG" in caps and "TRANSACTIONAL" in caps:
                caps.append("ACTOR")
            comp = bound.component
            components.append(
                {
                    "name": comp.name,
                    "type": comp.type,
                    "version": comp.version,
                    "capabilities": caps,
                }
            )
        for broker in self.pubsub.brokers.values():
            comp = broker.component
            components.append({"name": comp.name, "type": comp.type, "version": comp.version})
        host = self.actors.host
        out: dict[str, Any] = {
            "id": self.app_id,
            "runtimeVersion": RUNTIME_VERSION,
            "components": components,
            "extended": dict(self.extended_metadata),
            "subscriptions": [
                {
                    "pubsubname": s.pubsub_name,
                    "topic": s.topic,
                    "metadata": dict(s.metadata),
                    "rules": [{"match": r.match, "path": r.path} for r in s.rules],
                    "deadLetterTopic": s.dead_letter_topic,
                    "type": s.kind,
                }
                for s in self.pubsub.subscriptions
            ],
            "actorRuntime": {
                "runtimeStatus": "RUNNING" if host is not None else "DISABLED",
                "activeActors": [
                    {"type": t, "count": c}
                    for t, c in sorted((host.active_counts() if host else {}).items())
                ],
                "hostReady": host is not None,
                "placement": "connected" if host is not None else "",
            },
        }
        if host is not None:
            out["actors"] = [
                {"type": t, "count": host.active_counts().get(t, 0)}
                for t in sorted(host.config.types)
            ]
        if self.options.app_port is not None:
            out["appConnectionProperties"] = {
                "port": self.options.app_port,
                "protocol": "http",
                "channelAddress": self.options.app_host,
                "maxConcurrency": -1,
            }
        return out
