"""The Dapr actor types: ``SuperstepCoordinator`` (one per run, in the API app) and
``superstep-executor-<pool>`` (one per (run, executor), in the pool's hosts).

Both are thin: they adapt Dapr's actor runtime (single activation, turn-based
calls, reminders, actor state) to ``RunDriver`` and ``execute_activation``.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, TypeVar, cast

from dapr.actor import Actor, ActorInterface, Remindable, actormethod
from dapr.actor.id import ActorId
from dapr.actor.runtime.context import ActorRuntimeContext
from pydantic import ValidationError

from executor_host._coordinator import Committed, LivePools, Publish, RunDriver
from executor_host._payloads import SNAPSHOT, PayloadCache, restore_payloads
from executor_host._serializer import Undecodable
from executor_host._sidecar import SidecarClient
from executor_host._store import RunStore
from executor_host.protocol import ActivationEnvelope, ResultEnvelope, executor_actor_id
from runtime.engine import (
    Activation,
    ActivationResult,
    ActivationStatus,
    ErrorInfo,
    RunState,
    compact_json_bytes,
)
from runtime.registry import WorkflowRegistry
from runtime.telemetry import telemetry
from runtime.workflow import Workflow, execute_activation

__all__ = [
    "COORDINATOR_TYPE",
    "Coordinator",
    "CoordinatorDeps",
    "CoordinatorInterface",
    "ExecutorActor",
    "ExecutorDeps",
    "ExecutorInterface",
    "ResultReporter",
    "ResultTooLarge",
    "coordinator_class",
    "executor_actor_class",
    "executor_actor_id",
    "executor_actor_type",
]

log = logging.getLogger(__name__)

COORDINATOR_TYPE = "SuperstepCoordinator"
DEADLINE_REMINDER = "deadline"

F = TypeVar("F", bound=Callable[..., Any])


def _method(name: str) -> Callable[[F], F]:
    return cast(Callable[[F], F], actormethod(name=name))


def executor_actor_type(pool: str) -> str:
    return f"superstep-executor-{pool}"


def executor_actor_class(pool: str) -> type[ExecutorActor]:
    """The executor actor class of a pool. The SDK names an actor type after its
    class, so each pool gets a subclass named ``superstep-executor-<pool>``."""
    return type(executor_actor_type(pool), (ExecutorActor,), {})


# -- coordinator ------------------------------------------------------------------------------
class CoordinatorInterface(ActorInterface):
    @_method("Start")
    async def start(self, payload: dict[str, Any]) -> dict[str, Any]:
        raise NotImplementedError

    @_method("Result")
    async def result(self, payload: dict[str, Any]) -> dict[str, Any]:
        raise NotImplementedError

    @_method("Respond")
    async def respond(self, payload: dict[str, Any]) -> dict[str, Any]:
        raise NotImplementedError

    @_method("Cancel")
    async def cancel(self) -> dict[str, Any]:
        raise NotImplementedError


@dataclass(frozen=True, slots=True)
class CoordinatorDeps:
    store: RunStore
    registry: WorkflowRegistry
    publish: Publish
    deadline_s: float
    inline_state_limit: int
    on_change: Committed
    payload_ref_bytes: int = 16 * 1024
    payload_ttl_s: int = 24 * 3600
    live_pools: LivePools | None = None
    no_host_s: float = 60.0
    store_failing_s: float = 600.0


class Coordinator(Actor, CoordinatorInterface, Remindable):
    """One per run: plans supersteps, collects results, commits barriers.

    Registered under the type name ``SuperstepCoordinator`` (see ``coordinator_class``)."""

    def __init__(self, ctx: ActorRuntimeContext, actor_id: ActorId, deps: CoordinatorDeps) -> None:
        super().__init__(ctx, actor_id)
        self._deps = deps
        self._driver = RunDriver(
            actor_id.id,
            deps.store,
            deps.registry.resolve,
            deps.publish,
            inline_state_limit=deps.inline_state_limit,
            payload_ref_bytes=deps.payload_ref_bytes,
            payload_ttl_s=deps.payload_ttl_s,
            on_change=deps.on_change,
            live_pools=deps.live_pools,
            no_host_s=deps.no_host_s,
            store_failing_s=deps.store_failing_s,
        )
        self._resumed = False

    async def _ensure(self) -> None:
        if not self._resumed:
            self._resumed = True
            await self._driver.resume()
            record = self._driver.record
            if record is not None and record.state.status.value == "running":
                # the copy this one took over from may have removed it when fenced
                await self._arm()

    async def start(self, payload: dict[str, Any]) -> dict[str, Any]:
        async def arm() -> None:
            self._resumed = True
            await self._arm()

        return await self._driver.begin(
            payload["workflow"],
            RunState.from_json(payload["state"]),
            payload.get("factory"),
            payload.get("params"),
            resume=bool(payload.get("resume")),
            start_key=payload.get("start_key"),
            traceparent_of_start=payload.get("traceparent"),
            before_create=arm,
        )

    async def result(self, payload: dict[str, Any]) -> dict[str, Any]:
        await self._ensure()
        accepted = await self._driver.on_result(ResultEnvelope.model_validate(payload))
        await self._disarm_if_done()
        return {"accepted": accepted}

    async def respond(self, payload: dict[str, Any]) -> dict[str, Any]:
        await self._ensure()
        await self._arm()
        await self._driver.respond(payload["responses"])
        await self._disarm_if_done()
        return {"ok": True}

    async def cancel(self) -> dict[str, Any]:
        await self._ensure()
        await self._driver.cancel()
        await self._disarm_if_done()
        return {"ok": True}

    async def receive_reminder(
        self,
        name: str,
        state: bytes,
        due_time: timedelta,
        period: timedelta,
        ttl: timedelta | None = None,
    ) -> None:
        if name != DEADLINE_REMINDER:
            return
        await self._ensure()
        await self._driver.on_deadline(self._deps.deadline_s)
        await self._disarm_if_done()

    async def _arm(self) -> None:
        period = timedelta(seconds=self._deps.deadline_s)
        await self.register_reminder(DEADLINE_REMINDER, b"", period, period)

    async def _disarm_if_done(self) -> None:
        if self._driver.fenced:
            return  # the reminder is the newer coordinator's now: keep it
        record = self._driver.record
        if record is None or record.state.status.value != "running":
            try:
                await self.unregister_reminder(DEADLINE_REMINDER)
            except Exception:  # already gone: nothing to do
                log.debug("run %s: no deadline reminder to remove", self.id.id)


def coordinator_class() -> type[Coordinator]:
    """The coordinator actor class, named ``SuperstepCoordinator`` (the SDK names an
    actor type after its class)."""
    return type(COORDINATOR_TYPE, (Coordinator, Remindable), {})


# -- executors ---------------------------------------------------------------------------------
class ExecutorInterface(ActorInterface):
    @_method("Execute")
    async def execute(self, payload: dict[str, Any] | Undecodable) -> dict[str, Any]:
        raise NotImplementedError


MAX_RESULT_BYTES = 1024 * 1024
"""The largest result sent in the coordinator actor call as it is: daprd takes bodies of
at most 4 MiB (``--max-body-size``), and the call passes through two sidecars."""


class ResultTooLarge(ValueError):
    """A result's envelope is larger than ``ResultReporter``'s limit: nothing was sent
    (the executor stores the result and sends a reference to it instead)."""


class ResultReporter:
    """Hands an executor's result to its run's coordinator actor: one actor call
    (``SuperstepCoordinator/<run>.Result``) through the host's sidecar. The envelope is
    serialised once, here. An outage raises the sidecar client's ``ActorInvokeError``:
    the executor actor's call fails, the delivery of its activation is retried, and the
    repeat reports the same result again."""

    def __init__(self, sidecar: SidecarClient, *, max_bytes: int = MAX_RESULT_BYTES) -> None:
        self._sidecar = sidecar
        self._max = max_bytes

    async def __call__(self, env: ResultEnvelope) -> None:
        body = compact_json_bytes(env.model_dump(mode="json"))
        if len(body) > self._max:
            raise ResultTooLarge(
                f"the result of {env.executor_id!r} in superstep {env.superstep} takes "
                f"{len(body)} bytes (at most {self._max})"
            )
        await self._sidecar.invoke_json(COORDINATOR_TYPE, env.run_id, "Result", body)


ReportResult = Callable[[ResultEnvelope], Awaitable[None]]


class RunInstances:
    """The ``Workflow`` objects of the runs this host is executing (bounded LRU).

    Executor instances carry a run's executor state; an evicted run is rebuilt from
    its factory and restored from the snapshot each activation carries."""

    def __init__(self, registry: WorkflowRegistry, limit: int = 256) -> None:
        self._registry = registry
        self._limit = limit
        self._items: OrderedDict[tuple[str, int], Workflow] = OrderedDict()

    def get(self, env: ActivationEnvelope) -> Workflow:
        key = (env.run_id, env.generation)
        wf = self._items.get(key)
        if wf is None:
            wf = self._registry.build(env.workflow, env.factory, env.params)
            self._items[key] = wf
            while len(self._items) > self._limit:
                self._items.popitem(last=False)
        else:
            self._items.move_to_end(key)
        return wf


@dataclass(frozen=True, slots=True)
class ExecutorDeps:
    host_id: str
    store: RunStore
    registry: WorkflowRegistry
    instances: RunInstances
    report_result: ReportResult
    """Hands a result to the coordinator; raises ``ResultTooLarge`` (sending nothing)
    for one too large to send (``ResultReporter``)."""
    payloads: PayloadCache


class ExecutorActor(Actor, ExecutorInterface):
    """One per (run, executor): executes its activations one at a time and stores each
    superstep's result in the state store (keyed by run, superstep and executor, not by
    host), so a repeated activation — on this host or, after failover, on another —
    returns the stored result instead of running again."""

    def __init__(self, ctx: ActorRuntimeContext, actor_id: ActorId, deps: ExecutorDeps) -> None:
        super().__init__(ctx, actor_id)
        self._deps = deps
        self._last: tuple[int, int] | None = None
        """(generation, superstep) of the last activation this instance executed. Its
        result is not kept here: an actor stays in memory until its sidecar deactivates
        it (``SUPERSTEP_ACTOR_IDLE_S`` after its run's last superstep), and the rare
        repeat reads the stored copy."""

    async def execute(self, payload: dict[str, Any] | Undecodable) -> dict[str, Any]:
        """Run one activation (the envelope a host forwarded as delivered) and report its
        result to the coordinator. An envelope that is not one, or is another actor's,
        is answered ``{"malformed": why}``: the host then drops its delivery."""
        if isinstance(payload, Undecodable):
            return {"malformed": str(payload)}
        try:
            env = ActivationEnvelope.model_validate(payload)
        except ValidationError as exc:
            return {"malformed": f"not an ActivationEnvelope: {exc}"}
        owner = executor_actor_id(env.run_id, env.executor_index)
        if owner != self.id.id:
            return {"malformed": f"the activation of {owner!r} was sent to actor {self.id.id!r}"}
        store = self._deps.store
        here = (env.generation, env.superstep)
        stored: dict[str, Any] | None = None
        if self._last is None or self._last[0] != env.generation or env.superstep <= self._last[1]:
            # a repeat of an activation this instance ran, or, for a fresh instance
            # (after activation or failover), one another instance ran: look for its
            # stored result. A live instance that ran superstep k-1 is the only one that
            # can have run k.
            stored = await store.load_result(
                env.run_id, env.generation, env.superstep, env.executor_index
            )
        duplicate = stored is not None
        produced = stored if stored is not None else (await self._traced(env)).to_json()
        result = ResultEnvelope(
            run_id=env.run_id,
            epoch=env.epoch,
            superstep=env.superstep,
            executor_id=env.executor_id,
            host=self._deps.host_id,
            result=produced,
        )
        self._last = here
        # reported at once (the coordinator keeps the first copy; the report is on the
        # critical path) while it is stored for repeats
        saving = (
            None
            if duplicate
            else asyncio.ensure_future(
                store.save_result(
                    env.run_id, env.generation, env.superstep, env.executor_index, produced
                )
            )
        )
        try:
            try:
                await self._deps.report_result(result)
            except ResultTooLarge:
                # too large to send: sent by reference once it is stored
                if saving is not None:
                    await saving
                await self._deps.report_result(
                    result.model_copy(update={"result": {}, "result_stored": True})
                )
        finally:
            if saving is not None:
                await saving
        return {"duplicate": duplicate}

    async def _traced(self, env: ActivationEnvelope) -> ActivationResult:
        """``_run`` in a span that is a child of the coordinator's superstep span."""
        tel = telemetry()
        if tel is None:
            return await self._run(env)
        with tel.execute(
            env.workflow,
            env.run_id,
            env.superstep,
            env.executor_id,
            env.traceparent,
            host=self._deps.host_id,
            remote=True,
        ) as span:
            started = time.perf_counter()
            result = await self._run(env)
            seconds = time.perf_counter() - started
            tel.activation_done(env.workflow, env.executor_id, result.status.value, seconds, span)
            return result

    async def _run(self, env: ActivationEnvelope) -> ActivationResult:
        raw, snapshot = env.activation, env.snapshot
        if env.payload_keys:
            keys = dict(env.payload_keys)
            snapshot_key = keys.pop(SNAPSHOT, None)
            values = await self._deps.payloads.get_many(list(env.payload_keys.values()))
            raw = restore_payloads(raw, keys, values)
            if snapshot_key is not None:
                snapshot = values[snapshot_key]
        activation = Activation.from_json(raw)
        if not self._deps.registry.serves(env.workflow, env.factory):
            return _refused(activation, f"this host does not serve workflow {env.workflow!r}")
        wf = self._deps.instances.get(env)
        if wf.graph.signature != env.signature:
            return _refused(
                activation,
                f"this host runs another version of {env.workflow!r} (graph signature "
                f"{wf.graph.signature[:12]}, coordinator {env.signature[:12]})",
            )
        executor = wf.executors[activation.executor_id]
        if env.has_snapshot and executor._has_snapshot:
            await executor.on_checkpoint_restore(wf.graph.codec.decode(snapshot))
        if env.state is not None:
            state = env.state
        else:
            version = int((env.state_key or "").rsplit(":", 1)[-1])
            state = await self._deps.store.load_shared_state(env.run_id, version)
        return await execute_activation(
            executor, wf.graph, activation, state, prior_snapshot=snapshot
        )


def _refused(activation: Activation, reason: str) -> ActivationResult:
    return ActivationResult(
        executor_id=activation.executor_id,
        superstep=activation.superstep,
        status=ActivationStatus.FAILED,
        error=ErrorInfo("HostMismatchError", reason, activation.executor_id, activation.superstep),
    )
