"""``workflow.run(...)`` is awaited, iterated, or handed to asyncio, on every runtime.

The remote runtime talks to ``FakeApi``: the routes ``RemoteRuntime`` calls, answered
by running the same workflow in-process and serving its events as the API does.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from typing import Never

import httpx
import pytest

from runtime import (
    Executor,
    InProcessRuntime,
    RunResult,
    RunStatus,
    RunStream,
    Runtime,
    Workflow,
    WorkflowBuilder,
    WorkflowContext,
    handler,
)
from runtime.client import RemoteRuntime
from runtime.workflow.driver import event_to_json


class Upper(Executor):
    @handler
    async def on_text(self, text: str, ctx: WorkflowContext[str]) -> None:
        await ctx.send_message(text.upper())


class Shout(Executor):
    @handler
    async def on_text(self, text: str, ctx: WorkflowContext[Never, str]) -> None:
        await ctx.yield_output(text + "!")


def build() -> Workflow:
    upper, shout = Upper("upper"), Shout("shout")
    return WorkflowBuilder(start_executor=upper).add_edge(upper, shout).build()


class FakeApi:
    """``POST /runs``, ``GET /runs/{id}/events`` (Server-Sent Events), ``GET /runs/{id}``."""

    def __init__(self, factory: Callable[[], Workflow]) -> None:
        self.factory = factory
        self.runs: dict[str, tuple[Workflow, RunResult]] = {}

    async def handle(self, request: httpx.Request) -> httpx.Response:
        path = request.url.path
        if (request.method, path) == ("POST", "/runs"):
            body = json.loads(request.content)
            assert "state" not in body  # a client sends its input, never a run state
            wf = self.factory()
            run_id = body["run_id"]
            result = await wf.run(wf.graph.codec.decode(body["input"]), run_id=run_id)
            self.runs[run_id] = (wf, result)
            return httpx.Response(201, json={"run_id": run_id, "after": -1})
        wf, result = self.runs[path.split("/")[2]]
        if path.endswith("/events"):
            chunks = [
                f"id: {i}\ndata: {json.dumps(event_to_json(wf.graph.codec, e))}\n\n"
                for i, e in enumerate(result.events)
            ]
            return httpx.Response(
                200, text="".join(chunks), headers={"content-type": "text/event-stream"}
            )
        return httpx.Response(
            200,
            json={
                "run_id": result.run_id,
                "status": result.status.value,
                "superstep": result.supersteps,
                "outputs": [],
                "pending_requests": [],
                "trace_hash": result.trace_hash,
                "error": None,
                "checkpoints": [],
            },
        )


RUNTIMES: dict[str, Callable[[], Runtime]] = {
    "inprocess": InProcessRuntime,
    "remote": lambda: RemoteRuntime(
        "http://api", transport=httpx.MockTransport(FakeApi(build).handle)
    ),
}


@pytest.fixture(params=list(RUNTIMES))
def runtime(request: pytest.FixtureRequest) -> Runtime:
    make: Callable[[], Runtime] = RUNTIMES[request.param]
    return make()


def _check(result: RunResult) -> None:
    assert (result.status, result.outputs, result.supersteps) == (
        RunStatus.COMPLETED,
        ["HI!"],
        2,
    )


async def test_await_run_gives_the_result(runtime: Runtime) -> None:
    _check(await build().run("hi", runtime=runtime))


async def test_async_for_over_run_gives_the_events_and_then_the_result(runtime: Runtime) -> None:
    stream = build().run("hi", runtime=runtime)
    assert isinstance(stream, RunStream)
    seen = [(e.type, e.superstep) async for e in stream]
    assert seen[0] == ("started", 0)
    assert ("output", 2) in seen
    assert seen[-1] == ("status", 2)
    result = await stream
    _check(result)
    assert [(e.type, e.superstep) for e in result.events] == seen
    assert await stream is result  # awaiting again gives the same result


async def test_async_for_directly_over_run(runtime: Runtime) -> None:
    outputs = [e.data async for e in build().run("hi", runtime=runtime) if e.type == "output"]
    assert outputs == ["HI!"]


async def test_stream_true_is_still_accepted(runtime: Runtime) -> None:
    stream = build().run("hi", stream=True, runtime=runtime)
    assert [e.type async for e in stream][-1] == "status"
    _check(await stream)


async def test_run_is_a_coroutine_to_asyncio(runtime: Runtime) -> None:
    _check(await asyncio.create_task(build().run("hi", runtime=runtime)))
    (gathered,) = await asyncio.gather(build().run("hi", runtime=runtime))
    _check(gathered)
    _check(await asyncio.wait_for(build().run("hi", runtime=runtime), timeout=60))


@pytest.mark.parametrize("name", list(RUNTIMES))
def test_asyncio_run_takes_run(name: str) -> None:
    # the README's form: asyncio.run(workflow.run(...)) from synchronous code
    _check(asyncio.run(build().run("hi", runtime=RUNTIMES[name]())))


async def test_iterating_a_run_that_is_already_awaited_is_refused() -> None:
    stream = build().run("hi")
    _check(await stream)
    with pytest.raises(RuntimeError, match="already being consumed"):
        async for _ in stream:
            pass
