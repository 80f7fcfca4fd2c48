"""OpenTelemetry traces and metrics of in-process runs (runtime/telemetry.py), with the
SDK's in-memory exporter and reader installed as the global providers."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Never

import opentelemetry.metrics._internal as metrics_internal
import pytest
from opentelemetry import trace
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import StatusCode

from runtime import Executor, RunStatus, Workflow, WorkflowBuilder, WorkflowContext, handler
from runtime.telemetry import telemetry
from tests.unit.test_smoke import Ping


@dataclass
class Otel:
    spans: InMemorySpanExporter
    metrics: InMemoryMetricReader

    def finished(self) -> list[ReadableSpan]:
        return list(self.spans.get_finished_spans())

    def points(self, name: str) -> dict[tuple[tuple[str, Any], ...], Any]:
        data = self.metrics.get_metrics_data()
        assert data is not None
        out: dict[tuple[tuple[str, Any], ...], Any] = {}
        for rm in data.resource_metrics:
            for sm in rm.scope_metrics:
                for metric in sm.metrics:
                    if metric.name == name:
                        for p in metric.data.data_points:
                            key = tuple(sorted((p.attributes or {}).items()))
                            out[key] = p.count  # type: ignore[union-attr]  # histograms
        return out


@pytest.fixture
def otel(monkeypatch: pytest.MonkeyPatch) -> Iterator[Otel]:
    """SDK providers as the API's globals for one test (the API lets a process set them
    only once, so the test swaps the globals themselves and puts the proxies back)."""
    exporter = InMemorySpanExporter()
    tracer_provider = TracerProvider()
    tracer_provider.add_span_processor(SimpleSpanProcessor(exporter))
    reader = InMemoryMetricReader()
    meter_provider = MeterProvider(metric_readers=[reader])
    monkeypatch.setattr(trace, "_TRACER_PROVIDER", tracer_provider)
    monkeypatch.setattr(metrics_internal, "_METER_PROVIDER", meter_provider)
    yield Otel(exporter, reader)
    tracer_provider.shutdown()
    meter_provider.shutdown()


class Traced(Executor):
    """Opens a span of its own while it handles a message."""

    @handler
    async def on_int(self, x: int, ctx: WorkflowContext[int]) -> None:
        with trace.get_tracer("app").start_as_current_span("app.work"):
            await ctx.send_message(x)


class Sink(Executor):
    @handler
    async def on_int(self, x: int, ctx: WorkflowContext[Never, int]) -> None:
        await ctx.yield_output(x)


class Boom(Executor):
    @handler
    async def on_int(self, x: int, ctx: WorkflowContext[Never]) -> None:
        raise ValueError("no")


def ping(last: int = 3) -> Workflow:
    a, b = Ping("a", last), Ping("b", last)
    return WorkflowBuilder(start_executor=a, name="ping").add_edge(a, b).add_edge(b, a).build()


def by_name(spans: list[ReadableSpan], prefix: str) -> list[ReadableSpan]:
    return [s for s in spans if s.name.startswith(prefix)]


async def test_a_run_is_one_trace_of_its_supersteps_and_their_activations(otel: Otel) -> None:
    result = await ping(3).run(0)
    assert result.status is RunStatus.COMPLETED and result.outputs == [3]
    spans = otel.finished()
    [run] = by_name(spans, "superstep.run")
    steps = by_name(spans, "superstep.superstep")
    executes = by_name(spans, "superstep.execute")
    assert run.name == "superstep.run ping" and run.parent is None
    assert run.attributes is not None
    assert run.attributes["superstep.run_id"] == result.run_id
    assert run.attributes["superstep.status"] == "completed"
    assert run.status.status_code is not StatusCode.ERROR
    assert [s.name for s in steps] == [f"superstep.superstep {k}" for k in (1, 2, 3, 4)]
    assert {s.context.trace_id for s in spans} == {run.context.trace_id}
    assert all(s.parent is not None and s.parent.span_id == run.context.span_id for s in steps)
    assert all(s.attributes and s.attributes["superstep.status"] == "committed" for s in steps)
    # one activation per superstep: a, b, a, b, each a child of its superstep's span
    step_of = {s.context.span_id: s for s in steps}
    assert [e.name for e in executes] == [f"superstep.execute {x}" for x in "abab"]
    for e in executes:
        assert e.parent is not None and e.attributes is not None
        step = step_of[e.parent.span_id]
        assert step.attributes is not None
        assert e.attributes["superstep.superstep"] == step.attributes["superstep.superstep"]
        assert e.attributes["superstep.status"] == "ok"


async def test_spans_of_executor_code_are_children_of_its_activation(otel: Otel) -> None:
    traced, sink = Traced("traced"), Sink("sink")
    await WorkflowBuilder(start_executor=traced, name="t").add_edge(traced, sink).build().run(7)
    spans = otel.finished()
    [execute] = by_name(spans, "superstep.execute traced")
    [work] = [s for s in spans if s.name == "app.work"]
    assert work.parent is not None and work.parent.span_id == execute.context.span_id


async def test_a_failed_activation_marks_its_span_and_the_run(otel: Otel) -> None:
    a, boom = Ping("a", 5), Boom("boom")
    wf = WorkflowBuilder(start_executor=a, name="boom").add_edge(a, boom).build()
    result = await wf.run(0)
    assert result.status is RunStatus.FAILED
    spans = otel.finished()
    [failed] = by_name(spans, "superstep.execute boom")
    assert failed.status.status_code is StatusCode.ERROR
    assert failed.attributes is not None and failed.attributes["superstep.status"] == "failed"
    [run] = by_name(spans, "superstep.run")
    assert run.status.status_code is StatusCode.ERROR
    assert run.attributes is not None and run.attributes["superstep.status"] == "failed"
    assert by_name(spans, "superstep.superstep 2")[0].attributes == {
        "superstep.workflow": "boom",
        "superstep.run_id": result.run_id,
        "superstep.superstep": 2,
        "superstep.status": "failed",
    }


async def test_metrics_count_supersteps_and_activations(otel: Otel) -> None:
    await ping(3).run(0)
    # the duration histograms' counts are the numbers of supersteps and activations
    supersteps = otel.points("superstep.superstep.duration")
    assert supersteps == {(("superstep.status", "committed"), ("superstep.workflow", "ping")): 4}
    activations = otel.points("superstep.activation.duration")

    def key(executor: str) -> tuple[tuple[str, Any], ...]:
        return (
            ("superstep.executor_id", executor),
            ("superstep.status", "ok"),
            ("superstep.workflow", "ping"),
        )

    assert activations == {key("a"): 2, key("b"): 2}


async def test_tracing_does_not_change_what_a_run_computes(otel: Otel) -> None:
    traced = await ping(5).run(0)
    assert otel.finished(), "the SDK recorded spans"
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(trace, "_TRACER_PROVIDER", None)
        mp.setattr(metrics_internal, "_METER_PROVIDER", None)
        assert telemetry() is None, "without an SDK the runtimes skip telemetry"
        plain = await ping(5).run(0)
    assert plain.outputs == traced.outputs and plain.trace_hash == traced.trace_hash
