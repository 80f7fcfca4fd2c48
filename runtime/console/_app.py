"""The console's HTTP API for the in-process runtime: routes and views, without sockets.

``ConsoleApp.handle`` takes a parsed ``Request`` and gives a ``Response`` (or an
``EventStream`` for a run's Server-Sent Events); ``runtime.console._server`` reads and
writes them on sockets. It answers the part of the Dapr runtime's API that the console
page calls (docs/http-api.md), with the same JSON shapes:

* ``GET /workflows``, ``GET /hosts``: the workflows given to ``superstep console
  --workflow`` (each run gets a fresh instance) and the factories of the modules given
  as ``module:*`` (``runtime.registry``, as the Dapr API serves them), and one host:
  this process;
* ``GET /runs``, ``GET /runs/{id}``, ``GET /runs/{id}/checkpoints``,
  ``GET /checkpoints/{id}``: the runs started here, and those of the checkpoint folder
  (their view is their newest checkpoint: checkpoints hold state, not events);
* ``GET /runs/{id}/events``: a run's events as Server-Sent Events, ids ``<chunk>.<index>``
  (a chunk ends with each barrier's ``superstep_completed`` and with ``status``), resumed
  after ``Last-Event-ID``;
* ``POST /runs`` (a workflow, or a factory and its parameters; an input, or a checkpoint
  to resume from), ``POST /runs/{id}/responses``
  (continues a paused run from its newest checkpoint), ``POST /runs/{id}/cancel``.

Errors are RFC 9457 problems (``application/problem+json``) with one line in ``detail``.
"""

from __future__ import annotations

import asyncio
import bisect
import json
import logging
import os
import re
import socket
import time
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from runtime.bearer import bearer_matches
from runtime.checkpoint import (
    CheckpointInfo,
    CheckpointStorage,
    InMemoryCheckpointStorage,
    checkpoint_id_for,
)
from runtime.console._static import SECURITY_HEADERS, assets
from runtime.engine import (
    Checkpoint,
    JsonCodec,
    PendingRequest,
    RunStatus,
)
from runtime.errors import CheckpointError, CodecError, RequestError
from runtime.registry import WorkflowRegistry, describe
from runtime.workflow import (
    Workflow,
    input_from_json,
    plain_event,
    plain_request,
    response_from_json,
)
from runtime.workflow.driver import (
    RunResult,
    RunStream,
    WorkflowEvent,
    apply_responses,
    event_to_json,
)

__all__ = [
    "MAX_BODY",
    "ConsoleApp",
    "EventLog",
    "EventStream",
    "Problem",
    "Request",
    "Response",
]

log = logging.getLogger("runtime.console")

MAX_BODY = 1 << 20
"""The largest request body taken (1 MiB): a run's input or responses."""
KEEPALIVE_S = 15.0
"""A comment line on an idle event stream this often (finds clients that went away)."""

_RUN = r"[A-Za-z0-9_.:-]*[A-Za-z0-9_:-][A-Za-z0-9_.:-]*"
_RUN_ID = re.compile(_RUN)
_CHECKPOINT_ID = re.compile(rf"({_RUN})@[0-9]{{1,12}}")
_EVENT_ID = re.compile(r"(\d{1,18})(?:\.(\d{1,18}))?")
_RUN_ID_MAX = 200
_FINAL = frozenset(s.value for s in RunStatus if s.is_final)
_CLOSING = frozenset({"superstep_completed", "status"})
"""Event types that end a chunk of the event log (a barrier's events; a run's end)."""


# -- requests and answers -------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Request:
    method: str
    path: str
    query: Mapping[str, str] = field(default_factory=dict)
    headers: Mapping[str, str] = field(default_factory=dict)
    """Header names in lower case."""
    body: bytes = b""


@dataclass(frozen=True, slots=True)
class Response:
    status: int
    body: bytes = b""
    media_type: str = "application/json"
    headers: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class EventStream:
    """A 200 ``text/event-stream`` answer: ``chunks`` gives its bytes as they come."""

    chunks: AsyncIterator[bytes]


class Problem(Exception):
    """An answer other than 2xx, as an RFC 9457 problem."""

    def __init__(self, status: int, title: str, detail: str) -> None:
        super().__init__(detail)
        self.status = status
        self.title = title
        self.detail = detail

    def response(self, instance: str) -> Response:
        body = {
            "type": "about:blank",
            "title": self.title,
            "status": self.status,
            "detail": self.detail,
            "instance": instance,
        }
        return Response(self.status, _json(body), "application/problem+json")


