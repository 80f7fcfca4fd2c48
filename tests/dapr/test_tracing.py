"""Distributed tracing on the Dapr runtime: a run is one trace across the processes — the
coordinator's run and superstep spans in the API app, each activation's span in the
executor host that ran it, joined by the traceparent the activation carries."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path
from typing import Any

from opentelemetry import trace
from opentelemetry.trace import NonRecordingSpan, SpanContext, TraceFlags

from runtime import RunStatus
from tests.dapr import workflows
from tests.dapr.conftest import Deployment


def _spans(folder: Path) -> list[dict[str, Any]]:
    return [
        json.loads(line)
        for f in sorted(folder.glob("*.jsonl"))
        for line in f.read_text().splitlines()
        if line
    ]


async def _trace_of(
    folder: Path, run_id: str, executes: int, within: float = 10.0
) -> list[dict[str, Any]]:
    """The spans of one run, once its run span and ``executes`` activation spans have
    been exported (each process exports in its own time: the coordinator ends the run
    span right after the last barrier, a host its spans in batches)."""
    deadline = time.monotonic() + within
    while True:
        spans = _spans(folder)
        runs = [
            s
            for s in spans
            if s["name"].startswith("superstep.run")
            and s["attributes"].get("superstep.run_id") == run_id
        ]
        if runs:
            trace_id = runs[0]["trace_id"]
            mine = [s for s in spans if s["trace_id"] == trace_id]
            done = [s for s in mine if s["name"].startswith("superstep.execute ")]
            if len(done) >= executes or time.monotonic() >= deadline:
                return mine
        assert time.monotonic() < deadline, f"no run span of {run_id} after {within}s"
        await asyncio.sleep(0.05)


async def test_a_run_is_one_trace_across_the_coordinator_and_the_hosts(
    traced_deployment: Deployment,
) -> None:
    assert traced_deployment.spans is not None
    # the caller's span (here one from elsewhere, by its context only): the run's trace
    # continues it, through RemoteRuntime's traceparent header on POST /runs
    caller = SpanContext(
        trace_id=0x5EED0000000000000000000000000001,
        span_id=0x00000000000C0FFE,
        is_remote=True,
        trace_flags=TraceFlags(TraceFlags.SAMPLED),
    )
    with trace.use_span(NonRecordingSpan(caller)):
        result = await workflows.ping().run(0, runtime=traced_deployment.runtime())
    assert result.status is RunStatus.COMPLETED and result.outputs == [11]
    spans = await _trace_of(traced_deployment.spans, result.run_id, executes=12)

    [run] = [s for s in spans if s["name"] == "superstep.run ping"]
    assert run["trace_id"] == f"{caller.trace_id:032x}" and run["service"] == "superstep-api"
    assert run["attributes"]["superstep.status"] == "completed"
    steps = {s["span_id"]: s for s in spans if s["name"].startswith("superstep.superstep ")}
    assert sorted(s["attributes"]["superstep.superstep"] for s in steps.values()) == list(
        range(1, 13)
    )
    assert all(
        s["parent"] == run["span_id"] and s["service"] == "superstep-api" for s in steps.values()
    )

    executes = [s for s in spans if s["name"].startswith("superstep.execute ")]
    assert len(executes) == 12, "one span per activation, none repeated"
    hosts = {"a": "superstep-default-1", "b": "superstep-aux-1"}  # a in pool default, b in aux
    for e in executes:
        attrs = e["attributes"]
        step = steps[e["parent"]]  # a child of its superstep's span, from another process
        assert attrs["superstep.superstep"] == step["attributes"]["superstep.superstep"]
        assert e["service"] == attrs["superstep.host"] == hosts[attrs["superstep.executor_id"]]
        assert e["kind"] == "CONSUMER" and attrs["superstep.status"] == "ok"
    # the hosts' events name the same hosts as the spans
    ran_on = {
        (ev.data["executor_id"], ev.data["host"])
        for ev in result.events
        if ev.type == "executor_completed" and isinstance(ev.data, dict) and "host" in ev.data
    }
    assert ran_on <= set(hosts.items())
