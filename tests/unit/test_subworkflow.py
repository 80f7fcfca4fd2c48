"""Sub-workflows: a workflow used as one executor of another."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Never

import pytest

from runtime import (
    Executor,
    ExecutorPolicy,
    InMemoryCheckpointStorage,
    OnFailure,
    RunResult,
    RunStatus,
    Workflow,
    WorkflowBuilder,
    WorkflowContext,
    WorkflowExecutor,
    WorkflowValidationError,
    executor,
    handler,
    response_handler,
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


# -- requests crossing the sub-workflow boundary ------------------------------------------
@dataclass(frozen=True)
class Ask:
    word: str


class Asker(Executor):
    """Asks a human about every ``+``-separated word of its input; sends each answer on.
    The answer "again" makes it ask a follow-up question about the same word."""

    def __init__(self) -> None:
        super().__init__("asker")
        self.answers = 0

    @handler
    async def on_text(self, text: str, ctx: WorkflowContext[Never]) -> None:
        for word in text.split("+"):
            await ctx.request_info(Ask(word), str)

    @response_handler
    async def on_answer(self, request: Ask, answer: str, ctx: WorkflowContext[str]) -> None:
        self.answers += 1
        if answer == "again":
            await ctx.request_info(Ask(request.word + "?"), str)
        else:
            await ctx.send_message(f"{request.word}={answer} #{self.answers}")

    async def on_checkpoint_save(self) -> dict[str, int]:
        return {"answers": self.answers}

    async def on_checkpoint_restore(self, state: dict[str, int]) -> None:
        self.answers = state.get("answers", 0)


def asking_workflow() -> Workflow:
    """split -> sub(asker -> exclaim) -> sink: every word goes to its own nested run."""
    asker = Asker()

    @executor(id="exclaim")
    async def exclaim(text: str, ctx: WorkflowContext[Never, str]) -> None:
        await ctx.yield_output(text + "!")

    inner = WorkflowBuilder(start_executor=asker, name="asking").add_edge(asker, exclaim).build()
    return outer_workflow(WorkflowExecutor(inner, id="sub"))


def answers(result: RunResult, *replies: str) -> dict[str, str]:
    assert len(result.pending_requests) == len(replies)
    return {r.request_id: reply for r, reply in zip(result.pending_requests, replies, strict=True)}


async def test_a_subworkflow_request_surfaces_in_the_parent() -> None:
    result = await asking_workflow().run("hello", run_id="p")
    assert result.status is RunStatus.AWAITING_INPUT
    assert result.outputs == []
    [req] = result.pending_requests
    assert (req.executor_id, req.data, req.response_type, req.superstep) == (
        "sub",
        Ask("hello"),
        "str",
        2,
    )
    assert [e.request_id for e in result.get_request_info_events()] == [req.request_id]


async def test_answering_a_subworkflow_request_completes_the_run() -> None:
    wf = asking_workflow()
    paused = await wf.run("hello", run_id="p")
    done = await wf.run(responses=answers(paused, "yes"))
    assert done.status is RunStatus.COMPLETED
    assert done.outputs == ["got hello=yes #1!"]
    assert done.pending_requests == []


async def test_every_inner_request_is_raised_and_the_nested_run_resumes_when_all_are_answered() -> (
    None
):
    wf = asking_workflow()
    # "a+b" is one nested run asking twice; "c" another nested run
    paused = await wf.run("a+b c", run_id="p")
    assert paused.status is RunStatus.AWAITING_INPUT
    assert [r.data for r in paused.pending_requests] == [Ask("a"), Ask("b"), Ask("c")]
    assert {r.executor_id for r in paused.pending_requests} == {"sub"}
    ids = [r.request_id for r in paused.pending_requests]

    # one answer of the two the first nested run waits for: it does not resume yet
    partial = await wf.run(responses={ids[0]: "x"})
    assert partial.status is RunStatus.AWAITING_INPUT
    assert partial.outputs == []
    assert [r.request_id for r in partial.pending_requests] == ids[1:]

    done = await wf.run(responses={ids[1]: "y", ids[2]: "z"})
    assert done.status is RunStatus.COMPLETED
    # each nested run resumes with its own executor snapshots: "c" counts from zero
    assert done.outputs == ["got a=x #1!", "got b=y #2!", "got c=z #1!"]


async def test_a_subworkflow_request_is_answered_after_a_checkpoint_restore() -> None:
    storage = InMemoryCheckpointStorage()
    paused = await asking_workflow().run("a+b", run_id="p", checkpoint_storage=storage)
    assert paused.last_checkpoint_id is not None
    cp = await storage.load(paused.last_checkpoint_id)
    assert "paused" in cp.state.snapshots["sub"]  # the nested run lives in the snapshot

    # a fresh workflow object: only the checkpoint knows about the nested run
    fresh = asking_workflow()
    first, second = (r.request_id for r in paused.pending_requests)
    half = await fresh.run(
        checkpoint_id=paused.last_checkpoint_id,
        checkpoint_storage=storage,
        responses={first: "again"},
    )
    assert half.status is RunStatus.AWAITING_INPUT
    assert [r.request_id for r in half.pending_requests] == [second]

    more = await asking_workflow().run(
        checkpoint_id=half.last_checkpoint_id,
        checkpoint_storage=storage,
        responses={second: "no"},
    )
    # both answered: the nested run resumed; "again" asked a follow-up about "a"
    assert more.status is RunStatus.AWAITING_INPUT
    assert more.outputs == ["got b=no #2!"]
    [follow_up] = more.pending_requests
    assert follow_up.data == Ask("a?")

    done = await asking_workflow().run(
        checkpoint_id=more.last_checkpoint_id,
        checkpoint_storage=storage,
        responses={follow_up.request_id: "ok"},
    )
    assert done.status is RunStatus.COMPLETED
    # the inner executor's own snapshot (its answer count) crossed the restores too
    assert done.outputs == ["got a?=ok #3!"]


async def test_a_nested_run_that_asks_again_raises_its_new_request() -> None:
    wf = asking_workflow()
    paused = await wf.run("hello", run_id="p")
    again = await wf.run(responses=answers(paused, "again"))
    assert again.status is RunStatus.AWAITING_INPUT
    assert again.outputs == []
    [req] = again.pending_requests
    assert (req.executor_id, req.data) == ("sub", Ask("hello?"))
    assert req.request_id != paused.pending_requests[0].request_id

    done = await wf.run(responses=answers(again, "fine"))
    assert done.status is RunStatus.COMPLETED
    assert done.outputs == ["got hello?=fine #2!"]


async def test_requests_through_a_subworkflow_give_the_same_trace_on_every_run() -> None:
    async def once() -> tuple[str, list[str], list[str]]:
        wf = asking_workflow()
        paused = await wf.run("a+b c", run_id="p")
        again = await wf.run(responses=answers(paused, "again", "x", "y"))
        done = await wf.run(responses=answers(again, "z"))
        assert done.status is RunStatus.COMPLETED
        ids = [r.request_id for r in paused.pending_requests + again.pending_requests]
        return done.trace_hash, ids, done.outputs

    assert await once() == await once()
