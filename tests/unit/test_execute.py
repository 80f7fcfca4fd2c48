"""``execute_activation``: one activation under its executor's policy, in isolation."""

from __future__ import annotations

import asyncio
import dataclasses
import datetime
import time
from collections.abc import Mapping, Sequence
from typing import Any, Literal, Never

import pytest

from runtime import (
    Executor,
    ExecutorPolicy,
    OnFailure,
    RequestError,
    WorkflowBuilder,
    WorkflowContext,
    WorkflowEvent,
    handler,
    response_handler,
)
from runtime.engine import (
    INPUT_SOURCE,
    RESPONSE_SOURCE,
    Activation,
    ActivationResult,
    ActivationStatus,
    AttemptError,
    Graph,
    Message,
    MessageKind,
    StateWrite,
)
from runtime.workflow import Workflow, execute_activation
from runtime.workflow._execute import MAX_TRACEBACK_CHARS, format_traceback


@dataclasses.dataclass
class Question:
    text: str


class Sink(Executor):
    @handler
    async def on_int(self, x: int, ctx: WorkflowContext[Never, int]) -> None:
        await ctx.yield_output(x)


class Fallback(Executor):
    @handler
    async def on_int(self, x: int, ctx: WorkflowContext[Never, int]) -> None:
        await ctx.yield_output(x)

    @handler
    async def on_list(self, xs: list[int], ctx: WorkflowContext[Never, int]) -> None:
        await ctx.yield_output(sum(xs))


class Flaky(Executor):
    """Does all its effects, then fails on the first ``failures`` attempts.

    It counts attempts in an instance attribute and snapshots ``handled``, so the
    tests can see what a failed attempt leaves behind.
    """

    def __init__(self, id: str, failures: int = 0, exc: type[Exception] = RuntimeError) -> None:
        super().__init__(id)
        self.failures = failures
        self.exc = exc
        self.calls = 0
        self.handled: list[int] = []
        self.log: list[str] = []
        self.seen_random: list[float] = []
        self.seen_keys: list[str] = []
        self.seen_now: list[datetime.datetime] = []
        self.seen_state: list[Any] = []
        self.seen_sources: list[list[str]] = []

    @handler
    async def on_int(self, x: int, ctx: WorkflowContext[int, int]) -> None:
        self.calls += 1
        self.log.append(f"attempt-{self.calls}:{x}")
        self.handled.append(x)
        self.seen_random.append(ctx.random())
        self.seen_keys.append(ctx.idempotency_key)
        self.seen_now.append(ctx.now())
        self.seen_state.append(ctx.get_state("k"))
        self.seen_sources.append(ctx.source_executor_ids)
        await ctx.send_message(x + self.calls)
        await ctx.yield_output(x * 10 + self.calls)
        await ctx.add_event(WorkflowEvent("progress", data=self.calls))
        ctx.set_state("k", self.calls)
        if self.calls <= self.failures:
            raise self.exc(f"failure {self.calls}")

    @handler
    async def on_list(self, xs: list[int], ctx: WorkflowContext[int, int]) -> None:
        self.seen_sources.append(ctx.source_executor_ids)
        await ctx.yield_output(sum(xs))

    async def on_checkpoint_save(self) -> dict[str, Any]:
        self.log.append("save")
        return {"handled": list(self.handled)}

    async def on_checkpoint_restore(self, state: dict[str, Any]) -> None:
        self.log.append(f"restore:{state}")
        self.handled = list(state.get("handled", []))


class Blocking(Executor):
    """Blocks forever on the first ``blocks`` attempts (until the timeout cancels it)."""

    def __init__(self, id: str, blocks: int) -> None:
        super().__init__(id)
        self.blocks = blocks
        self.calls = 0
        self.never = asyncio.Event()

    @handler
    async def on_int(self, x: int, ctx: WorkflowContext[int]) -> None:
        self.calls += 1
        await ctx.send_message(self.calls)
        if self.calls <= self.blocks:
            await self.never.wait()


