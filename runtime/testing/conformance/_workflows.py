"""The workflows of the conformance suite: module-level executors and factories.

Every factory builds a fresh workflow (fresh executor objects), so a runtime that
builds workflows in another process can import it as ``module:function``. Values
are JSON (ints, strings, lists, dicts) unless a scenario tests the codec. Output
records are ``[executor id, superstep, ...]`` so scenarios can check *when*
something happened, not only what.

Factories whose parameters include a probe (an object shared with the test) are
for scenarios that need the ``same_process`` capability.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any

from runtime.engine import ExecutorPolicy, OnFailure
from runtime.workflow import (
    Case,
    Default,
    Executor,
    Workflow,
    WorkflowBuilder,
    WorkflowContext,
    WorkflowEvent,
    WorkflowExecutor,
    handler,
    response_handler,
)

__all__ = [
    "Declined",
    "ParallelProbe",
    "Question",
    "SignalProbe",
    "aggregator_workflow",
    "blocked_workflow",
    "burst_workflow",
    "counter_workflow",
    "declining_workflow",
    "failure_workflow",
    "fan_in_workflow",
    "hang_workflow",
    "hitl_workflow",
    "loop_workflow",
    "mutual_workflow",
    "parallel_workflow",
    "pingpong_workflow",
    "policy_workflow",
    "retry_workflow",
    "review_workflow",
    "routing_workflow",
    "staged_workflow",
    "stall_workflow",
    "subworkflow_hitl_workflow",
    "timeout_workflow",
    "unroutable_workflow",
    "visibility_workflow",
]

Ctx = WorkflowContext[Any, Any]
GUARD_S = 10.0
"""Upper bound on any wait for a probe: a broken runtime fails instead of hanging."""


# -- reducers, conditions and selectors (module level: importable by any runtime) -------
def add(total: int, update: int) -> int:
    return total + update


def extend(items: list[Any], update: list[Any]) -> list[Any]:
    return [*items, *update]


def never(_value: Any) -> bool:
    return False


def divisible_by_3(x: int) -> bool:
    return x % 3 == 0


def is_even(x: int) -> bool:
    return x % 2 == 0


def at_least_7(x: int) -> bool:
    return x >= 7


def select_by_remainder(x: int, targets: list[str]) -> list[str]:
    """Multi-selection: returns targets out of declared order, and sometimes none."""
    return {0: ["m2", "m1"], 1: ["m1"], 2: [], 3: ["m2", "m2"]}[x % 4]


def loop_continues(m: dict[str, int]) -> bool:
    return m["n"] < m["limit"]


def loop_exits(m: dict[str, int]) -> bool:
    return m["n"] >= m["limit"]


# -- probes (same_process scenarios only) ------------------------------------------------
@dataclass
class SignalProbe:
    """Named events and a shared notebook between a scenario and its executors."""

    events: dict[str, asyncio.Event] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    def event(self, name: str) -> asyncio.Event:
        return self.events.setdefault(name, asyncio.Event())

    async def wait(self, name: str) -> None:
        async with asyncio.timeout(GUARD_S):
            await self.event(name).wait()


@dataclass
class ParallelProbe:
    """Counts activations running at once; releases them when ``target`` are in."""

    target: int
    active: int = 0
    peak: int = 0
    entered: int = 0
    all_in: asyncio.Event = field(default_factory=asyncio.Event)

    async def visit(self) -> None:
        self.active += 1
        self.entered += 1
        self.peak = max(self.peak, self.active)
        if self.entered >= self.target:
            self.all_in.set()
        try:
            async with asyncio.timeout(GUARD_S):
                await self.all_in.wait()
            # a yield point, not synchronisation: any other activation the runtime has
            # started gets to run now, so going over the limit shows in ``peak``
            await asyncio.sleep(0)
        finally:
            self.active -= 1


# -- generic executors ---------------------------------------------------------------
class Spread(Executor):
    """Start executor: yields ``[id, superstep]`` and sends ``payload`` (or its input)."""

    def __init__(self, id: str, payload: Any = None) -> None:
        super().__init__(id)
        self.payload = payload

    @handler
    async def on_int(self, x: int, ctx: Ctx) -> None:
        await ctx.yield_output([self.id, ctx.superstep])
        await ctx.send_message(x if self.payload is None else self.payload)


class Stamp(Executor):
    """Yields ``[id, superstep, message]``; forwards ints when ``forward``."""

    def __init__(self, id: str, *, forward: bool = True) -> None:
        super().__init__(id)
        self.forward = forward

    @handler
    async def on_int(self, x: int, ctx: Ctx) -> None:
        await ctx.yield_output([self.id, ctx.superstep, x])
        if self.forward:
            await ctx.send_message(x)

    @handler
    async def on_list(self, xs: list[int], ctx: Ctx) -> None:
        await ctx.yield_output([self.id, ctx.superstep, xs])


class Collect(Executor):
    """Yields ``[id, superstep, message, sources]`` for every message."""

    @handler
    async def on_int(self, x: int, ctx: Ctx) -> None:
        await ctx.yield_output([self.id, ctx.superstep, x, ctx.source_executor_ids])

    @handler
    async def on_str(self, x: str, ctx: Ctx) -> None:
        await ctx.yield_output([self.id, ctx.superstep, x, ctx.source_executor_ids])

    @handler
    async def on_list(self, xs: list[Any], ctx: Ctx) -> None:
        await ctx.yield_output([self.id, ctx.superstep, xs, ctx.source_executor_ids])


class Fail(Executor):
    """Raises on every message."""

    @handler
    async def on_int(self, x: int, ctx: Ctx) -> None:
        raise RuntimeError(f"{self.id} cannot handle {x}")


class Quiet(Executor):
    """Handles its message and sends nothing."""

    @handler
    async def on_int(self, x: int, ctx: Ctx) -> None:
        del x, ctx


# -- rule 1: delivery in the next superstep ----------------------------------------------
def staged_workflow() -> Workflow:
    """s -> fan-out [a, b]; a -> x; fan-in [a, b] -> j."""
    s, a, b = Spread("s"), Stamp("a"), Stamp("b")
    x, j = Stamp("x", forward=False), Stamp("j", forward=False)
    return (
        WorkflowBuilder(start_executor=s, name="conformance-staged")
        .add_fan_out_edges(s, [a, b])
        .add_edge(a, x)
        .add_fan_in_edges([a, b], j)
        .build()
    )


# -- rules 2, 3: bursts into one sink --------------------------------------------------
class Burst(Executor):
    """Sends ``count`` strings ``"<id>:<i>"`` after a delay (load, not synchronisation);
    yields ``id`` and adds a ``tick`` event."""

    def __init__(self, id: str, count: int, delay_s: float) -> None:
        super().__init__(id)
        self.count = count
        self.delay_s = delay_s

    @handler
    async def on_int(self, x: int, ctx: Ctx) -> None:
        del x
        if self.delay_s:
            await asyncio.sleep(self.delay_s)
        for i in range(self.count):
            await ctx.send_message(f"{self.id}:{i}")
        await ctx.yield_output(self.id)
        await ctx.add_event(WorkflowEvent("tick", data=self.id))


class Turnstile(Executor):
    """Yields ``[id, superstep, message, concurrent handlers seen]`` per message; gives the
    loop a chance to run a second handler concurrently, if a runtime allowed it."""

    def __init__(self, id: str) -> None:
        super().__init__(id)
        self.active = 0

    @handler
    async def on_str(self, msg: str, ctx: Ctx) -> None:
        self.active += 1
        try:
            for _ in range(3):
                await asyncio.sleep(0)
            await ctx.yield_output([self.id, ctx.superstep, msg, self.active])
        finally:
            self.active -= 1


def burst_workflow(per_sender: int = 3, delays: list[float] | None = None) -> Workflow:
    """s -> fan-out [w0..wn] (n = len(delays)); every wi -> t, sending ``per_sender`` each."""
    delays = delays if delays is not None else [0.0] * 5
    s = Spread("s")
    workers = [Burst(f"w{i}", per_sender, d) for i, d in enumerate(delays)]
    t = Turnstile("t")
    b = WorkflowBuilder(start_executor=s, name="conformance-burst").add_fan_out_edges(s, workers)
    for w in workers:
        b.add_edge(w, t)
    return b.build()


# -- rule 4: parallelism ---------------------------------------------------------------
class Overlap(Executor):
    def __init__(self, id: str, probe: ParallelProbe) -> None:
        super().__init__(id)
        self.probe = probe

    @handler
    async def on_int(self, x: int, ctx: Ctx) -> None:
        await self.probe.visit()
        await ctx.yield_output(self.id)


def parallel_workflow(n: int, probe: ParallelProbe) -> Workflow:
    s = Spread("s")
    workers = [Overlap(f"p{i}", probe) for i in range(n)]
    return (
        WorkflowBuilder(start_executor=s, name="conformance-parallel")
        .add_fan_out_edges(s, workers)
        .build()
    )


class Blocked(Executor):
    """Blocks until the probe's ``others_done`` event; then marks ``blocked_done``."""

    def __init__(self, id: str, probe: SignalProbe) -> None:
        super().__init__(id)
        self.probe = probe

    @handler
    async def on_int(self, x: int, ctx: Ctx) -> None:
        await self.probe.wait("others_done")
        await ctx.yield_output([self.id, ctx.superstep, sorted(self.probe.notes)])
        self.probe.notes.append(self.id)
        self.probe.event("blocked_done").set()


