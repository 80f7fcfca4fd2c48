"""The chaos workflow: a looping fan-out/fan-in across two pools whose output changes
if any activation is lost or applied twice.

Each round the source (pool ``default``) sends the running total to every worker; the
workers alternate between pools ``default`` and ``aux``, each draws a value from its
seeded generator, adds it to the reducer key ``sum`` and sends it to the collector
(pool ``aux``), which folds the round's values into the running total and a digest and
sends the next round back to the source. After the last round the source yields the
total, the reducer's ``sum`` and the digest: a lost activation leaves a fan-in waiting
(the run never ends) or a value out, a duplicated one adds it twice to ``sum``, and any
difference in what ran changes the digest and the trace hash.
"""

from __future__ import annotations

import asyncio
import operator
from dataclasses import dataclass

from runtime import (
    Executor,
    Placement,
    Workflow,
    WorkflowBuilder,
    WorkflowContext,
    handler,
    workflow_factory,
)

__all__ = ["Outcome", "Round", "Share", "chaos_loop", "expected_total"]

_DIGEST_MOD = (1 << 61) - 1


@dataclass
class Round:
    number: int
    total: int
    digest: int


@dataclass
class Share:
    round: Round
    worker: int
    value: int


@dataclass
class Outcome:
    rounds: int
    total: int
    state_sum: int
    digest: int


class Source(Executor):
    def __init__(self, id: str, rounds: int) -> None:
        super().__init__(id, placement=Placement(pool="default"))
        self.rounds = rounds

    @handler
    async def begin(self, base: int, ctx: WorkflowContext[Round, Outcome]) -> None:
        await ctx.send_message(Round(1, base, base % _DIGEST_MOD))

    @handler
    async def next_round(self, r: Round, ctx: WorkflowContext[Round, Outcome]) -> None:
        if r.number > self.rounds:
            await ctx.yield_output(Outcome(self.rounds, r.total, ctx.get_state("sum"), r.digest))
        else:
            await ctx.send_message(r)


class Worker(Executor):
    def __init__(self, id: str, index: int, pool: str, work_s: float) -> None:
        super().__init__(id, placement=Placement(pool=pool))
        self.index = index
        self.work_s = work_s

    @handler
    async def work(self, r: Round, ctx: WorkflowContext[Share]) -> None:
        await asyncio.sleep(self.work_s)  # the activation's work: faults land during it
        value = ctx.rng.randrange(1, 1_000_000)
        ctx.set_state("sum", value)
        await ctx.send_message(Share(r, self.index, value))


class Collector(Executor):
    def __init__(self, id: str) -> None:
        super().__init__(id, placement=Placement(pool="aux"))

    @handler
    async def collect(self, shares: list[Share], ctx: WorkflowContext[Round]) -> None:
        r = shares[0].round
        total, digest = r.total, r.digest
        for share in sorted(shares, key=lambda s: s.worker):
            total += share.value
            digest = (digest * 1_000_003 + share.worker * 7_919 + share.value) % _DIGEST_MOD
        await ctx.send_message(Round(r.number + 1, total, digest))


@workflow_factory
def chaos_loop(rounds: int = 4, width: int = 4, work_ms: int = 100) -> Workflow:
    """``rounds`` rounds of ``width`` workers (alternating pools), each activation
    taking ``work_ms``; 3 supersteps per round and one to end."""
    source, collector = Source("source", rounds), Collector("collector")
    workers = [
        Worker(f"w{i}", i, "default" if i % 2 == 0 else "aux", work_ms / 1000) for i in range(width)
    ]
    return (
        WorkflowBuilder(start_executor=source, name="chaos-loop")
        .add_fan_out_edges(source, workers)
        .add_fan_in_edges(workers, collector)
        .add_edge(collector, source)
        .add_state("sum", initial=0, reducer=operator.add)
        .build()
    )


def expected_total(outcome: Outcome, base: int) -> bool:
    """Whether the output is self-consistent: every worker value was added once to
    both the running total (messages) and the reducer key (shared state)."""
    return outcome.total - base == outcome.state_sum
