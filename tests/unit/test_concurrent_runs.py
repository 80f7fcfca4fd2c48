"""One Workflow object, several runs at once, in-process (docs/concurrency.md, rule 2).

Executor instances carry their run's state, so concurrent runs of one object need
instances of their own: a workflow built by a ``@workflow_factory`` function gets them
from its factory (``Workflow.fresh``) and runs concurrently; any other workflow runs one
run at a time, and a second one at once is refused, naming the way out. Runs paused
awaiting responses are kept per run, and responses continue the run they answer."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Never

import pytest

from runtime import (
    Executor,
    RequestError,
    RunStatus,
    Workflow,
    WorkflowBuilder,
    WorkflowContext,
    handler,
    response_handler,
    workflow_factory,
)


class Tally(Executor):
    """Counts the messages it got in this run (instance state) and loops ``rounds``
    times, yielding its count at the end: a count shared between runs shows."""

    def __init__(self, id: str, rounds: int) -> None:
        super().__init__(id)
        self.rounds = rounds
        self.seen = 0

    @handler
    async def on_int(self, x: int, ctx: WorkflowContext[int, int]) -> None:
        self.seen += 1
        await asyncio.sleep(0)  # let the other run interleave
        if x < self.rounds:
            await ctx.send_message(x + 1)
        else:
            await ctx.yield_output(self.seen)


def _tally(rounds: int) -> Workflow:
    tally = Tally("tally", rounds)
    return WorkflowBuilder(start_executor=tally).add_edge(tally, tally).build()


@workflow_factory
def build_tally(rounds: int) -> Workflow:
    return _tally(rounds)


@dataclass(frozen=True)
class Question:
    text: str


class Gate(Executor):
    """Remembers its input (instance state), asks a question, and yields the input with
    the answer."""

    def __init__(self, id: str) -> None:
        super().__init__(id)
        self.text = ""

    @handler
    async def on_str(self, text: str, ctx: WorkflowContext[Never, str]) -> None:
        self.text = text
        await ctx.request_info(Question(f"{text}?"), int)

    @response_handler
    async def on_answer(self, q: Question, answer: int, ctx: WorkflowContext[Never, str]) -> None:
        await ctx.yield_output(f"{self.text}:{answer}")


@workflow_factory
def build_gate() -> Workflow:
    return WorkflowBuilder(start_executor=Gate("gate")).build()


async def test_a_factory_built_workflow_runs_concurrently_each_run_on_its_own_executors() -> None:
    wf = build_tally(rounds=30)
    alone = await build_tally(rounds=30).run(1)
    results = await asyncio.gather(*(wf.run(1) for _ in range(3)))
    assert [r.status for r in results] == [RunStatus.COMPLETED] * 3
    assert [r.outputs for r in results] == [[30]] * 3 == [alone.outputs] * 3
    assert {r.trace_hash for r in results} == {alone.trace_hash}
    own = wf.executors["tally"]
    assert isinstance(own, Tally) and own.seen == 30, "one run held the object's own executors"
    again = await wf.run(1)  # and the object's executors are free again
    assert again.outputs == [60]  # executor state lives on across sequential runs, as ever


async def test_a_workflow_without_a_factory_runs_one_run_at_a_time() -> None:
    wf = _tally(rounds=20)
    results = await asyncio.gather(wf.run(1), wf.run(1), return_exceptions=True)
    refused = [r for r in results if isinstance(r, RuntimeError)]
    assert len(refused) == 1
    assert "already running" in str(refused[0]) and "@workflow_factory" in str(refused[0])
    assert [r.outputs for r in results if not isinstance(r, BaseException)] == [[20]]


async def test_responses_continue_the_paused_run_they_answer() -> None:
    wf = build_gate()
    first, second = await asyncio.gather(wf.run("apples"), wf.run("pears"))
    assert first.status is second.status is RunStatus.AWAITING_INPUT
    (ask_first,) = first.pending_requests
    (ask_second,) = second.pending_requests
    # answered in the other order: each goes to its own run, with its own executor state
    done_second = await wf.run(responses={ask_second.request_id: 2})
    done_first = await wf.run(responses={ask_first.request_id: 1})
    assert done_second.outputs == ["pears:2"] and done_first.outputs == ["apples:1"]
    with pytest.raises(RequestError, match="no paused run"):
        await wf.run(responses={ask_first.request_id: 1})


async def test_responses_a_paused_run_does_not_take_leave_it_paused() -> None:
    wf = build_gate()
    paused = await wf.run("figs")
    (ask,) = paused.pending_requests
    with pytest.raises(RequestError, match="no pending request"):
        await wf.run(responses={"no-such-request": 3})
    done = await wf.run(responses={ask.request_id: 3})
    assert done.outputs == ["figs:3"]


async def test_a_new_run_beside_a_paused_one_leaves_it_paused_when_it_can() -> None:
    wf = build_gate()
    paused = await wf.run("plums")
    other = await wf.run("kiwis")  # on fresh executors: the paused run keeps its own
    (ask_paused,) = paused.pending_requests
    (ask_other,) = other.pending_requests
    assert (await wf.run(responses={ask_paused.request_id: 5})).outputs == ["plums:5"]
    assert (await wf.run(responses={ask_other.request_id: 6})).outputs == ["kiwis:6"]
