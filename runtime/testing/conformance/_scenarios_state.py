"""Scenarios of shared state and failure: visibility, merge, the atomic barrier,
exactly-once effects and failure policies (rules 5, 6, 7, 8, 12)."""

from __future__ import annotations

import asyncio
import random

from runtime.checkpoint import CheckpointInfo, CheckpointStorage, checkpoint_id_for
from runtime.engine import EMPTY_TRACE_HASH, AttemptError, Checkpoint, RunStatus
from runtime.errors import CheckpointError, StateConflictError
from runtime.testing.conformance._harness import SAME_PROCESS, RuntimeHarness
from runtime.testing.conformance._registry import (
    ConformanceFailure,
    check,
    check_equal,
    events,
    run,
    scenario,
    timed_outputs,
)
from runtime.testing.conformance._workflows import (
    GUARD_S,
    Declined,
    SignalProbe,
    counter_workflow,
    declining_workflow,
    failing_start_workflow,
    failure_workflow,
    hang_workflow,
    policy_workflow,
    retry_workflow,
    staged_workflow,
    timeout_workflow,
    visibility_workflow,
)
from runtime.workflow import RunResult, RunStream, WorkflowEvent

__all__: list[str] = []


@scenario(5)
async def scenario_read_your_writes_and_snapshot_isolation(h: RuntimeHarness) -> None:
    """A writer reads its own writes at once (reducer keys folded); a reader in the same
    superstep, running after the write, still sees the last barrier; k+1 sees the merge.

    With ``same_process`` the reader is held back until the writer has written; without
    it the reads must hold in whatever order the runtime runs the two."""
    probe = SignalProbe() if SAME_PROCESS in h.capabilities else None
    result = await run(h, h.build(visibility_workflow, probe=probe), 0)
    check_equal(result.status, RunStatus.COMPLETED, "status")
    check_equal(
        result.outputs,
        [
            ["s", 1],
            ["w", 2, [0, 0, 1, 7, "absent"]],
            ["r", 2, [0, 0, "here"]],
            ["c", 3, [1, 7, "w", "absent"], [0, 0]],
        ],
        "reads: writer [x, total, x, total, gone] / reader [x, total, gone] / "
        "next superstep [x, total, mine, gone]",
    )


@scenario(6, 4)
async def scenario_reducer_counter_is_exact(h: RuntimeHarness) -> None:
    """20 executors add 1 three times each to one key in one superstep: the reducer
    gives exactly 60, and an order-sensitive reducer folds in canonical order."""
    rng = random.Random(6)
    ids = [f"inc{i}" for i in range(20)]
    for attempt in range(2):
        delays = [rng.uniform(0, 0.002) for _ in range(20)]
        result = await run(h, h.build(counter_workflow, n=20, times=3, delays=delays), 0)
        check_equal(result.status, RunStatus.COMPLETED, f"status (run {attempt})")
        check_equal(
            result.outputs[-1],
            ["report", 3, [60, ids], ids],
            "report [superstep, [count, log], fan-in list]",
        )


@scenario(6, 7)
async def scenario_conflicting_writers_commit_nothing(h: RuntimeHarness) -> None:
    """Read-modify-write of a key without reducer by 20 executors is a
    ``StateConflictError`` naming key and writers; the superstep commits nothing."""
    storage = h.checkpoint_storage()
    wf = h.build(counter_workflow, n=20, times=3, use_reducer=False)
    result = await run(h, wf, 0, run_id="conflict", checkpoint_storage=storage)
    check_equal(result.status, RunStatus.FAILED, "status")
    check_equal(result.error and result.error.type, "StateConflictError", "error type")
    text = result.error.message if result.error else ""
    writers = ", ".join(repr(f"inc{i}") for i in range(20))
    check(f"state key 'count' was written by {writers} in superstep 2" in text, text)
    check_equal(result.outputs, [["s", 1]], "outputs (nothing of superstep 2)")
    check_equal(len(events(result, "state_conflict")), 1, "state_conflict events")
    infos = await storage.list(run_id="conflict")
    check_equal([i.superstep for i in infos], [1], "checkpoints (none for superstep 2)")
    check_equal(result.last_checkpoint_id, checkpoint_id_for("conflict", 1), "last checkpoint")
    cp = await storage.load(checkpoint_id_for("conflict", 1))
    check_equal(cp.state.state, {"count": 0, "log": []}, "committed state")
    check_equal(cp.state.fan_in, {}, "fan-in buffers")
    try:
        result.raise_for_status()
    except StateConflictError:
        pass
    else:
        check(False, "raise_for_status() raises StateConflictError")


