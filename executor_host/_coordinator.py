"""The coordinator: drives one run's supersteps over Dapr.

``RunDriver`` interprets the run's ``BarrierMachine`` (``runtime.workflow.driver``),
which holds the barrier sequence every driver shares: a ``Dispatch`` is published to
the executors' pools, a ``Commit`` becomes one state transaction (events, checkpoint,
shared-state version, run record under its ETag). The ``Coordinator`` actor in
``_actors.py`` is a thin adapter that gives it Dapr's single activation per run and a
reminder.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import replace
from typing import Any

from executor_host._payloads import SNAPSHOT, PayloadSplitter
from executor_host._store import RunRecord, RunStore
from executor_host.protocol import ActivationEnvelope, ResultEnvelope
from runtime.engine import ActivationResult, RunState
from runtime.errors import StoreRefusedError
from runtime.ports import ETagMismatch, PortError, Refused
from runtime.telemetry import ROOT, end, end_run, telemetry, traceparent
from runtime.workflow.driver import (
    BarrierMachine,
    Command,
    Commit,
    Dispatch,
    Wait,
    Workflow,
    event_to_json,
)

__all__ = ["Publish", "RunDriver"]

log = logging.getLogger(__name__)

Publish = Callable[[Sequence[ActivationEnvelope]], Awaitable[None]]
"""Publishes a superstep's activations, each to its pool's topic."""

Resolve = Callable[[str, str | None, dict[str, Any] | None], Workflow]
"""(workflow name, factory, params) -> the workflow's template."""

Committed = Callable[[str, int, list[dict[str, Any]]], None]
"""Told (run id, event chunk number, the chunk's events) after each commit of a run."""

LivePools = Callable[[], Awaitable[set[str]]]
"""The placement pools that have a live executor host now."""


def _ignore(_run: str, _chunk: int, _events: list[dict[str, Any]]) -> None:
    return None


