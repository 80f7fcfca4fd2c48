"""The HTTP client runtime."""

from __future__ import annotations

import asyncio
import json
import os
import time
import weakref
from collections.abc import AsyncIterator
from dataclasses import replace
from typing import Any

import httpx

from runtime.checkpoint import CheckpointStorage
from runtime.engine import Checkpoint, ErrorInfo, RunState, RunStatus
from runtime.errors import RemoteError, RequestError
from runtime.telemetry import current_traceparent
from runtime.workflow.driver import (
    NO_INPUT,
    Emit,
    RequestInfo,
    RunRequest,
    RunResult,
    RunStream,
    Workflow,
    apply_responses,
    event_from_json,
    load_checkpoint,
    new_run_state,
)

__all__ = ["RemoteRuntime"]

_cursors: weakref.WeakKeyDictionary[Workflow, dict[str, Any]] = weakref.WeakKeyDictionary()
"""Per workflow object: its last remote run and the last event chunk seen (responses
to that run continue it)."""

_CODEC = {"encoding": "codec"}
"""Values cross in the codec's tagged form (the API's default is plain JSON): they
decode into the very classes the workflow's handlers take, nested ones included."""
_FOLLOW_AGAIN_S = 0.5
"""How long the client waits before it follows a run whose event stream ended early."""


class RemoteRuntime:
    """A runtime that runs workflows through the HTTP API of a remote deployment.

    The server must serve a workflow of the same name and graph signature (the
    same code), or, for a workflow built by a ``@workflow_factory``, the factory's
    module (``module:*``): the run then names the factory and its parameters
    (``Workflow.origin``), and the servers build the same workflow. ``transport``
    lets tests call an app in-process.
    """

    def __init__(
        self,
        base_url: str,
        *,
        timeout_s: float = 30.0,
        transport: httpx.AsyncBaseTransport | None = None,
        headers: dict[str, str] | None = None,
        run_id_prefix: str = "",
        token: str | None = None,
        busy_s: float = 60.0,
    ) -> None:
        """``token``: the API's bearer token (default: ``SUPERSTEP_API_TOKEN`` if set).
        ``busy_s``: how long a start keeps trying while the API answers 503 "Too many
        starts" (it waits the ``Retry-After`` the API gives between tries)."""
        self.base_url = base_url.rstrip("/")
        self.run_id_prefix = run_id_prefix
        """Scopes this client's run ids on the server (``<prefix><run id>``); results,
        checkpoints and ids reported back carry the caller's own run ids."""
        self.timeout_s = timeout_s
        self.busy_s = busy_s
        self._transport = transport
        self._headers = dict(headers or {})
        token = token if token is not None else os.environ.get("SUPERSTEP_API_TOKEN", "")
        if token:
            self._headers.setdefault("Authorization", f"Bearer {token}")

    def _client(self) -> httpx.AsyncClient:
        return httpx.AsyncClient(
            base_url=self.base_url,
            timeout=httpx.Timeout(self.timeout_s, read=None),
            transport=self._transport,
            headers=self._headers,
        )

    def start(
        self, workflow: Workflow, request: RunRequest, *, collect_events: bool = True
    ) -> RunStream:
        async def produce(emit: Emit, stream: RunStream) -> RunResult:
            async with self._client() as client:
                return await _RemoteRun(
                    client,
                    workflow,
                    request,
                    emit,
                    stream,
                    collect_events,
                    self.run_id_prefix,
                    self.busy_s,
                ).run()

        return RunStream(produce)

    async def run_view(self, run_id: str) -> dict[str, Any]:
        """``GET /runs/{id}`` of a run of this client (its run id, without the prefix):
        status, outputs, pending requests (codec JSON), checkpoints."""
        async with self._client() as client:
            view: dict[str, Any] = await _call(
                client, "GET", f"/runs/{self.run_id_prefix}{run_id}", params=_CODEC
            )
        return view

    async def checkpoint(self, checkpoint_id: str) -> dict[str, Any]:
        """A checkpoint taken remotely, as portable JSON (``Checkpoint.from_json``)."""
        async with self._client() as client:
            data: dict[str, Any] = await _call(client, "GET", f"/checkpoints/{checkpoint_id}")
            return data


async def _call(client: httpx.AsyncClient, method: str, url: str, **kw: Any) -> Any:
    try:
        resp = await client.request(method, url, **kw)
    except httpx.HTTPError as exc:
        raise RemoteError(f"{method} {url}: {exc}") from exc
    if resp.status_code >= 400:
        try:
            problem = resp.json()
        except ValueError:
            problem = {"detail": resp.text}
        detail = problem.get("detail") or problem.get("title") or resp.reason_phrase
        raise RemoteError(
            f"{method} {url}: {resp.status_code} {detail}",
            resp.status_code,
            problem,
            _seconds(resp.headers.get("retry-after")),
        )
    return resp.json()


def _seconds(retry_after: str | None) -> float | None:
    """A ``Retry-After`` in seconds (the HTTP-date form is not used by the API)."""
    try:
        return max(0.0, float(retry_after)) if retry_after is not None else None
    except ValueError:
        return None


