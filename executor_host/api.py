"""The API/coordinator app: the HTTP API and the ``SuperstepCoordinator`` actor type.

Run it with ``uvicorn --factory executor_host.api:create_app`` next to a Dapr
sidecar (``dapr run -f dapr.yaml`` or the local sidecar). Set-up happens in the
lifespan; the handlers are thin and the semantics live in ``runtime.engine``.

With ``SUPERSTEP_POOLS`` set it also serves those executor pools (``_pool``), so one app
runs a whole workflow: the shape of ``dapr.inmemory.yaml``, whose in-memory components
live inside one sidecar.
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
import uuid
from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import asynccontextmanager
from functools import partial
from typing import Annotated, Any, Literal

from dapr.ext.fastapi import DaprActor, DaprApp
from fastapi import FastAPI, Header, Path, Query, Request
from fastapi.responses import Response, StreamingResponse
from pydantic import BaseModel, Field

from executor_host._actors import (
    COORDINATOR_TYPE,
    CoordinatorDeps,
    coordinator_class,
)
from executor_host._batching import GroupCaller
from executor_host._bus import Bus, deliver
from executor_host._catalog import WorkflowInfo, catalog
from executor_host._console import install_console
from executor_host._docs import install_docs
from executor_host._edge import install_edge
from executor_host._ids import (
    CHECKPOINT_ID_MAX,
    CHECKPOINT_ID_PATTERN,
    RUN_ID_MAX,
    RUN_ID_PATTERN,
    is_run_id,
)
from executor_host._pool import PoolHost
from executor_host._problems import Problem, install_problem_handlers, problems
from executor_host._serializer import EnvelopeSerializer
from executor_host._settings import Settings, resolve_app_id
from executor_host._sidecar import ActorInvokeError, SidecarClient
from executor_host._store import RunRecord, RunStore, StoreError
from executor_host._views import (
    EVENT_STREAM,
    CancelAccepted,
    CheckpointView,
    HostView,
    ResponsesAccepted,
    RunStarted,
    RunSummary,
    RunView,
    TopologyView,
    answers,
    json_response,
)
from executor_host._watch import EventPosition, RunWatch, at_end, sse_stream
from executor_host._workflows import InvalidParameters, UnknownWorkflow, WorkflowRegistry
from executor_host.protocol import ActivationEnvelope, HostRecord, ResultEnvelope, results_topic
from runtime.checkpoint import checkpoint_id_for
from runtime.engine import Checkpoint, JsonCodec, RunState, RunStatus, plan, start
from runtime.errors import CheckpointError, CodecError, RequestError
from runtime.telemetry import current_traceparent
from runtime.workflow import (
    Workflow,
    input_from_json,
    plain_event,
    plain_request,
    plain_value,
    response_from_json,
)
from runtime.workflow.driver import apply_responses

__all__ = ["create_app"]

log = logging.getLogger(__name__)


RunId = Annotated[
    str,
    Path(
        pattern=RUN_ID_PATTERN,
        max_length=RUN_ID_MAX,
        description="letters, digits, '_', '.', ':' and '-', not dots only",
    ),
]
CheckpointId = Annotated[
    str,
    Path(
        pattern=CHECKPOINT_ID_PATTERN,
        max_length=CHECKPOINT_ID_MAX,
        description="<run id>@<superstep in six digits>, e.g. r1@000001",
    ),
]


Encoding = Literal["plain", "codec"]
"""How workflow values cross the API: ``plain`` JSON (validated against the declared
types coming in, ``{"type": ..., "value": ...}`` going out), or the ``codec``'s exact
tagged form (``RemoteRuntime`` uses it: it decodes values into the same classes)."""

_ENCODING_DOC = (
    "plain: workflow values as plain JSON, named by their type going out "
    '({"type": "mymod.Finding", "value": {...}}); codec: the JSON codec\'s tagged form'
)

EncodingQuery = Annotated[Encoding, Query(description=_ENCODING_DOC)]


class StartRun(BaseModel):
    workflow: str | None = Field(
        default=None, min_length=1, description="a workflow served by name (GET /workflows)"
    )
    factory: str | None = Field(
        default=None,
        description="or the module:function of a served factory, called with params",
    )
    params: dict[str, Any] | None = None
    input: Any = Field(
        default=None,
        description="the run input: plain JSON, validated against what the start executor "
        "takes (its JSON schema is in GET /workflows)",
    )
    encoding: Encoding = Field(default="plain", description=_ENCODING_DOC)
    has_input: bool = Field(default=True, description="false when resuming from a checkpoint")
    run_id: str | None = Field(default=None, max_length=RUN_ID_MAX, pattern=RUN_ID_PATTERN)
    seed: int = 0
    signature: str | None = Field(default=None, description="the client's graph signature")
    checkpoint: dict[str, Any] | None = Field(default=None, description="a checkpoint to resume")
    checkpoint_id: str | None = Field(
        default=None,
        max_length=CHECKPOINT_ID_MAX,
        pattern=CHECKPOINT_ID_PATTERN,
        description="a stored checkpoint to resume (<run id>@<superstep in six digits>)",
    )
    responses: dict[str, Any] | None = None


class Responses(BaseModel):
    responses: dict[str, Any] = Field(
        min_length=1,
        description="request id -> response, validated against the request's response type",
    )
    encoding: Encoding = Field(default="plain", description=_ENCODING_DOC)


def create_app(config: Settings | None = None) -> FastAPI:
    settings: Settings = config or Settings.from_env()
    registry = WorkflowRegistry.load(settings.workflows)
    watch = RunWatch()
    services: dict[str, Any] = {}
    # the executor pools this app serves itself (SUPERSTEP_POOLS), each a host of its own
    pools = [
        PoolHost(
            pool,
            settings,
            registry,
            route=f"/events/activations/{pool}",
            own_host_id=partial(_pool_host_id, pool),
            # behind the coordinator's own sidecar (an in-memory pub/sub's publish
            # waits for the topic's previous delivery): PoolHost._take_on_receipt
            ack_on_receipt=True,
        )
        for pool in settings.pools
    ]

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        nonlocal settings
        sidecar = services["sidecar"] = SidecarClient()
        await sidecar.wait_outbound()  # the app may start before its daprd listens
        settings = await resolve_app_id(settings)
        store = RunStore(sidecar, settings.state_store, settings.namespace)
        bus = Bus(sidecar, settings.pubsub, settings.app_id, settings.namespace)

        async def publish(envs: Sequence[ActivationEnvelope]) -> None:
            by_pool: dict[str, list[ActivationEnvelope]] = {}
            for env in envs:
                wf = registry.resolve(env.workflow, env.factory, env.params)
                pool = wf.graph.nodes[env.executor_id].placement.pool
                by_pool.setdefault(pool, []).append(env)
            await asyncio.gather(
                *(bus.publish_activations(batch, pool) for pool, batch in by_pool.items())
            )

        deps = CoordinatorDeps(
            store=store,
            registry=registry,
            publish=publish,
            deadline_s=settings.deadline_s,
            inline_state_limit=settings.inline_state_limit,
            payload_ref_bytes=settings.payload_ref_bytes,
            payload_ttl_s=settings.payload_ttl_s,
            on_change=watch.committed,
            live_pools=live_pools,
            no_host_s=settings.no_host_deadline_s,
        )
        cls = coordinator_class()
        await actors.register_actor(
            cls,
            actor_factory=lambda ctx, actor_id: cls(ctx, actor_id, deps),
            message_serializer=EnvelopeSerializer(),
        )
        services["store"] = store
        for pool in pools:
            await pool.start(actors, sidecar, store, settings)
        yield
        for pool in pools:
            await pool.stop()
        await services["sidecar"].aclose()

    app = FastAPI(
        title="superstep",
        version="1",
        description="Start, watch, answer and cancel workflow runs on the Dapr runtime.",
        lifespan=lifespan,
        docs_url=None,  # install_docs serves them, with their files
        redoc_url=None,
    )
    install_problem_handlers(app)
    if settings.api_token and not settings.app_token:
        log.warning(
            "SUPERSTEP_API_TOKEN is set but APP_API_TOKEN is not: the routes the Dapr "
            "sidecar calls (/dapr/*, /actors/*, /events/*) take requests from anyone who "
            "reaches the app"
        )
    actors = DaprActor(app)
    dapr_app = DaprApp(app)
    for pool in pools:
        pool.subscribe(dapr_app)

    async def send_results(run_id: str, payloads: list[Any]) -> None:
        await services["sidecar"].invoke(COORDINATOR_TYPE, run_id, "Results", payloads)

    # results of one run arriving while a call to its coordinator is in flight go
    # together in the next call
    results = GroupCaller(send_results)

    async def coordinator(run_id: str, method: str, body: Any = None) -> Any:
        try:
            return await services["sidecar"].invoke(COORDINATOR_TYPE, run_id, method, body)
        except ActorInvokeError as exc:
            raise Problem(502, "Coordinator unavailable", str(exc)) from exc

    def errors(*statuses: int) -> dict[int | str, dict[str, Any]]:
        # what a client route answers with a problem (and 401 without the token: _edge)
        return problems(*statuses)

    def store() -> RunStore:
        return services["store"]  # type: ignore[no-any-return]

    def workflow(
        name: str, factory: str | None = None, params: dict[str, Any] | None = None
    ) -> Workflow:
        try:
            return registry.resolve(name, factory, params)
        except UnknownWorkflow as exc:
            raise Problem(404, "Unknown workflow", str(exc)) from exc
        except InvalidParameters as exc:
            raise Problem(422, "Invalid workflow parameters", str(exc)) from exc
        except (TypeError, ValueError) as exc:
            raise Problem(400, "Invalid workflow parameters", f"{factory}: {exc}") from exc

    def codec_of(record: RunRecord) -> JsonCodec | None:
        """The codec of a run's workflow (None when it is no longer served here)."""
        try:
            return registry.resolve(record.workflow, record.factory, record.params).graph.codec
        except (LookupError, ValueError, TypeError):
            return None

    async def record_of(run_id: str) -> RunRecord:
        record = await store().load_run(run_id)
        if record is None:
            raise Problem(404, "Unknown run", f"no run {run_id!r}")
        return record

    # -- runs -----------------------------------------------------------------------
    @app.post(
        "/runs",
        status_code=201,
        summary="Start a run (or resume one from a checkpoint)",
        responses={
            **answers(RunStarted, 201, "The run started", {"Location": "the run: /runs/<run id>"}),
            **errors(400, 404, 409, 413, 422, 502),
        },
    )
    async def start_run(body: StartRun, request: Request) -> Response:
        _check_text(dict(body))
        factory, params, hint = body.factory, body.params, ""
        if body.workflow is None and factory is None:
            raise Problem(
                422, "No workflow", "a run names its workflow, or its factory (GET /workflows)"
            )
        if (
            factory is not None
            and not registry.serves_factory(factory)
            and body.workflow in registry
        ):
            # built by a factory whose module is not served as module:*, while the
            # workflow is served by name: that one runs, if it is the same graph
            hint = (
                f" (it is served by name, built with its defaults; to run it with "
                f"parameters, serve {factory.partition(':')[0]}:*)"
            )
            factory, params = None, None
        wf = workflow(body.workflow or "", factory, params)
        body = body.model_copy(update={"workflow": wf.name, "factory": factory, "params": params})
        graph = wf.graph
        if body.signature is not None and body.signature != graph.signature:
            raise Problem(
                409,
                "Workflow version mismatch",
                f"the client's {body.workflow!r} has graph signature {body.signature[:12]}, the "
                f"server's {graph.signature[:12]}: deploy the same workflow code on both sides"
                + hint,
            )
        await _check_placement(wf, body.factory)
        state = await _initial_state(wf, body)
        if not is_run_id(state.run_id):
            raise Problem(
                400,
                "Invalid run id",
                f"{state.run_id!r} is not a run id: up to {RUN_ID_MAX} of {RUN_ID_PATTERN}",
            )
        # continuing a run from its own state or checkpoint reuses its id
        resume = body.checkpoint is not None or body.checkpoint_id is not None
        outcome = await coordinator(
            state.run_id,
            "Start",
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
        if not outcome.get("created"):
            raise Problem(409, "Run exists", f"a run with id {state.run_id!r} already exists")
        return json_response(
            {"run_id": state.run_id, "status": outcome["status"], "after": outcome["after"]},
            201,
            {"Location": f"/runs/{state.run_id}"},
        )

    async def _initial_state(wf: Workflow, body: StartRun) -> RunState:
        graph = wf.graph
        codec = graph.codec
        state: RunState
        if body.checkpoint is not None or body.checkpoint_id is not None:
            try:
                if body.checkpoint is not None:
                    cp = Checkpoint.from_json(body.checkpoint)
                else:
                    found = await store().load_checkpoint(body.checkpoint_id or "")
                    if found is None:
                        raise Problem(
                            404, "Unknown checkpoint", f"no checkpoint {body.checkpoint_id!r}"
                        )
                    cp = found
            except CheckpointError as exc:
                raise Problem(400, "Invalid checkpoint", str(exc)) from exc
            if cp.graph_signature != graph.signature:
                raise Problem(
                    409,
                    "Checkpoint of another graph",
                    f"checkpoint {cp.checkpoint_id!r} was taken with graph signature "
                    f"{cp.graph_signature[:12]}, {body.workflow!r} has {graph.signature[:12]}",
                )
            state = cp.state
            if body.run_id is not None and body.run_id != state.run_id:
                from dataclasses import replace

                state = replace(state, run_id=body.run_id)
        else:
            if not body.has_input:
                raise Problem(400, "No input", "a new run needs an input (or a checkpoint)")
            run_id = body.run_id or uuid.uuid4().hex
            if body.encoding == "plain":
                try:
                    value = input_from_json(wf, body.input)
                    encoded = codec.encode(value)
                except CodecError as exc:
                    raise Problem(422, "Input not accepted", str(exc)) from exc
                state = start(graph, encoded, run_id=run_id, seed=body.seed)
            else:
                try:
                    value = codec.decode(body.input)
                except CodecError as exc:
                    raise Problem(400, "Undecodable input", str(exc)) from exc
                node = graph.nodes[graph.start]
                if not node.accepts(value):
                    raise Problem(
                        422,
                        "Input not accepted",
                        f"the start executor {graph.start!r} has no handler for "
                        f"{type(value).__qualname__}",
                    )
                state = start(graph, body.input, run_id=run_id, seed=body.seed)
        if body.responses:
            state, _ = _apply_responses(wf, state, body.responses, body.encoding)
        return state

    def _apply_responses(
        wf: Workflow, state: RunState, responses: Mapping[str, Any], encoding: Encoding
    ) -> tuple[RunState, dict[str, Any]]:
        """The run state with the responses added, and the responses (codec JSON)."""
        codec = wf.graph.codec
        try:
            if encoding == "plain":
                values = {
                    r: d if r not in state.pending else response_from_json(wf, state.pending[r], d)
                    for r, d in responses.items()
                }
            else:
                values = {r: codec.decode(d) for r, d in responses.items()}
            applied = apply_responses(wf, state, values)
            return applied, {r: codec.encode(v) for r, v in values.items()}
        except (RequestError, CodecError) as exc:
            raise Problem(400, "Invalid response", str(exc)) from exc

    async def _check_placement(wf: Workflow, factory: str | None) -> None:
        hosts = [h for h in await _hosts() if h["alive"]]
        missing: list[str] = []
        module = (factory or "").partition(":")[0]
        for node in wf.graph.executors:
            ok = any(
                h["pool"] == node.placement.pool
                and (
                    module in h.get("modules", [])
                    if factory
                    else node.id in h["workflows"].get(wf.name, [])
                )
                and all(h["labels"].get(k) == v for k, v in node.placement.labels.items())
                for h in hosts
            )
            if not ok:
                want = f"pool {node.placement.pool!r}"
                if node.placement.labels:
                    want += f" with labels {dict(node.placement.labels)}"
                missing.append(f"{node.id!r} needs a live host in {want}")
        if missing:
            raise Problem(
                409,
                "Executors cannot be placed",
                "no live executor host can run: " + "; ".join(missing),
                executors=[m.split("'")[1] for m in missing],
            )

    @app.get(
        "/runs",
        summary="List runs",
        responses={
            **answers(list[RunSummary], headers={"X-Total-Count": "how many runs match, in all"}),
            **errors(422),
        },
    )
    async def list_runs(
        status: Annotated[RunStatus | None, Query(description="only runs in this status")] = None,
        workflow: Annotated[
            str | None, Query(max_length=256, description="only runs of this workflow")
        ] = None,
        limit: Annotated[int, Query(ge=1, le=1000, description="at most this many")] = 100,
        offset: Annotated[
            int, Query(ge=0, description="skip this many (of the matching runs, newest first)")
        ] = 0,
    ) -> Response:
        """The runs, newest first, filtered by status and workflow; ``X-Total-Count``
        says how many match in all (page with ``limit`` and ``offset``)."""
        matching: list[dict[str, Any]] = []
        for run_id in reversed(await store().list_runs()):
            record = await store().load_run(run_id)
            if record is None:
                continue
            if status is not None and record.state.status is not status:
                continue
            if workflow is not None and workflow not in (record.workflow, record.factory):
                continue
            matching.append(
                {
                    "run_id": run_id,
                    "workflow": record.workflow,
                    "factory": record.factory,
                    "status": record.state.status.value,
                    "superstep": record.state.superstep,
                    "created_at": record.created_at,
                    "updated_at": record.updated_at,
                }
            )
        return json_response(
            matching[offset : offset + limit], headers={"X-Total-Count": str(len(matching))}
        )

    @app.get(
        "/runs/{run_id}",
        summary="A run's status, outputs and pending requests",
        responses={**answers(RunView), **errors(404, 422)},
    )
    async def get_run(run_id: RunId, encoding: EncodingQuery = "plain") -> Response:
        record = await record_of(run_id)
        view = _view(record, codec_of(record) if encoding == "plain" else None, encoding)
        view["waiting_for_hosts"] = await _waiting_for_hosts(record)
        return json_response(view)

    async def _waiting_for_hosts(record: RunRecord) -> dict[str, list[str]]:
        """Pool -> executors of the superstep in flight whose pool has no live host now
        (the run fails with ``NoLiveHostError`` if none comes back in time)."""
        if record.state.status is not RunStatus.RUNNING:
            return {}
        try:
            graph = registry.resolve(record.workflow, record.factory, record.params).graph
        except (LookupError, ValueError, TypeError):
            return {}
        live = await live_pools()
        waiting: dict[str, list[str]] = {}
        for activation in plan(record.state, graph, timestamp=record.planned_at):
            pool = graph.nodes[activation.executor_id].placement.pool
            if pool not in live:
                waiting.setdefault(pool, []).append(activation.executor_id)
        return waiting

    @app.get(
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
            **errors(400, 404, 422),
        },
    )
    async def run_events(
        run_id: RunId,
        after: int = Query(default=-1, ge=-1, description="last event chunk seen"),
        encoding: EncodingQuery = "plain",
        last_event_id: str | None = Header(
            default=None,
            alias="Last-Event-ID",
            description="the id of the last event seen (`<chunk>.<index>`); wins over `after`",
        ),
    ) -> Response:
        record = await record_of(run_id)
        position = EventPosition(after)
        if last_event_id:
            try:
                position = EventPosition.parse(last_event_id)
            except ValueError as exc:
                raise Problem(400, "Invalid Last-Event-ID", str(exc)) from exc
        load = store().load_events
        if record.state.status.is_final and await at_end(
            position, record.event_chunks, load, run_id
        ):
            return Response(status_code=204)
        view = partial(plain_event, codec_of(record)) if encoding == "plain" else None

        async def alive() -> bool:
            try:
                return await store().load_run_head(run_id) is not None
            except StoreError:  # the store is unreachable: the run may well be there
                return True

        return StreamingResponse(
            sse_stream(run_id, position, watch, load, view=view, alive=alive),
            media_type="text/event-stream",
        )

    @app.post(
        "/runs/{run_id}/responses",
        status_code=202,
        summary="Answer pending requests",
        responses={
            **answers(ResponsesAccepted, 202, "The responses were taken"),
            **errors(400, 404, 413, 422, 502),
        },
    )
    async def answer(run_id: RunId, body: Responses) -> Response:
        _check_text(body.responses)
        record = await record_of(run_id)
        wf = workflow(record.workflow, record.factory, record.params)
        # validates; the actor applies
        _, encoded = _apply_responses(wf, record.state, body.responses, body.encoding)
        await coordinator(run_id, "Respond", {"responses": encoded})
        return json_response({"run_id": run_id, "accepted": sorted(body.responses)}, 202)

    @app.post(
        "/runs/{run_id}/cancel",
        status_code=202,
        summary="Cancel a run",
        responses={
            **answers(CancelAccepted, 202, "The cancel was taken"),
            **errors(404, 409, 422, 502),
        },
    )
    async def cancel(run_id: RunId) -> Response:
        status = (await record_of(run_id)).state.status
        if status.is_final:
            raise Problem(
                409,
                "Run already finished",
                f"run {run_id!r} is {status.value}: there is nothing to cancel",
                run_status=status.value,
            )
        await coordinator(run_id, "Cancel")
        return json_response({"run_id": run_id}, 202)

    @app.get(
        "/runs/{run_id}/checkpoints", summary="A run's checkpoints", responses=errors(404, 422)
    )
    async def checkpoints(run_id: RunId) -> list[str]:
        return (await record_of(run_id)).checkpoints

    @app.get(
        "/checkpoints/{checkpoint_id}",
        summary="A checkpoint (portable JSON)",
        responses={**answers(CheckpointView), **errors(404, 422)},
    )
    async def get_checkpoint(checkpoint_id: CheckpointId) -> Response:
        cp = await store().load_checkpoint(checkpoint_id)
        if cp is None:
            raise Problem(404, "Unknown checkpoint", f"no checkpoint {checkpoint_id!r}")
        return json_response(cp.to_json())

    @app.get(
        "/runs/{run_id}/topology",
        summary="Which host ran which executor",
        responses={**answers(TopologyView), **errors(400, 404, 422)},
    )
    async def topology(run_id: RunId) -> Response:
        record = await record_of(run_id)
        graph = workflow(record.workflow, record.factory, record.params).graph
        ran: dict[str, set[str]] = {}
        for chunk in range(record.event_chunks):
            for ev in await store().load_events(run_id, chunk):
                host = (ev.get("details") or {}).get("host")
                if host and ev.get("executor_id"):
                    ran.setdefault(ev["executor_id"], set()).add(host)
        return json_response(
            {
                "run_id": run_id,
                "executors": [
                    {
                        "executor_id": n.id,
                        "pool": n.placement.pool,
                        "labels": dict(n.placement.labels),
                        "hosts": sorted(ran.get(n.id, ())),
                    }
                    for n in graph.executors
                ],
            }
        )

    # -- discovery --------------------------------------------------------------------
    async def live_pools() -> set[str]:
        return {str(h["pool"]) for h in await _hosts() if h["alive"]}

    async def _hosts() -> list[dict[str, Any]]:
        now = time.time()
        out = []
        for raw in await store().list_hosts():
            try:
                rec = HostRecord.model_validate(raw)
            except ValueError:
                continue
            out.append({**rec.model_dump(), "alive": now - rec.heartbeat_at < settings.host_ttl_s})
        return out

    @app.get(
        "/hosts",
        summary="Registered executor hosts and whether they are alive",
        responses={**answers(list[HostView]), **errors()},
    )
    async def hosts() -> Response:
        return json_response(await _hosts())

    @app.get(
        "/workflows",
        summary="The workflows and factories served, with their inputs and parameters",
        responses=errors(),
    )
    async def workflows() -> list[WorkflowInfo]:
        live = [h for h in await _hosts() if h["alive"]]
        return catalog(registry, live)

    @app.get("/readyz", include_in_schema=False)
    async def readyz() -> dict[str, str]:
        """Ready when the Dapr sidecar is (liveness stays on ``/healthz``)."""
        reason = await services["sidecar"].sidecar_ready()
        if reason is not None:
            raise Problem(503, "Not ready", reason)
        return {"status": "ok", "dapr": "ok"}

    # -- results from executor hosts -----------------------------------------------------
    @dapr_app.subscribe(  # type: ignore[untyped-decorator]  # untyped SDK
        pubsub=settings.pubsub,
        topic=results_topic(settings.namespace),
        route="/events/results",
    )
    async def on_result(request: Request) -> dict[str, str]:
        return await take_result(dict(request.headers), await request.body())

    async def take_result(headers: Mapping[str, str], body: bytes) -> dict[str, str]:
        async def take(env: ResultEnvelope) -> None:
            await results.submit(env.run_id, env.model_dump(mode="json"), size=len(body))

        return await deliver(headers, body, ResultEnvelope, take, ActorInvokeError)

    # the run console's page and files (no run data in them: open, as the API's docs)
    console = install_console(app, token_required=bool(settings.api_token))
    docs = install_docs(app)
    # the sidecar's calls each superstep (this delivery, the coordinator's actor call)
    # skip FastAPI
    install_edge(
        app,
        settings,
        actor_types=[COORDINATOR_TYPE, *(pool.actor_type for pool in pools)],
        deliveries={
            "/events/results": take_result,
            **{pool.route: pool.take_activation for pool in pools},
        },
        api_token=settings.api_token,
        open_paths=[*console, *docs],
    )
    return app


