"""Activations and their results cross process boundaries as JSON: they must
round-trip exactly, through real JSON text."""

from __future__ import annotations

import dataclasses
import json
from typing import Any

import pytest

from runtime.engine import (
    Activation,
    ActivationResult,
    ActivationStatus,
    AttemptError,
    ErrorInfo,
    EventRecord,
    Message,
    MessageKind,
    PendingRequest,
    RunState,
    RunStatus,
    SentMessage,
    StateWrite,
)


def _through_json(d: object) -> object:
    return json.loads(json.dumps(d))


def test_a_message_holds_each_field_it_is_given() -> None:
    # Message.__init__ is written by hand (it sets the slots directly): it must keep
    # the dataclass's field order and defaults
    values: dict[str, Any] = {f.name: object() for f in dataclasses.fields(Message)}
    for message in (Message(**values), Message(*values.values())):
        assert {name: getattr(message, name) for name in values} == values
    plain = Message("a", "b", None, 1, 2)
    for f in dataclasses.fields(Message)[5:]:
        assert getattr(plain, f.name) == f.default


def test_activation_round_trips() -> None:
    act = Activation(
        run_id="r1",
        superstep=4,
        executor_id="agg",
        messages=(
            Message("$input", "agg", {"$type": "m.Doc", "$value": {"i": 1}}, 0, 0),
            Message("$fan_in:2", "agg", [1, 2], 3, 0, MessageKind.FAN_IN, 2, None, ("a", "b")),
            Message(
                "$response",
                "agg",
                {"request": 1, "response": "y"},
                3,
                5,
                MessageKind.RESPONSE,
                request_id="r1:2:agg:0",
            ),
        ),
        timestamp=1700000000.25,
        seed=7,
    )
    again = Activation.from_json(_through_json(act.to_json()))  # type: ignore[arg-type]
    assert again == act


def test_activation_result_round_trips() -> None:
    result = ActivationResult(
        executor_id="w1",
        superstep=2,
        status=ActivationStatus.OK,
        attempts=2,
        sent=(
            SentMessage(0, {"x": 1}, (("agg", 3), ("log", 4))),
            SentMessage(1, 5, (), "nobody", "no edge"),
        ),
        outputs=("done", [1, 2]),
        events=(EventRecord("w1", "progress", {"pct": 50}),),
        writes=(StateWrite("count", 1), StateWrite("tmp", None, delete=True)),
        requests=(PendingRequest("r:2:w1:0", "w1", 2, "ok?", "bool"),),
        snapshot={"seen": 3},
        has_snapshot=True,
        error=None,
        duration_s=0.5,
    )
    again = ActivationResult.from_json(_through_json(result.to_json()))  # type: ignore[arg-type]
    assert again == result


def test_failed_result_round_trips_with_its_error() -> None:
    result = ActivationResult(
        "w1",
        2,
        ActivationStatus.FALLBACK,
        attempts=3,
        error=ErrorInfo("TimeoutError", "too slow", "w1", 2),
        fallback="backup",
    )
    assert ActivationResult.from_json(_through_json(result.to_json())) == result  # type: ignore[arg-type]


_CAUSE = ErrorInfo(
    "Declined",
    "card declined",
    "w1",
    2,
    module="shop.payments",
    traceback='Traceback (most recent call last):\n  File "shop/payments.py", line 9, in on_order\n',
    attempts=(
        AttemptError(1, "TimeoutError", "attempt 1 exceeded the timeout of 5s", "builtins"),
        AttemptError(2, "Declined", "card declined", "shop.payments"),
    ),
)


def test_a_failure_record_round_trips_with_its_traceback_attempts_and_cause() -> None:
    result = ActivationResult(
        "w1", 2, ActivationStatus.SKIPPED, attempts=2, error=_CAUSE, failures=_CAUSE.attempts
    )
    assert ActivationResult.from_json(_through_json(result.to_json())) == result  # type: ignore[arg-type]
    run_error = ErrorInfo(
        "ExecutorFailedError",
        "executor 'w1' failed",
        "w1",
        2,
        module="runtime.errors",
        cause=_CAUSE,
    )
    state = RunState("r", "wf", "sig", superstep=2, status=RunStatus.FAILED, error=run_error)
    assert RunState.from_json(_through_json(state.to_json())) == state  # type: ignore[arg-type]


def test_results_and_run_states_written_before_failure_records_still_read() -> None:
    """What hosts built before tracebacks and attempts send, and what such apps stored."""
    old_error = {"type": "ValueError", "message": "bad", "executor_id": "w1", "superstep": 2}
    old_result = ActivationResult("w1", 2, ActivationStatus.FAILED).to_json()
    del old_result["failures"]
    old_result["error"] = old_error
    result = ActivationResult.from_json(old_result)
    assert result.failures == ()
    assert result.error == ErrorInfo("ValueError", "bad", "w1", 2)
    state = RunState("r", "wf", "sig", superstep=2, status=RunStatus.FAILED).to_json()
    state["error"] = old_error
    assert RunState.from_json(state).error == ErrorInfo("ValueError", "bad", "w1", 2)


def test_the_published_error_record_is_the_one_the_engine_writes() -> None:
    from executor_host.protocol import ErrorRecord

    run_error = ErrorInfo("ExecutorFailedError", "failed", module="runtime.errors", cause=_CAUSE)
    written = run_error.to_json()
    assert set(written) == set(ErrorRecord.model_fields)
    assert ErrorRecord.model_validate(written).model_dump() == written
    old = {"type": "ValueError", "message": "bad", "executor_id": "w1", "superstep": 2}
    assert ErrorRecord.model_validate(old).traceback is None


def test_result_of_another_schema_version_is_refused() -> None:
    d = ActivationResult("w1", 1, ActivationStatus.OK).to_json()
    d["schema_version"] = 99
    with pytest.raises(ValueError, match="schema version 99"):
        ActivationResult.from_json(d)


def test_a_fan_out_payload_is_stored_once_in_a_run_state() -> None:
    shared = {"$type": "m.Batch", "$value": {"docs": ["x" * 100] * 100}}
    inbox = tuple(Message("d", f"w{i}", shared, 1, 0, group=i) for i in range(50))
    state = RunState("r", "wf", "sig", superstep=1, inbox=inbox)
    text = json.dumps(state.to_json())
    assert text.count("x" * 100) == 100  # one copy of the payload, not fifty
    again = RunState.from_json(json.loads(text))
    assert again.inbox == inbox