def _json(value: Any) -> bytes:
    return json.dumps(value, ensure_ascii=False, allow_nan=False).encode()


def ok(value: Any, status: int = 200) -> Response:
    return Response(status, _json(value))


# -- a run's event log ------------------------------------------------------------------------
class EventLog:
    """A run's events (plain JSON), each with its id ``<chunk>.<index>``; streams wait on
    it for more."""

    def __init__(self) -> None:
        self.events: list[dict[str, Any]] = []
        self.keys: list[tuple[int, int]] = []
        self._chunk = 0
        self._index = 0
        self._changed = asyncio.Event()

    def append(self, events: Sequence[dict[str, Any]]) -> None:
        for ev in events:
            self.events.append(ev)
            self.keys.append((self._chunk, self._index))
            if ev.get("type") in _CLOSING:
                self._chunk, self._index = self._chunk + 1, 0
            else:
                self._index += 1
        self._changed.set()
        self._changed = asyncio.Event()

    @property
    def chunks(self) -> int:
        return self._chunk + (1 if self._index else 0)

    def after(self, event_id: str | None) -> int:
        """The position after the event ``event_id`` names (0 for None): ``<chunk>.<index>``,
        or a bare ``<chunk>`` for the whole chunk. ``ValueError`` for anything else."""
        if not event_id:
            return 0
        found = _EVENT_ID.fullmatch(event_id.strip())
        if found is None:
            raise ValueError(f"{event_id!r} is no event id of this API (<chunk>.<index>)")
        chunk, index = int(found.group(1)), found.group(2)
        if index is None:
            return bisect.bisect_left(self.keys, (chunk + 1, -1))
        return bisect.bisect_right(self.keys, (chunk, int(index)))

    def sse(self, start: int, end: int) -> bytes:
        return "".join(
            f"id: {c}.{i}\nevent: {ev['type']}\ndata: {json.dumps(ev, ensure_ascii=False)}\n\n"
            for ev, (c, i) in zip(self.events[start:end], self.keys[start:end], strict=True)
        ).encode()

    async def wait(self, known: int, within: float) -> bool:
        """True once the log holds more than ``known`` events, False after ``within`` s."""
        if len(self.events) > known:
            return True
        try:
            await asyncio.wait_for(self._changed.wait(), within)
        except TimeoutError:
            return False
        return True


# -- runs ---------------------------------------------------------------------------------------
@dataclass
class _Run:
    """A run started (or continued) by this console."""

    run_id: str
    workflow: str
    codec: JsonCodec
    signature: str
    created_at: float
    factory: str | None = None
    """The factory (``module:function``) that builds its workflow, with ``params``."""
    params: dict[str, Any] | None = None
    status: str = RunStatus.RUNNING.value
    superstep: int = 0
    outputs: list[Any] = field(default_factory=list)
    pending: list[dict[str, Any]] = field(default_factory=list)
    error: dict[str, Any] | None = None
    trace_hash: str = ""
    updated_at: float = 0.0
    log: EventLog = field(default_factory=EventLog)
    stream: RunStream | None = None
    task: asyncio.Task[None] | None = None


WorkflowFactory = Callable[[], Workflow]


@dataclass(frozen=True, slots=True)
class _Origin:
    """What a run's workflow is built from: its name (``template``'s), or a factory and
    its parameters."""

    template: Workflow
    factory: str | None
    params: dict[str, Any] | None


