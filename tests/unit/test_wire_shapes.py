"""Activations and their results cross process boundaries as JSON: they must
round-trip exactly, through real JSON text."""

from __future__ import annotations

import json

import pytest

from runtime.engine import (
    Activation,
    ActivationResult,
    ActivationStatus,
    ErrorInfo,
    EventRecord,
    Message,
    MessageKind,
    PendingRequest,
    SentMessage,
    StateWrite,
)


def _through_json(d: object) -> object:
    return json.loads(json.dumps(d))


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


def test_result_of_another_schema_version_is_refused() -> None:
    d = ActivationResult("w1", 1, ActivationStatus.OK).to_json()
    d["schema_version"] = 99
    with pytest.raises(ValueError, match="schema version 99"):
        ActivationResult.from_json(d)


def test_a_fan_out_payload_is_stored_once_in_a_run_state() -> None:
    from runtime.engine import RunState

    shared = {"$type": "m.Batch", "$value": {"docs": ["x" * 100] * 100}}
    inbox = tuple(Message("d", f"w{i}", shared, 1, 0, group=i) for i in range(50))
    state = RunState("r", "wf", "sig", superstep=1, inbox=inbox)
    text = json.dumps(state.to_json())
    assert text.count("x" * 100) == 100  # one copy of the payload, not fifty
    again = RunState.from_json(json.loads(text))
    assert again.inbox == inbox