def _pool_host_id(pool: str, settings: Settings) -> str:
    """The host of a pool the API app serves itself: ``<host id>:<pool>``."""
    return f"{settings.host_id}:{pool}"


_SURROGATE = re.compile("[\ud800-\udfff]")


def _check_text(value: Any) -> None:
    """A 400 problem for a lone UTF-16 surrogate in any string (or key) of ``value``.

    JSON text can escape one (``"\\ud800"``), and Python decodes it, but it is no
    character: it has no UTF-8 encoding, so a run could neither store nor send it on."""
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            found = _SURROGATE.search(item)
            if found is not None:
                raise Problem(
                    400,
                    "Invalid text",
                    f"the request holds a lone surrogate, U+{ord(found.group()):04X}: "
                    "JSON strings must be Unicode text (a surrogate escape only as half of "
                    "a pair)",
                )
        elif isinstance(item, dict):
            stack.extend(item)
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)


def _view(record: RunRecord, codec: JsonCodec | None, encoding: Encoding) -> dict[str, Any]:
    """A run as ``GET /runs/{id}`` shows it: its outputs and pending requests in plain
    JSON (their types named, by ``codec`` where it knows them) or in codec JSON."""
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
        "outputs": [plain_value(codec, o) for o in record.outputs] if plain else record.outputs,
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