class Peer(Executor):
    """Notes that it finished; the last of ``group`` sets ``others_done``."""

    def __init__(self, id: str, probe: SignalProbe, group: int) -> None:
        super().__init__(id)
        self.probe = probe
        self.group = group

    @handler
    async def on_int(self, x: int, ctx: Ctx) -> None:
        await ctx.send_message(x)
        self.probe.notes.append(self.id)
        if len(self.probe.notes) == self.group:
            self.probe.event("others_done").set()


class AfterBarrier(Executor):
    """Yields whether the blocked executor of the previous superstep had finished."""

    def __init__(self, id: str, probe: SignalProbe) -> None:
        super().__init__(id)
        self.probe = probe

    @handler
    async def on_int(self, x: int, ctx: Ctx) -> None:
        done = self.probe.event("blocked_done").is_set()
        await ctx.yield_output([self.id, ctx.superstep, done])


def blocked_workflow(probe: SignalProbe) -> Workflow:
    """s -> fan-out [slow, f1, f2]; f1 -> d. ``slow`` waits for f1 and f2 to finish."""
    s = Spread("s")
    slow = Blocked("slow", probe)
    f1, f2 = Peer("f1", probe, 2), Peer("f2", probe, 2)
    d = AfterBarrier("d", probe)
    return (
        WorkflowBuilder(start_executor=s, name="conformance-blocked")
        .add_fan_out_edges(s, [slow, f1, f2])
        .add_edge(f1, d)
        .add_edge(f2, d)
        .build()
    )


