"""The Dapr coordinator (``RunDriver``) over the in-memory ports: no sidecar, no Redis.

The run store is the production ``RunStore`` over ``InMemoryStateStore``; activations
go out through ``InMemoryBus`` and the test executes them (``execute_activation``) and
delivers the results, lost, late, twice or to a stale coordinator as each test needs.
The same failure cases run against a live sidecar in ``tests/dapr`` (fencing, deadlines,
faults); here they take milliseconds.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from executor_host._coordinator import RunDriver, SteadyClock, recreated
from executor_host._store import RunStore
from executor_host.protocol import ActivationEnvelope, ResultEnvelope
from runtime.engine import Activation, RunStatus
from runtime.ports import PortError, Refused
from runtime.testing.ports import InMemoryBus, InMemoryStateStore
from runtime.workflow import Workflow
from runtime.workflow.driver import execute_activation, new_run_state
from tests.dapr.workflows import big_state, fan, hitl, ping, ticks

STORE = "statestore"
TEMPLATES = {"ping": ping, "fan": fan, "hitl": hitl, "big_state": big_state, "ticks": ticks}


class Deployment:
    """One run store and one bus; coordinators and executions made by hand.

    ``max_request_bytes``: the state port refuses larger requests (as daprd's body
    limit), and the run store, which keeps its requests under its own limit, is told a
    larger one."""

    def __init__(self, *, max_request_bytes: int | None = None, redis_etags: bool = False) -> None:
        self.state = InMemoryStateStore(
            max_request_bytes=max_request_bytes, redis_etags=redis_etags
        )
        if max_request_bytes is None:
            self.store = RunStore(self.state, STORE)
        else:
            big = 64 * max_request_bytes
            self.store = RunStore(self.state, STORE, max_value_bytes=big, max_request_bytes=big)
        self.bus: InMemoryBus[ActivationEnvelope] = InMemoryBus()
        self.now = 1000.0
        self.live = {"default", "aux"}
        self._instances: dict[str, Workflow] = {}

    def resolve(self, name: str, factory: str | None, params: dict[str, Any] | None) -> Workflow:
        return TEMPLATES[name](**(params or {}))

    def driver(self, run_id: str = "r1", *, store_failing_s: float = 600.0) -> RunDriver:
        async def live_pools() -> set[str]:
            return set(self.live)

        return RunDriver(
            run_id,
            self.store,
            self.resolve,
            self.bus.publish,
            clock=lambda: self.now,
            live_pools=live_pools,
            no_host_s=30.0,
            store_failing_s=store_failing_s,
        )

    async def start(
        self, name: str, value: Any, run_id: str = "r1", *, store_failing_s: float = 600.0
    ) -> RunDriver:
        d = self.driver(run_id, store_failing_s=store_failing_s)
        await d.create(name, new_run_state(TEMPLATES[name](), value, run_id, 0))
        return d

    async def execute(self, env: ActivationEnvelope, host: str = "h1") -> ResultEnvelope:
        wf = self._instances.get(env.run_id) or self.resolve(env.workflow, env.factory, env.params)
        self._instances[env.run_id] = wf
        activation = Activation.from_json(env.activation)
        assert env.state is not None  # inline: these workflows' state is small
        result = await execute_activation(
            wf.executors[activation.executor_id],
            wf.graph,
            activation,
            env.state,
            prior_snapshot=env.snapshot,
        )
        return ResultEnvelope(
            run_id=env.run_id,
            epoch=env.epoch,
            superstep=env.superstep,
            executor_id=activation.executor_id,
            host=host,
            result=result.to_json(),
        )

    async def pump(self, driver: RunDriver, *, rounds: int | None = None) -> None:
        """Execute what was published and deliver each result: ``rounds`` times, or
        until nothing is left."""
        for _ in range(rounds or 100):
            envs = self.bus.take()
            if not envs:
                return
            for env in envs:
                await driver.on_result(await self.execute(env))
        if rounds is None:
            raise AssertionError("the run did not stop")

    async def finishes_like_in_process(self, driver: RunDriver, name: str, value: Any) -> None:
        """Pump the run to its end: it completes with the in-process run's trace."""
        await self.pump(driver)
        record = await self.store.load_run(driver.run_id)
        assert record is not None and record.state.status is RunStatus.COMPLETED
        assert record.state.trace_hash == (await _in_process(name, value))[0]

    async def events(self, run_id: str = "r1") -> list[dict[str, Any]]:
        record = await self.store.load_run(run_id)
        assert record is not None
        out: list[dict[str, Any]] = []
        for chunk in range(record.event_chunks):
            out += await self.store.load_events(run_id, chunk)
        return out