class Asker(Executor):
    def __init__(self, id: str) -> None:
        super().__init__(id)
        self.answers: list[tuple[Question, int, list[str]]] = []

    @handler
    async def on_str(self, text: str, ctx: WorkflowContext[int]) -> None:
        rid = await ctx.request_info(Question(text), int)
        await ctx.send_message(len(rid))

    @response_handler
    async def on_answer(self, request: Question, answer: int, ctx: WorkflowContext[int]) -> None:
        self.answers.append((request, answer, ctx.source_executor_ids))
        await ctx.send_message(answer)


class Plain(Executor):
    @handler
    async def on_int(self, x: int, ctx: WorkflowContext[int]) -> None:
        await ctx.send_message(x)


def _workflow(ex: Executor, policy: ExecutorPolicy | None = None) -> Workflow:
    sink, fb = Sink("sink"), Fallback("fb")
    b = WorkflowBuilder(start_executor=ex).add_edge(ex, sink).add_edge(ex, fb, lambda v: False)
    b.add_state("k")
    if policy is not None:
        b.set_policy(ex, policy)
    return b.build()


def _activation(
    graph: Graph,
    executor_id: str,
    values: Sequence[Any],
    *,
    superstep: int = 3,
    timestamp: float = 1_700_000_000.0,
    seed: int = 11,
    run_id: str = "run-1",
) -> Activation:
    messages = tuple(
        Message(
            INPUT_SOURCE if i == 0 else "sink", executor_id, graph.codec.encode(v), superstep - 1, i
        )
        for i, v in enumerate(values)
    )
    return Activation(run_id, superstep, executor_id, messages, timestamp, seed)


class Sleeps:
    """A recording ``sleep``: backoff is observed without waiting."""

    def __init__(self) -> None:
        self.delays: list[float] = []

    async def __call__(self, delay: float) -> None:
        self.delays.append(delay)


async def _run(
    ex: Executor,
    values: Sequence[Any],
    policy: ExecutorPolicy | None = None,
    *,
    state: Mapping[str, Any] | None = None,
    prior_snapshot: Any = None,
    sleeps: Sleeps | None = None,
) -> ActivationResult:
    wf = _workflow(ex, policy)
    act = _activation(wf.graph, ex.id, values)
    return await execute_activation(
        ex,
        wf.graph,
        act,
        state or {},
        prior_snapshot=prior_snapshot,
        sleep=sleeps or Sleeps(),
    )


# -- the happy path ---------------------------------------------------------------------------


async def test_ok_result_holds_every_effect_routed_and_encoded() -> None:
    ex = Flaky("x")
    r = await _run(ex, [5])
    assert r.status is ActivationStatus.OK
    assert (r.executor_id, r.superstep, r.attempts, r.error, r.fallback) == ("x", 3, 1, None, None)
    (sent,) = r.sent
    assert (sent.seq, sent.data, sent.deliveries, sent.drop_reason) == (0, 6, (("sink", 0),), None)
    assert r.outputs == (51,)
    assert [(e.executor_id, e.type, e.data) for e in r.events] == [("x", "progress", 1)]
    assert r.writes == (StateWrite("k", 1),)
    assert r.requests == ()
    assert r.has_snapshot and r.snapshot == {"handled": [5]}
    assert r.duration_s >= 0


async def test_a_result_says_when_it_started_on_this_host_and_keeps_it_in_json() -> None:
    before = time.time()
    r = await _run(Flaky("x"), [5])
    assert r.started_at is not None and before <= r.started_at <= time.time()
    back = ActivationResult.from_json(r.to_json())
    assert back.started_at == r.started_at
    older = {k: v for k, v in r.to_json().items() if k != "started_at"}  # an older host's
    assert ActivationResult.from_json(older).started_at is None


async def test_messages_are_handled_one_at_a_time_in_order() -> None:
    ex = Flaky("x")
    r = await _run(ex, [1, 2, 3])
    assert ex.log == ["attempt-1:1", "attempt-2:2", "attempt-3:3", "save"]
    assert [s.seq for s in r.sent] == [0, 1, 2]
    assert r.outputs == (11, 22, 33)