@scenario(7, 12)
async def scenario_failed_superstep_commits_nothing(h: RuntimeHarness) -> None:
    """When one executor fails (policy ``fail``), its superstep's outputs, events, state,
    requests, messages and fan-in contributions from every executor are discarded."""
    storage = h.checkpoint_storage()
    result = await run(h, h.build(failure_workflow), 4, run_id="fail", checkpoint_storage=storage)
    check_equal(result.status, RunStatus.FAILED, "status")
    error = result.error
    check_equal(error and (error.type, error.executor_id), ("ExecutorFailedError", "boom"), "error")
    check("'boom' failed in superstep 2 after 1 attempt" in (error.message if error else ""), "msg")
    check_equal(result.outputs, [["s", 1]], "outputs")
    check_equal(result.pending_requests, [], "pending requests")
    check_equal(events(result, "busy"), [], "custom events of the failed superstep")
    check_equal(
        [e.executor_id for e in events(result, "executor_failed")], ["boom"], "executor_failed"
    )
    check_equal([i.superstep for i in await storage.list(run_id="fail")], [1], "checkpoints")
    cp = await storage.load(checkpoint_id_for("fail", 1))
    check_equal(
        (cp.state.state, cp.state.fan_in, cp.state.pending),
        ({"busy": 0}, {}, {}),
        "committed state, fan-in buffers, pending requests",
    )


def _ended_in(result: RunResult, k: int, what: str) -> None:
    """``result`` is of a run whose superstep ``k`` failed and committed nothing."""
    check_equal(result.status, RunStatus.FAILED, f"{what}: status")
    check_equal(result.error and result.error.superstep, k, f"{what}: superstep of the error")
    check_equal(result.supersteps, k, f"{what}: supersteps")
    closing = [(e.type, e.superstep) for e in result.events if e.type in ("failed", "status")]
    check_equal(closing, [("failed", k), ("status", k)], f"{what}: closing events")
    check_equal(len(result.trace), k - 1, f"{what}: trace (the committed supersteps)")


@scenario(7, 12)
async def scenario_failed_run_ends_in_the_superstep_that_failed(h: RuntimeHarness) -> None:
    """A run whose superstep k fails names k in its error, in the event that reports the
    failure, in its ``failed`` and ``status`` events and as its ``supersteps``; its trace
    and trace hash are those of the supersteps that committed before k (the last
    checkpoint's hash, or the empty trace's when k is 1)."""
    storage = h.checkpoint_storage()
    failed = await run(
        h, h.build(failure_workflow), 4, run_id="fails-in-2", checkpoint_storage=storage
    )
    _ended_in(failed, 2, "executor failure")
    check_equal(
        [e.superstep for e in events(failed, "executor_failed")], [2], "executor_failed event"
    )
    cp = await storage.load(checkpoint_id_for("fails-in-2", 1))
    check_equal(failed.trace_hash, cp.state.trace_hash, "trace hash: the last checkpoint's")
    check_equal(failed.trace, [events(failed, "superstep_completed")[0].details["digest"]], "trace")

    wf = h.build(counter_workflow, n=2, times=1, use_reducer=False)
    conflict = await run(h, wf, 0, run_id="conflicts-in-2", checkpoint_storage=storage)
    _ended_in(conflict, 2, "state conflict")
    check_equal(
        [e.superstep for e in events(conflict, "state_conflict")], [2], "state_conflict event"
    )
    cp = await storage.load(checkpoint_id_for("conflicts-in-2", 1))
    check_equal(conflict.trace_hash, cp.state.trace_hash, "trace hash: the last checkpoint's")

    first = await run(h, h.build(failing_start_workflow), 1, run_id="fails-in-1")
    _ended_in(first, 1, "failure in superstep 1")
    check_equal(
        first.trace_hash, EMPTY_TRACE_HASH, "trace hash of a run nothing of which committed"
    )


