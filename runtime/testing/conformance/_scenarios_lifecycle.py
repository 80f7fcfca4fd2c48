"""Scenarios of a run's life: termination, checkpoints, human input, determinism
and cycles (rules 11, 13, 14, 15, 16)."""

from __future__ import annotations

import random

from runtime.checkpoint import CheckpointStorage, checkpoint_id_for
from runtime.engine import SCHEMA_VERSION, Checkpoint, RunStatus
from runtime.errors import CheckpointError, RequestError, WorkflowValidationError
from runtime.inprocess import InProcessRuntime
from runtime.testing.conformance._harness import RuntimeHarness, WorkflowFactory
from runtime.testing.conformance._registry import (
    check,
    check_equal,
    events,
    outputs,
    run,
    scenario,
    timed_outputs,
)
from runtime.testing.conformance._workflows import (
    Question,
    aggregator_workflow,
    fan_in_workflow,
    hitl_workflow,
    loop_workflow,
    mutual_workflow,
    pingpong_workflow,
    review_workflow,
    staged_workflow,
    subworkflow_hitl_workflow,
)
from runtime.workflow import RequestInfo, RunResult

__all__: list[str] = []


@scenario(11, 16)
async def scenario_loop_exits_on_condition(h: RuntimeHarness) -> None:
    """A cycle with a conditional exit runs until the condition holds, then completes."""
    result = await run(h, h.build(loop_workflow, max_supersteps=None), {"n": 0, "limit": 5})
    check_equal(result.status, RunStatus.COMPLETED, "status")
    check_equal(result.outputs, [["done", 11, 5]], "outputs")
    check_equal(result.supersteps, 11, "supersteps")
    check_equal(result.pending_requests, [], "pending requests")
    exact = await run(h, h.build(loop_workflow, max_supersteps=11), {"n": 0, "limit": 5})
    check_equal(exact.status, RunStatus.COMPLETED, "status when the last superstep is the bound")
    short = await run(h, h.build(loop_workflow, max_supersteps=10), {"n": 0, "limit": 5})
    check_equal(short.status, RunStatus.FAILED, "status one superstep short of the exit")
    check_equal(short.error and short.error.type, "ConvergenceError", "error one superstep short")


@scenario(11, 16)
async def scenario_livelock_is_reported(h: RuntimeHarness) -> None:
    """A cycle that repeats the same messages and state fails at ``max_supersteps`` with a
    convergence error that reports the livelock and its period."""
    result = await run(h, h.build(pingpong_workflow, max_supersteps=12, step=0), 1)
    check_equal(result.status, RunStatus.FAILED, "status")
    check_equal(result.error and result.error.type, "ConvergenceError", "error type")
    text = result.error.message if result.error else ""
    check("max_supersteps=12" in text, text)
    check("livelock detected" in text and "every 2 superstep(s)" in text, text)
    check_equal(result.supersteps, 12, "supersteps")


@scenario(16, 11)
async def scenario_cycles_are_bounded_by_max_supersteps(h: RuntimeHarness) -> None:
    """A cycle that never repeats fails at ``max_supersteps`` without a livelock report;
    an unbounded cycle without exit is refused when the workflow is built."""
    result = await run(h, h.build(pingpong_workflow, max_supersteps=9, step=1), 1)
    check_equal(result.status, RunStatus.FAILED, "status")
    check_equal(result.error and result.error.type, "ConvergenceError", "error type")
    text = result.error.message if result.error else ""
    check("max_supersteps=9" in text and "livelock" not in text, text)
    check_equal(result.supersteps, 9, "supersteps")
    try:
        h.build(pingpong_workflow, max_supersteps=None)
    except WorkflowValidationError as exc:
        check("has no exit" in str(exc), str(exc))
    else:
        check(False, "an unbounded cycle without exit is refused at build time")


@scenario(16, 1)
async def scenario_mutual_dependency_completes(h: RuntimeHarness) -> None:
    """Two executors that each need the other's value exchange messages across a barrier:
    no lock, no wait, no deadlock."""
    result = await run(h, h.build(mutual_workflow), 3)
    check_equal(result.status, RunStatus.COMPLETED, "status")
    check_equal(result.outputs, [["s", 1], ["a", 3, 9], ["b", 3, 9]], "outputs")


@scenario(13, 15, 10)
async def scenario_checkpoint_restore_gives_same_trace(h: RuntimeHarness) -> None:
    """Restored from any barrier into a fresh workflow after a restart, a run (state,
    fan-in buffers, executor snapshots, seeded random) ends with the trace of a run
    that was never interrupted."""
    storage = h.checkpoint_storage()
    full = await run(
        h, h.build(fan_in_workflow), 0, run_id="full", seed=11, checkpoint_storage=storage
    )
    check_equal(full.status, RunStatus.COMPLETED, "status")
    infos = await storage.list(run_id="full")
    check_equal([i.superstep for i in infos], list(range(1, full.supersteps + 1)), "checkpoints")
    storage = await h.restart(storage)
    for k in range(1, full.supersteps):
        resumed = await run(
            h,
            h.build(fan_in_workflow),
            checkpoint_id=checkpoint_id_for("full", k),
            checkpoint_storage=storage,
        )
        check_equal(resumed.status, RunStatus.COMPLETED, f"status resumed from {k}")
        check_equal(resumed.trace_hash, full.trace_hash, f"trace hash resumed from {k}")
        check_equal(resumed.trace, full.trace[k:], f"trace resumed from {k}")
        check_equal(
            timed_outputs(resumed),
            [o for o in timed_outputs(full) if (o[0] or 0) > k],
            f"outputs resumed from {k}",
        )


