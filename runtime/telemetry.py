"""OpenTelemetry traces and metrics of workflow runs, on every runtime.

The runtimes report through the OpenTelemetry API only (``opentelemetry-api``); the
application chooses the SDK, exporters and sampling, e.g. by running under
``opentelemetry-instrument`` or by setting a ``TracerProvider`` and ``MeterProvider``
itself. Without one, nothing is recorded and the runs pay one check per run.

Traces (tracer ``superstep``)::

    superstep.run <workflow>              one per run
      superstep.superstep <k>             one per superstep: plan, activations, barrier
        superstep.execute <executor_id>   one per activation

On the Dapr runtime the run and superstep spans are the coordinator's and the execute
spans the executor hosts': the activation envelope carries its superstep span's W3C
``traceparent`` (so does the CloudEvent around it), and the run record keeps the run
span's, so a coordinator that takes a run over continues the same trace.

Metrics (meter ``superstep``): the histograms ``superstep.superstep.duration`` and
``superstep.activation.duration`` (s), whose counts are the numbers of supersteps and
activations, with the attributes in docs/observability.md.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from opentelemetry import context as otel_context
from opentelemetry import metrics, trace
from opentelemetry.trace import Span, SpanKind, Status, StatusCode
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from runtime._version import __version__
from runtime.engine import RunState

__all__ = [
    "ATTR_EXECUTOR",
    "ATTR_HOST",
    "ATTR_RUN_ID",
    "ATTR_STATUS",
    "ATTR_SUPERSTEP",
    "ATTR_WORKFLOW",
    "ROOT",
    "Telemetry",
    "current_traceparent",
    "end",
    "end_run",
    "telemetry",
    "traceparent",
]

ATTR_WORKFLOW = "superstep.workflow"
ATTR_RUN_ID = "superstep.run_id"
ATTR_SUPERSTEP = "superstep.superstep"
ATTR_EXECUTOR = "superstep.executor_id"
ATTR_STATUS = "superstep.status"
ATTR_HOST = "superstep.host"

_PROPAGATOR = TraceContextTextMapPropagator()


def _recording(tracer_provider: Any, meter_provider: Any) -> bool:
    """Whether an SDK is installed: the API's global providers are proxies until then."""
    no_traces = isinstance(tracer_provider, trace.ProxyTracerProvider | trace.NoOpTracerProvider)
    no_metrics = isinstance(meter_provider, metrics.NoOpMeterProvider) or (
        type(meter_provider).__name__ == "_ProxyMeterProvider"
    )
    return not (no_traces and no_metrics)


@dataclass(frozen=True, slots=True)
class Telemetry:
    """The tracer and instruments of one run; ``telemetry()`` gives the current ones."""

    tracer: trace.Tracer
    superstep_duration: metrics.Histogram
    activation_duration: metrics.Histogram

    # -- spans ---------------------------------------------------------------------------
    def start_run(
        self, workflow: str, run_id: str, parent: str | otel_context.Context | None = None
    ) -> Span:
        """The run's span: a child of ``parent`` (a traceparent; None: the current span;
        ``ROOT``: none)."""
        return self.tracer.start_span(
            f"superstep.run {workflow}",
            context=_context_of(parent),
            attributes={ATTR_WORKFLOW: workflow, ATTR_RUN_ID: run_id},
        )

    def start_superstep(
        self, workflow: str, run_id: str, k: int, parent: Span | str | None
    ) -> Span:
        return self.tracer.start_span(
            f"superstep.superstep {k}",
            context=_context_of(parent),
            attributes={ATTR_WORKFLOW: workflow, ATTR_RUN_ID: run_id, ATTR_SUPERSTEP: k},
        )

    @contextmanager
    def execute(
        self,
        workflow: str,
        run_id: str,
        k: int,
        executor_id: str,
        parent: Span | str | None,
        *,
        host: str | None = None,
        remote: bool = False,
    ) -> Iterator[Span]:
        """The span of one activation, current while it runs (so spans the executor's
        own code opens are its children)."""
        attributes: dict[str, Any] = {
            ATTR_WORKFLOW: workflow,
            ATTR_RUN_ID: run_id,
            ATTR_SUPERSTEP: k,
            ATTR_EXECUTOR: executor_id,
        }
        if host is not None:
            attributes[ATTR_HOST] = host
        with self.tracer.start_as_current_span(
            f"superstep.execute {executor_id}",
            context=_context_of(parent),
            kind=SpanKind.CONSUMER if remote else SpanKind.INTERNAL,
            attributes=attributes,
            record_exception=False,
            set_status_on_exception=True,
        ) as span:
            yield span

    # -- metrics ---------------------------------------------------------------------------
    def superstep_done(
        self, workflow: str, committed: bool, seconds: float, span: Span | None
    ) -> None:
        """Record a superstep's duration and end its span, at its barrier."""
        status = "committed" if committed else "failed"
        self.superstep_duration.record(seconds, {ATTR_WORKFLOW: workflow, ATTR_STATUS: status})
        end(span, status=status)

    def activation_done(
        self, workflow: str, executor_id: str, status: str, seconds: float, span: Span
    ) -> None:
        attrs = {ATTR_WORKFLOW: workflow, ATTR_EXECUTOR: executor_id, ATTR_STATUS: status}
        self.activation_duration.record(seconds, attrs)
        span.set_attribute(ATTR_STATUS, status)
        if status == "failed":
            span.set_status(Status(StatusCode.ERROR))