# -- rules 5, 6: state ------------------------------------------------------------------
class Writer(Executor):
    """Writes ``x`` and ``total`` and reads them back (read-your-writes)."""

    def __init__(self, id: str, probe: SignalProbe | None) -> None:
        super().__init__(id)
        self.probe = probe

    @handler
    async def on_int(self, x: int, ctx: Ctx) -> None:
        reads: list[Any] = [ctx.get_state("x"), ctx.get_state("total")]
        ctx.set_state("x", 1)
        ctx.set_state("total", 5)
        ctx.set_state("total", 2)
        ctx.set_state("mine", "w")
        ctx.delete_state("gone")
        reads += [ctx.get_state("x"), ctx.get_state("total"), ctx.get_state("gone", "absent")]
        await ctx.yield_output([self.id, ctx.superstep, reads])
        await ctx.send_message(x)
        if self.probe is not None:
            self.probe.event("written").set()


class Reader(Executor):
    """Reads ``x``, ``total`` and ``gone`` after the writer wrote (when a probe paces it)."""

    def __init__(self, id: str, probe: SignalProbe | None) -> None:
        super().__init__(id)
        self.probe = probe

    @handler
    async def on_int(self, x: int, ctx: Ctx) -> None:
        if self.probe is not None:
            await self.probe.wait("written")
        reads = [ctx.get_state("x"), ctx.get_state("total"), ctx.get_state("gone", "absent")]
        await ctx.yield_output([self.id, ctx.superstep, reads])
        await ctx.send_message(x)


class StateReport(Executor):
    """Yields the committed values of ``keys`` when its fan-in list arrives."""

    def __init__(self, id: str, keys: list[str]) -> None:
        super().__init__(id)
        self.keys = keys

    @handler
    async def on_list(self, xs: list[Any], ctx: Ctx) -> None:
        values = [ctx.get_state(k, "absent") for k in self.keys]
        await ctx.yield_output([self.id, ctx.superstep, values, xs])


def visibility_workflow(probe: SignalProbe | None = None) -> Workflow:
    """s -> fan-out [w, r]; fan-in [w, r] -> c. ``x`` replaces, ``total`` adds."""
    s, w, r = Spread("s"), Writer("w", probe), Reader("r", probe)
    c = StateReport("c", ["x", "total", "mine", "gone"])
    return (
        WorkflowBuilder(start_executor=s, name="conformance-visibility")
        .add_state("x", initial=0)
        .add_state("total", initial=0, reducer=add)
        .add_state("gone", initial="here")
        .add_fan_out_edges(s, [w, r])
        .add_fan_in_edges([w, r], c)
        .build()
    )


