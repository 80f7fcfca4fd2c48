"""Sub-workflows: a whole workflow used as one executor of another."""

from __future__ import annotations

import re
from collections.abc import Awaitable
from typing import TYPE_CHECKING, Any

from runtime.engine import ExecutorPolicy, Placement, RunStatus
from runtime.errors import RunError
from runtime.workflow._context import WorkflowContext
from runtime.workflow._executor import Executor, HandlerSpec, ResponseHandlerSpec

if TYPE_CHECKING:
    from runtime.workflow._workflow import Workflow

__all__ = ["WorkflowExecutor"]

_UNSAFE = re.compile(r"[^A-Za-z0-9_.:-]")


class WorkflowExecutor(Executor):
    """Runs ``workflow`` to completion for each message it receives and sends the
    sub-workflow's outputs on along its own edges.

    It accepts what the sub-workflow's start executor accepts and declares what the
    sub-workflow's executors yield. The nested run happens inside this executor's
    activation: it is retried, timed out and checkpointed as one activation (the
    sub-workflow's own supersteps are not visible to the parent), and its run id
    and seed derive from the parent's idempotency key, so reruns are identical.

    A sub-workflow that ends ``awaiting_input`` is reported as a failure of this
    executor: requests do not cross the sub-workflow boundary yet. Give every
    ``WorkflowExecutor`` its own ``Workflow`` object (executor instances hold state).
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
        super().__init__(id, policy=policy, placement=placement)

    def _discover(
        self,
    ) -> tuple[tuple[HandlerSpec, ...], tuple[ResponseHandlerSpec, ...], tuple[str, ...]]:
        start = self.workflow.get_start_executor()
        yields: list[Any] | None = []
        for ex in self.workflow.executors.values():
            found = ex.workflow_output_types
            if found is None:
                yields = None
                break
            assert yields is not None
            yields.extend(found)
        out = tuple(dict.fromkeys(yields)) if yields is not None else None
        handlers = tuple(
            HandlerSpec("run_subworkflow", _run_subworkflow, t, out, ()) for t in start.input_types
        )
        return handlers, (), ()

    @property
    def kind(self) -> str:
        return f"subworkflow:{self.workflow.name}"

    def _call(
        self, spec: HandlerSpec, value: Any, ctx: WorkflowContext[Any, Any]
    ) -> Awaitable[None]:
        return _run_subworkflow(self, value, ctx)


async def _run_subworkflow(
    self: WorkflowExecutor, value: Any, ctx: WorkflowContext[Any, Any]
) -> None:
    from runtime.inprocess import InProcessRuntime

    run_id = _UNSAFE.sub("_", f"{ctx.idempotency_key}/{self.id}")
    seed = ctx.rng.getrandbits(63)
    result = await self.workflow.run(
        value,
        runtime=InProcessRuntime(clock=lambda: ctx.now().timestamp()),
        run_id=run_id,
        seed=seed,
    )
    if result.status is not RunStatus.COMPLETED:
        detail = result.error.message if result.error else result.status.value
        raise RunError(f"sub-workflow {self.workflow.name!r} ended {result.status.value}: {detail}")
    for output in result.outputs:
        await ctx.send_message(output)
