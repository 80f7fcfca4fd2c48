"""The coordinator: drives one run's supersteps over Dapr.

``RunDriver`` holds the logic (plan, publish, collect results, commit the barrier,
re-publish late activations); the ``Coordinator`` actor in ``_actors.py`` is a
thin adapter that gives it Dapr's single activation per run and a reminder.
All semantics come from the engine core (``runtime.engine``): the driver only
moves its values between the state store and pub/sub.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from executor_host._payloads import PayloadSplitter
from executor_host._store import ConflictError, RunRecord, RunStore
from executor_host.protocol import ActivationEnvelope, ResultEnvelope
from runtime.checkpoint import checkpoint_id_for
from runtime.engine import (
    Activation,
    ActivationResult,
    Checkpoint,
    RunState,
    RunStatus,
    cancel,
    commit,
    fail,
    plan,
)
from runtime.errors import NoLiveHostError
from runtime.telemetry import ROOT, end, end_run, telemetry, traceparent
from runtime.workflow import Workflow
from runtime.workflow._events import WorkflowEvent
from runtime.workflow._reporting import event_to_json, final_events, superstep_events

__all__ = ["Publish", "RunDriver"]

log = logging.getLogger(__name__)

Publish = Callable[[Sequence[ActivationEnvelope]], Awaitable[None]]
"""Publishes a superstep's activations, each to its pool's topic."""

Resolve = Callable[[str, str | None, dict[str, Any] | None], Workflow]
"""(workflow name, factory, params) -> the workflow's template."""

Committed = Callable[[str, int, list[dict[str, Any]]], None]

LivePools = Callable[[], Awaitable[set[str]]]
"""The placement pools that have a live executor host now."""
"""Told (run id, event chunk number, the chunk's events) after each commit of a run."""


def _ignore(_run: str, _chunk: int, _events: list[dict[str, Any]]) -> None:
    return None


@dataclass(slots=True)
class _InFlight:
    superstep: int
    activations: tuple[Activation, ...]
    results: dict[str, ActivationResult] = field(default_factory=dict)
    hosts: dict[str, str] = field(default_factory=dict)
    published_at: float = 0.0
    attempt: int = 1
    span: Any = None
    """The superstep's OpenTelemetry span (when tracing), ended at its barrier."""
    started: float = 0.0
    no_host_since: float | None = None
    """Since when a late activation's pool has had no live host (None: it has one)."""


