"""Sub-workflows: a whole workflow used as one executor of another."""

from __future__ import annotations

import re
import time
from collections.abc import Awaitable
from typing import TYPE_CHECKING, Any

from runtime.engine import (
    Checkpoint,
    ExecutorPolicy,
    PendingRequest,
    Placement,
    RunState,
    RunStatus,
)
from runtime.engine._types import flatten_union
from runtime.errors import CodecError, RunError
from runtime.workflow._context import WorkflowContext, _type_key
from runtime.workflow._executor import Executor, HandlerSpec, ResponseHandlerSpec
from runtime.workflow._run import default_runtime

if TYPE_CHECKING:
    from runtime.workflow._run import RunResult
    from runtime.workflow._workflow import Workflow

__all__ = ["WorkflowExecutor"]

_UNSAFE = re.compile(r"[^A-Za-z0-9_.:-]")
_BUILTIN_RESPONSES: dict[str, type] = {
    t.__name__: t for t in (int, str, float, bool, list, dict)
} | {"None": type(None)}


class WorkflowExecutor(Executor):
    """Runs ``workflow`` for each message it receives and sends the sub-workflow's
    outputs on along its own edges.

    It accepts what the sub-workflow's start executor accepts and declares what the
    sub-workflow's executors yield. The nested run happens inside this executor's
    activation: it is retried, timed out and checkpointed as one activation (the
    sub-workflow's own supersteps are not visible to the parent), and its run id
    and seed derive from the parent's idempotency key, so reruns are identical.

    Requests cross the boundary: when the nested run stops ``awaiting_input``, its
    outputs so far flow on, its run state (``RunState.to_json()``) becomes part of
    this executor's snapshot (so it survives checkpoints, restarts and failover),
    and each of its pending requests is raised again as a request of this executor
    in the parent run, with the same data and response type. Once every one of them
    is answered, the nested run resumes from the saved state with the responses;
    its outputs flow on, and its new requests, if it pauses again, are raised in
    turn. Give every ``WorkflowExecutor`` its own ``Workflow`` object (executor
    instances hold state).
    """

    def __init__(
        self,
        workflow: Workflow,
        id: str,
        *,
        policy: ExecutorPolicy | None = None,
        placement: Placement | None = None,
    ) -> None:
        self.workflow = workflow
        self._paused: dict[str, dict[str, Any]] = {}
        """Nested run id -> {"state": RunState JSON, "asked": {parent request id: nested
        request id}, "answers": {nested request id: response}} of each paused nested run."""
        super().__init__(id, policy=policy, placement=placement)

    def _discover(
        self,
    ) -> tuple[tuple[HandlerSpec, ...], tuple[ResponseHandlerSpec, ...], tuple[str, ...]]:
        start = self.workflow.get_start_executor()
        yields: list[Any] | None = []
        pairs: list[tuple[Any, Any]] = []
        for ex in self.workflow.executors.values():
            found = ex.workflow_output_types
            if yields is not None:
                yields = None if found is None else [*yields, *found]
            for r in ex._response_handlers:
                if (r.request_type, r.response_type) not in pairs:
                    pairs.append((r.request_type, r.response_type))
        out = tuple(dict.fromkeys(yields)) if yields is not None else None
        handlers = tuple(
            HandlerSpec("run_subworkflow", _run_subworkflow, t, out, ()) for t in start.input_types
        )
        # one response handler per (request, response) pair the sub-workflow can ask for:
        # the parent's codec registers their types, and request_info accepts them
        responses = tuple(
            ResponseHandlerSpec("resume_subworkflow", _resume_subworkflow, req, resp, out, ())
            for req, resp in pairs
        )
        return handlers, responses, ()

    @property
    def kind(self) -> str:
        return f"subworkflow:{self.workflow.name}"

    def _call(
        self, spec: HandlerSpec, value: Any, ctx: WorkflowContext[Any, Any]
    ) -> Awaitable[None]:
        return _run_subworkflow(self, value, ctx)

    # -- snapshots: the paused nested runs ----------------------------------------------
    async def on_checkpoint_save(self) -> dict[str, Any]:
        return {"paused": self._paused} if self._paused else {}

    async def on_checkpoint_restore(self, state: dict[str, Any]) -> None:
        self._paused = dict(state.get("paused", {}))

    def _response_type(self, key: str) -> type:
        """The class a nested request's response type key names."""
        found = _BUILTIN_RESPONSES.get(key)
        if found is not None:
            return found
        for r in self._response_handlers:
            for t in flatten_union(r.response_type) or ():
                try:
                    if _type_key(t) == key:
                        return t  # type: ignore[no-any-return]
                except CodecError:
                    continue
        raise RunError(
            f"sub-workflow {self.workflow.name!r} asks for a {key} response, which none of its "
            "response handlers names"
        )


