"""End-to-end smoke tests of the in-process runtime on the simplest graphs."""

from __future__ import annotations

from runtime import Executor, RunStatus, WorkflowBuilder, WorkflowContext, handler


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