async def _in_process(name: str, value: Any) -> tuple[str, list[str], list[Any]]:
    wf = TEMPLATES[name]()
    result = await wf.run(value)
    codec = wf.graph.codec
    outputs = [codec.encode(o) for o in result.outputs]
    return result.trace_hash, [e.type for e in result.events], outputs


async def test_a_run_completes_with_the_in_process_trace_and_events() -> None:
    dep = Deployment()
    d = await dep.start("fan", "a b|c|d e f|g")
    await dep.pump(d)
    record = await dep.store.load_run("r1")
    assert record is not None and record.state.status is RunStatus.COMPLETED
    trace, types, outputs = await _in_process("fan", "a b|c|d e f|g")
    assert record.state.trace_hash == trace
    assert [e["type"] for e in await dep.events()] == types
    assert await dep.store.load_outputs(record) == outputs and len(outputs) == 1
    # a checkpoint at every committed superstep
    assert record.checkpoints == [f"r1@{k:06d}" for k in range(1, record.state.superstep + 1)]


async def test_duplicate_results_are_taken_once() -> None:
    dep = Deployment()
    d = await dep.start("ping", 0)
    for _ in range(30):
        envs = dep.bus.take()
        if not envs:
            break
        for env in envs:
            result = await dep.execute(env)
            assert await d.on_result(result)
            assert not await d.on_result(result)  # the same result again
    record = await dep.store.load_run("r1")
    assert record is not None and record.state.status is RunStatus.COMPLETED
    assert record.state.trace_hash == (await _in_process("ping", 0))[0]


def test_the_steady_clock_follows_the_monotonic_clock_not_the_wall() -> None:
    wall, mono = [1_700_000_000.0], [50.0]
    clock = SteadyClock(lambda: wall[0], lambda: mono[0])
    assert clock() == 1_700_000_000.0
    wall[0] -= 3600.0  # the wall clock set back an hour
    mono[0] += 2.0
    assert clock() == 1_700_000_002.0


async def test_a_wall_clock_set_back_does_not_hold_a_late_activation_back() -> None:
    """The deadline is measured on the coordinator's steady clock: an hour's step back
    of the wall clock after the dispatch does not delay the re-publish by an hour."""
    dep = Deployment()
    wall, mono = [1000.0], [0.0]
    clock = SteadyClock(lambda: wall[0], lambda: mono[0])
    d = RunDriver("r1", dep.store, dep.resolve, dep.bus.publish, clock=clock)
    await d.create("fan", new_run_state(TEMPLATES["fan"](), "a|b|c", "r1", 0))
    await dep.pump(d, rounds=1)
    lost, *others = dep.bus.take()
    for env in others:
        await d.on_result(await dep.execute(env))
    wall[0] -= 3600.0
    mono[0] += 5.0
    assert await d.on_deadline(5.0) == 1
    (again,) = dep.bus.take()
    assert again.executor_id == lost.executor_id and again.attempt == 2


async def test_a_lost_result_is_published_again_at_the_deadline() -> None:
    dep = Deployment()
    d = await dep.start("fan", "a|b|c")
    await dep.pump(d, rounds=1)  # superstep 1 (split)
    lost, *others = dep.bus.take()  # the three counters
    for env in others:
        await d.on_result(await dep.execute(env))
    assert await d.on_deadline(5.0) == 0  # not late yet
    dep.now += 5.0
    assert await d.on_deadline(5.0) == 1
    (again,) = dep.bus.take()
    assert again.executor_id == lost.executor_id and again.attempt == 2
    assert again.activation == lost.activation  # planned alike
    await d.on_result(await dep.execute(again))
    await dep.finishes_like_in_process(d, "fan", "a|b|c")


