"""Run requests, results and streams: the types every runtime shares."""

from __future__ import annotations

import asyncio
from collections.abc import (
    AsyncIterator,
    Awaitable,
    Callable,
    Coroutine,
    Generator,
    Iterator,
    Mapping,
)
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from runtime.engine import ErrorInfo, RunState, RunStatus
from runtime.errors import (
    ConvergenceError,
    ExecutorFailedError,
    RunCancelledError,
    RunError,
    StalledError,
    StateConflictError,
)
from runtime.workflow._events import RequestInfo, WorkflowEvent

if TYPE_CHECKING:
    from runtime.checkpoint import CheckpointStorage
    from runtime.workflow._workflow import Workflow

__all__ = ["NO_INPUT", "RunRequest", "RunResult", "RunStream", "Runtime"]


class _NoInput:
    def __repr__(self) -> str:
        return "NO_INPUT"


NO_INPUT: Any = _NoInput()


@dataclass(frozen=True, slots=True)
class RunRequest:
    """What to run: a new input, responses to pending requests, and/or a checkpoint."""

    input: Any = NO_INPUT
    responses: Mapping[str, Any] | None = None
    checkpoint_id: str | None = None
    checkpoint_storage: CheckpointStorage | None = None
    run_id: str | None = None
    seed: int = 0


@dataclass(slots=True)
class RunResult:
    """How a run (or one continuation of it) ended.

    Iterating it yields its events, like agent-framework's ``WorkflowRunResult``.
    """

    run_id: str
    status: RunStatus
    outputs: list[Any]
    events: list[WorkflowEvent]
    pending_requests: list[RequestInfo]
    trace_hash: str
    """The digests of the committed supersteps, chained; a run that failed has the hash
    of what committed before the superstep that failed (``EMPTY_TRACE_HASH`` when that
    was superstep 1). Equal hashes mean equal traces (docs/concurrency.md, rule 15)."""
    trace: list[str]
    """The digest of each superstep this call committed, in order."""
    supersteps: int
    """The superstep the run ended in: the number of committed supersteps, or, when a
    superstep failed and committed nothing, that superstep's number."""
    error: ErrorInfo | None = None
    """Why the run failed, stalled or was cancelled: ``str(error)`` reads ``Type: message``.
    When an executor failed it is an ``ExecutorFailedError`` whose ``cause`` is the
    handler's exception: its class, message, traceback and each failed attempt."""
    last_checkpoint_id: str | None = None
    run_state: RunState | None = field(default=None, repr=False)

    def __iter__(self) -> Iterator[WorkflowEvent]:
        return iter(self.events)

    def __len__(self) -> int:
        return len(self.events)

    def get_outputs(self) -> list[Any]:
        return list(self.outputs)

    def get_request_info_events(self) -> list[WorkflowEvent]:
        return [e for e in self.events if e.type == "request_info"]

    def get_final_state(self) -> RunStatus:
        return self.status

    def raise_for_status(self) -> RunResult:
        """Raise the run's error when it failed, stalled or was cancelled."""
        if self.status in (RunStatus.COMPLETED, RunStatus.AWAITING_INPUT, RunStatus.RUNNING):
            return self
        err = self.error
        message = err.message if err else self.status.value
        exc_type: type[RunError] = {
            "StateConflictError": StateConflictError,
            "ExecutorFailedError": ExecutorFailedError,
            "ConvergenceError": ConvergenceError,
            "StalledError": StalledError,
        }.get(err.type if err else "", RunError)
        if self.status is RunStatus.CANCELLED:
            raise RunCancelledError(message)
        if self.status is RunStatus.STALLED:
            raise StalledError(message)
        exc = RunError.__new__(exc_type)
        RunError.__init__(exc, message)
        raise exc


Emit = Callable[[WorkflowEvent], None]
Producer = Callable[[Emit, "RunStream"], Awaitable[RunResult]]


