"""Workflows served by the test deployment of the Dapr runtime (and run in-process
too, to compare traces)."""

from __future__ import annotations

import asyncio
import hashlib
import operator
from dataclasses import dataclass
from typing import Any, Never

from runtime import (
    Executor,
    Placement,
    Workflow,
    WorkflowBuilder,
    WorkflowContext,
    handler,
    response_handler,
    workflow_factory,
)


class Ping(Executor):
    def __init__(self, id: str, last: int, pool: str = "default") -> None:
        super().__init__(id, placement=Placement(pool=pool))
        self.last = last

    @handler
    async def on_int(self, x: int, ctx: WorkflowContext[int, int]) -> None:
        if x >= self.last:
            await ctx.yield_output(x)
        else:
            await ctx.send_message(x + 1)


def ping() -> Workflow:
    """Two executors in two pools pass an int back and forth for 12 supersteps."""
    a, b = Ping("a", 11), Ping("b", 11, pool="aux")
    return WorkflowBuilder(start_executor=a, name="ping").add_edge(a, b).add_edge(b, a).build()


@dataclass
class Part:
    index: int
    text: str


@dataclass
class Count:
    index: int
    words: int


class Split(Executor):
    @handler
    async def split(self, text: str, ctx: WorkflowContext[Part]) -> None:
        for i, part in enumerate(text.split("|")):
            await ctx.send_message(Part(i, part), target_id=f"count-{i % 3}")


class Counter(Executor):
    @handler
    async def count(self, part: Part, ctx: WorkflowContext[Count]) -> None:
        await asyncio.sleep(0.01 * (3 - part.index % 3))  # finish in reverse order
        ctx.set_state("parts", 1)
        await ctx.send_message(Count(part.index, len(part.text.split())))


class Total(Executor):
    @handler
    async def total(self, counts: list[Count], ctx: WorkflowContext[Never, dict[str, int]]) -> None:
        await ctx.yield_output(
            {
                "words": sum(c.words for c in counts),
                "order": int("".join(str(c.index) for c in counts)),
                "parts": ctx.get_state("parts"),
            }
        )


def fan() -> Workflow:
    """Fan-out to three counters (targeted), fan-in to a total, a reducer key."""
    split, total = Split("split"), Total("total")
    counters = [Counter(f"count-{i}") for i in range(3)]
    return (
        WorkflowBuilder(start_executor=split, name="fan")
        .add_fan_out_edges(split, counters)
        .add_fan_in_edges(counters, total)
        .add_state("parts", initial=0, reducer=operator.add)
        .build()
    )


@dataclass
class Question:
    text: str


class Asker(Executor):
    @handler
    async def ask(self, topic: str, ctx: WorkflowContext[Never, str]) -> None:
        await ctx.request_info(Question(f"approve {topic}?"), bool)

    @response_handler
    async def answered(
        self, original: Question, approved: bool, ctx: WorkflowContext[Never, str]
    ) -> None:
        await ctx.yield_output(f"{original.text} -> {'yes' if approved else 'no'}")


def hitl() -> Workflow:
    asker = Asker("asker")
    return WorkflowBuilder(start_executor=asker, name="hitl").build()


class Sleeper(Executor):
    @handler
    async def nap(self, seconds: float, ctx: WorkflowContext[float, float]) -> None:
        await asyncio.sleep(seconds)
        if ctx.superstep >= 3:
            await ctx.yield_output(seconds)
        else:
            await ctx.send_message(seconds)


def slow() -> Workflow:
    """Three supersteps of one sleeping executor each (cancel and failover tests)."""
    a, b = Sleeper("s1"), Sleeper("s2")
    return WorkflowBuilder(start_executor=a, name="slow").add_edge(a, b).add_edge(b, a).build()


def unplaceable() -> Workflow:
    a = Ping("a", 1)
    b = Ping("gpu-worker", 1, pool="gpu")
    return (
        WorkflowBuilder(start_executor=a, name="unplaceable").add_edge(a, b).add_edge(b, a).build()
    )


