"""The HTTP client runtime."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

import httpx

from runtime.checkpoint import CheckpointStorage
from runtime.engine import ErrorInfo, RunStatus
from runtime.errors import RemoteError, RequestError
from runtime.workflow import RequestInfo, RunRequest, RunResult, RunStream, Workflow
from runtime.workflow._reporting import event_from_json
from runtime.workflow._run import NO_INPUT, Emit

__all__ = ["RemoteRuntime"]


class RemoteRuntime:
    """A runtime that runs workflows through the HTTP API of a remote deployment.

    The server must serve a workflow of the same name and graph signature (the
    same code). ``transport`` lets tests call an app in-process.
    """

    def __init__(
        self,
        base_url: str,
        *,
        timeout_s: float = 30.0,
        transport: httpx.AsyncBaseTransport | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.timeout_s = timeout_s
        self._transport = transport
        self._headers = dict(headers or {})

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
                    client, workflow, request, emit, stream, collect_events
                ).run()

        return RunStream(produce)

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
        raise RemoteError(f"{method} {url}: {resp.status_code} {detail}", resp.status_code, problem)
    return resp.json()


class _RemoteRun:
    def __init__(
        self,
        client: httpx.AsyncClient,
        workflow: Workflow,
        request: RunRequest,
        emit: Emit,
        stream: RunStream,
        collect: bool,
    ) -> None:
        self.client = client
        self.wf = workflow
        self.codec = workflow.graph.codec
        self.req = request
        self.emit_external = emit
        self.stream = stream
        self.collect = collect
        self.events: list[Any] = []
        self.outputs: list[Any] = []

    async def run(self) -> RunResult:
        run_id, after = await self._begin()
        cancelled = False
        while True:
            try:
                async for ev in self._events(run_id, after):
                    self._take(ev)
                    if not cancelled and self.stream.is_cancel_requested():
                        cancelled = True
                        await _call(self.client, "POST", f"/runs/{run_id}/cancel")
                break
            except asyncio.CancelledError:
                if cancelled or not self.stream.is_cancel_requested():
                    raise
                # cancel() on the stream: cancel the run remotely, then read on to its end
                task = asyncio.current_task()
                if task is not None:
                    task.uncancel()
                cancelled = True
                await _call(self.client, "POST", f"/runs/{run_id}/cancel")
                after = (self.wf._remote_cursor or {}).get("after", after)
        view = await _call(self.client, "GET", f"/runs/{run_id}")
        return self._result(view)

    def _take(self, ev: Any) -> None:
        if ev.type == "output":
            self.outputs.append(ev.data)
        if self.collect:
            self.events.append(ev)
        self.emit_external(ev)

    async def _begin(self) -> tuple[str, int]:
        req, wf = self.req, self.wf
        remote = wf._remote_cursor or {}
        body: dict[str, Any] = {
            "workflow": wf.name,
            "signature": wf.graph.signature,
            "seed": req.seed,
        }
        if req.run_id is not None:
            body["run_id"] = req.run_id
        if req.checkpoint_id is not None:
            body["has_input"] = False
            storage: CheckpointStorage | None = req.checkpoint_storage or wf.checkpoint_storage
            if storage is not None:
                body["checkpoint"] = (await storage.load(req.checkpoint_id)).to_json()
            else:
                body["checkpoint_id"] = req.checkpoint_id
            if req.responses:
                body["responses"] = self._encode_responses()
        elif req.input is not NO_INPUT:
            body["input"] = self.codec.encode(req.input)
        elif req.responses is not None:
            run_id = remote.get("run_id")
            if run_id is None:
                raise RequestError(
                    "no paused remote run to answer from this workflow object; pass checkpoint_id "
                    "(and checkpoint_storage) to continue a run from a checkpoint"
                )
            await _call(
                self.client,
                "POST",
                f"/runs/{run_id}/responses",
                json={"responses": self._encode_responses()},
            )
            return str(run_id), int(remote.get("after", -1))
        else:
            raise ValueError("run() needs an input, responses, or a checkpoint_id")
        started = await _call(self.client, "POST", "/runs", json=body)
        return str(started["run_id"]), -1

    def _encode_responses(self) -> dict[str, Any]:
        return {rid: self.codec.encode(v) for rid, v in (self.req.responses or {}).items()}

    async def _events(self, run_id: str, after: int) -> AsyncIterator[Any]:
        url = f"/runs/{run_id}/events"
        try:
            async with self.client.stream("GET", url, params={"after": after}) as resp:
                if resp.status_code >= 400:
                    await resp.aread()
                    raise RemoteError(
                        f"GET {url}: {resp.status_code} {resp.text}", resp.status_code
                    )
                data: list[str] = []
                chunk = after
                async for line in resp.aiter_lines():
                    if line.startswith("data:"):
                        data.append(line[5:].strip())
                    elif line.startswith("id:"):
                        chunk = int(line[3:].strip())
                    elif not line and data:
                        ev = event_from_json(self.codec, json.loads("\n".join(data)))
                        data = []
                        self._remember(run_id, chunk)
                        yield ev
        except httpx.HTTPError as exc:
            raise RemoteError(f"GET {url}: {exc}") from exc

    def _remember(self, run_id: str, chunk: int) -> None:
        self.wf._remote_cursor = {"run_id": run_id, "after": chunk}

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
            run_id=view["run_id"],
            status=RunStatus(view["status"]),
            outputs=self.outputs,
            events=self.events,
            pending_requests=pending,
            trace_hash=view["trace_hash"],
            trace=list(view["trace"]),
            supersteps=int(view["superstep"]),
            error=error,
            last_checkpoint_id=checkpoints[-1] if checkpoints else None,
        )
