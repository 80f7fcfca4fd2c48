"""Scenarios of message flow: supersteps, activation, canonical order, parallelism,
routing and fan-in (rules 1, 2, 3, 4, 9, 10)."""

from __future__ import annotations

import random

from runtime.checkpoint import checkpoint_id_for
from runtime.engine import RunStatus
from runtime.errors import StalledError
from runtime.testing.conformance._harness import SAME_PROCESS, RuntimeHarness
from runtime.testing.conformance._registry import (
    activations,
    check,
    check_equal,
    events,
    run,
    scenario,
)
from runtime.testing.conformance._workflows import (
    ParallelProbe,
    SignalProbe,
    blocked_workflow,
    burst_workflow,
    fan_in_workflow,
    parallel_workflow,
    routing_workflow,
    staged_workflow,
    stall_workflow,
    unroutable_workflow,
)

__all__: list[str] = []


@scenario(1)
async def scenario_delivery_in_next_superstep(h: RuntimeHarness) -> None:
    """The input is delivered in superstep 1; what is sent in k arrives in k+1, fan-in too."""
    result = await run(h, h.build(staged_workflow), 0)
    check_equal(result.status, RunStatus.COMPLETED, "status")
    check_equal(
        result.outputs,
        [["s", 1], ["a", 2, 0], ["b", 2, 0], ["x", 3, 0], ["j", 3, [0, 0]]],
        "outputs ([executor, superstep it ran in, message])",
    )
    check_equal(
        activations(result), {1: ["s"], 2: ["a", "b"], 3: ["x", "j"]}, "activations per superstep"
    )
    check_equal(result.supersteps, 3, "supersteps")


@scenario(2, 3)
async def scenario_one_activation_handles_messages_one_at_a_time(h: RuntimeHarness) -> None:
    """15 messages from 5 senders reach ``t`` in one activation, handled strictly one by one."""
    delays = [0.003, 0.002, 0.001, 0.0, 0.0]
    result = await run(h, h.build(burst_workflow, per_sender=3, delays=delays), 0)
    check_equal(result.status, RunStatus.COMPLETED, "status")
    handled = [o for o in result.outputs if isinstance(o, list) and o[0] == "t"]
    check_equal(
        [o[2] for o in handled],
        [f"w{i}:{j}" for i in range(5) for j in range(3)],
        "messages handled by t, in canonical order",
    )
    check_equal({o[1] for o in handled}, {3}, "superstep t handled them in")
    check_equal(max(o[3] for o in handled), 1, "handlers of t running at once")
    check_equal(activations(result).get(3), ["t"], "activations of superstep 3 (t exactly once)")


@scenario(3, 4)
async def scenario_canonical_order_ignores_completion_order(h: RuntimeHarness) -> None:
    """Messages, outputs and events of a superstep follow the executor order, not the
    order in which executors finish (reversed here, then random)."""
    rng = random.Random(3)
    schedules = [[0.004, 0.003, 0.002, 0.001, 0.0]]
    schedules += [[rng.uniform(0, 0.003) for _ in range(5)] for _ in range(3)]
    for delays in schedules:
        result = await run(h, h.build(burst_workflow, per_sender=2, delays=delays), 0)
        check_equal(result.status, RunStatus.COMPLETED, "status")
        workers = [f"w{i}" for i in range(5)]
        check_equal(result.outputs[1:6], workers, f"outputs of superstep 2 (delays {delays})")
        check_equal(
            [o[2] for o in result.outputs[6:]],
            [f"{w}:{i}" for w in workers for i in range(2)],
            f"messages delivered to t (delays {delays})",
        )
        check_equal(
            [e.data for e in events(result, "tick")], workers, f"custom events (delays {delays})"
        )


@scenario(4, needs=[SAME_PROCESS])
async def scenario_parallel_up_to_the_limit(h: RuntimeHarness) -> None:
    """Executors of one superstep run at once, as many as the concurrency limit allows."""
    n = 6
    target = n if h.max_concurrency is None else min(n, h.max_concurrency)
    probe = ParallelProbe(target)
    result = await run(h, h.build(parallel_workflow, n=n, probe=probe), 0)
    check_equal(result.status, RunStatus.COMPLETED, "status")
    check_equal(probe.peak, target, "activations seen running at the same time")
    check_equal(result.outputs[1:], [f"p{i}" for i in range(n)], "outputs in executor order")


@scenario(4, 1, needs=[SAME_PROCESS], min_concurrency=2)
async def scenario_blocked_executor_delays_only_the_barrier(h: RuntimeHarness) -> None:
    """While ``slow`` blocks, its peers of the superstep finish; the next superstep waits
    for ``slow`` (the barrier), nothing else does."""
    probe = SignalProbe()
    result = await run(h, h.build(blocked_workflow, probe=probe), 0)
    check_equal(result.status, RunStatus.COMPLETED, "status")
    check_equal(
        result.outputs,
        [["s", 1], ["slow", 2, ["f1", "f2"]], ["d", 3, True], ["d", 3, True]],
        "outputs (slow saw its peers finish; d saw slow finish)",
    )