async def test_executor_without_snapshot_reports_none() -> None:
    r = await _run(Plain("p"), [1])
    assert r.status is ActivationStatus.OK
    assert (r.has_snapshot, r.snapshot) == (False, None)


async def test_message_without_handler_fails_the_attempt_naming_the_type_and_source() -> None:
    r = await _run(Plain("p"), [1, "text"])
    assert r.status is ActivationStatus.FAILED
    assert r.error is not None
    assert r.error.type == "TypeError"
    assert "executor 'p' has no handler for str (from 'sink')" in r.error.message
    assert r.sent == ()


async def test_fan_in_list_goes_to_the_list_handler_with_its_sources() -> None:
    ex = Flaky("x")
    wf = _workflow(ex)
    msg = Message(
        "$fan_in:4", "x", [1, 2, 3], 2, 0, kind=MessageKind.FAN_IN, group=4, parts=("a", "b", "a")
    )
    act = Activation("r", 3, "x", (msg,), 0.0, 0)
    r = await execute_activation(ex, wf.graph, act, {})
    assert r.outputs == (6,)
    assert ex.seen_sources == [["a", "b", "a"]]


# -- state -------------------------------------------------------------------------------------


async def test_state_reads_the_committed_snapshot_and_own_writes() -> None:
    class Reader(Executor):
        def __init__(self) -> None:
            super().__init__("reader")
            self.reads: list[Any] = []

        @handler
        async def on(self, x: int, ctx: WorkflowContext[int]) -> None:
            self.reads.append(ctx.get_state("k"))
            self.reads.append(ctx.get_state("missing", "dflt"))
            ctx.set_state("k", {"v": x})
            self.reads.append(ctx.get_state("k"))
            ctx.delete_state("k")
            self.reads.append(ctx.get_state("k", "gone"))

    ex = Reader()
    r = await _run(ex, [7], state={"k": {"v": 1}})
    assert ex.reads == [{"v": 1}, "dflt", {"v": 7}, "gone"]
    assert r.writes == (StateWrite("k", {"v": 7}), StateWrite("k", None, delete=True))


async def test_state_snapshot_is_not_mutated_by_the_activation() -> None:
    ex = Flaky("x")
    state = {"k": 41}
    await _run(ex, [1], state=state)
    assert state == {"k": 41}
    assert ex.seen_state == [41]


# -- retries, backoff, exactly-once effects -----------------------------------------------------


async def test_retry_commits_exactly_one_attempts_effects() -> None:
    ex = Flaky("x", failures=2)
    sleeps = Sleeps()
    r = await _run(ex, [5], ExecutorPolicy(max_attempts=3), sleeps=sleeps)
    assert r.status is ActivationStatus.OK
    assert r.attempts == 3
    assert ex.calls == 3
    # only the third attempt's effects
    assert [s.data for s in r.sent] == [8]
    assert r.outputs == (53,)
    assert [e.data for e in r.events] == [3]
    assert r.writes == (StateWrite("k", 3),)
    assert r.error is None
    assert sleeps.delays == []  # no backoff configured


async def test_backoff_grows_and_is_capped_and_there_is_no_sleep_after_the_last_attempt() -> None:
    ex = Flaky("x", failures=10)
    sleeps = Sleeps()
    policy = ExecutorPolicy(
        max_attempts=5,
        backoff_s=1.0,
        backoff_multiplier=2.0,
        max_backoff_s=3.0,
        on_failure=OnFailure.SKIP,
    )
    r = await _run(ex, [1], policy, sleeps=sleeps)
    assert r.attempts == 5
    assert sleeps.delays == [1.0, 2.0, 3.0, 3.0]


def test_backoff_formula() -> None:
    p = ExecutorPolicy(backoff_s=0.5, backoff_multiplier=3.0, max_backoff_s=10.0)
    assert [p.backoff(n) for n in (1, 2, 3, 4)] == [0.5, 1.5, 4.5, 10.0]
    assert ExecutorPolicy().backoff(3) == 0.0