class Incrementer(Executor):
    """Increments ``count`` ``times`` times: as reducer updates, or (the anti-pattern) as
    read-modify-write. Also appends to ``log`` and writes its own key."""

    def __init__(self, id: str, times: int, delay_s: float, use_reducer: bool) -> None:
        super().__init__(id)
        self.times = times
        self.delay_s = delay_s
        self.use_reducer = use_reducer

    @handler
    async def on_int(self, x: int, ctx: Ctx) -> None:
        if self.delay_s:
            await asyncio.sleep(self.delay_s)
        for _ in range(self.times):
            if self.use_reducer:
                ctx.set_state("count", 1)
            else:
                ctx.set_state("count", ctx.get_state("count") + 1)
        ctx.set_state("log", [self.id])
        ctx.set_state(f"seen:{self.id}", True)
        await ctx.yield_output([self.id, ctx.superstep])
        await ctx.send_message(self.id)


def counter_workflow(
    n: int = 20, times: int = 3, use_reducer: bool = True, delays: list[float] | None = None
) -> Workflow:
    """s -> fan-out [inc0..]; fan-in [inc0..] -> report. ``count`` has the ``add``
    reducer only when ``use_reducer``; ``log`` always folds with ``extend``."""
    s = Spread("s")
    ds = delays if delays is not None else [0.0] * n
    incs = [Incrementer(f"inc{i}", times, ds[i % len(ds)], use_reducer) for i in range(n)]
    report = StateReport("report", ["count", "log"])
    b = WorkflowBuilder(start_executor=s, name="conformance-counter")
    b.add_state("count", initial=0, reducer=add if use_reducer else None)
    b.add_state("log", initial=[], reducer=extend)
    return b.add_fan_out_edges(s, incs).add_fan_in_edges(incs, report).build()


# -- rule 7: a failing superstep -----------------------------------------------------------
class Busy(Executor):
    """Does one of everything: output, state, event, request, a fan-in message."""

    @handler
    async def on_int(self, x: int, ctx: Ctx) -> None:
        await ctx.yield_output([self.id, ctx.superstep])
        ctx.set_state("busy", x)
        await ctx.add_event(WorkflowEvent("busy", data=x))
        await ctx.request_info("approve?", int)
        await ctx.send_message(x)

    @response_handler
    async def on_answer(self, original_request: str, answer: int, ctx: Ctx) -> None:
        await ctx.yield_output([self.id, ctx.superstep, original_request, answer])


def failure_workflow() -> Workflow:
    """s -> fan-out [busy, boom]; s -> z (never); fan-in [busy, z] -> j. ``boom`` raises."""
    s, busy, boom = Spread("s"), Busy("busy"), Fail("boom")
    z, j = Stamp("z"), Collect("j")
    return (
        WorkflowBuilder(start_executor=s, name="conformance-failure")
        .add_state("busy", initial=0)
        .add_fan_out_edges(s, [busy, boom])
        .add_edge(s, z, condition=never)
        .add_fan_in_edges([busy, z], j)
        .build()
    )


def failing_start_workflow() -> Workflow:
    """``boom`` alone: it raises on the run input, so superstep 1 fails."""
    return WorkflowBuilder(start_executor=Fail("boom"), name="conformance-failing-start").build()


class Hang(Executor):
    """With a probe: signals ``started`` and then waits forever. Without: passes on."""

    def __init__(self, id: str, probe: SignalProbe | None) -> None:
        super().__init__(id)
        self.probe = probe

    @handler
    async def on_int(self, x: int, ctx: Ctx) -> None:
        if self.probe is not None:
            self.probe.event("started").set()
            await asyncio.Event().wait()
        await ctx.yield_output([self.id, ctx.superstep])
        await ctx.send_message(x)


class Mark(Executor):
    """Writes ``marks`` (+1) and yields; forwards."""

    @handler
    async def on_int(self, x: int, ctx: Ctx) -> None:
        ctx.set_state("marks", 1)
        await ctx.yield_output([self.id, ctx.superstep, ctx.get_state("marks")])
        await ctx.send_message(x)


