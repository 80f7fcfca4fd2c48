"""The barrier state machine: one run's superstep sequence, with no I/O.

Every driver runs a run the same way: plan a superstep, hand its activations out,
collect one result per activation, commit the barrier (run state, events,
checkpoint), then plan the next — and in between take responses, a cancel, a
deadline. ``BarrierMachine`` is that sequence, written once. Its methods take what
happened (a result arrived, a deadline passed, responses were given, cancel) with
the time it happened, and return *commands*: what the driver must now do, in order.

- ``Dispatch``: run (or publish) these activations of superstep ``superstep``.
- ``Commit``: make this barrier durable (run state, events, checkpoint), then
  publish its events. A driver executes a ``Commit`` before any command after it,
  and stops at the first it cannot execute (a fenced coordinator, say): nothing
  after it happens.
- ``Wait``: a late activation's placement pool has no live host; the machine is
  waiting for one (the driver logs it and says so to whoever asks).

The machine never raises for a run's failure — a failed activation, a state
conflict, no live host, a cancel: each becomes a ``Commit`` of the final state.
It raises only for a caller's mistake (responses naming no pending request, a
driver feeding it results of activations it did not dispatch is ignored instead).

The in-process runtime interprets the commands on one event loop; the Dapr
coordinator interprets them over its state store and pub/sub.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from runtime.checkpoint import checkpoint_id_for
from runtime.engine import (
    Activation,
    ActivationResult,
    Checkpoint,
    Graph,
    RunState,
    RunStatus,
    SuperstepReport,
    cancel,
    commit,
    fail,
    plan,
    respond,
)
from runtime.errors import NoLiveHostError
from runtime.workflow._events import WorkflowEvent
from runtime.workflow._reporting import final_events, superstep_events

__all__ = ["BarrierMachine", "Command", "Commit", "Dispatch", "Wait"]


@dataclass(slots=True)
class Dispatch:
    """Run these activations of superstep ``superstep``.

    ``attempt`` 1 is the superstep's first dispatch (a driver starts its telemetry
    span there); a later attempt re-dispatches the activations whose results were
    late (each executor answers a repeat with its stored result)."""

    superstep: int
    activations: tuple[Activation, ...]
    attempt: int = 1
    planned_at: float = 0.0
    """The logical time the superstep was planned with (``ctx.now()``)."""

    @property
    def first(self) -> bool:
        return self.attempt == 1


@dataclass(slots=True)
class Commit:
    """Make this barrier durable, then publish ``events``.

    ``report`` is the superstep's report when the barrier ends a superstep (committed
    or failed as a whole); ``None`` for the barriers that end none: the run's start,
    responses given, a cancel, a failure outside any executor (no live host)."""

    state: RunState
    events: tuple[WorkflowEvent, ...]
    checkpoint: Checkpoint | None = None
    report: SuperstepReport | None = None
    state_written: bool = False
    """Whether ``state.state`` (the shared state) is a new version to keep: at the start
    and after a superstep that wrote to it."""
    planned_at: float = 0.0
    """The logical time the next superstep is planned with (to plan it again alike)."""
    aborted: int | None = None
    """The superstep that was in flight and ends with nothing committed (cancel, no
    live host), if any: its telemetry span ends with the run's status."""

    @property
    def ended(self) -> bool:
        """Whether the run stops here (finished, failed, cancelled, idle, or waiting for
        responses): no ``Dispatch`` follows until responses arrive."""
        return self.state.status is not RunStatus.RUNNING


@dataclass(slots=True)
class Wait:
    """A late activation's pool has no live host; the machine waits for one."""

    superstep: int
    pools: dict[str, tuple[str, ...]]
    """Pool -> its executors waiting in the superstep."""
    waited_s: float
    limit_s: float


Command = Dispatch | Commit | Wait


@dataclass(slots=True)
class _Flight:
    superstep: int
    activations: tuple[Activation, ...]
    planned_at: float
    dispatched_at: float
    results: dict[str, ActivationResult] = field(default_factory=dict)
    hosts: dict[str, str] = field(default_factory=dict)
    attempt: int = 1
    no_host_since: float | None = None


