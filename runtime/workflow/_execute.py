"""Executing one activation: (executor, activation, state snapshot) -> ActivationResult.

The one function every runtime calls. It applies the executor's policy (timeout
per attempt, retries with backoff, then fail / skip / fallback); a failed
attempt's effects are discarded, so exactly one attempt's effects are committed.
It does no I/O of its own beyond what handlers do.
"""

from __future__ import annotations

import asyncio
import os
import time
import traceback
from collections.abc import Awaitable, Callable, Mapping
from types import TracebackType
from typing import Any

from runtime.engine import (
    Activation,
    ActivationResult,
    ActivationStatus,
    AttemptError,
    ErrorInfo,
    Graph,
    MessageKind,
    OnFailure,
)
from runtime.workflow._context import WorkflowContext
from runtime.workflow._executor import Executor

__all__ = ["MAX_TRACEBACK_CHARS", "execute_activation", "format_traceback"]

Sleep = Callable[[float], Awaitable[None]]

MAX_TRACEBACK_CHARS = 16 * 1024
"""A longer formatted traceback keeps its end (the innermost frames and the exception)
and says how much was cut: it travels in the result envelope and the run's error."""

_RUNTIME_FRAMES = os.path.dirname(os.path.abspath(__file__)) + os.sep
"""Frames of this package (``runtime/workflow``) that lead into a handler."""


def format_traceback(exc: BaseException) -> str:
    """``exc`` formatted as Python prints it, chained exceptions included, without the
    runtime's frames that lead into the handler (all of them when no handler frame
    follows), at most ``MAX_TRACEBACK_CHARS`` long."""
    tb: TracebackType | None = exc.__traceback__
    inner = tb
    while inner is not None and inner.tb_frame.f_code.co_filename.startswith(_RUNTIME_FRAMES):
        inner = inner.tb_next
    text = "".join(traceback.format_exception(type(exc), exc, inner or tb))
    if len(text) > MAX_TRACEBACK_CHARS:
        cut = len(text) - MAX_TRACEBACK_CHARS
        text = f"[... {cut} earlier characters of the traceback cut ...]\n" + text[cut:]
    return text


async def _attempt(
    executor: Executor, graph: Graph, activation: Activation, state: Mapping[str, Any]
) -> WorkflowContext[Any, Any]:
    ctx: WorkflowContext[Any, Any] = WorkflowContext(executor, graph, activation, state)
    codec = graph.codec
    for i, m in enumerate(activation.messages):
        ctx._msg_index = i
        if m.kind is MessageKind.RESPONSE:
            request = codec.decode(m.data["request"])
            response = codec.decode(m.data["response"])
            rh = executor._response_handler_for(request, response)
            if rh is None:
                raise TypeError(
                    f"executor {executor.id!r} has no @response_handler for request "
                    f"{type(request).__qualname__} with response {type(response).__qualname__}"
                )
            ctx._sources = [m.source]
            await rh.func(executor, request, response, ctx)
            continue
        value = codec.decode(m.data)
        ctx._sources = list(m.parts) if m.kind is MessageKind.FAN_IN else [m.source]
        spec = executor._handler_for(value)
        if spec is None:
            raise TypeError(
                f"executor {executor.id!r} has no handler for {type(value).__qualname__} "
                f"(from {m.source!r})"
            )
        await executor._call(spec, value, ctx)
    return ctx


async def execute_activation(
    executor: Executor,
    graph: Graph,
    activation: Activation,
    state: Mapping[str, Any],
    *,
    prior_snapshot: Any = None,
    sleep: Sleep = asyncio.sleep,
) -> ActivationResult:
    """Run ``activation`` on ``executor`` under its policy and return the result."""
    node = graph.nodes[activation.executor_id]
    policy = node.policy
    attempts = 0
    error: BaseException | None = None
    failures: list[AttemptError] = []
    started_at, t0 = time.time(), time.perf_counter()
    while attempts < policy.max_attempts:
        attempts += 1
        deadline = asyncio.timeout(policy.timeout_s) if policy.timeout_s is not None else None
        try:
            if deadline is not None:
                async with deadline:
                    ctx = await _attempt(executor, graph, activation, state)
            else:
                ctx = await _attempt(executor, graph, activation, state)
            snapshot: Any = None
            has_snapshot = executor._has_snapshot
            if has_snapshot:
                snapshot = graph.codec.encode(await executor.on_checkpoint_save())
            return ActivationResult(
                executor_id=activation.executor_id,
                superstep=activation.superstep,
                status=ActivationStatus.OK,
                attempts=attempts,
                sent=tuple(ctx._sent),
                outputs=tuple(ctx._outputs),
                events=tuple(ctx._events),
                writes=tuple(ctx._writes),
                requests=tuple(ctx._requests),
                snapshot=snapshot,
                has_snapshot=has_snapshot,
                duration_s=time.perf_counter() - t0,
                started_at=started_at,
                failures=tuple(failures),
            )
        except Exception as exc:
            # only our deadline is reported as a timeout; a handler's own TimeoutError
            # keeps its message
            error = exc
            if deadline is not None and deadline.expired():
                error = TimeoutError(
                    f"attempt {attempts} exceeded the timeout of {policy.timeout_s}s"
                )
                error.__cause__ = exc  # its traceback shows where the handler waited
            failures.append(AttemptError.of(attempts, error))
            if executor._has_snapshot:
                await executor.on_checkpoint_restore(
                    graph.codec.decode(prior_snapshot) if prior_snapshot is not None else {}
                )
            if attempts < policy.max_attempts:
                delay = policy.backoff(attempts)
                if delay > 0:
                    await sleep(delay)
    assert error is not None
    info = ErrorInfo.of(
        error,
        activation.executor_id,
        activation.superstep,
        traceback=format_traceback(error),
        attempts=tuple(failures),
    )
    status = {
        OnFailure.FAIL: ActivationStatus.FAILED,
        OnFailure.SKIP: ActivationStatus.SKIPPED,
        OnFailure.FALLBACK: ActivationStatus.FALLBACK,
    }[policy.on_failure]
    return ActivationResult(
        executor_id=activation.executor_id,
        superstep=activation.superstep,
        status=status,
        attempts=attempts,
        error=info,
        fallback=policy.fallback if status is ActivationStatus.FALLBACK else None,
        duration_s=time.perf_counter() - t0,
        started_at=started_at,
        failures=tuple(failures),
    )