async def test_restore_runs_after_each_failed_attempt_and_before_the_retry() -> None:
    ex = Flaky("x", failures=1)
    r = await _run(ex, [5], ExecutorPolicy(max_attempts=2), prior_snapshot={"handled": [1, 2]})
    assert ex.log == [
        "attempt-1:5",
        "restore:{'handled': [1, 2]}",
        "attempt-2:5",
        "save",
    ]
    # the failed attempt's change to the instance was undone
    assert r.snapshot == {"handled": [1, 2, 5]}


async def test_restore_without_a_prior_snapshot_gets_an_empty_dict() -> None:
    ex = Flaky("x", failures=1)
    r = await _run(ex, [5], ExecutorPolicy(max_attempts=2))
    assert ex.log[1] == "restore:{}"
    assert r.snapshot == {"handled": [5]}


async def test_prior_snapshot_is_decoded_with_the_codec() -> None:
    ex = Flaky("x", failures=1)
    wf = _workflow(ex, ExecutorPolicy(max_attempts=2))
    encoded = wf.graph.codec.encode({"handled": [9], "$meta": 1})
    act = _activation(wf.graph, "x", [5])
    await execute_activation(ex, wf.graph, act, {}, prior_snapshot=encoded, sleep=Sleeps())
    assert ex.log[1] == "restore:{'handled': [9], '$meta': 1}"


# -- outcomes after the last attempt ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("on_failure", "status", "fallback"),
    [
        (OnFailure.FAIL, ActivationStatus.FAILED, None),
        (OnFailure.SKIP, ActivationStatus.SKIPPED, None),
        (OnFailure.FALLBACK, ActivationStatus.FALLBACK, "fb"),
    ],
)
async def test_outcome_after_the_last_failed_attempt(
    on_failure: OnFailure, status: ActivationStatus, fallback: str | None
) -> None:
    ex = Flaky("x", failures=5, exc=ValueError)
    policy = ExecutorPolicy(
        max_attempts=2, on_failure=on_failure, fallback="fb" if fallback else None
    )
    r = await _run(ex, [5], policy)
    assert r.status is status
    assert r.attempts == 2
    assert r.fallback == fallback
    assert r.error is not None
    assert (r.error.type, r.error.message, r.error.executor_id, r.error.superstep) == (
        "ValueError",
        "failure 2",
        "x",
        3,
    )
    # nothing of any attempt is in the result
    assert (r.sent, r.outputs, r.events, r.writes, r.requests) == ((), (), (), (), ())
    assert not r.has_snapshot


class CardDeclined(Exception):
    """An application's exception class, nested in no other."""


async def test_a_failure_keeps_its_exception_s_class_traceback_and_every_attempt() -> None:
    ex = Flaky("x", failures=5, exc=CardDeclined)
    r = await _run(ex, [5], ExecutorPolicy(max_attempts=3), sleeps=Sleeps())
    assert r.error is not None
    assert (r.error.type, r.error.module, r.error.message) == (
        "CardDeclined",
        __name__,
        "failure 3",
    )
    assert r.error.qualified_type == f"{__name__}.CardDeclined"
    assert str(r.error) == f"{__name__}.CardDeclined: failure 3"
    expected = tuple(AttemptError(n, "CardDeclined", f"failure {n}", __name__) for n in (1, 2, 3))
    assert r.error.attempts == r.failures == expected
    tb = r.error.traceback
    assert tb is not None
    # the handler's frame first: the runtime's frames that lead into it are left out
    lines = tb.splitlines()
    assert lines[0] == "Traceback (most recent call last):"
    assert lines[1].startswith(f'  File "{__file__}"') and lines[1].endswith(", in on_int")
    assert lines[2].strip() == 'raise self.exc(f"failure {self.calls}")'
    assert lines[-1] == f"{__name__}.CardDeclined: failure 3"
    assert ", in execute_activation\n" not in tb


