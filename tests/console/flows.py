"""Workflow factories the in-process console's browser tests serve
(``superstep console --workflow tests.console.flows:*``)."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from runtime import Executor, WorkflowContext, handler, response_handler
from runtime.workflow import Workflow, WorkflowBuilder, workflow_factory

__all__ = ["rounds"]


@dataclass(frozen=True)
class Gate:
    """Asked after a round in ``gates``: go on? (the run waits for the answer)."""

    round: int


class Hub(Executor):
    """Sends round n to every worker."""

    def __init__(self, id: str, pause_s: float) -> None:
        super().__init__(id)
        self.pause_s = pause_s

    @handler
    async def on_round(self, n: int, ctx: WorkflowContext[int]) -> None:
        await asyncio.sleep(self.pause_s)
        await ctx.send_message(n)


class Worker(Hub):
    """Answers round n to the tally."""


class Tally(Executor):
    """Takes the workers' answers of a round together (fan-in): asks whether to go on
    after a round in ``gates``, starts the next round, or yields how many there were."""

    def __init__(self, id: str, rounds: int, gates: list[int], pause_s: float) -> None:
        super().__init__(id)
        self.rounds = rounds
        self.gates = set(gates)
        self.pause_s = pause_s

    @handler
    async def on_answers(self, answers: list[int], ctx: WorkflowContext[int, int]) -> None:
        await asyncio.sleep(self.pause_s)
        done = max(answers)
        if done in self.gates:
            await ctx.request_info(Gate(done), bool)
        else:
            await self._after(done, ctx)

    @response_handler
    async def on_go(self, gate: Gate, go: bool, ctx: WorkflowContext[int, int]) -> None:
        await self._after(gate.round if go else self.rounds, ctx)

    async def _after(self, done: int, ctx: WorkflowContext[int, int]) -> None:
        if done >= self.rounds:
            await ctx.yield_output(done)
        else:
            await ctx.send_message(done + 1)


@workflow_factory
def rounds(
    rounds: int = 2, workers: int = 2, pause_ms: float = 0, gates: list[int] | None = None
) -> Workflow:
    """Rounds of a hub, its workers and a tally, a superstep each: the hub sends the
    round (the input: 1) to every worker, the tally takes their answers together and
    starts the next round.

    A round in ``gates`` ends with a request (go on?): the run waits for the answer.
    Each activation sleeps ``pause_ms``."""
    if rounds < 1:
        raise ValueError(f"rounds must be at least 1, got {rounds}")
    if workers < 1:
        raise ValueError(f"workers must be at least 1, got {workers}")
    pause_s = pause_ms / 1000
    hub, tally = Hub("hub", pause_s), Tally("tally", rounds, gates or [], pause_s)
    team = [Worker(f"w{i}", pause_s) for i in range(workers)]
    return (
        WorkflowBuilder(start_executor=hub, name="rounds", max_supersteps=3 * rounds + 3)
        .add_fan_out_edges(hub, team)
        .add_fan_in_edges(team, tally)
        .add_edge(tally, hub)
        .build()
    )