async def test_a_stale_coordinator_is_fenced_and_the_new_one_finishes_the_run() -> None:
    dep = Deployment()
    old = await dep.start("ping", 0)
    await dep.pump(old, rounds=3)
    in_flight = dep.bus.take()
    # the actor moves: a new coordinator takes over (a new epoch), publishing again
    new = dep.driver()
    await new.resume()
    republished = dep.bus.take()
    assert [e.activation for e in republished] == [e.activation for e in in_flight]
    assert {e.epoch for e in republished} == {in_flight[0].epoch + 1}
    # the old one still gets a result: its commit is refused, it forgets the run
    await old.on_result(await dep.execute(in_flight[0]))
    assert old.record is None
    assert old.fenced and not new.fenced  # the old copy leaves the deadline reminder alone
    assert dep.bus.take() == []
    # the new one commits the superstep once and finishes the run
    await new.on_result(await dep.execute(republished[0]))
    await dep.pump(new)
    record = await dep.store.load_run("r1")
    assert record is not None and record.state.status is RunStatus.COMPLETED
    assert record.state.trace_hash == (await _in_process("ping", 0))[0]
    completed = [e["superstep"] for e in await dep.events() if e["type"] == "superstep_completed"]
    assert completed == sorted(set(completed))  # no superstep committed twice


async def test_a_commit_whose_answer_was_lost_is_recognised_as_done() -> None:
    dep = Deployment()
    d = await dep.start("ping", 0)
    await dep.pump(d, rounds=2)
    (env,) = dep.bus.take()
    dep.state.fail_next(applied=True)  # the transaction commits; its answer is lost
    await d.on_result(await dep.execute(env))
    await dep.finishes_like_in_process(d, "ping", 0)


async def test_a_barrier_the_store_refused_is_committed_at_the_next_deadline() -> None:
    dep = Deployment()
    d = await dep.start("ping", 0)
    await dep.pump(d, rounds=2)
    before = await dep.store.load_run("r1")
    (env,) = dep.bus.take()
    dep.state.fail_next()  # the store is down for the barrier's transaction
    with pytest.raises(PortError):
        await d.on_result(await dep.execute(env))
    after = await dep.store.load_run("r1")
    assert before is not None and after is not None
    assert after.state == before.state  # nothing of the superstep committed
    assert dep.bus.take() == []  # and nothing after it published
    dep.now += 5.0
    await d.on_deadline(5.0)  # the store is back
    await dep.finishes_like_in_process(d, "ping", 0)


async def test_a_barrier_the_store_refuses_for_good_fails_the_run() -> None:
    """A refusal that no retry can mend (as daprd's 400 for a body over its limit)
    fails the run naming it, from the last barrier committed, instead of leaving the
    barrier to be tried again at every deadline."""
    dep = Deployment(max_request_bytes=256 * 1024)
    d = await dep.start("big_state", 1)  # superstep 1 writes 1 Mi characters of state
    (env,) = dep.bus.take()
    before = dep.state.calls
    await d.on_result(await dep.execute(env))
    # the refused transaction, a read of the run record, the failure's commit, its read
    assert dep.state.calls - before == 4
    record = await dep.store.load_run("r1")
    assert record is not None and record.state.status is RunStatus.FAILED
    error = record.state.error
    assert error is not None and error.type == "StoreRefusedError"
    assert "400" in error.message and "request body too large" in error.message
    assert error.superstep == 1 and record.state.superstep == 0  # nothing of it committed
    assert [e["type"] for e in await dep.events()][-2:] == ["failed", "status"]
    assert dep.bus.take() == []
    # the refusal is not tried again
    calls = dep.state.calls
    dep.now += 60.0
    assert await d.on_deadline(5.0) == 0
    assert dep.state.calls == calls


async def test_a_refused_barrier_fails_the_run_as_of_its_last_commit() -> None:
    dep = Deployment()
    d = await dep.start("ping", 0)
    await dep.pump(d, rounds=2)
    (env,) = dep.bus.take()
    dep.state.refuse_next(message='{"errorCode":"ERR_MALFORMED_REQUEST"}')
    await d.on_result(await dep.execute(env))
    record = await dep.store.load_run("r1")
    assert record is not None and record.state.status is RunStatus.FAILED
    error = record.state.error
    assert error is not None and error.type == "StoreRefusedError"
    assert "ERR_MALFORMED_REQUEST" in error.message and "400" in error.message
    assert error.superstep == 3 and record.state.superstep == 2
    assert [e["type"] for e in await dep.events()][-2:] == ["failed", "status"]
    assert d.record is not None and d.record.state.status is RunStatus.FAILED