def hang_workflow(probe: SignalProbe | None = None) -> Workflow:
    """s -> a -> fan-out [m, h]; fan-in [m, h] -> c. ``h`` hangs when given a probe.
    (The graph is the same with or without a probe, so checkpoints move between them.)"""
    s, a, m = Spread("s"), Mark("a"), Mark("m")
    h, c = Hang("h", probe), Collect("c")
    return (
        WorkflowBuilder(start_executor=s, name="conformance-hang")
        .add_state("marks", initial=0, reducer=add)
        .add_edge(s, a)
        .add_fan_out_edges(a, [m, h])
        .add_fan_in_edges([m, h], c)
        .build()
    )


# -- rules 8, 12: retries and failure policies -----------------------------------------------
class Flaky(Executor):
    """Fails its first ``failures`` attempts after doing everything a handler can do.

    It counts attempts per idempotency key (not restored on failure) and what each
    attempt saw; ``handled`` is its checkpointed state (restored on failure)."""

    def __init__(self, id: str, failures: int) -> None:
        super().__init__(id, policy=ExecutorPolicy(max_attempts=failures + 1, backoff_s=0.001))
        self.failures = failures
        self.attempts: dict[str, int] = {}
        self.seen: list[list[Any]] = []
        self.handled = 0

    @handler
    async def on_int(self, x: int, ctx: Ctx) -> None:
        key = ctx.idempotency_key
        attempt = self.attempts[key] = self.attempts.get(key, 0) + 1
        self.handled += 1
        self.seen.append([key, ctx.random(), ctx.now().isoformat()])
        ctx.set_state("attempt", attempt)
        ctx.set_state("effects", 1)
        await ctx.yield_output([self.id, ctx.superstep, attempt])
        await ctx.add_event(WorkflowEvent("attempt", data=attempt))
        await ctx.send_message(attempt)
        if attempt <= self.failures:
            raise RuntimeError(f"attempt {attempt} fails")
        keys, randoms, times = (len({str(s[i]) for s in self.seen}) for i in range(3))
        await ctx.yield_output([self.id, "distinct", keys, randoms, times, len(self.seen)])

    async def on_checkpoint_save(self) -> dict[str, Any]:
        return {"handled": self.handled}

    async def on_checkpoint_restore(self, state: dict[str, Any]) -> None:
        self.handled = int(state.get("handled", 0))


def retry_workflow(failures: int = 3) -> Workflow:
    """s -> flaky -> down. ``flaky`` fails ``failures`` times, then succeeds."""
    s, flaky, down = Spread("s"), Flaky("flaky", failures), Collect("down")
    return (
        WorkflowBuilder(start_executor=s, name="conformance-retry")
        .add_state("effects", initial=0, reducer=add)
        .add_chain([s, flaky, down])
        .build()
    )


def policy_workflow() -> Workflow:
    """s -> fan-out [skipper, faller, ok]; ok -> sink. ``skipper`` fails twice and is
    skipped; ``faller`` fails and its message goes to ``backup``."""
    s = Spread("s")
    skipper, faller, ok = Fail("skipper"), Fail("faller"), Stamp("ok")
    sink, backup = Collect("sink"), Collect("backup")
    return (
        WorkflowBuilder(start_executor=s, name="conformance-policy")
        .add_fan_out_edges(s, [skipper, faller, ok])
        .add_edge(ok, sink)
        .set_policy(skipper, ExecutorPolicy(max_attempts=2, on_failure=OnFailure.SKIP))
        .set_policy(faller, ExecutorPolicy(on_failure=OnFailure.FALLBACK, fallback="backup"))
        .add_executor(backup)  # reached by fallback only
        .build()
    )


class Declined(Exception):
    """An application's own exception: a failure reports its module and class."""


class Declines(Executor):
    """Raises ``Declined`` on every attempt, naming the attempt (counted per
    idempotency key: not rolled back between attempts)."""

    def __init__(self, id: str) -> None:
        super().__init__(id, policy=ExecutorPolicy(max_attempts=2, backoff_s=0.001))
        self.attempts: dict[str, int] = {}

    @handler
    async def on_int(self, x: int, ctx: Ctx) -> None:
        key = ctx.idempotency_key
        attempt = self.attempts[key] = self.attempts.get(key, 0) + 1
        raise Declined(f"card declined on attempt {attempt}")


def declining_workflow() -> Workflow:
    """s -> card. ``card`` fails both of its attempts with ``Declined``."""
    s, card = Spread("s"), Declines("card")
    return WorkflowBuilder(start_executor=s, name="conformance-declining").add_edge(s, card).build()


class Sleeper(Executor):
    """Never finishes on its own (waits on an event nobody sets)."""

    @handler
    async def on_int(self, x: int, ctx: Ctx) -> None:
        await asyncio.Event().wait()