class Ticker(Executor):
    def __init__(self, id: str, last: int, width: int) -> None:
        super().__init__(id)
        self.last, self.width = last, width

    @handler
    async def on_int(self, x: int, ctx: WorkflowContext[int, dict[str, Any]]) -> None:
        text = LINES["ascii"] * (self.width // len(LINES["ascii"]) + 1)
        await ctx.yield_output({"tick": x, "text": text[: self.width]})
        if x < self.last:
            await ctx.send_message(x + 1)


@workflow_factory
def ticks(count: int = 50, width: int = 100) -> Workflow:
    """Two executors pass an int back and forth for ``count`` supersteps from input 1,
    and each superstep yields an output (with ``width`` characters of text)."""
    a, b = Ticker("a", count, width), Ticker("b", count, width)
    return (
        WorkflowBuilder(start_executor=a, name="ticks", max_supersteps=count + 1)
        .add_edge(a, b)
        .add_edge(b, a)
        .build()
    )


class Relay(Executor):
    @handler
    async def relay(self, texts: list[str | int], ctx: WorkflowContext[list[str | int]]) -> None:
        await ctx.send_message(texts)


class Echo(Executor):
    @handler
    async def echo(
        self, texts: list[str | int], ctx: WorkflowContext[Never, list[str | int]]
    ) -> None:
        await ctx.yield_output(texts)


def echo() -> Workflow:
    """Strings that merely look like dates or durations must cross the hosts as strings,
    integers of any size as the same integers."""
    a, b = Relay("relay"), Echo("echo")
    return WorkflowBuilder(start_executor=a, name="echo").add_edge(a, b).build()


@dataclass
class Order:
    item: str
    quantity: int


@dataclass
class Approval:
    approved: bool
    note: str = ""


@dataclass
class Receipt:
    item: str
    quantity: int
    note: str


class OrderDesk(Executor):
    def __init__(self, id: str, limit: int) -> None:
        super().__init__(id, placement=Placement(pool="aux"))
        self.limit = limit

    @handler
    async def take(self, order: Order, ctx: WorkflowContext[Never, Receipt]) -> None:
        if order.quantity <= self.limit:
            await ctx.yield_output(Receipt(order.item, order.quantity, "within the limit"))
        else:
            await ctx.request_info(order, Approval)

    @response_handler
    async def decided(
        self, order: Order, approval: Approval, ctx: WorkflowContext[Never, Receipt]
    ) -> None:
        quantity = order.quantity if approval.approved else 0
        await ctx.yield_output(Receipt(order.item, quantity, approval.note))


@workflow_factory
def orders(limit: int = 10) -> Workflow:
    """Orders of up to ``limit`` pass; a larger one waits for an ``Approval``.

    Served as a factory (``tests.dapr.workflows:*``), not by name."""
    desk = OrderDesk("desk", limit)
    return WorkflowBuilder(start_executor=desk, name="orders").build()


LINES = {
    "ascii": "".join(chr(97 + (i * 7) % 26) for i in range(1023)) + "\n",
    # 6 bytes a character escaped in a request, 12 for the two beyond the basic plane,
    # 2 for the quotes: a MiB of it is up to 12 MiB in the requests that carry it
    "wide": ('漢字かなカナ한글 "ß" 😀🚀' * 64)[:1023] + "\n",
}


class Filler(Executor):
    """Writes ``mb`` Mi characters of text (of ``LINES[text]``) into the shared state
    (and, in the next superstep, passes on how much it wrote)."""

    def __init__(self, id: str, text: str = "ascii") -> None:
        super().__init__(id)
        self.text = text

    @handler
    async def fill(self, mb: int, ctx: WorkflowContext[int]) -> None:
        ctx.set_state("blob", LINES[self.text] * (mb * 1024))
        await ctx.send_message(mb)


class Reader(Executor):
    """Reads the shared text back and reports its size and digest."""

    @handler
    async def read(self, mb: int, ctx: WorkflowContext[Never, dict[str, Any]]) -> None:
        blob = ctx.get_state("blob")
        digest = hashlib.sha256(blob.encode()).hexdigest()
        await ctx.yield_output({"mb": mb, "bytes": len(blob), "sha256": digest})


class Hoarder(Executor):
    """Keeps ``mb`` Mi characters more of its own state each superstep (its snapshot),
    for ``rounds`` supersteps, then reports what it holds."""

    def __init__(self, id: str, rounds: int = 3) -> None:
        super().__init__(id)
        self.rounds = rounds
        self.kept: list[str] = []

    @handler
    async def keep(self, mb: int, ctx: WorkflowContext[int, dict[str, Any]]) -> None:
        self.kept.append(LINES["wide"][: 1000 - len(self.kept)] * (mb * 1024))
        if len(self.kept) < self.rounds:
            await ctx.send_message(mb, target_id=self.id)
            return
        text = "".join(self.kept)
        digest = hashlib.sha256(text.encode()).hexdigest()
        await ctx.yield_output({"chars": len(text), "sha256": digest})

    async def on_checkpoint_save(self) -> dict[str, Any]:
        return {"kept": self.kept}

    async def on_checkpoint_restore(self, state: dict[str, Any]) -> None:
        self.kept = list(state.get("kept", []))


def big_snapshot() -> Workflow:
    """One executor whose own state (its snapshot) grows by its input (in Mi
    characters) each superstep, for three supersteps."""
    hoarder = Hoarder("hoarder")
    return (
        WorkflowBuilder(start_executor=hoarder, name="big_snapshot")
        .add_edge(hoarder, hoarder)
        .build()
    )


@workflow_factory
def big_state(text: str = "ascii") -> Workflow:
    """A run whose shared state is as large as its input says (in Mi characters of
    ``LINES[text]``), across pools."""
    filler = Filler("filler", text)
    reader = Reader("reader", placement=Placement(pool="aux"))
    return (
        WorkflowBuilder(start_executor=filler, name="big_state")
        .add_edge(filler, reader)
        .add_state("blob", initial="")
        .build()
    )


@dataclass
class Ticket:
    """The input of a run of ``isolation``: a tag of the run's own and a number."""

    tag: str
    x: int


@dataclass
class Share:
    worker: int
    seen: str
    value: int


ISOLATION_WIDTH = 4


class Stamp(Executor):
    @handler
    async def stamp(self, ticket: Ticket, ctx: WorkflowContext[Ticket]) -> None:
        ctx.set_state("tag", ticket.tag)
        await ctx.send_message(ticket)


class Mixer(Executor):
    def __init__(self, id: str, index: int, pool: str) -> None:
        super().__init__(id, placement=Placement(pool=pool))
        self.index = index

    @handler
    async def mix(self, ticket: Ticket, ctx: WorkflowContext[Share]) -> None:
        value = ticket.x * (self.index + 1)
        ctx.set_state("sum", value)
        await ctx.send_message(Share(self.index, ctx.get_state("tag"), value))


class Tally(Executor):
    @handler
    async def tally(self, shares: list[Share], ctx: WorkflowContext[Never, dict[str, Any]]) -> None:
        ordered = sorted(shares, key=lambda s: s.worker)
        await ctx.yield_output(
            {
                "tag": ctx.get_state("tag"),
                "seen": [s.seen for s in ordered],
                "sum": ctx.get_state("sum"),
                "total": sum(s.value for s in ordered),
            }
        )


def isolation() -> Workflow:
    """A run whose output depends on its input and on the shared state written during
    the run: the start writes the run's tag to state, four workers in two pools read it
    back and add ``x * (i + 1)`` to a reducer key, and the fan-in reports the tag, what
    each worker saw and both sums. Runs that saw each other's state or messages give
    another output than :func:`isolation_output` (the load test's check)."""
    stamp, tally = Stamp("stamp"), Tally("tally", placement=Placement(pool="aux"))
    mixers = [
        Mixer(f"mix-{i}", i, "default" if i % 2 == 0 else "aux") for i in range(ISOLATION_WIDTH)
    ]
    return (
        WorkflowBuilder(start_executor=stamp, name="isolation")
        .add_fan_out_edges(stamp, mixers)
        .add_fan_in_edges(mixers, tally)
        .add_state("tag", initial="")
        .add_state("sum", initial=0, reducer=operator.add)
        .build()
    )


def isolation_output(tag: str, x: int) -> dict[str, Any]:
    """The one right output of a run of ``isolation`` with input ``Ticket(tag, x)``."""
    total = x * sum(range(1, ISOLATION_WIDTH + 1))
    return {"tag": tag, "seen": [tag] * ISOLATION_WIDTH, "sum": total, "total": total}


def all_workflows() -> list[Workflow]:
    return [
        ping(),
        fan(),
        hitl(),
        slow(),
        unplaceable(),
        echo(),
        big_state(),
        big_snapshot(),
        isolation(),
    ]