async def test_when_even_the_failure_is_refused_the_coordinator_gives_the_run_up() -> None:
    dep = Deployment()
    d = await dep.start("ping", 0)
    await dep.pump(d, rounds=2)
    (env,) = dep.bus.take()
    dep.state.refuse_next(2)  # the barrier, then the commit of the run's failure
    with pytest.raises(Refused, match="refused"):
        await d.on_result(await dep.execute(env))
    assert d.record is None and not d.fenced  # given up: nothing left to try again
    calls = dep.state.calls
    dep.now += 60.0
    assert await d.on_deadline(5.0) == 0
    assert dep.state.calls == calls
    record = await dep.store.load_run("r1")
    assert record is not None and record.state.superstep == 2  # as last committed


async def test_a_barrier_the_store_keeps_failing_fails_the_run_after_store_failing_s() -> None:
    """A barrier whose transaction fails at every try (daprd answers a value the store
    refuses inside a transaction with a 500, as it answers an outage) is tried again at
    each deadline for ``store_failing_s``; then the run fails as of its last committed
    barrier, naming it, and only that failure's commit is tried again until it lands."""
    dep = Deployment()
    d = await dep.start("ping", 0, store_failing_s=60.0)
    await dep.pump(d, rounds=2)
    (env,) = dep.bus.take()
    dep.state.fail_next(4)  # three tries of the barrier, the first of the failure
    with pytest.raises(PortError):
        await d.on_result(await dep.execute(env))
    dep.now += 30.0
    with pytest.raises(PortError):
        await d.on_deadline(5.0)
    record = await dep.store.load_run("r1")
    assert record is not None and record.state.status is RunStatus.RUNNING
    dep.now += 31.0  # 61 s since the first failure: the run fails, its commit too
    with pytest.raises(PortError):
        await d.on_deadline(5.0)
    record = await dep.store.load_run("r1")
    assert record is not None and record.state.status is RunStatus.RUNNING
    dep.now += 5.0
    await d.on_deadline(5.0)  # the failure's commit lands
    record = await dep.store.load_run("r1")
    assert record is not None and record.state.status is RunStatus.FAILED
    error = record.state.error
    assert error is not None and error.type == "StoreRefusedError"
    assert "kept failing superstep 3 for 61 s" in error.message
    assert "injected" in error.message  # the last failure, named
    assert error.superstep == 3 and record.state.superstep == 2  # nothing of it committed
    assert [e["type"] for e in await dep.events()][-2:] == ["failed", "status"]
    assert dep.bus.take() == []
    calls = dep.state.calls
    dep.now += 60.0
    assert await d.on_deadline(5.0) == 0
    assert dep.state.calls == calls  # nothing left to try


async def test_a_store_that_fails_for_less_than_store_failing_s_loses_no_run() -> None:
    """Failures that stop within ``store_failing_s`` leave the run to go on; the clock
    starts again at the next failure after a success."""
    dep = Deployment()
    d = await dep.start("ping", 0, store_failing_s=60.0)
    await dep.pump(d, rounds=1)
    (env,) = dep.bus.take()
    dep.state.fail_next()
    with pytest.raises(PortError):
        await d.on_result(await dep.execute(env))
    dep.now += 50.0
    await d.on_deadline(5.0)  # lands (and, late by then, its next one is sent twice)
    env = dep.bus.take()[0]
    dep.state.fail_next()
    with pytest.raises(PortError):
        await d.on_result(await dep.execute(env))
    dep.now += 50.0  # 100 s since the first failure, 50 s since this one
    await d.on_deadline(5.0)
    await dep.finishes_like_in_process(d, "ping", 0)


async def test_a_run_whose_record_the_store_lost_stays_lost_on_a_store_that_recreates_it() -> None:
    """Redis restarted empty under a running run: its next commit, guarded by the ETag
    the coordinator holds, writes the record anew (Redis takes an ETag on a missing key
    for a create). The coordinator sees it in the version it reads back, removes the
    record it made and leaves the run, which stays gone (404) as its earlier events,
    outputs and checkpoints are."""
    dep = Deployment(redis_etags=True)
    d = await dep.start("ping", 0)
    await dep.pump(d, rounds=2)
    (env,) = dep.bus.take()
    dep.state.wipe()
    await d.on_result(await dep.execute(env))
    assert await dep.store.load_run("r1") is None
    assert d.record is None and not d.fenced
    dep.now += 60.0
    assert await d.on_deadline(5.0) == 0


async def test_a_run_on_a_store_with_version_etags_completes_like_in_process() -> None:
    dep = Deployment(redis_etags=True)
    d = await dep.start("ping", 0)
    await dep.finishes_like_in_process(d, "ping", 0)