def timeout_workflow(timeout_s: float = 0.05) -> Workflow:
    """s -> fan-out [sleeper, ok]. ``sleeper`` times out twice and is skipped."""
    s, sleeper, ok = Spread("s"), Sleeper("sleeper"), Collect("ok")
    policy = ExecutorPolicy(timeout_s=timeout_s, max_attempts=2, on_failure=OnFailure.SKIP)
    return (
        WorkflowBuilder(start_executor=s, name="conformance-timeout")
        .add_fan_out_edges(s, [sleeper, ok])
        .set_policy(sleeper, policy)
        .build()
    )


# -- rule 9: routing -------------------------------------------------------------------------
class Counter(Executor):
    """Sends 0..n-1."""

    @handler
    async def on_int(self, n: int, ctx: Ctx) -> None:
        for i in range(n):
            await ctx.send_message(i)


def routing_workflow() -> Workflow:
    """s: switch-case [x%3==0 -> fizz, even -> even, default -> other],
    multi-selection [m1, m2] by remainder mod 4, and a conditional edge to ``big``."""
    s = Counter("s")
    fizz, even, other = Collect("fizz"), Collect("even"), Collect("other")
    m1, m2, big = Collect("m1"), Collect("m2"), Collect("big")
    return (
        WorkflowBuilder(start_executor=s, name="conformance-routing")
        .add_switch_case_edge_group(
            s, [Case(divisible_by_3, fizz), Case(is_even, even), Default(other)]
        )
        .add_multi_selection_edge_group(s, [m1, m2], select_by_remainder)
        .add_edge(s, big, condition=at_least_7)
        .build()
    )


class Scatter(Executor):
    """Yields, then sends an int along its edge, a string no handler takes, and an int
    to an executor it has no edge to."""

    @handler
    async def on_int(self, x: int, ctx: Ctx) -> None:
        await ctx.yield_output([self.id, ctx.superstep])
        await ctx.send_message(x)
        await ctx.send_message("no handler takes a string")
        await ctx.send_message(x + 1, target_id="b")


def unroutable_workflow(strict: bool = False) -> Workflow:
    """s -> a -> b; s sends two messages no edge accepts."""
    s, a, b = Scatter("s"), Stamp("a"), Collect("b")
    return (
        WorkflowBuilder(start_executor=s, name="conformance-unroutable", strict_routing=strict)
        .add_chain([s, a, b])
        .build()
    )


# -- rule 10: fan-in ---------------------------------------------------------------------------
FEEDER_SCRIPT: dict[str, dict[str, list[int]]] = {
    "a": {"1": [3], "2": [1, 1]},
    "b": {"1": [1], "2": [0, 2]},
    "c": {"1": [2], "2": [1]},
}
"""Per feeder and round: how many messages it sends into the fan-in at each stage.
Stage n+1 runs one superstep after stage n (the feeder messages itself)."""


class Feeder(Executor):
    def __init__(self, id: str) -> None:
        super().__init__(id)
        self.script = FEEDER_SCRIPT[id]

    @handler
    async def on_step(self, step: dict[str, int], ctx: Ctx) -> None:
        rnd, stage = step["round"], step["stage"]
        counts = self.script[str(rnd)]
        first = sum(counts[:stage])
        for i in range(counts[stage]):
            await ctx.send_message(f"{self.id}{rnd}.{first + i}", target_id="j")
        if counts[stage]:
            ctx.set_state("sent", counts[stage])
        if stage + 1 < len(counts):
            await ctx.send_message({"round": rnd, "stage": stage + 1}, target_id=self.id)


class Joiner(Executor):
    """Yields each fan-in list with its sources, the committed ``sent`` count and a
    seeded random number; starts round 2 after round 1. ``rounds`` is checkpointed."""

    def __init__(self, id: str) -> None:
        super().__init__(id)
        self.rounds = 0

    @handler
    async def on_list(self, items: list[str], ctx: Ctx) -> None:
        self.rounds += 1
        await ctx.yield_output(
            [
                self.id,
                ctx.superstep,
                items,
                ctx.source_executor_ids,
                ctx.get_state("sent"),
                round(ctx.random(), 9),
            ]
        )
        if self.rounds < 2:
            await ctx.send_message({"round": self.rounds + 1, "stage": 0})

    async def on_checkpoint_save(self) -> dict[str, Any]:
        return {"rounds": self.rounds}

    async def on_checkpoint_restore(self, state: dict[str, Any]) -> None:
        self.rounds = int(state.get("rounds", 0))