@scenario(9)
async def scenario_routing_is_deterministic(h: RuntimeHarness) -> None:
    """Switch-case takes the first matching case, multi-selection keeps the declared
    target order without duplicates, conditions filter; the same on every run."""
    expected = {
        "fizz": [0, 3, 6, 9],
        "even": [2, 4, 8],
        "other": [1, 5, 7],
        "m1": [0, 1, 4, 5, 8, 9],
        "m2": [0, 3, 4, 7, 8],
        "big": [7, 8, 9],
    }
    for _ in range(3):
        result = await run(h, h.build(routing_workflow), 10)
        check_equal(result.status, RunStatus.COMPLETED, "status")
        check_equal(
            result.outputs,
            [[t, 2, x, ["s"]] for t, xs in expected.items() for x in xs],
            "deliveries per target, in executor order then send order",
        )
        check_equal(events(result, "message_dropped"), [], "dropped messages")


@scenario(9, 7)
async def scenario_unroutable_messages_are_reported(h: RuntimeHarness) -> None:
    """A message no edge accepts is a ``message_dropped`` event with a reason; in strict
    mode it fails the run and its superstep commits nothing."""
    result = await run(h, h.build(unroutable_workflow), 5)
    check_equal(result.status, RunStatus.COMPLETED, "status")
    check_equal(result.outputs, [["s", 1], ["a", 2, 5], ["b", 3, 5, ["a"]]], "outputs")
    dropped = events(result, "message_dropped")
    check_equal(
        [(e.superstep, e.executor_id, e.data) for e in dropped],
        [(1, "s", "no handler takes a string"), (1, "s", 6)],
        "dropped messages (superstep, sender, message)",
    )
    reasons = [str(e.details.get("reason")) for e in dropped]
    check("str" in reasons[0], f"reason names the unaccepted type: {reasons[0]!r}")
    check("'b'" in reasons[1], f"reason names the unconnected target: {reasons[1]!r}")

    storage = h.checkpoint_storage()
    strict = await run(
        h,
        h.build(unroutable_workflow, strict=True),
        5,
        run_id="strict",
        checkpoint_storage=storage,
    )
    check_equal(strict.status, RunStatus.FAILED, "strict status")
    check_equal(strict.error and strict.error.type, "UndeliverableMessageError", "strict error")
    check_equal(strict.outputs, [], "strict outputs (superstep 1 committed nothing)")
    check_equal(await storage.list(run_id="strict"), [], "strict checkpoints")


@scenario(10, 1, 13)
async def scenario_fan_in_strands_nothing(h: RuntimeHarness) -> None:
    """Several messages per source, sources contributing in different supersteps: every
    message is delivered once, in group-source order then send order; partial buffers
    wait at the barrier and are part of the checkpoint."""
    storage = h.checkpoint_storage()
    result = await run(h, h.build(fan_in_workflow), 0, run_id="fan-in", checkpoint_storage=storage)
    check_equal(result.status, RunStatus.COMPLETED, "status")
    joined = [o[:5] for o in result.outputs if o[0] == "j"]
    round1 = ["c1.0", "c1.1", "a1.0", "a1.1", "a1.2", "b1.0"]
    round2 = ["c2.0", "a2.0", "a2.1", "b2.0", "b2.1"]
    check_equal(
        joined,
        [
            ["j", 3, round1, [m[0] for m in round1], 6],
            ["j", 6, round2, [m[0] for m in round2], 11],
        ],
        "fan-in lists [j, superstep, items, their sources, messages committed as sent]",
    )
    check_equal(result.supersteps, 6, "supersteps")
    partial = await storage.load(checkpoint_id_for("fan-in", 4))
    buffered = {
        src: [m.data for m in msgs]
        for buf in partial.state.fan_in.values()
        for src, msgs in buf.items()
    }
    check_equal(buffered, {"a": ["a2.0"], "c": ["c2.0"]}, "fan-in buffer in checkpoint 4")
    final = await storage.load(checkpoint_id_for("fan-in", 6))
    check_equal(final.state.fan_in, {}, "fan-in buffers at the end")


@scenario(10, 11)
async def scenario_unfillable_fan_in_stalls_with_diagnosis(h: RuntimeHarness) -> None:
    """A fan-in some sources can never fill ends ``stalled``, naming the fan-in, the
    missing sources and why each never sent."""
    result = await run(h, h.build(stall_workflow), 1)
    check_equal(result.status, RunStatus.STALLED, "status")
    check_equal(result.error and result.error.type, "StalledError", "error type")
    text = result.error.message if result.error else ""
    for part in (
        "fan-in into 'j'",
        "messages from ['a']",
        "nothing from ['b', 'c', 'd']",
        "'b' was last activated in superstep 2 and sent nothing",
        "'c' was never activated",
        "'d' failed in superstep 2 and was skipped",
    ):
        check(part in text, f"diagnosis mentions {part!r}: {text!r}")
    try:
        result.raise_for_status()
    except StalledError:
        pass
    else:
        check(False, "raise_for_status() raises StalledError for a stalled run")