def test_only_version_etags_that_did_not_grow_say_a_record_was_made_anew() -> None:
    assert recreated("7", "1") and recreated("1", "1")
    assert not recreated("7", "8") and not recreated(None, "1") and not recreated("7", None)
    assert not recreated("0b6d7c1e-uuid", "1") and not recreated("3", "a5f0-uuid")


async def test_a_pool_without_hosts_fails_the_run_after_the_wait() -> None:
    dep = Deployment()
    d = await dep.start("ping", 0)
    await dep.pump(d, rounds=1)  # a ran; b (pool aux) is published
    assert [e.executor_id for e in dep.bus.take()] == ["b"]
    dep.live = {"default"}
    dep.now += 5.0
    assert await d.on_deadline(5.0) == 0  # waiting for a host
    dep.now += 30.0
    assert await d.on_deadline(5.0) == 0
    record = await dep.store.load_run("r1")
    assert record is not None and record.state.status is RunStatus.FAILED
    assert record.state.error is not None and record.state.error.type == "NoLiveHostError"
    assert [e["type"] for e in await dep.events()][-2:] == ["failed", "status"]


async def test_responses_continue_a_paused_run_and_cancel_ends_one() -> None:
    dep = Deployment()
    d = await dep.start("hitl", "the plan")
    await dep.pump(d)
    record = await dep.store.load_run("r1")
    assert record is not None and record.state.status is RunStatus.AWAITING_INPUT
    (rid,) = record.state.pending
    await d.respond({rid: True})
    await dep.pump(d)
    record = await dep.store.load_run("r1")
    assert record is not None and record.state.status is RunStatus.COMPLETED
    assert await dep.store.load_outputs(record) == ["approve the plan? -> yes"]

    d2 = await dep.start("ping", 0, run_id="r2")
    await dep.pump(d2, rounds=2)
    await d2.cancel()
    late = dep.bus.take()
    for env in late:
        assert not await d2.on_result(await dep.execute(env))
    record = await dep.store.load_run("r2")
    assert record is not None and record.state.status is RunStatus.CANCELLED


async def test_the_store_is_called_a_bounded_number_of_times_per_superstep() -> None:
    dep = Deployment()
    d = await dep.start("ping", 0)
    await dep.pump(d, rounds=1)
    calls, batches = dep.state.calls, dep.bus.batches
    await dep.pump(d, rounds=1)
    # one barrier: a transaction and one read of the new ETag; one publish
    assert (dep.state.calls - calls, dep.bus.batches - batches) == (2, 1)
    stored = dep.state.value(STORE, "superstep:run:r1")
    assert stored is not None and json.loads(json.loads(stored))["epoch"] == 1


# -- a start tried again -------------------------------------------------------------------
async def test_a_start_tried_again_with_its_key_is_answered_as_the_first_try() -> None:
    """The API app tries a start again when its answer did not come back; the first try
    may have gone through. Its key makes the repeat answer as the first did, and run
    nothing twice; any other start of that id finds the run exists."""
    dep = Deployment()
    state = new_run_state(ping(), 0, "r1", 0)
    first = await dep.driver().begin("ping", state, start_key="k1")
    published = len(dep.bus.take())
    again = await dep.driver().begin("ping", state, start_key="k1")
    assert first == again == {"created": True, "status": "running", "after": -1}
    assert published == 1 and dep.bus.take() == [], "the repeat published nothing"
    other = await dep.driver().begin("ping", state, start_key="k2")
    assert other == {"created": False, "status": "running"}
    assert await dep.driver().begin("ping", state) == other


async def test_a_resume_tried_again_answers_where_its_events_begin() -> None:
    dep = Deployment()
    d = dep.driver()
    await d.begin("ping", new_run_state(ping(), 0, "r1", 0), start_key="k1")
    await dep.pump(d)
    done = await dep.store.load_run("r1")
    assert done is not None and done.state.status is RunStatus.COMPLETED
    checkpoint = await dep.store.load_checkpoint(done.checkpoints[0])
    assert checkpoint is not None
    resumed = await dep.driver().begin("ping", checkpoint.state, resume=True, start_key="k2")
    again = await dep.driver().begin("ping", checkpoint.state, resume=True, start_key="k2")
    assert (
        resumed == again == {"created": True, "status": "running", "after": done.event_chunks - 1}
    )