class ConsoleApp:
    """The console's API over ``storage`` (where runs' checkpoints are written and read)
    for the workflows ``factories`` build (each call a new instance, for one run), and
    the workflow factories of ``modules`` (``module:*``: a run names the factory and its
    parameters).

    It keeps at most ``keep_runs`` finished runs in memory (their event logs), the
    oldest finished forgotten first; with an ``InMemoryCheckpointStorage`` their
    checkpoints go too, so a console left running holds a bounded number of runs. A run
    of a checkpoint folder stays listed (the folder has it) and is read again when
    opened."""

    def __init__(
        self,
        factories: Sequence[WorkflowFactory],
        storage: CheckpointStorage,
        *,
        modules: Sequence[str] = (),
        clock: Callable[[], float] = time.time,
        keep_runs: int = 200,
        token: str | None = None,
    ) -> None:
        if keep_runs < 1:
            raise ValueError(f"keep_runs must be at least 1, got {keep_runs}")
        self.keep_runs = keep_runs
        self._token = token.encode() if token else None
        """With a token, every API call wants ``Authorization: Bearer <token>`` (the
        page's files, which hold no run data, and the probe stay open), as the Dapr
        runtime's API with ``SUPERSTEP_API_TOKEN``."""
        by_name: dict[str, WorkflowFactory] = {}
        for factory in factories:
            name = factory().name
            if name in by_name:
                raise ValueError(f"two workflows are named {name!r}")
            by_name[name] = factory
        self.registry = WorkflowRegistry(by_name, modules, listed_in="--workflow")
        self._described: list[dict[str, Any]] | None = None
        self.storage = storage
        self.clock = clock
        self.host = f"in-process:{socket.gethostname()}:{os.getpid()}"
        self._runs: dict[str, _Run] = {}
        self._files = {f"/console/{name}": file for name, file in assets().items()}
        if "index.html" in assets():
            self._files["/"] = assets()["index.html"]
        self._files["/console/settings.json"] = (
            _json({"token_required": self._token is not None, "runtime": "in-process"}),
            "application/json",
        )

    # -- routing ------------------------------------------------------------------------
    async def handle(self, request: Request) -> Response | EventStream:
        try:
            return await self._route(request)
        except Problem as problem:
            return problem.response(request.path)

    async def _route(self, request: Request) -> Response | EventStream:
        method, path = request.method, request.path
        file = self._files.get(path)
        if file is not None:
            _allow(method, "GET", "HEAD")
            return Response(200, file[0], file[1], SECURITY_HEADERS)
        parts = path.strip("/").split("/")
        if parts == ["healthz"]:
            _allow(method, "GET")
            return ok({"status": "ok"})
        if self._token is not None and not bearer_matches(_authorization(request), self._token):
            raise Problem(401, "Unauthorized", "this console wants Authorization: Bearer <token>")
        if parts == ["workflows"]:
            _allow(method, "GET")
            return ok(self._catalog())
        if parts == ["hosts"]:
            _allow(method, "GET")
            return ok([self._host()])
        if parts == ["runs"]:
            _allow(method, "GET", "POST")
            if method == "POST":
                return ok(await self._start(_body(request)), 201)
            return ok(await self._list_runs())
        if len(parts) == 2 and parts[0] == "checkpoints":
            _allow(method, "GET")
            return ok((await self._checkpoint(_checkpoint_id(parts[1]))).to_json())
        if len(parts) in (2, 3) and parts[0] == "runs":
            run_id = _run_id(parts[1])
            action = parts[2] if len(parts) == 3 else ""
            if action == "":
                _allow(method, "GET")
                return ok(await self._view(run_id))
            if action == "events":
                _allow(method, "GET")
                return await self._events(run_id, request.headers.get("last-event-id"))
            if action == "checkpoints":
                _allow(method, "GET")
                return ok([i.checkpoint_id for i in await self._checkpoints_of(run_id, True)])
            if action == "responses":
                _allow(method, "POST")
                return ok(await self._answer(run_id, _body(request)), 202)
            if action == "cancel":
                _allow(method, "POST")
                return ok(self._cancel(run_id), 202)
        raise Problem(404, "Not found", f"no route {path!r}")

    # -- workflows and hosts --------------------------------------------------------------
    def _catalog(self) -> list[dict[str, Any]]:
        """What ``GET /workflows`` says (made once: a workflow's schema takes time, and
        what is served does not change); each executor runs here."""
        if self._described is None:
            self._described = describe(
                self.registry, lambda _name, _kind, wf: {n.id: True for n in wf.graph.executors}
            )
        return self._described

    def _host(self) -> dict[str, Any]:
        return {
            "host_id": self.host,
            "app_id": "superstep-console",
            "pool": "any",
            "labels": {},
            "workflows": {
                name: [n.id for n in self.registry.resolve(name).graph.executors]
                for name in self.registry.names
            },
            "modules": list(self.registry.modules),
            "heartbeat_at": self.clock(),
            "alive": True,
        }

    def _template(self, name: Any, factory: Any = None, params: Any = None) -> Workflow:
        """The template of a served workflow, by name or by factory and parameters: a
        problem, as the Dapr API answers, when none is served."""
        if factory is not None and not isinstance(factory, str):
            raise Problem(422, "Invalid workflow parameters", "factory is module:function")
        if params is not None and not isinstance(params, dict):
            raise Problem(
                422, "Invalid workflow parameters", "params is a JSON object of parameters"
            )
        if factory is None and not isinstance(name, str):
            raise Problem(422, "No workflow", "a run names its workflow, or its factory")
        return self.registry.resolve(name or "", factory, params, refuse=Problem)

    def _served(self, name: str) -> Workflow | None:
        """The template of the workflow named ``name`` when it is served by name."""
        return self.registry.resolve(name) if name in self.registry else None

    # -- reading runs ----------------------------------------------------------------------
    async def _infos(self, run_id: str | None = None) -> list[CheckpointInfo]:
        try:
            return await self.storage.list(run_id=run_id)
        except CheckpointError as exc:
            raise Problem(500, "Unreadable checkpoints", str(exc)) from exc

    async def _checkpoints_of(self, run_id: str, must_exist: bool) -> list[CheckpointInfo]:
        infos = await self._infos(run_id)
        if must_exist and not infos and run_id not in self._runs:
            raise Problem(404, "Unknown run", f"no run {run_id!r}")
        return infos

    async def _checkpoint(self, checkpoint_id: str) -> Checkpoint:
        try:
            return await self.storage.load(checkpoint_id)
        except CheckpointError as exc:
            raise Problem(404, "Unknown checkpoint", f"no checkpoint {checkpoint_id!r}") from exc

    async def _list_runs(self) -> list[dict[str, Any]]:
        stored: dict[str, list[CheckpointInfo]] = {}
        for info in await self._infos():
            stored.setdefault(info.run_id, []).append(info)
        out = [self._summary(run) for run in self._runs.values()]
        for run_id, infos in stored.items():
            if run_id not in self._runs:
                first, last = infos[0], infos[-1]
                out.append(
                    {
                        "run_id": run_id,
                        "workflow": last.workflow,
                        "factory": None,
                        "status": last.status,
                        "superstep": last.superstep,
                        "created_at": first.created_at,
                        "updated_at": last.created_at,
                    }
                )
        return out

    @staticmethod
    def _summary(run: _Run) -> dict[str, Any]:
        return {
            "run_id": run.run_id,
            "workflow": run.workflow,
            "factory": run.factory,
            "status": run.status,
            "superstep": run.superstep,
            "created_at": run.created_at,
            "updated_at": run.updated_at,
        }

    async def _view(self, run_id: str) -> dict[str, Any]:
        run = self._runs.get(run_id)
        infos = await self._checkpoints_of(run_id, True)
        last = infos[-1].checkpoint_id if infos else None
        if run is not None:
            view = {
                **self._summary(run),
                "signature": run.signature,
                "outputs": run.outputs,
                "pending_requests": run.pending,
                "trace_hash": run.trace_hash,
                "error": run.error,
                "event_chunks": run.log.chunks,
                "params": run.params,
            }
        else:
            assert last is not None
            cp = await self._checkpoint(last)
            state = cp.state
            template = self._served(cp.workflow)
            codec = template.graph.codec if template is not None else None
            view = {
                "run_id": run_id,
                "workflow": cp.workflow,
                "factory": None,
                "status": state.status.value,
                "superstep": state.superstep,
                "created_at": infos[0].created_at,
                "updated_at": cp.created_at,
                "signature": cp.graph_signature,
                "outputs": [],
                "pending_requests": [plain_request(codec, p) for p in state.pending.values()],
                "trace_hash": state.trace_hash,
                "error": state.error.to_json() if state.error else None,
                "event_chunks": 0,
                "params": None,
            }
        view.update(checkpoints=[last] if last else [], epoch=0, waiting_for_hosts={})
        return view

    async def _events(self, run_id: str, last_event_id: str | None) -> Response | EventStream:
        run = self._runs.get(run_id)
        if run is None:
            # a run of the checkpoint folder: checkpoints hold its state, not its events
            infos = await self._checkpoints_of(run_id, True)
            if infos[-1].status in _FINAL:
                return Response(204)
            run = await self._adopt(run_id)
        log_ = run.log
        try:
            start = log_.after(last_event_id)
        except ValueError as exc:
            raise Problem(400, "Invalid Last-Event-ID", str(exc)) from exc
        if run.status in _FINAL and start >= len(log_.events):
            return Response(204)
        return EventStream(self._stream(run, start))

    async def _stream(self, run: _Run, start: int) -> AsyncIterator[bytes]:
        log_ = run.log
        position = start
        yield b": events of run " + run.run_id.encode() + b"\n\n"
        while True:
            end = len(log_.events)
            if position < end:
                yield log_.sse(position, end)
                position = end
                if log_.events[end - 1].get("type") == "status":
                    return  # a run's end, or a pause: the client asks again after it
                continue
            if not await log_.wait(position, KEEPALIVE_S):
                yield b": keep-alive\n\n"

    async def _adopt(self, run_id: str) -> _Run:
        """A live record of a run of the checkpoint folder (to follow or continue it)."""
        infos = await self._checkpoints_of(run_id, True)
        cp = await self._checkpoint(infos[-1].checkpoint_id)
        template = self._served(cp.workflow)
        codec = template.graph.codec if template is not None else JsonCodec()
        state = cp.state
        run = _Run(
            run_id,
            cp.workflow,
            codec,
            cp.graph_signature,
            infos[0].created_at,
            status=state.status.value,
            superstep=state.superstep,
            pending=[plain_request(codec, p) for p in state.pending.values()],
            error=state.error.to_json() if state.error else None,
            trace_hash=state.trace_hash,
            updated_at=cp.created_at,
        )
        self._runs.setdefault(run_id, run)
        return self._runs[run_id]

    # -- starting, answering, cancelling ----------------------------------------------------
    async def _start(self, body: dict[str, Any]) -> dict[str, Any]:
        factory, params = body.get("factory"), body.get("params")
        if body.get("workflow") is None and factory is None:
            raise Problem(
                422, "No workflow", "a run names its workflow, or its factory (GET /workflows)"
            )
        template = self._template(body.get("workflow"), factory, params)
        origin = _Origin(template, factory, dict(params or {}) if factory is not None else None)
        run_id = body.get("run_id")
        if run_id is not None:
            run_id = _run_id(run_id, "Invalid run id", 400)
        checkpoint_id = body.get("checkpoint_id")
        if checkpoint_id is not None:
            return await self._resume(origin, _checkpoint_id(checkpoint_id, 400), run_id)
        try:
            value = input_from_json(template, body.get("input"))
        except CodecError as exc:
            raise Problem(422, "Input not accepted", str(exc)) from exc
        run_id = run_id or os.urandom(16).hex()
        await self._check_new(run_id)
        run = self._new_run(run_id, origin, self.clock())
        wf = self._build(run)
        self._drive(run, wf.run(value, checkpoint_storage=self.storage, run_id=run_id))
        return {"run_id": run_id, "status": run.status, "after": -1}

    def _build(self, run: _Run) -> Workflow:
        """A new instance of the run's workflow, for it alone."""
        return self.registry.build(run.workflow, run.factory, run.params)

    async def _check_new(self, run_id: str) -> None:
        if run_id in self._runs or await self._infos(run_id):
            raise Problem(409, "Run exists", f"a run with id {run_id!r} already exists")

    async def _resume(
        self, origin: _Origin, checkpoint_id: str, run_id: str | None
    ) -> dict[str, Any]:
        template = origin.template
        cp = await self._checkpoint(checkpoint_id)
        if cp.graph_signature != template.graph.signature:
            raise Problem(
                409,
                "Checkpoint of another graph",
                f"checkpoint {checkpoint_id!r} was taken with graph signature "
                f"{cp.graph_signature[:12]}, {template.name!r} has {template.graph.signature[:12]}",
            )
        if run_id is None or run_id == cp.run_id:
            # the run goes on from one of its own checkpoints, under its id
            run_id = cp.run_id
            current = self._runs.get(run_id)
            if current is not None and current.status not in _FINAL:
                raise Problem(409, "Run in progress", f"run {run_id!r} is {current.status}")
            start_from = cp
        else:
            await self._check_new(run_id)
            # a new run: the checkpoint, under the new run's id, is its first
            start_from = replace(
                cp,
                checkpoint_id=checkpoint_id_for(run_id, cp.superstep),
                state=replace(cp.state, run_id=run_id),
                created_at=self.clock(),
            )
            await self.storage.save(start_from)
        run = self._runs.get(run_id)
        if run is None:
            run = self._new_run(run_id, origin, self.clock())
        self._continue(run, start_from, None)
        return {"run_id": run_id, "status": run.status, "after": start_from.superstep}

    def _new_run(self, run_id: str, origin: _Origin, created_at: float) -> _Run:
        template = origin.template
        run = _Run(
            run_id,
            template.name,
            template.graph.codec,
            template.graph.signature,
            created_at,
            factory=origin.factory,
            params=origin.params,
            updated_at=created_at,
        )
        self._runs[run_id] = run
        return run

    def _continue(self, run: _Run, cp: Checkpoint, responses: Mapping[str, Any] | None) -> None:
        wf = self._build(run)
        run.status, run.superstep, run.pending, run.error = "running", cp.superstep, [], None
        run.updated_at = self.clock()
        stream = wf.run(
            checkpoint_id=cp.checkpoint_id, checkpoint_storage=self.storage, responses=responses
        )
        self._drive(run, stream)

    async def _answer(self, run_id: str, body: dict[str, Any]) -> dict[str, Any]:
        raw = body.get("responses")
        if not isinstance(raw, dict) or not raw:
            raise Problem(
                422, "No responses", 'give {"responses": {"<request id>": <response>, ...}}'
            )
        run = self._runs.get(run_id) or await self._adopt(run_id)
        if run.status != RunStatus.AWAITING_INPUT.value:
            raise Problem(409, "Run not awaiting input", f"run {run_id!r} is {run.status}")
        template = self._template(run.workflow, run.factory, run.params)
        infos = await self._checkpoints_of(run_id, True)
        cp = await self._checkpoint(infos[-1].checkpoint_id)
        if cp.graph_signature != template.graph.signature:
            raise Problem(
                409,
                "Checkpoint of another graph",
                f"run {run_id!r} ran another version of {template.name!r}",
            )
        values = {rid: self._response(template, cp.state.pending, rid, v) for rid, v in raw.items()}
        try:  # as the run will take them (a JSON type's response is checked here)
            apply_responses(template, cp.state, values)
        except (RequestError, CodecError) as exc:
            raise Problem(400, "Invalid response", str(exc)) from exc
        self._continue(run, cp, values)
        return {"run_id": run_id, "accepted": sorted(values)}

    @staticmethod
    def _response(
        wf: Workflow, pending: Mapping[str, PendingRequest], request_id: str, raw: Any
    ) -> Any:
        request = pending.get(request_id)
        if request is None:
            known = ", ".join(sorted(pending)) or "none"
            raise Problem(
                400, "Invalid response", f"no pending request {request_id!r} (pending: {known})"
            )
        try:
            return response_from_json(wf, request, raw)
        except (CodecError, RequestError) as exc:
            raise Problem(400, "Invalid response", str(exc)) from exc

    def _cancel(self, run_id: str) -> dict[str, Any]:
        run = self._runs.get(run_id)
        if run is None or run.status in _FINAL:
            status = run.status if run is not None else "not running here"
            raise Problem(409, "Run already finished", f"run {run_id!r} is {status}")
        if run.stream is None or run.status != RunStatus.RUNNING.value:
            raise Problem(409, "Run not running", f"run {run_id!r} is {run.status}")
        run.stream.cancel()
        return {"run_id": run_id}

    # -- a run in progress --------------------------------------------------------------------
    def _drive(self, run: _Run, stream: RunStream) -> None:
        run.stream = stream
        run.task = asyncio.ensure_future(self._follow(run, stream))

    async def _follow(self, run: _Run, stream: RunStream) -> None:
        codec = run.codec
        closing: list[dict[str, Any]] = []
        result: RunResult | None = None
        try:
            async for ev in stream:
                plain = self._take(run, ev)
                if ev.type in ("failed", "status"):
                    closing.append(plain)  # published with the run's result, below
                else:
                    run.log.append([plain])
            result = await stream
        except Exception as exc:  # a run that could not start (or a runtime error)
            log.exception("run %s stopped", run.run_id)
            run.status = RunStatus.FAILED.value
            run.error = {
                "type": type(exc).__name__,
                "message": str(exc),
                "module": type(exc).__module__,
                "executor_id": None,
                "superstep": run.superstep,
                "traceback": None,
                "attempts": [],
                "cause": None,
            }
            closing = [
                {
                    "type": "status",
                    "data": run.status,
                    "executor_id": None,
                    "superstep": run.superstep,
                    "request_id": None,
                    "details": {},
                }
            ]
        if result is not None:
            state = result.run_state
            run.status = result.status.value
            run.superstep = result.supersteps
            run.trace_hash = result.trace_hash
            run.error = result.error.to_json() if result.error else None
            run.pending = [plain_request(codec, p) for p in state.pending.values()] if state else []
        run.updated_at = self.clock()
        run.stream = None
        run.log.append(closing)
        self._forget_oldest()

    def _forget_oldest(self) -> None:
        """Forget finished runs beyond ``keep_runs``, the ones that ended first first."""
        finished = [r for r in self._runs.values() if r.status in _FINAL]
        finished.sort(key=lambda r: r.updated_at)
        for run in finished[: max(0, len(finished) - self.keep_runs)]:
            del self._runs[run.run_id]
            if isinstance(self.storage, InMemoryCheckpointStorage):
                self.storage.forget(run.run_id)

    def _take(self, run: _Run, ev: WorkflowEvent) -> dict[str, Any]:
        codec = run.codec
        plain = plain_event(codec, event_to_json(codec, ev))
        run.updated_at = self.clock()
        if ev.type == "superstep_completed" and ev.superstep is not None:
            run.superstep = ev.superstep
        elif ev.type == "output":
            run.outputs.append(plain["data"])
        return plain

    async def close(self) -> None:
        """Cancel the runs in progress and wait for them to stop."""
        tasks = [r.task for r in self._runs.values() if r.task is not None and not r.task.done()]
        for run in self._runs.values():
            if run.stream is not None:
                run.stream.cancel()
        if tasks:
            await asyncio.wait(tasks, timeout=5)