class SteadyClock:
    """Unix time that never steps: the wall clock read once, then advanced by the
    monotonic clock. The coordinator's deadlines (``now - dispatched_at``) and its
    no-host wait are measured on it, so a wall clock set back (an NTP step, a VM
    resumed) does not hold a late activation back by the step, nor does one set forward
    make every activation late at once; activations' timestamps (``ctx.now()``) are
    taken from it too, within the step of the wall clock."""

    def __init__(
        self,
        wall: Callable[[], float] = time.time,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._origin = wall() - monotonic()
        self._monotonic = monotonic

    def __call__(self) -> float:
        return self._origin + self._monotonic()


STEADY_CLOCK = SteadyClock()
"""The clock of every coordinator of a process (unless a test gives its own)."""


def recreated(guard: str | None, etag: str | None) -> bool:
    """Whether a record written under the ETag ``guard`` holds ``etag`` because the
    write created it anew rather than replaced it. Only a store with version-number
    ETags (Redis: 1 at a create, one more at each write) can say so, and only such a
    store writes a missing key under an ETag; other ETags (UUIDs) never tell."""
    if guard is None or etag is None or not (guard.isdigit() and etag.isdigit()):
        return False
    return int(etag) <= int(guard)


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
        clock: Callable[[], float] | None = None,
        on_change: Committed = _ignore,
        live_pools: LivePools | None = None,
        no_host_s: float = 60.0,
        store_failing_s: float = 600.0,
    ) -> None:
        self.run_id = run_id
        self._live_pools = live_pools
        self._no_host_s = no_host_s
        self._store_failing_s = store_failing_s
        self._store = store
        self._resolve = resolve
        self._publish = publish
        self._inline_limit = inline_state_limit
        self._payload_ref_bytes = payload_ref_bytes
        self._payload_ttl_s = payload_ttl_s
        self._clock = clock or STEADY_CLOCK
        self._on_change = on_change
        self._record: RunRecord | None = None
        self._machine: BarrierMachine | None = None
        self.fenced = False
        """Whether a newer coordinator of this run took it over from this copy (which
        then leaves the run, and its deadline reminder, alone)."""
        self._unfinished: list[Command] = []
        """Commands a store or bus failure stopped, to execute again first."""
        self._failing_since: float | None = None
        """When the first of the unfinished commands first failed (None: none failed)."""
        self._refusal: Refused | None = None
        """The refusal this copy is failing the run for, once the store refused one of
        its commands for good."""
        self._stale = False
        """Whether the record's ETag is unknown since this copy's last commit (read back
        before the next commit, after the dispatch that follows it)."""
        self._guard: str | None = None
        """The ETag this copy's last commit was guarded by."""
        self._tel = telemetry()
        self._run_span: Any = None
        """The run's span, while this coordinator has it (it is lost with the actor)."""
        self._step_span: Any = None
        self._step_started = 0.0

    # -- lifecycle ------------------------------------------------------------------------
    async def begin(
        self,
        workflow_name: str,
        state: RunState,
        factory: str | None = None,
        params: dict[str, Any] | None = None,
        *,
        resume: bool = False,
        start_key: str | None = None,
        traceparent_of_start: str | None = None,
        before_create: Callable[[], Awaitable[None]] | None = None,
    ) -> dict[str, Any]:
        """A start request: the answer to it (``created``, the run's ``status``, and
        ``after``, the last event chunk before it). A run of this id that exists is left
        alone (``created`` false) unless the request resumes it from a checkpoint and
        it is not running, or unless it is this very request tried again (the same
        ``start_key``, after an answer that did not come back), which is answered as
        the first try was. ``before_create`` runs just before the record is written
        (the actor arms its deadline reminder there)."""
        existing = await self._store.load_run(self.run_id)
        if existing is not None and start_key is not None and existing.start_key == start_key:
            status = existing.state.status.value
            return {"created": True, "status": status, "after": existing.start_after}
        if existing is not None:
            resumable = resume and existing.state.status.value != "running"
            if not resumable or existing.workflow != workflow_name:
                return {"created": False, "status": existing.state.status.value}
        if before_create is not None:
            await before_create()
        record = await self.create(
            workflow_name,
            state,
            factory,
            params,
            existing=existing,
            traceparent_of_start=traceparent_of_start,
            start_key=start_key,
        )
        return {"created": True, "status": record.state.status.value, "after": record.start_after}

    async def create(
        self,
        workflow_name: str,
        state: RunState,
        factory: str | None = None,
        params: dict[str, Any] | None = None,
        existing: RunRecord | None = None,
        traceparent_of_start: str | None = None,
        start_key: str | None = None,
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
            start_key=start_key,
            start_after=-1 if existing is None else existing.event_chunks - 1,
            first_superstep=state.superstep,
            executors=len(wf.graph.nodes),
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
                    earlier=[*existing.earlier, existing.generation_span],
                    created_at=existing.created_at,
                    etag=existing.etag,
                )
            )
        self._record, self._stale, self.fenced, self._refusal = record, False, False, None
        self._machine = machine = BarrierMachine(wf.graph, state)
        await self._run(machine.start(now))
        return self._require()

    async def resume(self) -> None:
        """Take over a run after (re)activation: a new epoch fences older coordinators,
        then the in-flight superstep is published again (executors return stored results)."""
        record = await self._store.load_run(self.run_id)
        if record is None:
            return
        record = await self._store.save_run(replace(record, epoch=record.epoch + 1))
        self._record, self._stale, self.fenced, self._refusal = record, False, False, None
        graph = self._workflow_of(record).graph
        self._machine = machine = BarrierMachine(graph, record.state, planned_at=record.planned_at)
        await self._run(machine.resume(self._clock()))

    @property
    def record(self) -> RunRecord | None:
        return self._record

    # -- interpreting the machine's commands ------------------------------------------------
    async def _run(self, commands: list[Command]) -> None:
        """Execute ``commands`` in order (after those left unfinished by a failure);
        stop at a commit this copy was fenced at.

        A store or bus failure leaves the failed command and those after it
        unfinished: they are executed again, first, at the next input (the deadline
        reminder's at the latest) — a barrier the machine has taken is never lost
        because its transaction failed once. A refusal for good (``Refused``)
        is no outage: trying again would be refused alike, so the run fails instead
        (``_fail_refused``). Nor is a command that keeps failing for
        ``store_failing_s``: the run fails the same way, and only the commit of that
        failure is tried again until it lands."""
        queue = [*self._unfinished, *commands]
        self._unfinished = []
        for i, command in enumerate(queue):
            try:
                if not await self._execute(command):
                    return
            except Refused as exc:
                self._failing_since = None
                await self._fail_refused(exc)
                return
            except PortError as exc:
                now = self._clock()
                since = self._failing_since
                if since is None or i > 0:  # a command that did not fail before
                    self._failing_since = since = now
                if self._refusal is None and now - since >= self._store_failing_s:
                    self._failing_since = None
                    await self._fail_refused(
                        Refused(f"last: {exc}", getattr(exc, "status", None)),
                        now - since,
                    )
                    return
                self._unfinished = queue[i:]
                raise
            self._failing_since = None
        if self._stale and self._record is not None:
            await self._read_back()

    async def _fail_refused(self, refusal: Refused, failing_s: float | None = None) -> None:
        """The store refused a command for good: fail the run as of its last committed
        barrier (what the refused command would have written is dropped, as a cancel
        drops the superstep in flight), naming the refusal. When the commit of that
        failure is refused too, there is nothing left to write: this copy gives the
        run up (it forgets it) and raises the refusal. ``failing_s``: not a refusal
        but a command that kept failing for that long (``store_failing_s``)."""
        record = self._require()
        if self._refusal is not None:
            log.error(
                "run %s: the state store refused the run's failure too (%s); giving the "
                "run up, it stays as of superstep %d",
                self.run_id,
                refusal,
                record.state.superstep,
            )
            self._forget("failed")
            raise refusal
        self._refusal = refusal
        superstep = record.state.superstep + 1
        what = (
            f"refused superstep {superstep} for good"
            if failing_s is None
            else f"kept failing superstep {superstep} for {failing_s:.0f} s"
        )
        log.error("run %s: the state store %s (%s); failing the run", self.run_id, what, refusal)
        end(self._step_span, status="failed")
        self._step_span = None
        graph = self._workflow_of(record).graph
        self._machine = machine = BarrierMachine(graph, record.state, planned_at=record.planned_at)
        error = StoreRefusedError(
            f"the state store {what} ({refusal}); the run "
            f"ends as of superstep {superstep - 1}, its last committed barrier",
            refusal.status,
        )
        await self._run(machine.fail(error))

    async def _execute(self, command: Command) -> bool:
        """One command; False when this copy was fenced at it."""
        if isinstance(command, Commit):
            return await self._commit(command)
        if isinstance(command, Dispatch):
            await self._dispatch(command)
        elif isinstance(command, Wait):
            waiting = "; ".join(f"{p}: {', '.join(e)}" for p, e in command.pools.items())
            log.warning(
                "run %s superstep %d: no live host in pool(s) %s; waiting (%.0f s of %.0f)",
                self.run_id,
                command.superstep,
                waiting,
                command.waited_s,
                command.limit_s,
            )
        return True

    async def _commit(self, barrier: Commit) -> bool:
        """One barrier in one state transaction. False when another coordinator took
        the run over (this copy is fenced and forgets it)."""
        if self._stale:
            await self._read_back()
            if self._record is None:
                return False
        record = self._require()
        graph = self._workflow_of(record).graph
        state = barrier.state
        report = barrier.report
        ranges, last_checkpoint = record.checkpoint_ranges, record.last_checkpoint
        if barrier.checkpoint is not None:
            ranges = record.with_checkpoint(state.superstep)
            last_checkpoint = state.superstep
        state_version, version_write = record.state_version, None
        if barrier.state_written:
            state_version = state.superstep
            version_write = (state_version, dict(state.state))
        updated = replace(
            record,
            state=state,
            checkpoint_ranges=ranges,
            last_checkpoint=last_checkpoint,
            updated_at=self._clock(),
            planned_at=barrier.planned_at,
            state_version=state_version,
        )
        chunk = [event_to_json(graph.codec, e) for e in barrier.events]
        self._guard = record.etag
        try:
            committed = await self._store.commit_barrier(
                updated,
                events=chunk,
                checkpoint=barrier.checkpoint,
                state_version=version_write,
                outputs=[o.data for o in report.outputs] if report is not None else (),
                reload=False,
            )
        except ETagMismatch:
            self._fenced("at", state.superstep)
            return False
        # the new ETag is read back after the dispatch that follows (the publish is on
        # the critical path, the read is not); the actor's turn lock keeps the next
        # commit behind both
        self._record, self._stale = committed, True
        if chunk:
            # commit_barrier wrote the events as the chunk before the record's new count
            self._on_change(self.run_id, committed.event_chunks - 1, chunk)
        if self._tel is not None:
            if report is not None:
                seconds = time.perf_counter() - self._step_started
                self._tel.superstep_done(
                    record.workflow, report.committed, seconds, self._step_span
                )
                self._step_span = None
            elif barrier.aborted is not None:
                end(self._step_span, status=state.status.value)
                self._step_span = None
            if barrier.ended:
                end_run(self._run_span, state)
                self._run_span = None
        return True

    async def _read_back(self) -> None:
        """Read the run record's new ETag after this copy's commit; someone else's
        write since (a newer coordinator) fences this copy."""
        committed = self._require()
        head = await self._store.load_run_head(self.run_id)
        if self._record is not committed:
            return
        if head is None or head[:2] != (committed.epoch, committed.updated_at):
            self._fenced("after", committed.state.superstep)
            return
        if recreated(self._guard, head[2]):
            await self._lost(committed, head[2])
            return
        self._record, self._stale = replace(committed, etag=head[2]), False

    async def _lost(self, committed: RunRecord, etag: str | None) -> None:
        """The run's record was gone from the store when this copy committed, and the
        commit wrote it anew (Redis takes an ETag on a missing key for a create): the
        run's earlier events, outputs and checkpoints went with the store's data, so the
        run is lost, as for every reader who found no record meanwhile. Remove the
        record the commit made, so the run stays gone (404), and leave the run."""
        log.error(
            "run %s: its record was gone from the state store when superstep %d was "
            "committed (the store made it anew); the run is lost with the store's data",
            self.run_id,
            committed.state.superstep,
        )
        self._forget("lost")
        if etag is not None:
            with contextlib.suppress(ETagMismatch):
                await self._store.delete_record(self.run_id, etag)

    async def _dispatch(self, dispatch: Dispatch) -> None:
        """Publish the activations, each to its pool's topic."""
        record = self._require()
        if dispatch.first and self._tel is not None:
            self._step_started = time.perf_counter()
            self._step_span = self._tel.start_superstep(
                record.workflow,
                record.run_id,
                dispatch.superstep,
                self._run_span or record.traceparent,
            )
        elif not dispatch.first:
            log.warning(
                "run %s superstep %d: re-publishing %d late activation(s), attempt %d",
                self.run_id,
                dispatch.superstep,
                len(dispatch.activations),
                dispatch.attempt,
            )
        graph = self._workflow_of(record).graph
        shared = record.state.state
        inline = len(shared) == 0 or _approx_size(shared) <= self._inline_limit
        splitter = PayloadSplitter(record.run_id, self._payload_ref_bytes)
        parent = traceparent(self._step_span)
        envs: list[ActivationEnvelope] = []
        for a in dispatch.activations:
            activation, payload_keys = splitter.split(a.to_json())
            snapshot = record.state.snapshots.get(a.executor_id)
            snapshot_key = splitter.refer(snapshot) if snapshot is not None else None
            if snapshot_key is not None:  # a large snapshot goes by reference too
                payload_keys = {**payload_keys, SNAPSHOT: snapshot_key}
                snapshot = None
            envs.append(
                ActivationEnvelope(
                    run_id=record.run_id,
                    workflow=record.workflow,
                    factory=record.factory,
                    params=record.params,
                    signature=record.signature,
                    epoch=record.epoch,
                    generation=record.generation,
                    attempt=dispatch.attempt,
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

    def _fenced(self, where: str, superstep: int) -> None:
        """A newer coordinator of this run took over: this copy forgets the run and
        ignores results that still reach it."""
        log.warning(
            "run %s: fenced %s superstep %d (another coordinator took over)",
            self.run_id,
            where,
            superstep,
        )
        self.fenced = True
        self._forget("fenced")

    def _forget(self, status: str) -> None:
        """Leave the run: its spans end with ``status``; inputs are ignored from now."""
        self._end_spans(status)
        self._record = None
        self._machine = None
        self._stale = False
        self._unfinished = []

    def _end_spans(self, status: str) -> None:
        """End the in-flight superstep's span and the run's, if this copy has them."""
        end(self._step_span, status=status)
        self._step_span = None
        end(self._run_span, status=status)
        self._run_span = None

    # -- inputs -----------------------------------------------------------------------------
    async def on_result(self, env: ResultEnvelope) -> bool:
        """Take one result; commit the barrier when the last one is in. Returns whether
        the result was new (duplicates and late results are ignored)."""
        machine = self._machine
        if self._record is None or machine is None:
            return False
        if not machine.accepts(env.superstep, env.executor_id):
            return False
        raw = env.result
        if env.result_stored:  # too large to publish: the executor stored it
            record = self._require()
            index = self._workflow_of(record).graph.index_of(env.executor_id)
            stored = await self._store.load_result(
                record.run_id, record.generation, env.superstep, index
            )
            if stored is None:
                log.warning(
                    "run %s superstep %d: the stored result of %s is missing; waiting for "
                    "the deadline to ask again",
                    self.run_id,
                    env.superstep,
                    env.executor_id,
                )
                return False
            raw = stored
        result = ActivationResult.from_json(raw)
        await self._run(machine.on_result(result, env.host, self._clock()))
        return True

    async def on_deadline(self, deadline_s: float) -> int:
        """Publish again the activations whose results are later than ``deadline_s``
        (failing the run when their pool has had no live host for ``no_host_s``).
        Returns how many were published."""
        machine = self._machine
        if machine is None or self._record is None:
            return 0
        if self._unfinished:
            await self._run([])
        now = self._clock()
        if not machine.late(now, deadline_s):
            return 0
        live = await self._live_pools() if self._live_pools is not None else None
        commands = machine.on_deadline(now, deadline_s, live_pools=live, no_host_s=self._no_host_s)
        await self._run(commands)
        return sum(len(c.activations) for c in commands if isinstance(c, Dispatch))

    async def respond(self, responses: Mapping[str, Any]) -> None:
        """Deliver (codec-encoded) responses to pending requests; the run continues."""
        self._require()
        assert self._machine is not None
        await self._run(self._machine.respond(responses, self._clock()))

    async def cancel(self) -> None:
        self._require()
        assert self._machine is not None
        await self._run(self._machine.cancel())

    def _workflow_of(self, record: RunRecord) -> Workflow:
        return self._resolve(record.workflow, record.factory, record.params)

    def _require(self) -> RunRecord:
        if self._record is None:
            raise LookupError(f"run {self.run_id!r} is not loaded")
        return self._record


def _approx_size(state: Mapping[str, Any]) -> int:
    import json

    return len(json.dumps(state, separators=(",", ":")))
