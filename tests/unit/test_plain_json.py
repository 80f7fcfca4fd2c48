"""Plain JSON of workflow values (runtime/workflow/_plain.py) and ``@workflow_factory``:
what the CLI and the HTTP API read and write, and how a factory-built workflow records
the call that built it."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Never

import pytest
from pydantic import BaseModel

from runtime import (
    CodecError,
    Executor,
    RequestError,
    Workflow,
    WorkflowBuilder,
    WorkflowContext,
    handler,
    response_handler,
    workflow_factory,
)
from runtime.demo import Job, Summary, build_workflow
from runtime.engine import JsonCodec, PendingRequest, readable_error
from runtime.workflow import (
    input_from_json,
    plain_event,
    plain_json,
    plain_request,
    plain_value,
    response_from_json,
)


@dataclass(frozen=True)
class Finding:
    severity: int
    where: str = "-"


class Verdict(BaseModel):
    accepted: bool
    reason: str = ""


class Reviewer(Executor):
    @handler
    async def review(self, finding: Finding, ctx: WorkflowContext[Never, Finding]) -> None:
        await ctx.request_info(finding, Verdict)

    @response_handler
    async def decided(
        self, finding: Finding, verdict: Verdict, ctx: WorkflowContext[Never, Finding]
    ) -> None:
        await ctx.yield_output(finding)


@workflow_factory
def reviews(threshold: int = 3, *, label: str = "r", **extra: Any) -> Workflow:
    """A one-executor review workflow."""
    return WorkflowBuilder(start_executor=Reviewer("reviewer"), name=f"reviews-{label}").build()


def _pending(response_type: str) -> PendingRequest:
    return PendingRequest("r1", "reviewer", 1, {}, response_type)


# -- in ---------------------------------------------------------------------------------
def test_a_json_object_becomes_the_start_executors_dataclass() -> None:
    assert input_from_json(reviews(), {"severity": 2}) == Finding(2)
    # the codec's tagged form is taken too
    tagged = reviews().graph.codec.encode(Finding(4, "x"))
    assert input_from_json(reviews(), tagged) == Finding(4, "x")


@pytest.mark.parametrize(
    ("raw", "why"),
    [
        ({"severity": "2"}, "(as Finding: severity: Input should be a valid integer)"),
        ({"where": "a"}, "(as Finding: severity: Field required)"),
        ([1], "(as Finding: Input should be an object)"),
    ],
)
def test_input_that_does_not_fit_names_the_field_in_one_line(raw: Any, why: str) -> None:
    with pytest.raises(CodecError) as caught:
        input_from_json(reviews(), raw)
    assert str(caught.value) == (
        f"the input does not fit the start executor 'reviewer', which handles Finding {why}"
    )


def test_a_tagged_input_that_does_not_decode_is_one_line() -> None:
    with pytest.raises(CodecError) as caught:
        input_from_json(reviews(), {"$type": type_tag_of(Finding), "$value": {"severity": "x"}})
    text = str(caught.value)
    assert text.endswith(
        "Finding: severity: Input should be a valid integer, unable to parse string as an integer"
    )
    assert "\n" not in text and "pydantic" not in text


def type_tag_of(cls: type) -> str:
    return f"{cls.__module__}.{cls.__qualname__}"


def test_a_response_is_validated_against_its_requests_response_type() -> None:
    wf = reviews()
    tag = type_tag_of(Verdict)
    assert response_from_json(wf, _pending(tag), {"accepted": True}) == Verdict(accepted=True)
    assert response_from_json(wf, _pending("int"), 3) == 3  # a JSON type: as it is
    with pytest.raises(RequestError) as caught:
        response_from_json(wf, _pending(tag), {"accepted": "perhaps"})
    assert str(caught.value) == (
        f"response to request 'r1' must be {tag}: accepted: Input should be a valid boolean"
    )


# -- out --------------------------------------------------------------------------------
def test_values_go_out_as_plain_json_named_by_their_public_type() -> None:
    codec = build_workflow().graph.codec
    summary = Summary(documents=1, words=2, high_risk=0, riskiest=[3], clauses={"a": 1})
    typed = plain_value(codec, codec.encode(summary))
    # named where users import it from, not by the private module that defines it
    assert typed["type"] == "runtime.demo.Summary"
    assert typed["value"]["riskiest"] == [3]
    assert plain_value(codec, 11) == {"type": "int", "value": 11}
    assert plain_value(codec, None) == {"type": "None", "value": None}
    nested = codec.encode([Job(docs=1), {"$odd": Job(docs=2)}])
    assert plain_value(codec, nested) == {
        "type": "list",
        "value": [{"docs": 1, "seed": 0}, {"$odd": {"docs": 2, "seed": 0}}],
    }
    assert "$type" not in json.dumps(plain_json(nested))


def test_a_class_the_codec_does_not_know_keeps_its_codec_name() -> None:
    data = {"$type": "elsewhere._mod.Thing", "$value": {"a": 1}}
    assert plain_value(JsonCodec(), data) == {"type": "elsewhere._mod.Thing", "value": {"a": 1}}


def test_a_pending_request_names_its_response_type_and_schema() -> None:
    codec = reviews().graph.codec
    pending = PendingRequest("r1", "reviewer", 2, codec.encode(Finding(5)), type_tag_of(Verdict))
    shown = plain_request(codec, pending)
    assert shown["data"] == {"type": type_tag_of(Finding), "value": {"severity": 5, "where": "-"}}
    assert shown["response_type"] == type_tag_of(Verdict)
    assert shown["response_schema"]["required"] == ["accepted"]
    assert plain_request(codec, _pending("bool"))["response_schema"] == {"type": "boolean"}


def test_events_carry_values_named_and_runtime_data_as_it_is() -> None:
    codec = reviews().graph.codec
    output = {"type": "output", "data": codec.encode(Finding(1)), "details": {}}
    custom = {"type": "progress", "data": {"done": 3}, "details": {}}
    status = {"type": "status", "data": "completed", "details": {}}
    request = {
        "type": "request_info",
        "data": codec.encode(Finding(2)),
        "details": {"response_type": type_tag_of(Verdict)},
    }
    assert plain_event(codec, output)["data"] == {
        "type": type_tag_of(Finding),
        "value": {"severity": 1, "where": "-"},
    }
    assert plain_event(codec, custom)["data"] == {"type": "dict", "value": {"done": 3}}
    assert plain_event(codec, status)["data"] == "completed"
    assert plain_event(codec, request)["details"] == {"response_type": type_tag_of(Verdict)}


def test_codec_decode_errors_are_one_line() -> None:
    codec = JsonCodec([Finding])
    with pytest.raises(CodecError) as caught:
        codec.decode({"$type": type_tag_of(Finding), "$value": {"severity": [], "where": 1}})
    assert str(caught.value) == (
        f"cannot decode {type_tag_of(Finding)}: severity: Input should be a valid integer "
        "(and 1 more error)"
    )
    assert readable_error(ValueError("two\nlines")) == "two lines"


# -- @workflow_factory ---------------------------------------------------------------------
def test_a_factory_records_the_call_that_built_the_workflow() -> None:
    ref = f"{__name__}:reviews"
    assert reviews().origin == (ref, {})
    assert reviews(5, label="x", colour="red").origin == (
        ref,
        {"threshold": 5, "label": "x", "colour": "red"},
    )


def test_a_factory_exported_by_a_package_is_named_by_the_package() -> None:
    # what `superstep demo --runtime dapr` runs: servers list runtime.demo:*
    wf = build_workflow(2, latency_ms=0, analysis_pool="analysis")
    assert wf.origin == (
        "runtime.demo:build_workflow",
        {"workers": 2, "latency_ms": 0, "analysis_pool": "analysis"},
    )


@pytest.mark.parametrize("extra", [{"when": (1, 2)}, {"nan": float("nan")}, {"obj": object()}])
def test_arguments_that_do_not_cross_json_unchanged_leave_no_origin(extra: Any) -> None:
    assert reviews(**extra).origin is None


def by_position(n: int, /) -> Workflow:
    return reviews()


def _private() -> Workflow:
    return reviews()


def test_only_public_module_level_functions_taking_names_can_be_factories() -> None:
    def nested() -> Workflow:
        return reviews()

    with pytest.raises(TypeError, match="public module-level function"):
        workflow_factory(nested)
    with pytest.raises(TypeError, match="public module-level function"):
        workflow_factory(_private)
    with pytest.raises(TypeError, match="takes n by position only"):
        workflow_factory(by_position)