async def test_an_activation_that_succeeds_after_retries_says_why_the_others_failed() -> None:
    r = await _run(Flaky("x", failures=2, exc=KeyError), [5], ExecutorPolicy(max_attempts=3))
    assert (r.status, r.error) == (ActivationStatus.OK, None)
    assert r.failures == (
        AttemptError(1, "KeyError", "'failure 1'", "builtins"),
        AttemptError(2, "KeyError", "'failure 2'", "builtins"),
    )
    assert str(r.failures[0]) == "KeyError: 'failure 1'"


async def test_a_timed_out_attempt_s_traceback_shows_where_the_handler_waited() -> None:
    ex = Blocking("b", blocks=5)
    r = await _run(ex, [1], ExecutorPolicy(timeout_s=0.01, on_failure=OnFailure.SKIP))
    assert r.error is not None and r.error.traceback is not None
    assert r.failures == (
        AttemptError(1, "TimeoutError", "attempt 1 exceeded the timeout of 0.01s", "builtins"),
    )
    assert "await self.never.wait()" in r.error.traceback
    assert r.error.traceback.endswith("TimeoutError: attempt 1 exceeded the timeout of 0.01s\n")


async def test_a_handler_error_raised_by_the_runtime_keeps_the_runtime_s_frames() -> None:
    r = await _run(Plain("p"), ["not an int"])
    assert r.error is not None and r.error.traceback is not None
    assert ", in execute_activation\n" in r.error.traceback  # no handler frame to start from


def test_a_long_traceback_keeps_its_end_and_says_what_was_cut() -> None:
    try:
        raise ValueError("x" * (2 * MAX_TRACEBACK_CHARS) + " the end")
    except ValueError as exc:
        text = format_traceback(exc)
    first, _, rest = text.partition("\n")
    assert first.startswith("[... ") and first.endswith(
        " earlier characters of the traceback cut ...]"
    )
    assert len(rest) == MAX_TRACEBACK_CHARS and rest.endswith("x the end\n")


async def test_cancellation_is_not_a_failure_and_is_not_retried() -> None:
    class Cancelled(Executor):
        calls = 0

        @handler
        async def on(self, x: int, ctx: WorkflowContext[int]) -> None:
            type(self).calls += 1
            raise asyncio.CancelledError

    ex = Cancelled("c")
    with pytest.raises(asyncio.CancelledError):
        await _run(ex, [1], ExecutorPolicy(max_attempts=3))
    assert Cancelled.calls == 1


async def test_errors_from_the_context_fail_the_attempt() -> None:
    class Reserved(Executor):
        @handler
        async def on(self, x: int, ctx: WorkflowContext[int]) -> None:
            await ctx.add_event(WorkflowEvent("output", data=1))

    r = await _run(Reserved("r"), [1])
    assert r.status is ActivationStatus.FAILED
    assert r.error is not None and "reserved for the runtime" in r.error.message


async def test_unencodable_message_fails_the_attempt_with_a_codec_error() -> None:
    class Leaky(Executor):
        @handler
        async def on(self, x: int, ctx: WorkflowContext[Any]) -> None:
            await ctx.send_message(object())

    r = await _run(Leaky("l"), [1])
    assert r.status is ActivationStatus.FAILED
    assert r.error is not None and r.error.type == "CodecError"


# -- timeouts ----------------------------------------------------------------------------------------


async def test_timeout_bounds_each_attempt() -> None:
    ex = Blocking("b", blocks=1)
    r = await _run(ex, [1], ExecutorPolicy(timeout_s=0.01, max_attempts=2))
    assert r.status is ActivationStatus.OK
    assert r.attempts == 2
    assert [s.data for s in r.sent] == [2]  # the timed-out attempt's send is gone


