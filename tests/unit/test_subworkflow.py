"""Sub-workflows: a workflow used as one executor of another."""

from __future__ import annotations

from typing import Never

import pytest

from runtime import (
    ExecutorPolicy,
    OnFailure,
    RunStatus,
    Workflow,
    WorkflowBuilder,
    WorkflowContext,
    WorkflowExecutor,
    WorkflowValidationError,
    executor,
)


def inner_workflow(fail_on: str | None = None) -> Workflow:
    @executor(id="upper")
    async def upper(text: str, ctx: WorkflowContext[str]) -> None:
        if text == fail_on:
            raise RuntimeError(f"cannot shout {text!r}")
        await ctx.send_message(text.upper())

    @executor(id="exclaim")
    async def exclaim(text: str, ctx: WorkflowContext[Never, str]) -> None:
        await ctx.yield_output(text + "!")

    return WorkflowBuilder(start_executor=upper).add_edge(upper, exclaim).build()


def outer_workflow(sub: WorkflowExecutor) -> Workflow:
    @executor(id="split")
    async def split(text: str, ctx: WorkflowContext[str]) -> None:
        for word in text.split():
            await ctx.send_message(word)

    @executor(id="sink")
    async def sink(text: str, ctx: WorkflowContext[Never, str]) -> None:
        await ctx.yield_output(f"got {text}")

    return WorkflowBuilder(start_executor=split).add_edge(split, sub).add_edge(sub, sink).build()


async def test_subworkflow_outputs_flow_on_as_messages() -> None:
    wf = outer_workflow(WorkflowExecutor(inner_workflow(), id="sub"))
    result = await wf.run("hello big world")
    assert result.status is RunStatus.COMPLETED
    assert result.outputs == ["got HELLO!", "got BIG!", "got WORLD!"]
    # split, sub (all three words in one activation), sink
    assert result.supersteps == 3


async def test_subworkflow_is_deterministic_across_runs() -> None:
    traces = set()
    for _ in range(3):
        wf = outer_workflow(WorkflowExecutor(inner_workflow(), id="sub"))
        traces.add((await wf.run("a b c")).trace_hash)
    assert len(traces) == 1


async def test_failing_subworkflow_fails_its_activation_under_the_policy() -> None:
    sub = WorkflowExecutor(
        inner_workflow(fail_on="big"),
        id="sub",
        policy=ExecutorPolicy(max_attempts=2, on_failure=OnFailure.SKIP),
    )
    result = await outer_workflow(sub).run("hello big world")
    assert result.status is RunStatus.COMPLETED
    assert result.outputs == []  # the whole activation (all three words) was skipped
    skipped = [e for e in result.events if e.type == "executor_skipped"]
    assert [e.executor_id for e in skipped] == ["sub"]
    assert "cannot shout 'big'" in skipped[0].details["error"]
    assert skipped[0].details["attempts"] == 2


def test_subworkflow_input_types_are_checked_at_build_time() -> None:
    @executor(id="numbers")
    async def numbers(n: int, ctx: WorkflowContext[int]) -> None:
        await ctx.send_message(n)

    sub = WorkflowExecutor(inner_workflow(), id="sub")
    with pytest.raises(
        WorkflowValidationError, match="'numbers' sends int but 'sub' only handles str"
    ):
        WorkflowBuilder(start_executor=numbers).add_edge(numbers, sub).build()