def end(span: Span | None, *, status: str | None = None, error: str | None = None) -> None:
    """End a run or superstep span, with the run's or superstep's outcome."""
    if span is None:
        return
    if status is not None:
        span.set_attribute(ATTR_STATUS, status)
    if error is not None:
        span.set_status(Status(StatusCode.ERROR, error))
    span.end()


def end_run(span: Span | None, state: RunState) -> None:
    """End a run's span with the run's status, and its error if it failed."""
    end(
        span,
        status=state.status.value,
        error=state.error.message if state.error is not None else None,
    )


def traceparent(span: Span | None) -> str | None:
    """The W3C ``traceparent`` of a span (None when it is not recording)."""
    if span is None or not span.get_span_context().is_valid:
        return None
    carrier: dict[str, str] = {}
    _PROPAGATOR.inject(carrier, context=trace.set_span_in_context(span))
    return carrier.get("traceparent")


def current_traceparent() -> str | None:
    """The W3C ``traceparent`` of the current span, if there is a valid one."""
    return traceparent(trace.get_current_span())


ROOT = otel_context.Context()
"""A parent that makes a span the root of a new trace (not a child of the current span)."""


def _context_of(parent: Span | str | otel_context.Context | None) -> otel_context.Context | None:
    if parent is None:
        return None
    if isinstance(parent, otel_context.Context):
        return parent
    if isinstance(parent, str):
        return _PROPAGATOR.extract({"traceparent": parent})
    return trace.set_span_in_context(parent)


def telemetry() -> Telemetry | None:
    """The tracer and instruments to report with, or None when no OpenTelemetry SDK is
    configured (then nothing would be recorded, and the runtimes skip the calls)."""
    global _cached
    tracer_provider, meter_provider = trace.get_tracer_provider(), metrics.get_meter_provider()
    cached = _cached
    if cached is not None and cached[0] is tracer_provider and cached[1] is meter_provider:
        return cached[2]
    made = _make() if _recording(tracer_provider, meter_provider) else None
    _cached = (tracer_provider, meter_provider, made)
    return made


_cached: tuple[Any, Any, Telemetry | None] | None = None
"""(tracer provider, meter provider, what ``telemetry()`` gives for them)."""


def _make() -> Telemetry:
    tracer = trace.get_tracer("superstep", __version__)
    meter = metrics.get_meter("superstep", __version__)
    return Telemetry(
        tracer=tracer,
        superstep_duration=meter.create_histogram(
            "superstep.superstep.duration",
            unit="s",
            description="from planning a superstep to the end of its barrier",
        ),
        activation_duration=meter.create_histogram(
            "superstep.activation.duration", unit="s", description="one executor's activation"
        ),
    )