class FailingStorage:
    """Delegates to ``inner`` but refuses to save the checkpoint of superstep ``fail_at``."""

    def __init__(self, inner: CheckpointStorage, fail_at: int) -> None:
        self.inner = inner
        self.fail_at = fail_at

    async def save(self, checkpoint: Checkpoint) -> None:
        if checkpoint.superstep == self.fail_at:
            raise CheckpointError(f"injected: cannot save superstep {self.fail_at}")
        await self.inner.save(checkpoint)

    async def load(self, checkpoint_id: str) -> Checkpoint:
        return await self.inner.load(checkpoint_id)

    async def list(
        self, *, run_id: str | None = None, workflow: str | None = None
    ) -> list[CheckpointInfo]:
        return await self.inner.list(run_id=run_id, workflow=workflow)


@scenario(7, 13, needs=[SAME_PROCESS])
async def scenario_unsaved_superstep_publishes_nothing(h: RuntimeHarness) -> None:
    """When the checkpoint of a superstep cannot be saved, none of its outputs reach the
    stream; resumed from the last saved barrier, every output is seen exactly once."""
    storage = FailingStorage(h.checkpoint_storage(), fail_at=2)
    stream = h.build(staged_workflow).run(
        0, stream=True, runtime=h.make_runtime(), run_id="torn", checkpoint_storage=storage
    )
    seen: list[WorkflowEvent] = []
    status: RunStatus | None = None
    try:
        async for ev in stream:
            seen.append(ev)
        status = (await stream).status
    except CheckpointError:
        pass
    check(status is not RunStatus.COMPLETED, "a run whose checkpoint failed is not completed")
    early = [(e.superstep, e.data) for e in seen if e.type == "output"]
    check_equal(early, [(1, ["s", 1])], "outputs streamed before the failed checkpoint")
    check_equal([i.superstep for i in await storage.list(run_id="torn")], [1], "checkpoints")

    resumed = await run(
        h,
        h.build(staged_workflow),
        checkpoint_id=checkpoint_id_for("torn", 1),
        checkpoint_storage=await h.restart(storage.inner),
    )
    reference = await run(h, h.build(staged_workflow), 0)
    check_equal(
        early + [(s, d) for s, _, d in timed_outputs(resumed)],
        [(s, d) for s, _, d in timed_outputs(reference)],
        "outputs across the failure and the resumed run",
    )


async def _result(stream: RunStream) -> RunResult:
    return await stream