# -- input checks ---------------------------------------------------------------------------------
def _authorization(request: Request) -> bytes | None:
    value = request.headers.get("authorization")
    return value.encode("latin-1") if value is not None else None  # as the server read it


def _allow(method: str, *methods: str) -> None:
    if method not in methods:
        raise Problem(
            405, "Method not allowed", f"{method} is not allowed here: {', '.join(methods)}"
        )


def _run_id(text: Any, title: str = "Invalid run id", status: int = 422) -> str:
    if not isinstance(text, str) or len(text) > _RUN_ID_MAX or not _RUN_ID.fullmatch(text):
        raise Problem(
            status,
            title,
            f"{text!r} is not a run id: up to {_RUN_ID_MAX} of A-Z a-z 0-9 _ . : -, not dots only",
        )
    return text


def _checkpoint_id(text: Any, status: int = 422) -> str:
    if (
        not isinstance(text, str)
        or len(text) > _RUN_ID_MAX + 13
        or not _CHECKPOINT_ID.fullmatch(text)
    ):
        raise Problem(
            status,
            "Invalid checkpoint id",
            f"{text!r} is not a checkpoint id (<run id>@<superstep>, e.g. r1@000001)",
        )
    return text


def _body(request: Request) -> dict[str, Any]:
    media = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if media != "application/json":
        raise Problem(415, "Unsupported media type", "send the body as application/json")
    if len(request.body) > MAX_BODY:
        raise Problem(413, "Body too large", f"a request body takes at most {MAX_BODY} bytes")
    try:
        value = json.loads(request.body or b"null")
    except (ValueError, UnicodeDecodeError) as exc:
        raise Problem(400, "Invalid JSON", f"the body is not JSON: {exc}") from exc
    if not isinstance(value, dict):
        raise Problem(400, "Invalid body", "the body must be a JSON object")
    _check_text(value)
    return value


_SURROGATE = re.compile("[\ud800-\udfff]")


def _check_text(value: Any) -> None:
    """A 400 problem for a lone UTF-16 surrogate in any string (or key) of ``value``."""
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            if _SURROGATE.search(item):
                raise Problem(400, "Invalid text", "the request holds a lone surrogate escape")
        elif isinstance(item, dict):
            stack.extend(item)
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