async def _run_subworkflow(
    self: WorkflowExecutor, value: Any, ctx: WorkflowContext[Any, Any]
) -> None:
    run_id = _UNSAFE.sub("_", f"{ctx.idempotency_key}/{self.id}")
    seed = ctx.rng.getrandbits(63)
    result = await self.workflow.run(
        value,
        runtime=default_runtime(clock=lambda: ctx.now().timestamp()),
        run_id=run_id,
        seed=seed,
    )
    await _forward(self, result, ctx)


async def _resume_subworkflow(
    self: WorkflowExecutor, original_request: Any, response: Any, ctx: WorkflowContext[Any, Any]
) -> None:
    from runtime.checkpoint import InMemoryCheckpointStorage

    request_id = ctx._activation.messages[ctx._msg_index].request_id
    run_id = next((r for r, p in self._paused.items() if request_id in p["asked"]), None)
    if run_id is None:
        raise RunError(
            f"sub-workflow {self.workflow.name!r}: no paused nested run asked request "
            f"{request_id!r}"
        )
    paused = self._paused[run_id]
    asked = dict(paused["asked"])
    answers = {**paused["answers"], asked.pop(str(request_id)): response}
    self._paused[run_id] = {**paused, "asked": asked, "answers": answers}
    if asked:
        return  # the nested run resumes once all its requests are answered
    del self._paused[run_id]
    # resume through a one-checkpoint store: the in-process runtime restores the nested
    # executors' snapshots from it, as for any checkpoint, whatever this process is
    graph = self.workflow.graph
    state = RunState.from_json(paused["state"])
    storage = InMemoryCheckpointStorage()
    cp_id = f"{run_id}@resume"
    await storage.save(Checkpoint(cp_id, graph.name, graph.signature, time.time(), state))
    result = await self.workflow.run(
        runtime=default_runtime(clock=lambda: ctx.now().timestamp()),
        checkpoint_id=cp_id,
        checkpoint_storage=storage,
        responses=answers,
    )
    await _forward(self, result, ctx)


async def _forward(
    self: WorkflowExecutor, result: RunResult, ctx: WorkflowContext[Any, Any]
) -> None:
    """Send the nested run's outputs on; if it paused, keep its state and ask its
    requests in the parent."""
    if result.status not in (RunStatus.COMPLETED, RunStatus.AWAITING_INPUT):
        detail = result.error.message if result.error else result.status.value
        raise RunError(f"sub-workflow {self.workflow.name!r} ended {result.status.value}: {detail}")
    for output in result.outputs:
        await ctx.send_message(output)
    if result.status is RunStatus.COMPLETED:
        return
    state = result.run_state
    assert state is not None
    codec = self.workflow.graph.codec
    asked: dict[str, str] = {}
    pending: list[PendingRequest] = sorted(
        state.pending.values(), key=lambda p: (p.superstep, p.request_id)
    )
    for p in pending:
        rid = await ctx.request_info(codec.decode(p.data), self._response_type(p.response_type))
        asked[rid] = p.request_id
    self._paused[state.run_id] = {"state": state.to_json(), "asked": asked, "answers": {}}