@scenario(13)
async def scenario_checkpoints_are_versioned_and_bound_to_their_graph(h: RuntimeHarness) -> None:
    """One checkpoint per barrier, with schema version and graph signature; another
    graph refuses to restore it."""
    storage = h.checkpoint_storage()
    wf = h.build(staged_workflow)
    result = await run(h, wf, 0, run_id="staged", checkpoint_storage=storage)
    infos = await storage.list(run_id="staged")
    check_equal([i.superstep for i in infos], [1, 2, 3], "one checkpoint per barrier")
    cp = await storage.load(checkpoint_id_for("staged", 3))
    data = cp.to_json()
    check_equal(
        (data["schema_version"], data["graph_signature"]),
        (SCHEMA_VERSION, wf.signature),
        "schema version and graph signature",
    )
    check_equal(cp.state.trace_hash, result.trace_hash, "trace hash in the last checkpoint")
    try:
        Checkpoint.from_json({**data, "schema_version": SCHEMA_VERSION + 1})
    except CheckpointError:
        pass
    else:
        check(False, "a checkpoint of an unknown schema version is refused")
    try:
        await run(
            h,
            h.build(mutual_workflow),
            checkpoint_id=checkpoint_id_for("staged", 2),
            checkpoint_storage=storage,
        )
    except CheckpointError as exc:
        check("different graph" in str(exc), str(exc))
    else:
        check(False, "a checkpoint of another graph is refused")


@scenario(13, 15)
async def scenario_checkpoints_move_between_runtimes(h: RuntimeHarness) -> None:
    """A checkpoint of the reference runtime (in-process, one activation at a time)
    restores on this runtime and the other way round, with the same trace."""
    reference = InProcessRuntime(max_concurrency=1)
    storage = h.checkpoint_storage()
    ref = await h.build(fan_in_workflow).run(
        0, runtime=reference, run_id="ref", seed=5, checkpoint_storage=storage
    )
    mine = await run(
        h, h.build(fan_in_workflow), 0, run_id="mine", seed=5, checkpoint_storage=storage
    )
    check_equal(mine.trace_hash, ref.trace_hash, "trace hash of this runtime vs the reference")
    here = await run(
        h,
        h.build(fan_in_workflow),
        checkpoint_id=checkpoint_id_for("ref", 4),
        checkpoint_storage=storage,
    )
    check_equal(here.trace_hash, ref.trace_hash, "reference checkpoint restored here")
    back = await h.build(fan_in_workflow).run(
        checkpoint_id=checkpoint_id_for("mine", 4), runtime=reference, checkpoint_storage=storage
    )
    check_equal(back.trace_hash, ref.trace_hash, "this runtime's checkpoint restored on reference")


def approval_asked(paused: RunResult, *, by: str) -> RequestInfo:
    """The one request of a run of ``hitl_workflow``'s approver paused after superstep 2
    (``by``: the executor the request belongs to), checked with its event."""
    check_equal(paused.status, RunStatus.AWAITING_INPUT, "status")
    check_equal(paused.outputs, [["s", 1]], "outputs before the answer")
    check_equal(len(paused.pending_requests), 1, "pending requests")
    req = paused.pending_requests[0]
    check_equal(
        (req.executor_id, req.data, req.response_type, req.superstep),
        (by, Question("approve?", 250), "int", 2),
        "the pending request",
    )
    check_equal([e.request_id for e in events(paused, "request_info")], [req.request_id], "events")
    return req


async def approve(
    h: RuntimeHarness,
    factory: WorkflowFactory,
    paused: RunResult,
    req: RequestInfo,
    storage: CheckpointStorage,
) -> RunResult:
    """Answer ``req`` with 1 from the checkpoint ``paused`` ended at, on a fresh
    workflow; the run completes with no request left."""
    done = await run(
        h,
        h.build(factory),
        checkpoint_id=paused.last_checkpoint_id,
        checkpoint_storage=storage,
        responses={req.request_id: 1},
    )
    check_equal(done.status, RunStatus.COMPLETED, "status after the answer")
    check_equal(done.pending_requests, [], "pending requests after the answer")
    return done


