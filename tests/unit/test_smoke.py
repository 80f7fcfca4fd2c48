"""End-to-end smoke tests of the in-process runtime on the simplest graphs."""

from __future__ import annotations

import asyncio
import gc
from collections.abc import Callable
from typing import Any, Never

import pytest

from runtime import Executor, RunStatus, Workflow, WorkflowBuilder, WorkflowContext, handler


class Ping(Executor):
    def __init__(self, id: str, last: int) -> None:
        super().__init__(id)
        self.last = last

    @handler
    async def on_int(self, x: int, ctx: WorkflowContext[int, int]) -> None:
        if x >= self.last:
            await ctx.yield_output(x)
        else:
            await ctx.send_message(x + 1)


async def test_ping_pong_runs_one_superstep_per_hop() -> None:
    a, b = Ping("a", 9), Ping("b", 9)
    wf = WorkflowBuilder(start_executor=a, max_supersteps=20).add_edge(a, b).add_edge(b, a).build()
    result = await wf.run(0)
    assert result.status is RunStatus.COMPLETED
    assert result.outputs == [9]
    assert result.supersteps == 10
    assert len(result.trace) == 10


async def test_same_graph_same_trace_hash() -> None:
    hashes = set()
    for _ in range(3):
        a, b = Ping("a", 5), Ping("b", 5)
        wf = WorkflowBuilder(start_executor=a).add_edge(a, b).add_edge(b, a).build()
        hashes.add((await wf.run(0)).trace_hash)
    assert len(hashes) == 1


# -- the cyclic garbage collector: the runtime leaves it as the application set it --


class GcProbe(Executor):
    """Records whether the cyclic collector runs while its handler does."""

    def __init__(self, id: str) -> None:
        super().__init__(id)
        self.seen: list[bool] = []

    @handler
    async def on_int(self, x: int, ctx: WorkflowContext[int, int]) -> None:
        self.seen.append(gc.isenabled())
        ctx.set_state("total", x)
        if x >= 3:
            await ctx.yield_output(x)
        else:
            await ctx.send_message(x + 1)


def _gc_workflow(reducer: Callable[[Any, Any], Any]) -> tuple[Workflow, GcProbe, GcProbe]:
    a, b = GcProbe("a"), GcProbe("b")
    wf = (
        WorkflowBuilder(start_executor=a)
        .add_state("total", initial=0, reducer=reducer)
        .add_edge(a, b)
        .add_edge(b, a)
        .build()
    )
    return wf, a, b


async def test_the_collector_runs_in_handlers_and_after_the_run() -> None:
    assert gc.isenabled()
    wf, a, b = _gc_workflow(lambda acc, x: acc + x)
    result = await wf.run(0)
    assert result.status is RunStatus.COMPLETED
    assert a.seen + b.seen == [True] * 4
    assert gc.isenabled()


async def test_a_collector_the_application_disabled_stays_disabled() -> None:
    wf, a, b = _gc_workflow(lambda acc, x: acc + x)
    gc.disable()
    try:
        result = await wf.run(0)
        assert result.status is RunStatus.COMPLETED
        assert a.seen + b.seen == [False] * 4
        assert not gc.isenabled()
    finally:
        gc.enable()


async def test_the_collector_runs_again_after_a_barrier_that_raised(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import runtime.workflow._machine as machine

    def broken_commit(*args: Any, **kwargs: Any) -> Any:
        raise ZeroDivisionError("commit bug")

    monkeypatch.setattr(machine, "commit", broken_commit)
    wf, _, _ = _gc_workflow(lambda acc, x: acc + x)
    with pytest.raises(ZeroDivisionError, match="commit bug"):
        await wf.run(0)
    assert gc.isenabled()


# -- digests of many delivered messages, computed while the activations run -----------


class Spread(Executor):
    @handler
    async def on_start(self, n: int, ctx: WorkflowContext[int]) -> None:
        for i in range(n):
            await ctx.send_message(i, target_id=f"s{i % 3}")


class Sink(Executor):
    @handler
    async def on_int(self, x: int, ctx: WorkflowContext[Never, int]) -> None:
        if x % 500 == 0:
            await asyncio.sleep(0.001)  # waits on I/O now and then: the loop has idle time
        await ctx.yield_output(x)


def _spread_workflow() -> Workflow:
    b = WorkflowBuilder(start_executor=Spread("spread"))
    for i in range(3):
        b.add_edge("spread", Sink(f"s{i}"))
    return b.build()


@pytest.mark.parametrize("n", [10, 1500])
async def test_digests_computed_ahead_give_the_barrier_trace(
    n: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    import runtime.inprocess._runtime as driver

    ahead = await _spread_workflow().run(n)
    monkeypatch.setattr(driver, "_DIGEST_AHEAD", 10**9)  # every digest in the barrier
    barrier = await _spread_workflow().run(n)
    assert ahead.status is barrier.status is RunStatus.COMPLETED
    assert sorted(ahead.outputs) == list(range(n))
    assert ahead.trace == barrier.trace
    assert ahead.trace_hash == barrier.trace_hash