def fan_in_workflow() -> Workflow:
    """s -> fan-out [a, b, c]; each feeder has a self-edge; fan-in [c, a, b] -> j
    (group order differs from executor order); j -> fan-out [a, b, c] for round 2."""
    s = Spread("s", payload={"round": 1, "stage": 0})
    a, b, c, j = Feeder("a"), Feeder("b"), Feeder("c"), Joiner("j")
    builder = WorkflowBuilder(start_executor=s, name="conformance-fan-in")
    builder.add_state("sent", initial=0, reducer=add)
    builder.add_fan_out_edges(s, [a, b, c])
    for f in (a, b, c):
        builder.add_edge(f, f)
    return builder.add_fan_in_edges([c, a, b], j).add_fan_out_edges(j, [a, b, c]).build()


def stall_workflow() -> Workflow:
    """s -> fan-out [a, b, d]; s -> c (never); fan-in [a, b, c, d] -> j. a sends, b sends
    nothing, c is never reached, d fails and is skipped."""
    s, a, b = Spread("s"), Stamp("a"), Quiet("b")
    c, d, j = Stamp("c"), Fail("d"), Collect("j")
    return (
        WorkflowBuilder(start_executor=s, name="conformance-stall")
        .add_fan_out_edges(s, [a, b, d])
        .add_edge(s, c, condition=never)
        .add_fan_in_edges([a, b, c, d], j)
        .set_policy(d, ExecutorPolicy(on_failure=OnFailure.SKIP))
        .build()
    )


# -- rules 11, 16: loops and cycles -----------------------------------------------------------
class Bounce(Executor):
    """Forwards its int, incremented when ``step`` is 1, unchanged when 0."""

    def __init__(self, id: str, step: int) -> None:
        super().__init__(id)
        self.step = step

    @handler
    async def on_int(self, x: int, ctx: Ctx) -> None:
        await ctx.send_message(x + self.step)


def pingpong_workflow(max_supersteps: int | None = 12, step: int = 0) -> Workflow:
    """a <-> b forever; the message repeats (``step=0``, a livelock) or grows (``step=1``)."""
    a, b = Bounce("a", step), Bounce("b", step)
    return (
        WorkflowBuilder(
            start_executor=a, max_supersteps=max_supersteps, name="conformance-pingpong"
        )
        .add_edge(a, b)
        .add_edge(b, a)
        .build()
    )


class Increment(Executor):
    @handler
    async def on_step(self, m: dict[str, int], ctx: Ctx) -> None:
        await ctx.send_message({"n": m["n"] + 1, "limit": m["limit"]})


class Check(Executor):
    @handler
    async def on_step(self, m: dict[str, int], ctx: Ctx) -> None:
        await ctx.send_message(m)


class Done(Executor):
    @handler
    async def on_step(self, m: dict[str, int], ctx: Ctx) -> None:
        await ctx.yield_output([self.id, ctx.superstep, m["n"]])


def loop_workflow(max_supersteps: int | None = None) -> Workflow:
    """inc -> check; check -> inc while n < limit; check -> done once n >= limit."""
    inc, chk, done = Increment("inc"), Check("check"), Done("done")
    return (
        WorkflowBuilder(start_executor=inc, max_supersteps=max_supersteps, name="conformance-loop")
        .add_edge(inc, chk)
        .add_edge(chk, inc, condition=loop_continues)
        .add_edge(chk, done, condition=loop_exits)
        .build()
    )


class Mutual(Executor):
    """Needs its peer's value: sends its own, and sums when the peer's arrives."""

    def __init__(self, id: str, factor: int) -> None:
        super().__init__(id)
        self.factor = factor
        self.mine = 0

    @handler
    async def on_int(self, x: int, ctx: Ctx) -> None:
        if ctx.get_source_executor_id() == "s":
            self.mine = x * self.factor
            await ctx.send_message(self.mine)
        else:
            await ctx.yield_output([self.id, ctx.superstep, self.mine + x])


def mutual_workflow() -> Workflow:
    """s -> fan-out [a, b]; a -> b; b -> a: each waits for the other, without locks."""
    s, a, b = Spread("s"), Mutual("a", 1), Mutual("b", 2)
    return (
        WorkflowBuilder(start_executor=s, name="conformance-mutual")
        .add_fan_out_edges(s, [a, b])
        .add_edge(a, b)
        .add_edge(b, a)
        .build()
    )


