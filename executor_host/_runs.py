"""The API's runs: start one, list them, view one, follow its events, answer its
requests, cancel it. The coordinator actor of the run does the work; these routes
check what the client sent and read the run store."""

from __future__ import annotations

from functools import partial
from typing import Annotated, Any

from fastapi import APIRouter, Header, Query, Request
from fastapi.responses import Response, StreamingResponse

from executor_host._admission import Busy
from executor_host._ids import RUN_ID_MAX, RUN_ID_PATTERN, RunId, is_run_id
from executor_host._inputs import (
    Encoding,
    EncodingQuery,
    Responses,
    StartRun,
    check_placement,
    check_text,
    initial_state,
    with_responses,
)
from executor_host._problems import Problem, problems
from executor_host._run_index import Position
from executor_host._services import APIServices, Services
from executor_host._store import RunHead, RunRecord
from executor_host._views import (
    EVENT_STREAM,
    CancelAccepted,
    ResponsesAccepted,
    RunStarted,
    RunSummary,
    RunView,
    answers,
    json_response,
)
from executor_host._watch import EventPosition, at_end, sse_stream
from runtime.checkpoint import checkpoint_id_for
from runtime.engine import JsonCodec, RunState, RunStatus, plan
from runtime.ports import PortError
from runtime.telemetry import current_traceparent
from runtime.workflow import Workflow, plain_event, plain_request, plain_value

__all__ = ["router"]

router = APIRouter()


@router.post(
    "/runs",
    status_code=201,
    summary="Start a run (or resume one from a checkpoint)",
    responses={
        **answers(RunStarted, 201, "The run started", {"Location": "the run: /runs/<run id>"}),
        **problems(400, 404, 409, 413, 422, 502, 503),
    },
)
async def start_run(body: StartRun, request: Request, services: Services) -> Response:
    check_text(dict(body))
    registry = services.registry
    factory, params, hint = body.factory, body.params, ""
    if body.workflow is None and factory is None:
        raise Problem(
            422, "No workflow", "a run names its workflow, or its factory (GET /workflows)"
        )
    if factory is not None and not registry.serves_factory(factory) and body.workflow in registry:
        # built by a factory whose module is not served as module:*, while the
        # workflow is served by name: that one runs, if it is the same graph
        hint = (
            f" (it is served by name, built with its defaults; to run it with "
            f"parameters, serve {factory.partition(':')[0]}:*)"
        )
        factory, params = None, None
    wf = services.workflow(body.workflow or "", factory, params)
    body = body.model_copy(update={"workflow": wf.name, "factory": factory, "params": params})
    graph = wf.graph
    if body.signature is not None and body.signature != graph.signature:
        raise Problem(
            409,
            "Workflow version mismatch",
            f"the client's {body.workflow!r} has graph signature {body.signature[:12]}, the "
            f"server's {graph.signature[:12]}: deploy the same workflow code on both sides" + hint,
        )
    try:
        async with services.starts.admit():
            state, outcome = await _start(services, wf, body, request)
    except Busy as exc:
        raise Problem(
            503,
            "Too many starts",
            f"{exc}: try again shortly",
            headers={"Retry-After": "1"},
        ) from exc
    if not outcome.get("created"):
        raise Problem(409, "Run exists", f"a run with id {state.run_id!r} already exists")
    return json_response(
        {"run_id": state.run_id, "status": outcome["status"], "after": outcome["after"]},
        201,
        {"Location": f"/runs/{state.run_id}"},
    )


async def _start(
    services: APIServices, wf: Workflow, body: StartRun, request: Request
) -> tuple[RunState, dict[str, Any]]:
    """A start's work once admitted: placement, the initial state, the coordinator's
    ``Start``; the state and the coordinator's answer."""
    await check_placement(services, wf, body.factory)
    state = await initial_state(services, wf, body)
    if not is_run_id(state.run_id):
        raise Problem(
            400,
            "Invalid run id",
            f"{state.run_id!r} is not a run id: up to {RUN_ID_MAX} of {RUN_ID_PATTERN}",
        )
    # continuing a run from its own state or checkpoint reuses its id
    resume = body.checkpoint is not None or body.checkpoint_id is not None
    outcome = await services.start_run(
        state.run_id,
        {
            "workflow": body.workflow,
            "factory": body.factory,
            "params": body.params,
            "state": state.to_json(),
            "resume": resume,
            # the run's trace continues the request's (OpenTelemetry)
            "traceparent": current_traceparent() or request.headers.get("traceparent"),
        },
    )
    return state, outcome