class RunStream(Coroutine[Any, Any, RunResult]):
    """A run in progress, as ``workflow.run(...)`` returns it.

    ``async for event in stream`` gives its events as supersteps commit; ``await stream``
    (or ``get_final_response()``) gives the ``RunResult``, also after the events were
    iterated; ``cancel()`` stops it at once — the running superstep commits nothing.

    It is a coroutine too, so whatever takes one runs it to its result:
    ``asyncio.run(workflow.run(x))``, ``asyncio.create_task(...)``,
    ``loop.run_until_complete(...)``. Nothing starts until it is awaited or iterated.
    """

    def __init__(self, producer: Producer) -> None:
        self._producer = producer
        self._task: asyncio.Task[RunResult] | None = None
        self._queue: asyncio.Queue[WorkflowEvent | None] | None = None
        self._result: RunResult | None = None
        self._driver: Coroutine[Any, Any, RunResult] | None = None
        self.cancel_requested = False

    def _start(self, emit: Emit) -> asyncio.Task[RunResult]:
        if self._task is None:

            async def main() -> RunResult:
                try:
                    return await self._producer(emit, self)
                finally:
                    if self._queue is not None:
                        self._queue.put_nowait(None)

            self._task = asyncio.ensure_future(main())
        return self._task

    async def __aiter__(self) -> AsyncIterator[WorkflowEvent]:
        if self._task is not None:
            raise RuntimeError("this run is already being consumed")
        queue: asyncio.Queue[WorkflowEvent | None] = asyncio.Queue()
        self._queue = queue
        task = self._start(queue.put_nowait)
        while True:
            ev = await queue.get()
            if ev is None:
                break
            yield ev
        self._result = await task

    async def get_final_response(self) -> RunResult:
        if self._result is not None:
            return self._result
        # the run always gets its own task, so that cancel() can interrupt the superstep
        # in flight (awaiting the producer inline left cancel() nothing to cancel)
        self._result = await self._start(lambda _e: None)
        return self._result

    def __await__(self) -> Generator[Any, None, RunResult]:
        return self.get_final_response().__await__()

    # -- the coroutine protocol: one get_final_response() coroutine, driven by the caller
    def _drive(self) -> Coroutine[Any, Any, RunResult]:
        if self._driver is None:
            self._driver = self.get_final_response()
        return self._driver

    def send(self, value: Any, /) -> Any:
        return self._drive().send(value)

    def throw(self, typ: Any, val: Any = None, tb: Any = None, /) -> Any:
        driver = self._drive()
        if val is None and tb is None:
            return driver.throw(typ)  # the one-argument form (the three-argument one is deprecated)
        return driver.throw(typ, val, tb)

    def close(self) -> None:
        if self._driver is not None:
            self._driver.close()

    def is_cancel_requested(self) -> bool:
        return self.cancel_requested

    def cancel(self) -> None:
        """Cancel the run: the superstep in flight commits nothing; the run ends
        ``cancelled`` with the state of the last barrier (and its checkpoint)."""
        self.cancel_requested = True
        if self._task is not None and not self._task.done():
            self._task.cancel()


class Runtime(Protocol):
    """Something that can run a workflow: in-process, or remote (Dapr)."""

    def start(
        self, workflow: Workflow, request: RunRequest, *, collect_events: bool = True
    ) -> RunStream: ...


_default_runtime: Callable[..., Runtime] | None = None


def set_default_runtime(factory: Callable[..., Runtime]) -> None:
    """Make ``factory()`` the runtime of ``Workflow.run`` calls that name none (and,
    with ``clock=``, of sub-workflows' nested runs). The in-process runtime registers
    itself when ``runtime.inprocess`` is imported (the ``runtime`` package imports it),
    so the authoring API imports no runtime."""
    global _default_runtime
    _default_runtime = factory


def default_runtime(**options: Any) -> Runtime:
    """A new default runtime; ``options`` (``clock=``) go to its factory."""
    if _default_runtime is None:
        raise RuntimeError("no default runtime is registered: import runtime.inprocess")
    return _default_runtime(**options)
