"""``RemoteRuntime`` reading a run's event stream: a stream it reads again resumes after
the last event it got (``Last-Event-ID``), so no event is lost or repeated."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any, Never

import httpx

from runtime import Executor, RunStatus, Workflow, WorkflowBuilder, WorkflowContext, handler
from runtime.client import RemoteRuntime


class Echo(Executor):
    @handler
    async def on_text(self, text: str, ctx: WorkflowContext[Never, str]) -> None:
        await ctx.yield_output(text)


def _event(type_: str, data: Any = None, superstep: int = 1) -> dict[str, Any]:
    return {
        "type": type_,
        "data": data,
        "executor_id": None,
        "superstep": superstep,
        "request_id": None,
        "details": {},
    }


CHUNKS = [
    [_event("started", "r", 0), _event("superstep_started")],
    [_event("output", "a"), _event("output", "b"), _event("output", "c")],
    [_event("status", "cancelled")],
]
"""The run's event log, chunk by chunk."""


def run_view(status: str) -> dict[str, Any]:
    """``GET /runs/r`` of a run ``r`` that ended ``status`` after one superstep."""
    return {
        "run_id": "r",
        "status": status,
        "superstep": 1,
        "outputs": [],
        "pending_requests": [],
        "trace_hash": "",
        "error": None,
        "checkpoints": [],
    }


class CutStreamApi:
    """A run whose first event stream stops after ``cut`` events and hangs (a dropped
    connection, as the client sees one); the next ones resume where the client says."""

    hangs = True
    """Whether the first stream hangs after its events (else it ends)."""

    def __init__(self, cut: int) -> None:
        self.cut = cut
        self.stream_requests: list[httpx.Request] = []
        self.cancelled = False

    def _after(self, request: httpx.Request) -> list[tuple[str, dict[str, Any]]]:
        """(id, event) of the events after the request's position: ``Last-Event-ID``
        when sent, else the chunk ``after``."""
        log = [(f"{c}.{i}", ev) for c, chunk in enumerate(CHUNKS) for i, ev in enumerate(chunk)]
        last = request.headers.get("Last-Event-ID")
        if last is not None:
            return log[[i for i, _ in log].index(last) + 1 :]
        after = int(request.url.params.get("after", "-1"))
        return [(i, ev) for i, ev in log if int(i.split(".")[0]) > after]

    async def handle(self, request: httpx.Request) -> httpx.Response:
        path = request.url.path
        if request.method == "POST" and path == "/runs":
            return httpx.Response(201, json={"run_id": "r", "status": "running", "after": -1})
        if path == "/runs/r/cancel":
            self.cancelled = True
            return httpx.Response(202, json={"run_id": "r"})
        if path == "/runs/r/events":
            self.stream_requests.append(request)
            events = self._after(request)
            first = len(self.stream_requests) == 1
            return httpx.Response(
                200,
                headers={"content-type": "text/event-stream"},
                content=self._body(
                    events[: self.cut] if first else events, hang=first and self.hangs
                ),
            )
        assert path == "/runs/r"
        return httpx.Response(200, json=run_view("cancelled"))

    async def _body(
        self, events: list[tuple[str, dict[str, Any]]], *, hang: bool
    ) -> AsyncIterator[bytes]:
        for event_id, ev in events:
            yield f"id: {event_id}\nevent: {ev['type']}\ndata: {json.dumps(ev)}\n\n".encode()
        if hang:
            await asyncio.Event().wait()  # until the client gives up on this stream


def _workflow() -> Workflow:
    return WorkflowBuilder(start_executor=Echo("echo"), name="echo").build()


async def test_a_cancelled_run_s_stream_is_read_again_from_the_last_event_it_got() -> None:
    """The user cancels while the stream is in the middle of a chunk: the client cancels
    the run and reads on from the event after the last one it got."""
    api = CutStreamApi(cut=3)  # "0.0", "0.1", "1.0"; then "1.1", "1.2" and "2.0" are due
    runtime = RemoteRuntime("http://api", transport=httpx.MockTransport(api.handle))
    stream = _workflow().run("hi", runtime=runtime)
    seen: list[tuple[str, Any]] = []
    async for ev in stream:
        seen.append((ev.type, ev.data))
        if len(seen) == 3:
            stream.cancel()
    result = await stream
    assert api.cancelled and result.status is RunStatus.CANCELLED
    assert [r.headers.get("Last-Event-ID") for r in api.stream_requests] == [None, "1.0"]
    assert seen == [(ev["type"], ev["data"]) for chunk in CHUNKS for ev in chunk]
    assert result.outputs == ["a", "b", "c"]


class EndedStreamApi(CutStreamApi):
    """A run whose first event stream ends after ``cut`` events while the run goes on
    (the server stopped the stream: it found no run record for a moment, say)."""

    hangs = False

    async def handle(self, request: httpx.Request) -> httpx.Response:
        if request.url.path == "/runs/r" and len(self.stream_requests) == 1:
            return httpx.Response(200, json=run_view("running"))
        return await super().handle(request)


async def test_a_stream_that_ends_before_the_run_is_followed_on_not_taken_for_its_end(
    monkeypatch: Any,
) -> None:
    """The client never returns a result of a run that is still running: when the stream
    ends early and the run says ``running``, it reads on from the last event it got."""
    monkeypatch.setattr("runtime.client._remote._FOLLOW_AGAIN_S", 0.0)
    api = EndedStreamApi(cut=3)
    runtime = RemoteRuntime("http://api", transport=httpx.MockTransport(api.handle))
    stream = _workflow().run("hi", runtime=runtime)
    seen = [(ev.type, ev.data) async for ev in stream]
    result = await stream
    assert result.status is RunStatus.CANCELLED
    assert [r.headers.get("Last-Event-ID") for r in api.stream_requests] == [None, "1.0"]
    assert seen == [(ev["type"], ev["data"]) for chunk in CHUNKS for ev in chunk]