@router.get(
    "/runs",
    summary="List runs",
    responses={
        **answers(
            list[RunSummary],
            optional_headers={
                "X-Next-Cursor": "more runs may follow: pass it as `cursor` for the next page"
            },
        ),
        **problems(422),
    },
)
async def list_runs(
    services: Services,
    status: Annotated[RunStatus | None, Query(description="only runs in this status")] = None,
    workflow: Annotated[
        str | None, Query(max_length=256, description="only runs of this workflow")
    ] = None,
    limit: Annotated[int, Query(ge=1, le=1000, description="at most this many")] = 100,
    cursor: Annotated[
        str | None,
        Query(
            pattern=CURSOR_PATTERN,
            description="go on after the previous page (its `X-Next-Cursor`)",
        ),
    ] = None,
    offset: Annotated[
        int,
        Query(
            ge=0,
            le=10000,
            description="skip this many of the matching runs first (each one skipped is "
            "read: page with `cursor`)",
        ),
    ] = 0,
) -> Response:
    """The runs, newest first, filtered by status and workflow, a page at a time: the
    answer's ``X-Next-Cursor`` header, when there is one, is the ``cursor`` of the next
    page. A page reads the runs index and the records it lists, and no more than 1,000
    runs besides those it answers: when few runs match a filter, a page may hold fewer
    than ``limit`` and still name a next one."""
    before = _position(cursor) if cursor is not None else None

    def keep(run: RunHead) -> bool:
        if status is not None and run.status is not status:
            return False
        return workflow is None or workflow in (run.workflow, run.factory)

    found, after = await services.store.list_runs(limit=offset + limit, before=before, keep=keep)
    headers = {"X-Next-Cursor": f"{after[0]}.{after[1]}"} if after is not None else {}
    return json_response([run.summary() for run in found[offset:]], headers=headers)


CURSOR_PATTERN = r"^-?[0-9]{1,9}\.[0-9]{1,9}$"
"""A ``GET /runs`` cursor: the position (page, index) in the runs index of the last run
a page went through."""


def _position(cursor: str) -> Position:
    page, _, index = cursor.partition(".")
    return int(page), int(index)


@router.get(
    "/runs/{run_id}",
    summary="A run's status, outputs and pending requests",
    responses={**answers(RunView), **problems(404, 422)},
)
async def get_run(run_id: RunId, services: Services, encoding: EncodingQuery = "plain") -> Response:
    record = await services.record(run_id)
    outputs = await services.store.load_outputs(record)
    codec = services.codec_of(record) if encoding == "plain" else None
    view = _view(record, outputs, codec, encoding)
    view["waiting_for_hosts"] = await _waiting_for_hosts(services, record)
    return json_response(view)


@router.get(
    "/runs/{run_id}/events",
    summary="The run's events (Server-Sent Events)",
    description=(
        "Each event's id is `<chunk>.<index>`, its position in the run's event log. "
        "A client that reconnects with the last id it got (the `Last-Event-ID` header, "
        "as browsers send it) gets the events after it; one that is at the end of a "
        "finished run's log gets 204, which tells a browser to stop reconnecting."
    ),
    response_class=StreamingResponse,
    responses={
        **EVENT_STREAM,
        204: {"description": "the run has ended and the client has every event"},
        **problems(400, 404, 422),
    },
)
async def run_events(
    run_id: RunId,
    services: Services,
    after: int = Query(default=-1, ge=-1, description="last event chunk seen"),
    encoding: EncodingQuery = "plain",
    last_event_id: str | None = Header(
        default=None,
        alias="Last-Event-ID",
        description="the id of the last event seen (`<chunk>.<index>`); wins over `after`",
    ),
) -> Response:
    record = await services.record(run_id)
    position = EventPosition(after)
    if last_event_id:
        try:
            position = EventPosition.parse(last_event_id)
        except ValueError as exc:
            raise Problem(400, "Invalid Last-Event-ID", str(exc)) from exc
    store = services.store
    load = store.load_events
    if record.state.status.is_final and await at_end(position, record.event_chunks, load, run_id):
        return Response(status_code=204)
    view = partial(plain_event, services.codec_of(record)) if encoding == "plain" else None

    async def alive() -> bool:
        try:
            return await store.load_run_head(run_id) is not None
        except PortError:  # the store is unreachable: the run may well be there
            return True

    return StreamingResponse(
        sse_stream(run_id, position, services.watch, load, view=view, alive=alive),
        media_type="text/event-stream",
    )


