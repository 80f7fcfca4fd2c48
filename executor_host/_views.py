"""What the HTTP API answers: one pydantic model per response body, for its OpenAPI
document.

The routes build their answers as plain JSON (``dict``/``list``) and send them as they
are; these models describe those answers (``responses={...: {"model": ...}}`` of each
route), so that clients read typed schemas, and tests hold real answers to them
(``Model.model_validate(answer)``). A field added to an answer is added here too.

Workflow values cross in two forms (``encoding``): ``plain`` names each value's type
beside its plain JSON (``TypedValue``), ``codec`` gives the JSON codec's tagged form
(any JSON). A field that holds a workflow value says which it takes.

Errors are problem details (RFC 9457, ``application/problem+json``): ``ProblemDetails``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Any

from fastapi.responses import Response
from pydantic import BaseModel, ConfigDict, Field, TypeAdapter

from executor_host.protocol import HostRecord
from runtime.engine import ActivationStatus, MessageKind, RunStatus

__all__ = [
    "EVENT_STREAM",
    "AttemptErrorView",
    "CancelAccepted",
    "CheckpointView",
    "ErrorView",
    "ExecutorPlacement",
    "HostView",
    "MessageView",
    "PendingRequestView",
    "ProblemDetails",
    "ResponsesAccepted",
    "RunStarted",
    "RunStateView",
    "RunSummary",
    "RunView",
    "TopologyView",
    "TypedValue",
    "WorkflowValue",
    "answers",
    "json_response",
]

Responses = dict[int | str, dict[str, Any]]


class TypedValue(BaseModel):
    """A workflow value in plain JSON, named by its type."""

    model_config = ConfigDict(extra="forbid")

    type: str = Field(
        description="the class's public name (mymod.Finding), or the JSON type's Python "
        "name (int, float, str, bool, None, list, dict)",
        examples=["runtime.demo.Summary"],
    )
    value: Any = Field(description="the value as plain JSON")


WorkflowValue = Annotated[
    TypedValue | Any,
    Field(
        description="a workflow value: {type, value} (encoding=plain), or the JSON "
        "codec's tagged form (encoding=codec)"
    ),
]


class AttemptErrorView(BaseModel):
    """Why one attempt of an activation failed."""

    attempt: int = Field(description="1 for the first attempt")
    type: str = Field(description="the exception class's qualified name within its module")
    module: str | None = Field(description="the exception class's module (builtins: Python's)")
    message: str


class ErrorView(BaseModel):
    """Why a run (or an activation) failed: the exception as data."""

    type: str = Field(
        description="the exception class's qualified name within its module",
        examples=["ExecutorFailedError"],
    )
    message: str
    executor_id: str | None = Field(description="the executor that raised it")
    superstep: int | None
    module: str | None = Field(description="the exception class's module (builtins: Python's)")
    traceback: str | None = Field(
        description="the formatted traceback, taken where the handler ran"
    )
    attempts: list[AttemptErrorView] = Field(
        description="an activation's failed attempts, in order (the last one is this error)"
    )
    cause: ErrorView | None = Field(
        description="the error this one reports (an ExecutorFailedError's: the executor's)"
    )


class PendingRequestView(BaseModel):
    """A request (``ctx.request_info``) waiting for its response."""

    request_id: str = Field(description="the key of its response in POST .../responses")
    executor_id: str
    superstep: int
    data: WorkflowValue
    response_type: str = Field(
        description="the type of the response it wants (its public name with "
        "encoding=plain, its codec name with encoding=codec)"
    )
    response_schema: dict[str, Any] | None = Field(
        default=None,
        description="the JSON schema of that response, where it has one (encoding=plain "
        "only: the member is absent with encoding=codec)",
    )


class RunView(BaseModel):
    """A run: ``GET /runs/{run_id}``."""

    run_id: str
    workflow: str = Field(description="the workflow's name")
    factory: str | None = Field(description="the module:function that built it, if one did")
    params: dict[str, Any] | None = Field(description="the factory's parameters")
    signature: str = Field(description="the workflow's graph signature")
    status: RunStatus
    superstep: int = Field(description="supersteps committed")
    outputs: list[WorkflowValue] = Field(description="every output so far, in order")
    pending_requests: list[PendingRequestView]
    trace_hash: str = Field(description="the committed supersteps' digests, chained")
    error: ErrorView | None = Field(description="why the run failed, if it did")
    checkpoints: list[str] = Field(
        description="its newest checkpoint's id, if it has one (all of them: "
        "GET /runs/{run_id}/checkpoints)"
    )
    event_chunks: int = Field(description="event chunks written (GET /runs/{run_id}/events)")
    epoch: int = Field(description="bumped each time a coordinator takes the run over")
    created_at: float = Field(description="unix time")
    updated_at: float = Field(description="unix time")
    waiting_for_hosts: dict[str, list[str]] = Field(
        description="pool -> executors of the superstep in flight whose pool has no live "
        "host now ({} when none, and when the run is not running)"
    )


class RunSummary(BaseModel):
    """A run as ``GET /runs`` lists it."""

    run_id: str
    workflow: str
    factory: str | None
    status: RunStatus
    superstep: int
    created_at: float = Field(description="unix time")
    updated_at: float = Field(description="unix time")


class RunStarted(BaseModel):
    """A run started (or resumed): ``POST /runs``."""

    run_id: str
    status: RunStatus
    after: int = Field(
        description="the last event chunk before this start (-1 for a new run): follow "
        "GET /runs/{run_id}/events?after=<it>"
    )


class ResponsesAccepted(BaseModel):
    """Responses taken: ``POST /runs/{run_id}/responses``."""

    run_id: str
    accepted: list[str] = Field(description="the request ids answered, sorted")


class CancelAccepted(BaseModel):
    """A cancel taken: ``POST /runs/{run_id}/cancel``."""

    run_id: str


class ExecutorPlacement(BaseModel):
    """Where an executor may run, and the hosts that ran it."""

    executor_id: str
    pool: str
    labels: dict[str, str]
    hosts: list[str] = Field(description="the hosts that ran it in this run, sorted")


class TopologyView(BaseModel):
    """Which host ran which executor: ``GET /runs/{run_id}/topology``."""

    run_id: str
    executors: list[ExecutorPlacement]


class HostView(HostRecord):
    """A registered executor host: ``GET /hosts``."""

    alive: bool = Field(description="whether its last heartbeat is recent enough")


class MessageView(BaseModel):
    """A message waiting in a run state (codec JSON)."""

    source: str
    target: str
    data: Any = Field(
        default=None, description="its payload (codec JSON); absent when data_ref is given"
    )
    data_ref: int | None = Field(
        default=None, description="the index of its payload in the run state's payloads"
    )
    superstep: int
    seq: int
    kind: MessageKind | None = Field(default=None, description="absent for a plain message")
    group: int | None = Field(default=None, description="the edge group that routed it")
    request_id: str | None = Field(default=None, description="a response's request")
    parts: list[str] | None = None


class RunStateView(BaseModel):
    """Everything needed to continue a run, as committed at a barrier (codec JSON)."""

    schema_version: int
    run_id: str
    workflow: str
    graph_signature: str
    superstep: int
    status: RunStatus
    payloads: list[Any] = Field(description="payloads several messages share")
    inbox: list[MessageView] = Field(description="the next superstep's messages")
    fan_in: dict[str, dict[str, list[MessageView]]] = Field(
        description="fan-in group -> source -> messages buffered"
    )
    fan_in_rounds: dict[str, list[int]] = Field(
        description="fan-in group -> [rounds flushed, superstep of the last flush]"
    )
    state: dict[str, Any] = Field(description="the shared state: key -> codec JSON")
    pending: list[PendingRequestView]
    snapshots: dict[str, Any] = Field(description="executor id -> its last snapshot")
    activity: dict[str, tuple[int, ActivationStatus, int]] = Field(
        description="executor id -> [last superstep, status, messages sent]"
    )
    state_digest: str
    trace_hash: str
    recent: str = Field(description="recent barriers' 16-digit digests, concatenated")
    seed: int
    external_seq: int
    error: ErrorView | None


class CheckpointView(BaseModel):
    """A checkpoint, portable JSON: ``GET /checkpoints/{checkpoint_id}`` (and what
    ``POST /runs`` resumes from, as ``checkpoint``)."""

    schema_version: int
    checkpoint_id: str = Field(examples=["r1@000003"])
    workflow: str
    graph_signature: str
    created_at: float = Field(description="unix time")
    run_state: RunStateView


class ProblemDetails(BaseModel):
    """An error (RFC 9457 problem details); some problems add members."""

    model_config = ConfigDict(extra="allow", title="Problem")

    type: str = Field(examples=["about:blank"])
    title: str = Field(examples=["Unknown run"])
    status: int = Field(description="the HTTP status")
    detail: str = Field(description="one readable line")
    instance: str = Field(description="the request's path")


_JSON: TypeAdapter[Any] = TypeAdapter(Any)


def json_response(
    content: Any, status_code: int = 200, headers: Mapping[str, str] | None = None
) -> Response:
    """``content`` (plain JSON data) as a route's answer: the bytes FastAPI sends for a
    route that returns a ``dict`` (pydantic's JSON), without checking it against its
    model on each request — three to four times the cost of the serialisation on
    ``GET /runs/{run_id}``. The tests hold the answers to the models instead."""
    return Response(
        _JSON.dump_json(content), status_code, dict(headers or {}), media_type="application/json"
    )


def answers(
    model: Any,
    status: int = 200,
    description: str = "Successful Response",
    headers: Mapping[str, str] | None = None,
    *,
    optional_headers: Mapping[str, str] | None = None,
) -> Responses:
    """The ``responses`` entry of a route that answers ``status`` with ``model``'s JSON,
    and with ``headers`` (name -> what it says), each sent with every such answer, and
    ``optional_headers``, sent with some."""
    entry: dict[str, Any] = {"model": model, "description": description}
    named = [(h, True) for h in (headers or {}).items()]
    named += [(h, False) for h in (optional_headers or {}).items()]
    if named:
        entry["headers"] = {
            name: {"description": text, "required": required, "schema": {"type": "string"}}
            for (name, text), required in named
        }
    return {status: entry}


EVENT_STREAM: Responses = {
    200: {
        "description": "The events as Server-Sent Events: each has an `id` "
        "(`<chunk>.<index>`), an `event` (its type) and one `data` line, the event's JSON; "
        "the stream ends after the run's closing `status` event",
        "content": {"text/event-stream": {"schema": {"type": "string"}}},
    }
}
"""The ``responses`` entry of ``GET /runs/{run_id}/events`` (a stream, not JSON)."""