@scenario(14, 11, 13)
async def scenario_human_in_the_loop_survives_restart(h: RuntimeHarness) -> None:
    """A request pauses the run (``awaiting_input``), survives a checkpoint and a restart,
    and its response reaches the response handler in the next superstep."""
    storage = h.checkpoint_storage()
    paused = await run(h, h.build(hitl_workflow), 250, run_id="hitl", checkpoint_storage=storage)
    req = approval_asked(paused, by="approver")
    cp = await storage.load(paused.last_checkpoint_id or "")
    check_equal(
        (cp.state.status, list(cp.state.pending)),
        (RunStatus.AWAITING_INPUT, [req.request_id]),
        "checkpoint at the pause",
    )

    storage = await h.restart(storage)
    for bad, why in (({req.request_id: "yes"}, "wrong type"), ({"nope": 1}, "unknown id")):
        try:
            await run(
                h,
                h.build(hitl_workflow),
                checkpoint_id=paused.last_checkpoint_id,
                checkpoint_storage=storage,
                responses=bad,
            )
        except RequestError:
            pass
        else:
            check(False, f"a response with a {why} is refused")
    done = await approve(h, hitl_workflow, paused, req, storage)
    check_equal(done.outputs, [["approver", 3, 250, 1, 250]], "outputs after the answer")


@scenario(14, 13)
async def scenario_subworkflow_request_reaches_the_parent(h: RuntimeHarness) -> None:
    """A request made inside a sub-workflow pauses the parent run as the sub-workflow
    executor's request, survives a checkpoint and a restart, and its response resumes
    the nested run, whose outputs flow on along the parent's edges."""
    storage = h.checkpoint_storage()
    wf = h.build(subworkflow_hitl_workflow)
    paused = await run(h, wf, 250, run_id="sub-hitl", checkpoint_storage=storage)
    req = approval_asked(paused, by="sub")  # raised in the parent by the sub-workflow executor

    storage = await h.restart(storage)
    done = await approve(h, subworkflow_hitl_workflow, paused, req, storage)
    # the nested run resumed in its superstep 2; its output reaches out as a message
    check_equal(
        done.outputs, [["out", 4, ["approver", 2, 250, 1, 250], ["sub"]]], "outputs after it"
    )


@scenario(3, 14)
async def scenario_responses_come_before_messages(h: RuntimeHarness) -> None:
    """A response and a message reaching one executor in one superstep: the external
    input is handled first, whatever was queued earlier."""
    storage = h.checkpoint_storage()
    paused = await run(h, h.build(review_workflow), 7, run_id="review", checkpoint_storage=storage)
    check_equal(paused.status, RunStatus.AWAITING_INPUT, "status")
    check_equal(paused.outputs, [["s", 1], ["r", 3, "message", "nudge 7"]], "outputs")
    rid = paused.pending_requests[0].request_id
    storage = await h.restart(storage)
    late = await run(
        h,
        h.build(review_workflow),
        checkpoint_id=paused.last_checkpoint_id,
        checkpoint_storage=storage,
        responses={rid: "ok"},
    )
    check_equal(timed_outputs(late), [(4, "r", ["r", 4, "response", "ok"])], "late answer")
    early = await run(
        h,
        h.build(review_workflow),
        checkpoint_id=checkpoint_id_for("review", 2),
        checkpoint_storage=storage,
        responses={rid: "ok"},
    )
    check_equal(
        early.outputs,
        [["r", 3, "response", "ok"], ["r", 3, "message", "nudge 7"]],
        "answer given while the nudge was in flight: response first",
    )


def _fingerprint(result: RunResult) -> tuple[str, str, tuple[str, ...], tuple[object, ...]]:
    worked = tuple(e.data for e in events(result, "worked"))
    return outputs(result), result.trace_hash, tuple(result.trace), worked


@scenario(15, 3, 4)
async def scenario_aggregator_is_byte_identical_over_50_runs(h: RuntimeHarness) -> None:
    """Workers with random delays feed an aggregator: 50 runs give byte-identical
    outputs, events and trace, equal to the reference runtime's."""
    n = 6
    baseline = await h.build(aggregator_workflow, delays=[0.0] * n).run(
        1, runtime=InProcessRuntime(max_concurrency=1), seed=3
    )
    check_equal(baseline.status, RunStatus.COMPLETED, "reference status")
    expected = _fingerprint(baseline)
    for i in range(50):
        rng = random.Random(i)
        delays = [rng.uniform(0, 0.002) for _ in range(n)]
        result = await run(h, h.build(aggregator_workflow, delays=delays), 1, seed=3)
        check_equal(_fingerprint(result), expected, f"run {i} (delays {delays})")


@scenario(15)
async def scenario_seeded_random_is_reproducible(h: RuntimeHarness) -> None:
    """``ctx.random()`` depends on the run's seed, the superstep and the executor only."""
    delays = [0.0] * 4
    one = await run(h, h.build(aggregator_workflow, delays=delays), 1, seed=1)
    again = await run(h, h.build(aggregator_workflow, delays=delays), 1, seed=1)
    other = await run(h, h.build(aggregator_workflow, delays=delays), 1, seed=2)
    check_equal(outputs(again), outputs(one), "same seed, same outputs")
    check(outputs(other) != outputs(one), "another seed draws other numbers")
    values = [item["value"] for item in one.outputs[-1]["items"]]
    check_equal(len(set(values)), len(values), f"each executor draws its own numbers: {values}")
