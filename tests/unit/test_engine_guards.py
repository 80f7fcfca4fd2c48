"""Guards of the engine core: duplicate request ids, responses to ended runs, and
responses caught by a fallback."""

from __future__ import annotations

from typing import Never

import pytest

from runtime import (
    Executor,
    ExecutorPolicy,
    OnFailure,
    RequestError,
    RunStatus,
    WorkflowBuilder,
    WorkflowContext,
    handler,
    response_handler,
)
from runtime.engine import respond


class Asker(Executor):
    def __init__(
        self, id: str, request_id: str | None = None, fail_on_answer: bool = False
    ) -> None:
        super().__init__(id)
        self.request_id = request_id
        self.fail_on_answer = fail_on_answer

    @handler
    async def ask(self, topic: str, ctx: WorkflowContext[str]) -> None:
        await ctx.request_info(topic, str, request_id=self.request_id)

    @response_handler
    async def answered(self, original: str, answer: str, ctx: WorkflowContext[str]) -> None:
        if self.fail_on_answer:
            raise RuntimeError("cannot take answers")
        await ctx.send_message(f"{original}={answer}")


class Sink(Executor):
    @handler
    async def take(self, text: str, ctx: WorkflowContext[Never, str]) -> None:
        await ctx.yield_output(text)


class Fan(Executor):
    @handler
    async def fan(self, topic: str, ctx: WorkflowContext[str]) -> None:
        await ctx.send_message(topic)


async def test_two_requests_with_one_id_fail_the_superstep() -> None:
    fan, a, b, sink = Fan("fan"), Asker("a", "same"), Asker("b", "same"), Sink("sink")
    wf = (
        WorkflowBuilder(start_executor=fan)
        .add_fan_out_edges(fan, [a, b])
        .add_edge(a, sink)
        .add_edge(b, sink)
        .build()
    )
    result = await wf.run("topic")
    assert result.status is RunStatus.FAILED
    assert result.error is not None and result.error.type == "RequestError"
    assert "request id 'same' (from 'b') is already pending" in result.error.message
    assert result.pending_requests == []  # the failed superstep committed nothing
    assert result.supersteps == 2 and result.error.superstep == 2  # the one that failed
    assert len(result.trace) == 1  # only superstep 1 committed


async def test_a_response_to_an_ended_run_is_refused() -> None:
    sink = Sink("sink")
    wf = WorkflowBuilder(start_executor=sink).build()
    result = await wf.run("x")
    assert result.status is RunStatus.COMPLETED and result.run_state is not None
    with pytest.raises(RequestError, match="has ended \\(completed\\)"):
        respond(result.run_state, wf.graph, {"r": "y"})


async def test_a_response_is_not_forwarded_to_a_fallback() -> None:
    asker = Asker("asker", fail_on_answer=True)
    backup, sink = Sink("backup"), Sink("sink")
    wf = (
        WorkflowBuilder(start_executor=asker)
        .add_edge(asker, sink)
        .add_executor(backup)
        .set_policy(asker, ExecutorPolicy(on_failure=OnFailure.FALLBACK, fallback="backup"))
        .build()
    )
    first = await wf.run("topic")
    [req] = first.pending_requests
    second = await wf.run(responses={req.request_id: "yes"})
    assert second.status is RunStatus.COMPLETED
    assert second.outputs == []
    [dropped] = [e for e in second.events if e.type == "message_dropped"]
    assert "cannot go to a fallback" in dropped.details["reason"]


def test_list_of_any_and_of_plain_classes_match_by_element() -> None:
    from typing import Any

    from runtime.engine._types import is_instance_of

    assert is_instance_of([1, "a", None], list[Any])
    assert is_instance_of([1, 2], list[int])
    assert not is_instance_of([1, "a"], list[int])
    assert is_instance_of([1, 2.5], list[float])
    assert not is_instance_of([True], list[float])
