"""The in-process driver: plan -> run activations concurrently -> commit -> checkpoint.

All semantics live in the engine core (``runtime.engine``) and in
``execute_activation``; this module only schedules them on one event loop.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import time
import weakref
from collections.abc import Callable, Coroutine, Mapping
from dataclasses import dataclass, field
from typing import Any

from runtime.checkpoint import CheckpointStorage
from runtime.engine import (
    Activation,
    ActivationResult,
    Message,
    RunState,
    RunStatus,
    message_digests,
)
from runtime.errors import RequestError
from runtime.telemetry import Telemetry, end, end_run, telemetry
from runtime.workflow.driver import (
    NO_INPUT,
    BarrierMachine,
    Command,
    Commit,
    Dispatch,
    Emit,
    RequestInfo,
    RunRequest,
    RunResult,
    RunStream,
    Workflow,
    WorkflowEvent,
    apply_responses,
    execute_activation,
    load_checkpoint,
    new_run_state,
    set_default_runtime,
)

__all__ = ["InProcessRuntime"]

logger = logging.getLogger("runtime.inprocess")


_DIGEST_AHEAD = 1024
"""From this many delivered messages in a superstep on, their digests (part of the run
trace) are computed while the activations run, in slices between their steps, rather
than all at once in the barrier."""
_DIGEST_SLICE = 128
"""Messages digested per slice (a few hundred microseconds)."""


class _DigestAhead:
    """The digests of a superstep's delivered messages, computed in slices in a task of
    their own while the activations wait on I/O; ``result`` finishes what is left.

    They are the values ``commit`` would compute (``message_digests`` of the same
    messages, slice after slice with one memo); computed earlier only because the
    event loop is idle while the activations wait, and the barrier is not.
    """

    def __init__(self, activations: tuple[Activation, ...]) -> None:
        self.messages: list[Message] = [m for a in activations for m in a.messages]
        self.digests: list[str] = []
        self.memo: dict[int, str] = {}
        self.task = asyncio.ensure_future(self._run())

    async def _run(self) -> None:
        msgs, digests, memo = self.messages, self.digests, self.memo
        for i in range(0, len(msgs), _DIGEST_SLICE):
            await asyncio.sleep(0)  # first let the activations start, then one slice a step
            digests.extend(message_digests(msgs[i : i + _DIGEST_SLICE], memo))

    def stop(self) -> None:
        self.task.cancel()

    def result(self) -> list[str]:
        self.stop()
        done = len(self.digests)  # slices are appended whole, so a prefix is done
        if done < len(self.messages):
            self.digests.extend(message_digests(self.messages[done:], self.memo))
        return self.digests


@dataclass(slots=True)
class _Paused:
    """A run awaiting responses, and the workflow whose executor instances hold it."""

    state: RunState
    workflow: Workflow


@dataclass(slots=True)
class _Session:
    """What this process remembers of a workflow object between its runs: whether a run
    holds its executor instances (they carry that run's state), and the runs that
    paused awaiting responses (``workflow.run(responses=...)`` continues the one those
    responses answer)."""

    busy: bool = False
    """A running run holds the object's own executor instances."""
    paused: list[_Paused] = field(default_factory=list)

    def holds_own(self, workflow: Workflow) -> bool:
        """Do the object's own executor instances hold a run, running or paused?"""
        return self.busy or any(p.workflow is workflow for p in self.paused)

    def take_paused(self, responses: Mapping[str, Any]) -> _Paused | None:
        """The paused run that ``responses`` answer (every id one of its requests), taken
        out of the session; the only paused run when no id matches any (its own check
        then names what it waits for); None when there is none."""
        for paused in self.paused:
            if responses and all(rid in paused.state.pending for rid in responses):
                self.paused.remove(paused)
                return paused
        if len(self.paused) == 1:
            return self.paused.pop()
        return None


_sessions: weakref.WeakKeyDictionary[Workflow, _Session] = weakref.WeakKeyDictionary()


def _executors_for(workflow: Workflow, session: _Session, request: RunRequest) -> Workflow:
    """The workflow a new run executes on: the object itself while no run holds its
    executor instances, else a fresh copy from its factory (``Workflow.fresh``). A
    workflow with no factory runs one run at a time: a new run while one is running is
    refused, and one started while a run is paused on it forgets that run (as it ever
    did)."""
    if not session.holds_own(workflow):
        return workflow
    copy = workflow.fresh()
    if copy is not None:
        return copy
    if session.busy:
        raise RuntimeError(
            f"workflow {workflow.name!r} is already running in this process; its executor "
            "instances hold run state, so a concurrent run needs instances of its own: "
            "build the workflow in a @workflow_factory function (each concurrent run then "
            "gets its own), or build another Workflow"
        )
    session.paused = [p for p in session.paused if p.workflow is not workflow]
    return workflow


class InProcessRuntime:
    """Runs workflows on the current event loop.

    ``max_concurrency`` bounds how many activations of one superstep run at once
    (``None``: all of them). ``clock`` gives the logical time of each superstep
    (``ctx.now()``); inject a fixed clock for reproducible tests.
    """

    def __init__(
        self,
        *,
        max_concurrency: int | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if max_concurrency is not None and max_concurrency < 1:
            raise ValueError("max_concurrency must be at least 1")
        self.max_concurrency = max_concurrency
        self.clock = clock

    def start(
        self, workflow: Workflow, request: RunRequest, *, collect_events: bool = True
    ) -> RunStream:
        async def produce(emit: Emit, stream: RunStream) -> RunResult:
            session = _sessions.setdefault(workflow, _Session())
            resumed: _Paused | None = None
            if _continues(request):
                resumed = session.take_paused(request.responses or {})
                if resumed is None:
                    raise RequestError(
                        "no paused run to answer in this process; pass checkpoint_id and "
                        "checkpoint_storage to continue a run from its checkpoint"
                    )
                runs_on = resumed.workflow
            else:
                runs_on = _executors_for(workflow, session, request)
            own = runs_on is workflow
            if own:
                session.busy = True
            run = _Run(self, runs_on, session, request, emit, stream, collect_events)
            try:
                return await run.execute(resumed.state if resumed is not None else None)
            except RequestError:
                if resumed is not None and not run.started:
                    session.paused.append(resumed)  # responses it does not take: still paused
                raise
            finally:
                if own:
                    session.busy = False

        return RunStream(produce)


def _continues(request: RunRequest) -> bool:
    """Does ``request`` continue a paused run (responses, no input, no checkpoint)?"""
    return (
        request.checkpoint_id is None
        and request.input is NO_INPUT
        and request.responses is not None
    )


class _Run:
    def __init__(
        self,
        runtime: InProcessRuntime,
        workflow: Workflow,
        session: _Session,
        request: RunRequest,
        emit: Emit,
        stream: RunStream,
        collect: bool,
    ) -> None:
        self.rt = runtime
        self.wf = workflow
        self.session = session
        self.graph = workflow.graph
        self.req = request
        self.stream = stream
        self.events: list[WorkflowEvent] = []
        self.outputs: list[Any] = []
        self.trace: list[str] = []
        self.storage: CheckpointStorage | None = (
            request.checkpoint_storage or workflow.checkpoint_storage
        )
        self.last_checkpoint: str | None = None
        self._emit_external = emit
        self.hosts = {
            eid: f"in-process:{socket.gethostname()}:{os.getpid()}" for eid in self.graph.nodes
        }
        self._collect = collect
        self.tel: Telemetry | None = None
        self.run_span: Any = None
        self._step_span: Any = None
        self._step_started = 0.0
        self.started = False
        """Whether the run got past its initial state (a request error before that
        leaves a paused run paused)."""

    def emit(self, ev: WorkflowEvent) -> None:
        if self._collect:
            self.events.append(ev)
        self._emit_external(ev)

    # -- set-up ---------------------------------------------------------------------
    async def _initial_state(self, paused: RunState | None) -> RunState:
        req, wf = self.req, self.wf
        if req.checkpoint_id is not None:
            if req.input is not NO_INPUT:
                raise ValueError("pass either a new input or checkpoint_id, not both")
            cp = await load_checkpoint(wf, self.storage, req.checkpoint_id)
            state = cp.state
            self.last_checkpoint = cp.checkpoint_id
            codec = self.graph.codec
            for eid, snap in state.snapshots.items():
                ex = wf.executors.get(eid)
                if ex is not None:
                    await ex.on_checkpoint_restore(codec.decode(snap))
        elif req.input is not NO_INPUT:
            if req.responses:
                raise ValueError("pass either a new input or responses, not both")
            state = new_run_state(wf, req.input, req.run_id, req.seed)
        elif paused is not None:
            state = paused
        else:
            raise ValueError("run() needs an input, responses, or a checkpoint_id")
        if req.responses:
            state = apply_responses(wf, state, req.responses)
        return state

    # -- the loop -------------------------------------------------------------------
    async def execute(self, paused: RunState | None = None) -> RunResult:
        """Run from the request's input or checkpoint, or on from ``paused`` (a run this
        process paused, which the request's responses answer)."""
        state = await self._initial_state(paused)
        self.started = True
        self.tel = tel = telemetry()
        if tel is not None:
            self.run_span = tel.start_run(self.graph.name, state.run_id)
        try:
            return await self._loop(state)
        except BaseException as exc:
            end(self.run_span, status="error", error=repr(exc))
            raise

    async def _loop(self, state: RunState) -> RunResult:
        machine = BarrierMachine(self.graph, state, checkpoints=self.storage is not None)
        commands = machine.start(self.rt.clock())
        while commands:
            follow: list[Command] = []
            for command in commands:
                if isinstance(command, Commit):
                    await self._commit(command)
                elif isinstance(command, Dispatch):
                    # the commands after a dispatch come from its results; a cancel asked
                    # for before it runs ends the run at the last barrier instead
                    if self.stream.cancel_requested:
                        follow = machine.cancel()
                    else:
                        follow = await self._superstep(machine, command)
                    break
            commands = follow
        state = machine.state
        if state.status is RunStatus.AWAITING_INPUT:
            self.session.paused.append(_Paused(state, self.wf))
        return self._finish(state)

    async def _superstep(self, machine: BarrierMachine, dispatch: Dispatch) -> list[Command]:
        """Run one superstep's activations concurrently; the machine's commands for its
        barrier."""
        tel = self.tel
        activations = dispatch.activations
        if tel is not None:
            self._step_started = time.perf_counter()
            self._step_span = tel.start_superstep(
                self.graph.name, machine.state.run_id, dispatch.superstep, self.run_span
            )
        ahead = (
            _DigestAhead(activations)
            if sum(len(a.messages) for a in activations) >= _DIGEST_AHEAD
            else None
        )
        try:
            results = await self._run_activations(machine.state, activations, self._step_span)
        except asyncio.CancelledError:
            end(self._step_span, status="cancelled")
            self._step_span = None
            if not self.stream.is_cancel_requested():
                raise
            task = asyncio.current_task()
            if task is not None:
                task.uncancel()
            return machine.cancel()
        except BaseException as exc:
            end(self._step_span, status="error", error=repr(exc))
            self._step_span = None
            raise
        finally:
            if ahead is not None:
                ahead.stop()
        return machine.on_results(
            results,
            self.hosts,
            self.rt.clock(),
            delivered_digests=ahead.result() if ahead is not None else None,
        )

    async def _commit(self, barrier: Commit) -> None:
        """Checkpoint first: a superstep's outputs and events are published only once it
        is durable (rule 7), so a restore never repeats published ones."""
        cp = barrier.checkpoint
        if cp is not None and self.storage is not None:
            await self.storage.save(cp)
            self.last_checkpoint = cp.checkpoint_id
        report = barrier.report
        if report is not None:
            if self.tel is not None:
                seconds = time.perf_counter() - self._step_started
                self.tel.superstep_done(self.graph.name, report.committed, seconds, self._step_span)
                self._step_span = None
            if report.committed:
                self.trace.append(report.step_digest)
        for ev in barrier.events:
            if ev.type == "output":
                self.outputs.append(ev.data)
            self.emit(ev)

    async def _run_activations(
        self, state: RunState, activations: tuple[Activation, ...], step_span: Any
    ) -> list[ActivationResult]:
        wf, graph, tel = self.wf, self.graph, self.tel
        snaps = state.snapshots
        shared = state.state

        def execute(a: Activation) -> Coroutine[Any, Any, ActivationResult]:
            eid = a.executor_id
            run = execute_activation(
                wf.executors[eid], graph, a, shared, prior_snapshot=snaps.get(eid)
            )
            return run if tel is None else traced(a, run)  # untraced: no extra coroutine

        async def traced(
            a: Activation, run: Coroutine[Any, Any, ActivationResult]
        ) -> ActivationResult:
            # a span per activation, current while it runs, and its duration
            assert tel is not None
            eid = a.executor_id
            with tel.execute(graph.name, state.run_id, a.superstep, eid, step_span) as span:
                started = time.perf_counter()
                result = await run
                seconds = time.perf_counter() - started
                tel.activation_done(graph.name, eid, result.status.value, seconds, span)
                return result

        if len(activations) == 1:
            return [await execute(activations[0])]
        limit = self.rt.max_concurrency
        sem = asyncio.Semaphore(limit) if limit is not None and limit < len(activations) else None

        async def bounded(a: Activation) -> ActivationResult:
            assert sem is not None
            async with sem:
                return await execute(a)

        run = execute if sem is None else bounded  # unbounded: no coroutine around each
        async with asyncio.TaskGroup() as tg:
            tasks = [tg.create_task(run(a)) for a in activations]
        return [t.result() for t in tasks]

    # -- reporting ------------------------------------------------------------------
    def _finish(self, state: RunState) -> RunResult:
        codec = self.graph.codec
        end_run(self.run_span, state)
        self.run_span = None
        pending = [
            RequestInfo(
                p.request_id, p.executor_id, codec.decode(p.data), p.response_type, p.superstep
            )
            for p in state.pending.values()
        ]
        logger.debug(
            "run %s ended %s after %d supersteps", state.run_id, state.status.value, state.superstep
        )
        return RunResult(
            run_id=state.run_id,
            status=state.status,
            outputs=self.outputs,
            events=self.events,
            pending_requests=pending,
            trace_hash=state.trace_hash,
            trace=self.trace,
            supersteps=state.superstep,
            error=state.error,
            last_checkpoint_id=self.last_checkpoint,
            run_state=state,
        )


set_default_runtime(InProcessRuntime)