class _RemoteRun:
    def __init__(
        self,
        client: httpx.AsyncClient,
        workflow: Workflow,
        request: RunRequest,
        emit: Emit,
        stream: RunStream,
        collect: bool,
        prefix: str,
        busy_s: float,
    ) -> None:
        self.client = client
        self.prefix = prefix
        self.busy_s = busy_s
        """How long a start keeps trying while the API is busy (``RemoteRuntime``'s)."""
        self.storage: CheckpointStorage | None = (
            request.checkpoint_storage or workflow.checkpoint_storage
        )
        self.first_superstep = 0
        self.wf = workflow
        self.codec = workflow.graph.codec
        self.req = request
        self.emit_external = emit
        self.stream = stream
        self.collect = collect
        self.events: list[Any] = []
        self.outputs: list[Any] = []
        self.trace: list[str] = []
        self.last_event_id: str | None = None
        """The id of the last event read; a stream read again resumes after it."""

    async def run(self) -> RunResult:
        run_id, after = await self._begin()
        cancelled = False
        while True:
            try:
                async for ev in self._events(run_id, after, self.last_event_id):
                    self._take(ev)
                    if not cancelled and self.stream.is_cancel_requested():
                        cancelled = True
                        await self._cancel(run_id)
            except asyncio.CancelledError:
                if cancelled or not self.stream.is_cancel_requested():
                    raise
                # cancel() on the stream: cancel the run remotely, then read on to its end
                task = asyncio.current_task()
                if task is not None:
                    task.uncancel()
                cancelled = True
                await self._cancel(run_id)
                after = (_cursors.get(self.wf) or {}).get("after", after)
                continue
            view = await _call(self.client, "GET", f"/runs/{run_id}", params=_CODEC)
            if view["status"] != RunStatus.RUNNING.value:
                break
            # the stream ended before the run did (the server stopped it): follow on
            # from the last event seen, a moment later
            await asyncio.sleep(_FOLLOW_AGAIN_S)
        if self.storage is not None:
            await self._mirror_checkpoints(run_id)
        return self._result(view)

    async def _cancel(self, run_id: str) -> None:
        """Ask the server to cancel the run; one that finished meanwhile (409) is left
        as it ended, and its events are read on to the end as after any cancel."""
        try:
            await _call(self.client, "POST", f"/runs/{run_id}/cancel")
        except RemoteError as exc:
            if exc.status != 409:
                raise

    def _own(self, server_id: str) -> str:
        return server_id.removeprefix(self.prefix) if self.prefix else server_id

    async def _mirror_checkpoints(self, run_id: str) -> None:
        """Copy the checkpoints this run took on the server into the caller's storage,
        under the caller's run id, so they restore on any runtime."""
        assert self.storage is not None
        ids: list[str] = await _call(self.client, "GET", f"/runs/{run_id}/checkpoints")
        own = self._own(run_id)
        have = {i.checkpoint_id for i in await self.storage.list(run_id=own)}
        for server_cp in ids:
            cp_id = self._own(server_cp)
            if cp_id in have:
                continue
            cp = Checkpoint.from_json(await _call(self.client, "GET", f"/checkpoints/{server_cp}"))
            if cp.superstep <= self.first_superstep:
                continue
            await self.storage.save(
                replace(cp, checkpoint_id=cp_id, state=replace(cp.state, run_id=own))
            )

    def _take(self, ev: Any) -> None:
        if ev.type == "output":
            self.outputs.append(ev.data)
        elif ev.type == "superstep_completed" and "digest" in ev.details:
            self.trace.append(ev.details["digest"])
        if self.collect:
            self.events.append(ev)
        self.emit_external(ev)

    async def _begin(self) -> tuple[str, int]:
        req, wf = self.req, self.wf
        remote = _cursors.get(wf) or {}
        if req.checkpoint_id is not None:
            if req.input is not NO_INPUT:
                raise ValueError("pass either a new input or checkpoint_id, not both")
            if self.storage is not None:
                # a checkpoint of the caller's: sent whole (the server checks it as any
                # checkpoint), with the responses to add
                cp = await load_checkpoint(wf, self.storage, req.checkpoint_id)
                if req.responses:
                    apply_responses(wf, cp.state, req.responses)  # refused here, not there
                self.first_superstep = cp.superstep
                own = self.prefix + cp.state.run_id
                body = self._body()
                body["checkpoint"] = replace(cp, state=replace(cp.state, run_id=own)).to_json()
                body["has_input"] = False
                if req.responses:
                    body["responses"] = self._encode_responses()
                started = await self._post_run(body)
                return str(started["run_id"]), int(started.get("after", -1))
            body = self._body()
            body["checkpoint_id"] = self.prefix + req.checkpoint_id
            body["has_input"] = False
            if req.responses:
                body["responses"] = self._encode_responses()
            started = await self._post_run(body)
            return str(started["run_id"]), int(started.get("after", -1))
        if req.input is not NO_INPUT:
            if req.responses:
                raise ValueError("pass either a new input or responses, not both")
            return await self._start(new_run_state(wf, req.input, req.run_id, req.seed))
        if req.responses is not None:
            run_id = remote.get("run_id")
            after = int(remote.get("after", -1))
            if req.run_id is not None and (run_id is None or self._own(run_id) != req.run_id):
                # a paused run named by id (another process started it): its events from
                # the ones the responses cause on
                run_id = self.prefix + req.run_id
                view = await _call(self.client, "GET", f"/runs/{run_id}", params=_CODEC)
                after = int(view.get("event_chunks", 0)) - 1
            if run_id is None:
                raise RequestError(
                    "no paused remote run to answer from this workflow object; pass run_id, or "
                    "checkpoint_id (and checkpoint_storage) to continue a run from a checkpoint"
                )
            try:
                await _call(
                    self.client,
                    "POST",
                    f"/runs/{run_id}/responses",
                    json={"responses": self._encode_responses(), **_CODEC},
                )
            except RemoteError as exc:
                if exc.status == 400:
                    raise RequestError(str(exc.problem.get("detail", exc))) from exc
                raise
            return str(run_id), after
        raise ValueError("run() needs an input, responses, or a checkpoint_id")

    def _body(self) -> dict[str, Any]:
        wf = self.wf
        body: dict[str, Any] = {"workflow": wf.name, "signature": wf.graph.signature, **_CODEC}
        if wf.origin is not None:
            body["factory"], body["params"] = wf.origin[0], wf.origin[1]
        return body

    async def _start(self, state: RunState) -> tuple[str, int]:
        """Start a new run of ``state`` (the state before superstep 1, checked here): the
        server builds the same state from its input, run id and seed."""
        self.first_superstep = state.superstep
        body = self._body()
        (message,) = state.inbox
        body.update(input=message.data, run_id=self.prefix + state.run_id, seed=state.seed)
        started = await self._post_run(body)
        return str(started["run_id"]), int(started.get("after", -1))

    async def _post_run(self, body: dict[str, Any]) -> dict[str, Any]:
        # the run's trace continues the caller's current span (OpenTelemetry)
        parent = current_traceparent()
        headers = {"traceparent": parent} if parent else None
        give_up = time.monotonic() + self.busy_s
        while True:
            try:
                started: dict[str, Any] = await _call(
                    self.client, "POST", "/runs", json=body, headers=headers
                )
                return started
            except RemoteError as exc:
                if exc.status == 400 and "response" in str(exc.problem.get("title", "")).lower():
                    raise RequestError(str(exc.problem.get("detail", exc))) from exc
                # too many starts at once: the server says when to come back
                wait = exc.retry_after
                if exc.status != 503 or wait is None or time.monotonic() + wait > give_up:
                    raise
                await asyncio.sleep(min(wait, 5.0))

    def _encode_responses(self) -> dict[str, Any]:
        return {rid: self.codec.encode(v) for rid, v in (self.req.responses or {}).items()}

    async def _events(
        self, run_id: str, after: int, last_event_id: str | None = None
    ) -> AsyncIterator[Any]:
        """The run's events after chunk ``after``, or after the event ``last_event_id``
        when given (the API resumes after it; ids are ``<chunk>.<index>``, a bare
        ``<chunk>`` from servers before event indexes)."""
        url = f"/runs/{run_id}/events"
        headers = {"Last-Event-ID": last_event_id} if last_event_id else None
        try:
            async with self.client.stream(
                "GET", url, params={"after": after, **_CODEC}, headers=headers
            ) as resp:
                if resp.status_code >= 400:
                    await resp.aread()
                    raise RemoteError(
                        f"GET {url}: {resp.status_code} {resp.text}", resp.status_code
                    )
                data: list[str] = []
                chunk, event_id = after, last_event_id
                async for line in resp.aiter_lines():
                    if line.startswith("data:"):
                        data.append(line[5:].strip())
                    elif line.startswith("id:"):
                        event_id = line[3:].strip()
                        chunk = int(event_id.partition(".")[0])
                    elif not line and data:
                        ev = event_from_json(self.codec, json.loads("\n".join(data)))
                        data = []
                        self.last_event_id = event_id
                        self._remember(run_id, chunk)
                        yield ev
        except httpx.HTTPError as exc:
            raise RemoteError(f"GET {url}: {exc}") from exc

    def _remember(self, run_id: str, chunk: int) -> None:
        _cursors[self.wf] = {"run_id": run_id, "after": chunk}

    def _result(self, view: dict[str, Any]) -> RunResult:
        codec = self.codec
        pending = [
            RequestInfo(
                p["request_id"],
                p["executor_id"],
                codec.decode(p["data"]),
                p["response_type"],
                int(p["superstep"]),
            )
            for p in view["pending_requests"]
        ]
        error = ErrorInfo.from_json(view["error"]) if view.get("error") else None
        checkpoints = view.get("checkpoints") or []
        return RunResult(
            run_id=self._own(view["run_id"]),
            status=RunStatus(view["status"]),
            outputs=self.outputs,
            events=self.events,
            pending_requests=pending,
            trace_hash=view["trace_hash"],
            trace=self.trace,
            supersteps=int(view["superstep"]),
            error=error,
            last_checkpoint_id=self._own(checkpoints[-1]) if checkpoints else None,
        )