class RunDriver:
    """Drives one run. Not safe for concurrent use: the actor's turns serialise calls."""

    def __init__(
        self,
        run_id: str,
        store: RunStore,
        resolve: Resolve,
        publish: Publish,
        *,
        inline_state_limit: int = 64 * 1024,
        payload_ref_bytes: int = 16 * 1024,
        payload_ttl_s: int = 24 * 3600,
        clock: Callable[[], float] = time.time,
        on_change: Committed = _ignore,
        live_pools: LivePools | None = None,
        no_host_s: float = 60.0,
    ) -> None:
        self.run_id = run_id
        self._live_pools = live_pools
        self._no_host_s = no_host_s
        self._store = store
        self._resolve = resolve
        self._publish = publish
        self._inline_limit = inline_state_limit
        self._payload_ref_bytes = payload_ref_bytes
        self._payload_ttl_s = payload_ttl_s
        self._clock = clock
        self._on_change = on_change
        self._record: RunRecord | None = None
        self._flight: _InFlight | None = None
        self._tel = telemetry()
        self._run_span: Any = None
        """The run's span, while this coordinator has it (it is lost with the actor)."""

    # -- lifecycle ------------------------------------------------------------------------
    async def create(
        self,
        workflow_name: str,
        state: RunState,
        factory: str | None = None,
        params: dict[str, Any] | None = None,
        existing: RunRecord | None = None,
        traceparent_of_start: str | None = None,
    ) -> RunRecord:
        """Create the run record of a new run (or of a run resumed from a checkpoint)
        and publish its next superstep.

        With ``existing`` (a run of the same id that is not running) the run is
        continued from ``state`` instead — a resume from one of its checkpoints: a new
        epoch, the old events kept, outputs and trace counted from the resume on."""
        wf = self._resolve(workflow_name, factory, params)
        now = self._clock()
        if self._tel is not None:
            self._end_spans("superseded")
            # a child of the span that started the run (the API's request), else a root
            self._run_span = self._tel.start_run(
                workflow_name, self.run_id, traceparent_of_start or ROOT
            )
        record = RunRecord(
            run_id=self.run_id,
            workflow=workflow_name,
            signature=wf.graph.signature,
            epoch=1,
            state=state,
            factory=factory,
            params=params,
            created_at=now,
            updated_at=now,
            planned_at=now,
            state_version=state.superstep,
            traceparent=traceparent(self._run_span),
        )
        if existing is None:
            record = await self._store.create_run(record)
        else:
            record = await self._store.save_run(
                replace(
                    record,
                    epoch=existing.epoch + 1,
                    generation=existing.generation + 1,
                    event_chunks=existing.event_chunks,
                    checkpoint_ranges=existing.checkpoint_ranges,
                    last_checkpoint=existing.last_checkpoint,
                    created_at=existing.created_at,
                    etag=existing.etag,
                )
            )
        self._flight = None
        first = [WorkflowEvent("started", data=self.run_id, superstep=state.superstep)]
        if state.status is not RunStatus.RUNNING:
            first.extend(final_events(state))
        elif state.inbox:
            first.append(WorkflowEvent("superstep_started", superstep=state.superstep + 1))
        events = [event_to_json(wf.graph.codec, e) for e in first]
        self._record = await self._store.commit_barrier(
            record,
            events=events,
            checkpoint=None,
            state_version=(state.superstep, dict(state.state)),
        )
        self._changed(self._record, events)
        if state.status is not RunStatus.RUNNING:
            self._end_spans(state.status.value)
        await self._advance()
        return self._record

    async def resume(self) -> None:
        """Take over a run after (re)activation: a new epoch fences older coordinators,
        then the in-flight superstep is published again (executors return stored results)."""
        record = await self._store.load_run(self.run_id)
        if record is None:
            return
        record = await self._store.save_run(replace(record, epoch=record.epoch + 1))
        self._record = record
        self._flight = None
        if record.state.status is RunStatus.RUNNING:
            await self._advance()

    @property
    def record(self) -> RunRecord | None:
        return self._record

    # -- the superstep loop -----------------------------------------------------------------
    async def _advance(self) -> None:
        """Publish the activations of the next superstep (if the run is running)."""
        record = self._require()
        state = record.state
        if state.status is not RunStatus.RUNNING:
            return
        wf = self._workflow_of(record)
        activations = plan(state, wf.graph, timestamp=record.planned_at)
        if not activations:
            return
        self._flight = flight = _InFlight(
            state.superstep + 1, activations, published_at=self._clock()
        )
        if self._tel is not None:
            flight.started = time.perf_counter()
            flight.span = self._tel.start_superstep(
                record.workflow,
                record.run_id,
                flight.superstep,
                self._run_span or record.traceparent,
            )
        await self._publish_all(flight, activations)

    async def _publish_all(self, flight: _InFlight, activations: tuple[Activation, ...]) -> None:
        record = self._require()
        wf = self._workflow_of(record)
        graph = wf.graph
        shared = record.state.state
        inline = len(shared) == 0 or _approx_size(shared) <= self._inline_limit
        splitter = PayloadSplitter(record.run_id, self._payload_ref_bytes)
        parent = traceparent(flight.span)
        envs: list[ActivationEnvelope] = []
        for a in activations:
            activation, payload_keys = splitter.split(a.to_json())
            snapshot = record.state.snapshots.get(a.executor_id)
            envs.append(
                ActivationEnvelope(
                    run_id=record.run_id,
                    workflow=record.workflow,
                    factory=record.factory,
                    params=record.params,
                    signature=record.signature,
                    epoch=record.epoch,
                    generation=record.generation,
                    attempt=flight.attempt,
                    executor_index=graph.index_of(a.executor_id),
                    activation=activation,
                    state=dict(shared) if inline else None,
                    state_key=None if inline else f"state:{record.run_id}:{record.state_version}",
                    snapshot=snapshot,
                    has_snapshot=a.executor_id in record.state.snapshots,
                    payload_keys=payload_keys or None,
                    traceparent=parent,
                )
            )
        # payloads by reference are written before any activation naming them is out
        await self._store.save_payloads(splitter.to_write, self._payload_ttl_s)
        await self._publish(envs)

    async def on_result(self, env: ResultEnvelope) -> bool:
        """Take one result; commit the barrier when the last one is in. Returns whether
        the result was new (duplicates and late results are ignored)."""
        flight = self._flight
        if self._record is None or flight is None or env.superstep != flight.superstep:
            return False
        if env.executor_id in flight.results or all(
            a.executor_id != env.executor_id for a in flight.activations
        ):
            return False
        flight.results[env.executor_id] = ActivationResult.from_json(env.result)
        flight.hosts[env.executor_id] = env.host
        if len(flight.results) == len(flight.activations):
            await self._commit(flight)
        return True

    async def _commit(self, flight: _InFlight) -> None:
        record = self._require()
        wf = self._workflow_of(record)
        graph = wf.graph
        results = [flight.results[a.executor_id] for a in flight.activations]
        new_state, report = commit(record.state, graph, flight.activations, results)
        events = superstep_events(graph, report, results, flight.hosts)
        if new_state.status is not RunStatus.RUNNING:
            events.extend(final_events(new_state))
        else:
            events.append(WorkflowEvent("superstep_started", superstep=new_state.superstep + 1))
        checkpoint = None
        ranges, last_checkpoint = record.checkpoint_ranges, record.last_checkpoint
        if report.committed:
            cp_id = checkpoint_id_for(record.run_id, new_state.superstep)
            checkpoint = Checkpoint(cp_id, graph.name, graph.signature, self._clock(), new_state)
            ranges = record.with_checkpoint(new_state.superstep)
            last_checkpoint = new_state.superstep
        state_version = record.state_version
        version_write = None
        if report.committed and report.written:
            state_version = new_state.superstep
            version_write = (state_version, new_state.state)
        updated = replace(
            record,
            state=new_state,
            checkpoint_ranges=ranges,
            last_checkpoint=last_checkpoint,
            outputs=[*record.outputs, *(o.data for o in report.outputs)],
            updated_at=self._clock(),
            planned_at=self._clock(),
            state_version=state_version,
        )
        chunk = [event_to_json(graph.codec, e) for e in events]
        try:
            committed = await self._store.commit_barrier(
                updated,
                events=chunk,
                checkpoint=checkpoint,
                state_version=version_write,
                reload=False,
            )
        except ConflictError:
            self._fenced("at", flight.superstep)
            return
        self._flight = None
        self._record = committed
        self._changed(committed, chunk)
        if self._tel is not None:
            seconds = time.perf_counter() - flight.started
            self._tel.superstep_done(record.workflow, report.committed, seconds, flight.span)
            if new_state.status is not RunStatus.RUNNING:
                end_run(self._run_span, new_state)
                self._run_span = None
        # publish the next superstep, then read back the new ETag of the run record: the
        # publish is on the critical path, the read is not (sent together, the read went
        # out first and held the publish up in the sidecar); the actor's turn lock keeps
        # the next commit behind both
        await self._advance()
        head = await self._store.load_run_head(record.run_id)
        if self._record is not committed:
            return
        if head is None or head[:2] != (committed.epoch, committed.updated_at):
            # someone wrote after us (a newer coordinator): we are fenced
            self._fenced("after", flight.superstep)
            return
        self._record = replace(committed, etag=head[2])

    def _changed(self, committed: RunRecord, events: list[dict[str, Any]]) -> None:
        # commit_barrier wrote the events as the chunk before the record's new count
        if events:
            self._on_change(self.run_id, committed.event_chunks - 1, events)

    def _fenced(self, where: str, superstep: int) -> None:
        """A newer coordinator of this run took over: this copy forgets the run and
        ignores results that still reach it."""
        log.warning(
            "run %s: fenced %s superstep %d (another coordinator took over)",
            self.run_id,
            where,
            superstep,
        )
        self._end_spans("fenced")
        self._record = None
        self._flight = None

    def _end_spans(self, status: str) -> None:
        """End the in-flight superstep's span and the run's, if this copy has them."""
        if self._flight is not None:
            end(self._flight.span, status=status)
            self._flight.span = None
        end(self._run_span, status=status)
        self._run_span = None

    async def on_deadline(self, deadline_s: float) -> int:
        """Publish again the activations whose results are later than ``deadline_s``.
        Returns how many were published."""
        flight = self._flight
        if flight is None or self._clock() - flight.published_at < deadline_s:
            return 0
        missing = tuple(a for a in flight.activations if a.executor_id not in flight.results)
        if not missing:
            return 0
        if await self._no_host_for(flight, missing):
            return 0
        flight.attempt += 1
        flight.published_at = self._clock()
        log.warning(
            "run %s superstep %d: re-publishing %d late activation(s), attempt %d",
            self.run_id,
            flight.superstep,
            len(missing),
            flight.attempt,
        )
        await self._publish_all(flight, missing)
        return len(missing)

    async def _no_host_for(self, flight: _InFlight, missing: tuple[Activation, ...]) -> bool:
        """Whether the run was failed because the pool of a late activation has had no
        live host for ``no_host_s`` (a pool with no host would otherwise keep the run
        ``running`` for ever, its activations published again at every deadline)."""
        if self._live_pools is None:
            return False
        graph = self._workflow_of(self._require()).graph
        pools = {a.executor_id: graph.nodes[a.executor_id].placement.pool for a in missing}
        live = await self._live_pools()
        gone = sorted({p for p in pools.values() if p not in live})
        if not gone:
            flight.no_host_since = None
            return False
        now = self._clock()
        if flight.no_host_since is None:
            flight.no_host_since = now
        waited = now - flight.no_host_since
        executors = sorted(e for e, p in pools.items() if p in gone)
        if waited < self._no_host_s:
            log.warning(
                "run %s superstep %d: no live host in pool(s) %s for %s; waiting (%.0f s of %.0f)",
                self.run_id,
                flight.superstep,
                ", ".join(gone),
                ", ".join(executors),
                waited,
                self._no_host_s,
            )
            return False
        error = NoLiveHostError(
            f"no live host in pool(s) {', '.join(repr(p) for p in gone)} for "
            f"{self._no_host_s:g} s: executor(s) {', '.join(executors)} of superstep "
            f"{flight.superstep} could not run (start a host of that pool, then resume "
            f"from the last checkpoint)"
        )
        await self._fail(error)
        return True

    async def _fail(self, error: Exception) -> None:
        """End the run ``failed`` with ``error``: the superstep in flight commits nothing."""
        await self._end(fail(self._require().state, error), "failed")

    async def _end(self, state: RunState, status: str) -> None:
        """Commit ``state``, a final one the run ends in without its superstep in flight."""
        record = self._require()
        wf = self._workflow_of(record)
        events = [event_to_json(wf.graph.codec, e) for e in final_events(state)]
        self._end_spans(status)
        self._flight = None
        self._record = await self._store.commit_barrier(
            replace(record, state=state, updated_at=self._clock()),
            events=events,
            checkpoint=None,
            state_version=None,
        )
        self._changed(self._record, events)

    # -- external inputs --------------------------------------------------------------------
    async def respond(self, responses: Mapping[str, Any]) -> None:
        """Deliver (codec-encoded) responses to pending requests; the run continues."""
        from runtime.engine import respond

        record = self._require()
        wf = self._workflow_of(record)
        state = respond(record.state, wf.graph, responses)
        events = [
            WorkflowEvent("started", data=self.run_id, superstep=state.superstep),
            WorkflowEvent("superstep_started", superstep=state.superstep + 1),
        ]
        chunk = [event_to_json(wf.graph.codec, e) for e in events]
        self._record = await self._store.commit_barrier(
            replace(record, state=state, planned_at=self._clock(), updated_at=self._clock()),
            events=chunk,
            checkpoint=None,
            state_version=None,
        )
        self._changed(self._record, chunk)
        await self._advance()

    async def cancel(self) -> None:
        record = self._require()
        if record.state.status.is_final:
            return
        await self._end(cancel(record.state), "cancelled")

    def _workflow_of(self, record: RunRecord) -> Workflow:
        return self._resolve(record.workflow, record.factory, record.params)

    def _require(self) -> RunRecord:
        if self._record is None:
            raise LookupError(f"run {self.run_id!r} is not loaded")
        return self._record


def _approx_size(state: Mapping[str, Any]) -> int:
    import json

    return len(json.dumps(state, separators=(",", ":")))