@router.post(
    "/runs/{run_id}/responses",
    status_code=202,
    summary="Answer pending requests",
    responses={
        **answers(ResponsesAccepted, 202, "The responses were taken"),
        **problems(400, 404, 413, 422, 502),
    },
)
async def answer(run_id: RunId, body: Responses, services: Services) -> Response:
    check_text(body.responses)
    record = await services.record(run_id)
    wf = services.workflow(record.workflow, record.factory, record.params)
    # validates; the actor applies
    _, encoded = with_responses(wf, record.state, body.responses, body.encoding)
    await services.coordinator(run_id, "Respond", {"responses": encoded})
    return json_response({"run_id": run_id, "accepted": sorted(body.responses)}, 202)


@router.post(
    "/runs/{run_id}/cancel",
    status_code=202,
    summary="Cancel a run",
    responses={
        **answers(CancelAccepted, 202, "The cancel was taken"),
        **problems(404, 409, 422, 502),
    },
)
async def cancel(run_id: RunId, services: Services) -> Response:
    status = (await services.record(run_id)).state.status
    if status.is_final:
        raise Problem(
            409,
            "Run already finished",
            f"run {run_id!r} is {status.value}: there is nothing to cancel",
            run_status=status.value,
        )
    await services.coordinator(run_id, "Cancel")
    return json_response({"run_id": run_id}, 202)


async def _waiting_for_hosts(services: APIServices, record: RunRecord) -> dict[str, list[str]]:
    """Pool -> executors of the superstep in flight whose pool has no live host now
    (the run fails with ``NoLiveHostError`` if none comes back in time)."""
    if record.state.status is not RunStatus.RUNNING:
        return {}
    try:
        graph = services.registry.resolve(record.workflow, record.factory, record.params).graph
    except (LookupError, ValueError, TypeError):
        return {}
    live = await services.live_pools()
    waiting: dict[str, list[str]] = {}
    for activation in plan(record.state, graph, timestamp=record.planned_at):
        pool = graph.nodes[activation.executor_id].placement.pool
        if pool not in live:
            waiting.setdefault(pool, []).append(activation.executor_id)
    return waiting


def _view(
    record: RunRecord, outputs: list[Any], codec: JsonCodec | None, encoding: Encoding
) -> dict[str, Any]:
    """A run as ``GET /runs/{id}`` shows it: its outputs (codec JSON,
    ``RunStore.load_outputs``) and pending requests in plain JSON (their types named, by
    ``codec`` where it knows them) or in codec JSON."""
    state = record.state
    plain = encoding == "plain"
    return {
        "run_id": record.run_id,
        "workflow": record.workflow,
        "factory": record.factory,
        "params": record.params,
        "signature": record.signature,
        "status": state.status.value,
        "superstep": state.superstep,
        "outputs": [plain_value(codec, o) for o in outputs] if plain else outputs,
        "pending_requests": [
            plain_request(codec, p) if plain else p.to_json() for p in state.pending.values()
        ],
        "trace_hash": state.trace_hash,
        "error": state.error.to_json() if state.error else None,
        "checkpoints": (
            []
            if record.last_checkpoint is None
            else [checkpoint_id_for(record.run_id, record.last_checkpoint)]
        ),
        "event_chunks": record.event_chunks,
        "epoch": record.epoch,
        "created_at": record.created_at,
        "updated_at": record.updated_at,
    }