@scenario(7, 13, needs=[SAME_PROCESS])
async def scenario_cancel_commits_nothing(h: RuntimeHarness) -> None:
    """Cancelling while an executor hangs ends the run ``cancelled`` at the last barrier;
    resumed from it, the run ends exactly like one never interrupted."""
    probe = SignalProbe()
    storage = h.checkpoint_storage()
    stream = h.build(hang_workflow, probe=probe).run(
        0, stream=True, runtime=h.make_runtime(), run_id="cancel", checkpoint_storage=storage
    )
    waiter = asyncio.ensure_future(_result(stream))
    await probe.wait("started")
    stream.cancel()
    # wait without cancelling the waiter ourselves: only stream.cancel() may end the run
    done, _ = await asyncio.wait({waiter}, timeout=GUARD_S)
    if not done:
        waiter.cancel()
        check(False, f"cancel() did not end the run within {GUARD_S}s")
    cancelled = waiter.result()
    check_equal(cancelled.status, RunStatus.CANCELLED, "status")
    check_equal(cancelled.error and cancelled.error.type, "RunCancelledError", "error type")
    check_equal(cancelled.outputs, [["s", 1], ["a", 2, 1]], "outputs (nothing of superstep 3)")
    check_equal(cancelled.last_checkpoint_id, checkpoint_id_for("cancel", 2), "last checkpoint")
    check_equal([i.superstep for i in await storage.list(run_id="cancel")], [1, 2], "checkpoints")

    reference = await run(h, h.build(hang_workflow), 0, run_id="reference")
    storage = await h.restart(storage)
    resumed = await run(
        h,
        h.build(hang_workflow),
        checkpoint_id=checkpoint_id_for("cancel", 2),
        checkpoint_storage=storage,
    )
    check_equal(resumed.status, RunStatus.COMPLETED, "resumed status")
    check_equal(resumed.trace_hash, reference.trace_hash, "trace hash of the resumed run")
    check_equal(
        timed_outputs(resumed),
        [o for o in timed_outputs(reference) if (o[0] or 0) > 2],
        "outputs after the restored barrier",
    )


@scenario(8, 12)
async def scenario_retried_activation_commits_one_attempt(h: RuntimeHarness) -> None:
    """An executor that fails three times after sending, writing, yielding and emitting
    commits exactly the fourth attempt's effects; every attempt saw the same
    idempotency key, random numbers and logical time."""
    storage = h.checkpoint_storage()
    result = await run(
        h, h.build(retry_workflow, failures=3), 5, run_id="retry", checkpoint_storage=storage
    )
    check_equal(result.status, RunStatus.COMPLETED, "status")
    check_equal(
        result.outputs,
        [["s", 1], ["flaky", 2, 4], ["flaky", "distinct", 1, 1, 1, 4], ["down", 3, 4, ["flaky"]]],
        "outputs (attempt 4 only; 1 distinct key/random/time over 4 attempts)",
    )
    check_equal([e.data for e in events(result, "attempt")], [4], "custom events")
    retried = events(result, "executor_retried")
    check_equal(
        [(e.executor_id, e.details.get("attempts")) for e in retried], [("flaky", 4)], "retries"
    )
    cp = await storage.load(checkpoint_id_for("retry", 3))
    check_equal(cp.state.state, {"attempt": 4, "effects": 1}, "committed state")
    check_equal(cp.state.snapshots.get("flaky"), {"handled": 1}, "committed executor snapshot")


@scenario(12)
async def scenario_skip_and_fallback_policies(h: RuntimeHarness) -> None:
    """``skip`` drops a failed activation after its retries; ``fallback`` hands its
    messages to the fallback executor in the next superstep; the run goes on."""
    result = await run(h, h.build(policy_workflow), 3)
    check_equal(result.status, RunStatus.COMPLETED, "status")
    check_equal(
        result.outputs,
        [["s", 1], ["ok", 2, 3], ["sink", 3, 3, ["ok"]], ["backup", 3, 3, ["faller"]]],
        "outputs",
    )
    skipped = events(result, "executor_skipped")
    check_equal(
        [(e.executor_id, e.superstep, e.details.get("attempts")) for e in skipped],
        [("skipper", 2, 2)],
        "skipped",
    )
    check("skipper cannot handle 3" in str(skipped[0].details.get("error")), "skip error")
    fallbacks = events(result, "executor_fallback")
    check_equal(
        [(e.executor_id, e.details.get("fallback")) for e in fallbacks],
        [("faller", "backup")],
        "fallbacks",
    )