class BarrierMachine:
    """One run's barrier sequence over ``graph``, from the committed ``state``.

    ``checkpoints``: whether each committed superstep yields a checkpoint (a driver
    with nowhere to keep them passes False). ``planned_at``: the logical time the
    superstep after ``state`` was planned with, when a driver takes over a run in
    flight (``resume``); the re-planned activations are then the same.
    """

    def __init__(
        self,
        graph: Graph,
        state: RunState,
        *,
        checkpoints: bool = True,
        planned_at: float = 0.0,
    ) -> None:
        self.graph = graph
        self._state = state
        self._checkpoints = checkpoints
        self._planned_at = planned_at
        self._flight: _Flight | None = None

    # -- what it holds ------------------------------------------------------------------
    @property
    def state(self) -> RunState:
        """The run state as of the last barrier."""
        return self._state

    @property
    def superstep_in_flight(self) -> int | None:
        return self._flight.superstep if self._flight is not None else None

    @property
    def missing(self) -> tuple[str, ...]:
        """The executors of the superstep in flight whose results are not in yet."""
        f = self._flight
        if f is None:
            return ()
        return tuple(a.executor_id for a in f.activations if a.executor_id not in f.results)

    def late(self, now: float, deadline_s: float) -> tuple[str, ...]:
        """The executors of the superstep in flight whose results are later than
        ``deadline_s`` at ``now`` (what ``on_deadline`` would dispatch again)."""
        f = self._flight
        if f is None or now - f.dispatched_at < deadline_s:
            return ()
        return self.missing

    def accepts(self, superstep: int, executor_id: str) -> bool:
        """Whether a result of ``executor_id`` in ``superstep`` would be taken (not a
        duplicate, not late, not of an activation never dispatched)."""
        f = self._flight
        if f is None or superstep != f.superstep or executor_id in f.results:
            return False
        return any(a.executor_id == executor_id for a in f.activations)

    # -- inputs -------------------------------------------------------------------------
    def start(self, now: float) -> list[Command]:
        """Begin (or continue, from a checkpoint or after responses) at ``state``: the
        start barrier, then the first superstep's dispatch — or, for a state that has
        nothing to run (ended, or waiting for responses), the start and the end."""
        state = self._state
        self._flight = None
        events = [WorkflowEvent("started", data=state.run_id, superstep=state.superstep)]
        if state.status is not RunStatus.RUNNING and (state.status.is_final or not state.inbox):
            events.extend(final_events(state))
            return [Commit(state, tuple(events), state_written=True, planned_at=now)]
        if state.status is not RunStatus.RUNNING:
            state = self._state = replace(state, status=RunStatus.RUNNING)
        return self._next(events, state, now, state_written=True)

    def resume(self, now: float) -> list[Command]:
        """Take over a run in flight (a driver restarted): dispatch again the superstep
        after ``state``, planned with the original ``planned_at`` (executors answer a
        repeat with their stored results). Nothing is committed."""
        self._flight = None
        if self._state.status is not RunStatus.RUNNING:
            return []
        activations = plan(self._state, self.graph, timestamp=self._planned_at)
        if not activations:
            return self._barrier(activations, [], {}, now)
        return [self._dispatch(activations, self._planned_at, now)]

    def on_result(self, result: ActivationResult, host: str, now: float) -> list[Command]:
        """One result of the superstep in flight; the barrier's commands when it was the
        last. A duplicate, a late result or a stranger's is ignored (no commands)."""
        f = self._flight
        if f is None or not self.accepts(result.superstep, result.executor_id):
            return []
        f.results[result.executor_id] = result
        f.hosts[result.executor_id] = host
        if len(f.results) < len(f.activations):
            return []
        return self._barrier(
            f.activations, [f.results[a.executor_id] for a in f.activations], f.hosts, now
        )

    def on_results(
        self,
        results: Sequence[ActivationResult],
        hosts: Mapping[str, str],
        now: float,
        *,
        delivered_digests: Sequence[str] | None = None,
    ) -> list[Command]:
        """All results of the superstep in flight at once (a driver that awaits them
        together), in activation order. ``delivered_digests``: the digests of the
        activations' messages, when the driver computed them while they ran."""
        f = self._flight
        if f is None:
            raise RuntimeError("no superstep in flight")
        return self._barrier(f.activations, results, hosts, now, delivered_digests)

    def on_deadline(
        self,
        now: float,
        deadline_s: float,
        *,
        live_pools: Collection[str] | None = None,
        no_host_s: float = 60.0,
    ) -> list[Command]:
        """Time passed: re-dispatch the activations whose results are later than
        ``deadline_s``. With ``live_pools`` (the pools that have a live host now), a
        late activation whose pool has had no host for ``no_host_s`` fails the run
        (otherwise it would wait for ever); before that, ``Wait``."""
        f = self._flight
        if f is None or now - f.dispatched_at < deadline_s:
            return []
        late = tuple(a for a in f.activations if a.executor_id not in f.results)
        if not late:
            return []
        if live_pools is not None:
            pools = {a.executor_id: self.graph.nodes[a.executor_id].placement.pool for a in late}
            gone = sorted({p for p in pools.values() if p not in live_pools})
            if gone:
                if f.no_host_since is None:
                    f.no_host_since = now
                waited = now - f.no_host_since
                waiting = {p: tuple(sorted(e for e, q in pools.items() if q == p)) for p in gone}
                if waited < no_host_s:
                    return [Wait(f.superstep, waiting, waited, no_host_s)]
                executors = ", ".join(e for p in gone for e in waiting[p])
                return self.fail(
                    NoLiveHostError(
                        f"no live host in pool(s) {', '.join(repr(p) for p in gone)} for "
                        f"{no_host_s:g} s: executor(s) {executors} of superstep "
                        f"{f.superstep} could not run (start a host of that pool, then "
                        f"resume from the last checkpoint)"
                    )
                )
            f.no_host_since = None
        f.attempt += 1
        f.dispatched_at = now
        return [Dispatch(f.superstep, late, f.attempt, f.planned_at)]

    def respond(self, responses: Mapping[str, Any], now: float) -> list[Command]:
        """Responses (codec-encoded) to pending requests: the run continues with them.
        Raises ``RequestError`` when one names no pending request, or the run ended."""
        state = self._state = respond(self._state, self.graph, responses)
        self._flight = None
        events = [WorkflowEvent("started", data=state.run_id, superstep=state.superstep)]
        return self._next(events, state, now)

    def cancel(self) -> list[Command]:
        """End the run ``cancelled``; the superstep in flight commits nothing."""
        if self._state.status.is_final:
            return []
        return self._end(cancel(self._state))

    def fail(self, error: BaseException) -> list[Command]:
        """End the run ``failed`` with ``error`` (a failure outside any executor); the
        superstep in flight commits nothing."""
        if self._state.status.is_final:
            return []
        return self._end(fail(self._state, error))

    # -- the sequence -------------------------------------------------------------------
    def _end(self, state: RunState) -> list[Command]:
        aborted = self._flight.superstep if self._flight is not None else None
        self._flight = None
        self._state = state
        return [
            Commit(state, tuple(final_events(state)), planned_at=self._planned_at, aborted=aborted)
        ]

    def _dispatch(
        self, activations: tuple[Activation, ...], planned_at: float, now: float
    ) -> Dispatch:
        k = activations[0].superstep
        self._flight = _Flight(k, activations, planned_at, now)
        return Dispatch(k, activations, 1, planned_at)

    def _next(
        self,
        events: list[WorkflowEvent],
        state: RunState,
        now: float,
        *,
        checkpoint: Checkpoint | None = None,
        report: SuperstepReport | None = None,
        state_written: bool = False,
    ) -> list[Command]:
        """The barrier of ``state`` with ``events`` and the next superstep's announcement,
        then its dispatch — or, when it has no activations, straight on to its barrier.
        (The barrier is built once, here: ``dataclasses.replace`` costs more than all
        the rest of the machine's work in a superstep of one small activation.)"""
        activations = plan(state, self.graph, timestamp=now)
        self._planned_at = now
        if not activations:
            barrier = Commit(state, tuple(events), checkpoint, report, state_written, now)
            return [barrier, *self._barrier(activations, [], {}, now)]
        events.append(WorkflowEvent("superstep_started", superstep=state.superstep + 1))
        barrier = Commit(state, tuple(events), checkpoint, report, state_written, now)
        return [barrier, self._dispatch(activations, now, now)]

    def _barrier(
        self,
        activations: tuple[Activation, ...],
        results: Sequence[ActivationResult],
        hosts: Mapping[str, str],
        now: float,
        delivered_digests: Sequence[str] | None = None,
    ) -> list[Command]:
        self._flight = None
        graph = self.graph
        new_state, report = commit(
            self._state, graph, activations, results, delivered_digests=delivered_digests
        )
        self._state = new_state
        events = superstep_events(graph, report, results, hosts)
        checkpoint = None
        if report.committed and self._checkpoints:
            cp_id = checkpoint_id_for(new_state.run_id, new_state.superstep)
            checkpoint = Checkpoint(cp_id, graph.name, graph.signature, now, new_state)
        written = report.committed and bool(report.written)
        if new_state.status is not RunStatus.RUNNING:
            events.extend(final_events(new_state))
            return [Commit(new_state, tuple(events), checkpoint, report, written, now)]
        return self._next(
            events, new_state, now, checkpoint=checkpoint, report=report, state_written=written
        )