# -- rule 14: human in the loop -------------------------------------------------------------
@dataclass(frozen=True)
class Question:
    text: str
    amount: int


class Approver(Executor):
    """Asks for approval of its input; yields the answer when it comes."""

    @handler
    async def on_int(self, amount: int, ctx: Ctx) -> None:
        ctx.set_state("asked", amount)
        await ctx.request_info(Question("approve?", amount), int)

    @response_handler
    async def on_answer(self, original_request: Question, answer: int, ctx: Ctx) -> None:
        await ctx.yield_output(
            [self.id, ctx.superstep, original_request.amount, answer, ctx.get_state("asked")]
        )


def hitl_workflow() -> Workflow:
    """s -> approver, which asks a human and yields the answer."""
    s, approver = Spread("s"), Approver("approver")
    return (
        WorkflowBuilder(start_executor=s, name="conformance-hitl")
        .add_state("asked", initial=0)
        .add_edge(s, approver)
        .build()
    )


class Reviewer(Executor):
    """Asks for a review of its int input; yields every message and response it handles."""

    @handler
    async def on_int(self, x: int, ctx: Ctx) -> None:
        await ctx.request_info(Question("review", x), str)

    @handler
    async def on_str(self, text: str, ctx: Ctx) -> None:
        await ctx.yield_output([self.id, ctx.superstep, "message", text])

    @response_handler
    async def on_review(self, original_request: Question, verdict: str, ctx: Ctx) -> None:
        await ctx.yield_output([self.id, ctx.superstep, "response", verdict])


class Nudge(Executor):
    @handler
    async def on_int(self, x: int, ctx: Ctx) -> None:
        await ctx.send_message(f"nudge {x}")


def review_workflow() -> Workflow:
    """s -> fan-out [r, p]; p -> r. r asks a human in superstep 2 while p's message to r
    is on its way (delivered in superstep 3)."""
    s, r, p = Spread("s"), Reviewer("r"), Nudge("p")
    return (
        WorkflowBuilder(start_executor=s, name="conformance-review")
        .add_fan_out_edges(s, [r, p])
        .add_edge(p, r)
        .build()
    )


def subworkflow_hitl_workflow() -> Workflow:
    """s -> sub -> out, where sub is a WorkflowExecutor running the approver of
    ``hitl_workflow``: its request crosses the sub-workflow boundary into this run."""
    approver = Approver("approver")
    inner = (
        WorkflowBuilder(start_executor=approver, name="conformance-hitl-inner")
        .add_state("asked", initial=0)
        .build()
    )
    s, sub, out = Spread("s"), WorkflowExecutor(inner, id="sub"), Collect("out")
    return (
        WorkflowBuilder(start_executor=s, name="conformance-subworkflow-hitl")
        .add_edge(s, sub)
        .add_edge(sub, out)
        .build()
    )


# -- rule 15: determinism ---------------------------------------------------------------------
class Worker(Executor):
    """Sleeps (load), draws a seeded number, adds it to ``sum`` and sends it on."""

    def __init__(self, id: str, delay_s: float) -> None:
        super().__init__(id)
        self.delay_s = delay_s

    @handler
    async def on_int(self, x: int, ctx: Ctx) -> None:
        await asyncio.sleep(self.delay_s)
        value = x * 1000 + ctx.rng.randrange(1000)
        ctx.set_state("sum", value)
        ctx.set_state("order", [self.id])
        await ctx.add_event(WorkflowEvent("worked", data=self.id))
        await ctx.send_message({"from": self.id, "value": value})


class Aggregate(Executor):
    @handler
    async def on_list(self, items: list[dict[str, Any]], ctx: Ctx) -> None:
        await ctx.yield_output(
            {
                "superstep": ctx.superstep,
                "items": items,
                "sum": ctx.get_state("sum"),
                "order": ctx.get_state("order"),
                "sources": ctx.source_executor_ids,
            }
        )


def aggregator_workflow(delays: list[float]) -> Workflow:
    """s -> fan-out [w0..wn]; fan-in [w0..wn] -> agg. Workers sleep ``delays`` (load)."""
    s = Spread("s")
    workers = [Worker(f"w{i}", d) for i, d in enumerate(delays)]
    agg = Aggregate("agg")
    return (
        WorkflowBuilder(start_executor=s, name="conformance-aggregator")
        .add_state("sum", initial=0, reducer=add)
        .add_state("order", initial=[], reducer=extend)
        .add_fan_out_edges(s, workers)
        .add_fan_in_edges(workers, agg)
        .build()
    )