@scenario(12)
async def scenario_timeout_policy(h: RuntimeHarness) -> None:
    """An attempt that exceeds ``timeout_s`` fails like any other: retried, then skipped."""
    result = await run(h, h.build(timeout_workflow, timeout_s=0.05), 0)
    check_equal(result.status, RunStatus.COMPLETED, "status")
    check_equal(result.outputs, [["s", 1], ["ok", 2, 0, ["s"]]], "outputs")
    skipped = events(result, "executor_skipped")
    check_equal(
        [(e.executor_id, e.details.get("attempts")) for e in skipped], [("sleeper", 2)], "skipped"
    )
    check("timeout" in str(skipped[0].details.get("error")), f"error: {skipped[0].details}")


@scenario(12)
async def scenario_failures_keep_their_type_traceback_and_attempts(h: RuntimeHarness) -> None:
    """A handler's exception reaches the caller whole: its class (module and name), its
    message, its traceback as formatted where the handler ran (from the handler's frame
    on) and why each failed attempt failed: in the run's error (an
    ``ExecutorFailedError`` whose ``cause`` it is) and in the events that report the
    failed, skipped or retried activation."""
    result = await run(h, h.build(declining_workflow), 1)
    check_equal(result.status, RunStatus.FAILED, "status")
    error = result.error
    if error is None or error.cause is None:
        raise ConformanceFailure(f"the run's error has no cause: {error!r}")
    declined = f"{Declined.__module__}.Declined"
    check_equal(error.type, "ExecutorFailedError", "error type")
    check(
        error.message.endswith(f"after 2 attempt(s): {declined}: card declined on attempt 2"),
        f"the run's error names the handler's exception: {error.message!r}",
    )
    cause = error.cause
    check_equal(
        (cause.type, cause.module, cause.message, cause.executor_id, cause.superstep),
        ("Declined", Declined.__module__, "card declined on attempt 2", "card", 2),
        "the handler's exception",
    )
    check_equal(cause.qualified_type, declined, "qualified type")
    check_equal(
        cause.attempts,
        tuple(
            AttemptError(n, "Declined", f"card declined on attempt {n}", Declined.__module__)
            for n in (1, 2)
        ),
        "why each attempt failed",
    )
    tb = cause.traceback or ""
    check(tb.startswith("Traceback (most recent call last):\n"), f"a traceback: {tb!r}")
    check('raise Declined(f"card declined on attempt {attempt}")' in tb, f"handler frame: {tb}")
    check(tb.endswith(f"{declined}: card declined on attempt 2\n"), f"traceback's end: {tb}")
    check(", in execute_activation\n" not in tb, f"no runtime frames before the handler's: {tb}")
    (failed,) = events(result, "executor_failed")
    check_equal(
        (failed.details.get("type"), failed.details.get("traceback")),
        (declined, cause.traceback),
        "executor_failed: type and traceback",
    )
    check_equal(
        failed.details.get("failures"),
        [a.to_json() for a in cause.attempts],
        "executor_failed: why each attempt failed",
    )
    closing = events(result, "failed")
    check_equal([e.details.get("error") for e in closing], [error.to_json()], "failed event")

    skipped = events(await run(h, h.build(policy_workflow), 3), "executor_skipped")
    check_equal(len(skipped), 1, "executor_skipped events")
    details = skipped[0].details
    check_equal(details.get("type"), "RuntimeError", "executor_skipped: type")
    check(
        'raise RuntimeError(f"{self.id} cannot handle {x}")' in str(details.get("traceback")),
        f"executor_skipped: traceback {details.get('traceback')!r}",
    )
    check_equal(
        details.get("failures"),
        [
            {"attempt": n, "type": "RuntimeError", "module": "builtins", "message": m}
            for n, m in ((1, "skipper cannot handle 3"), (2, "skipper cannot handle 3"))
        ],
        "executor_skipped: why each attempt failed",
    )

    retried = events(await run(h, h.build(retry_workflow, failures=1), 5), "executor_retried")
    check_equal(
        [e.details.get("failures") for e in retried],
        [
            [
                {
                    "attempt": 1,
                    "type": "RuntimeError",
                    "module": "builtins",
                    "message": "attempt 1 fails",
                }
            ]
        ],
        "executor_retried: why the failed attempt failed",
    )