async def test_timeout_on_every_attempt_reports_the_timeout() -> None:
    ex = Blocking("b", blocks=5)
    r = await _run(
        ex, [1], ExecutorPolicy(timeout_s=0.01, max_attempts=2, on_failure=OnFailure.SKIP)
    )
    assert r.status is ActivationStatus.SKIPPED
    assert r.attempts == 2
    assert r.error is not None
    assert r.error.type == "TimeoutError"
    assert r.error.message == "attempt 2 exceeded the timeout of 0.01s"


async def test_a_handlers_own_timeout_error_keeps_its_message() -> None:
    ex = Flaky("x", failures=5, exc=TimeoutError)
    r = await _run(ex, [1])
    assert r.status is ActivationStatus.FAILED
    assert r.error is not None
    assert (r.error.type, r.error.message) == ("TimeoutError", "failure 1")


async def test_a_handlers_own_timeout_error_under_a_timeout_policy_keeps_its_message() -> None:
    ex = Flaky("x", failures=5, exc=TimeoutError)
    r = await _run(ex, [1], ExecutorPolicy(timeout_s=30.0))
    assert r.error is not None
    assert r.error.message == "failure 1"


# -- human in the loop -----------------------------------------------------------------------------


async def test_request_info_records_a_pending_request_with_a_deterministic_id() -> None:
    ex = Asker("ask")
    r = await _run(ex, ["how many?"])
    (req,) = r.requests
    assert req.request_id == "run-1:3:ask:0"
    assert (req.executor_id, req.superstep, req.response_type) == ("ask", 3, "int")
    assert req.data == {"$type": f"{__name__}.Question", "$value": {"text": "how many?"}}


async def test_request_info_without_a_matching_response_handler_is_refused() -> None:
    class Impatient(Executor):
        @handler
        async def on(self, x: int, ctx: WorkflowContext[int]) -> None:
            await ctx.request_info(Question("?"), str)

        @response_handler
        async def on_answer(self, q: Question, a: int, ctx: WorkflowContext[int]) -> None:
            pass

    r = await _run(Impatient("imp"), [1])
    assert r.status is ActivationStatus.FAILED
    assert r.error is not None and r.error.type == RequestError.__name__
    assert "no @response_handler for request Question with response str" in r.error.message


async def test_response_goes_to_the_response_handler_with_the_original_request() -> None:
    ex = Asker("ask")
    wf = _workflow(ex)
    codec = wf.graph.codec
    data = {"request": codec.encode(Question("how many?")), "response": codec.encode(4)}
    msg = Message(RESPONSE_SOURCE, "ask", data, 2, 1, kind=MessageKind.RESPONSE, request_id="q")
    r = await execute_activation(ex, wf.graph, Activation("r", 3, "ask", (msg,), 0.0, 0), {})
    assert r.status is ActivationStatus.OK
    assert ex.answers == [(Question("how many?"), 4, [RESPONSE_SOURCE])]
    assert [s.data for s in r.sent] == [4]


async def test_response_of_the_wrong_type_fails_the_attempt() -> None:
    ex = Asker("ask")
    wf = _workflow(ex)
    codec = wf.graph.codec
    data = {"request": codec.encode(Question("q")), "response": "four"}
    msg = Message(RESPONSE_SOURCE, "ask", data, 2, 1, kind=MessageKind.RESPONSE, request_id="q")
    r = await execute_activation(ex, wf.graph, Activation("r", 3, "ask", (msg,), 0.0, 0), {})
    assert r.status is ActivationStatus.FAILED
    assert r.error is not None
    assert "no @response_handler for request Question with response str" in r.error.message


# -- determinism -------------------------------------------------------------------------------------


async def test_now_random_and_idempotency_key_are_the_same_on_every_attempt() -> None:
    ex = Flaky("x", failures=2)
    await _run(ex, [5], ExecutorPolicy(max_attempts=3))
    assert len(set(ex.seen_random)) == 1
    assert ex.seen_keys == ["run-1/3/x/0"] * 3
    assert ex.seen_now == [datetime.datetime.fromtimestamp(1_700_000_000.0, tz=datetime.UTC)] * 3
    assert all(d.tzinfo is datetime.UTC for d in ex.seen_now)


async def test_idempotency_key_names_the_message_index() -> None:
    ex = Flaky("x")
    await _run(ex, [1, 2, 3])
    assert ex.seen_keys == ["run-1/3/x/0", "run-1/3/x/1", "run-1/3/x/2"]


async def test_random_is_seeded_per_run_superstep_and_executor() -> None:
    async def first_random(executor_id: str, superstep: int, seed: int) -> float:
        ex = Flaky(executor_id)
        wf = _workflow(ex)
        act = _activation(wf.graph, executor_id, [1], superstep=superstep, seed=seed)
        await execute_activation(ex, wf.graph, act, {})
        return ex.seen_random[0]

    base = await first_random("x", 3, 11)
    assert await first_random("x", 3, 11) == base
    others = {
        await first_random("y", 3, 11),
        await first_random("x", 4, 11),
        await first_random("x", 3, 12),
    }
    assert base not in others and len(others) == 3


async def test_random_sequence_continues_across_messages_of_one_activation() -> None:
    ex = Flaky("x")
    await _run(ex, [1, 2])
    assert ex.seen_random[0] != ex.seen_random[1]


async def test_literal_handlers_dispatch_by_value() -> None:
    class Router(Executor):
        def __init__(self) -> None:
            super().__init__("router")
            self.calls: list[tuple[str, str]] = []

        @handler
        async def on_stop(self, x: Literal["stop"], ctx: WorkflowContext[int]) -> None:
            self.calls.append(("stop", x))

        @handler
        async def on_str(self, x: str, ctx: WorkflowContext[int]) -> None:
            self.calls.append(("str", x))

    ex = Router()
    r = await _run(ex, ["go", "stop", "go", "stop"])
    assert r.status is ActivationStatus.OK
    assert ex.calls == [("str", "go"), ("stop", "stop"), ("str", "go"), ("stop", "stop")]


async def test_a_deleted_key_reads_as_absent_not_as_its_initial_value() -> None:
    """After a committed delete the key is absent from the state: rule 5 says a read
    sees the state as committed, so the default comes back, not the declared initial."""

    class Reader(Executor):
        def __init__(self) -> None:
            super().__init__("reader")
            self.reads: list[Any] = []

        @handler
        async def on(self, x: int, ctx: WorkflowContext[int]) -> None:
            self.reads.append(ctx.get_state("gone", "absent"))

    ex = Reader()
    sink = Sink("sink")
    wf = (
        WorkflowBuilder(start_executor=ex)
        .add_edge(ex, sink)
        .add_state("gone", initial="here")
        .build()
    )
    committed_after_delete: dict[str, Any] = {}
    await execute_activation(
        ex, wf.graph, _activation(wf.graph, "reader", [1]), committed_after_delete
    )
    await execute_activation(ex, wf.graph, _activation(wf.graph, "reader", [1]), {"gone": "there"})
    assert ex.reads == ["absent", "there"]


async def test_activation_events_say_when_their_activation_started() -> None:
    before = time.time()
    wf = _workflow(Sink("s"))
    events = [ev async for ev in wf.run(4)]
    done = [ev for ev in events if ev.type == "executor_completed"]
    assert done and all(before <= ev.details["started_at"] <= time.time() for ev in done)


async def test_a_completed_superstep_says_how_many_messages_went_along_each_edge() -> None:
    class Spread(Executor):
        @handler
        async def on_int(self, x: int, ctx: WorkflowContext[int]) -> None:
            for i in range(x):
                await ctx.send_message(i)

    spread, a, b = Spread("spread"), Sink("a"), Sink("b")
    wf = WorkflowBuilder(start_executor=spread).add_fan_out_edges(spread, [a, b]).build()
    events = [ev async for ev in wf.run(3)]
    edges = {ev.superstep: ev.details["edges"] for ev in events if ev.type == "superstep_completed"}
    assert edges[1] == [["spread", "a", 3], ["spread", "b", 3]]
    assert edges[2] == []  # the sinks sent nothing
