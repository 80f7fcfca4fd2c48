"""Installs the OpenTelemetry SDK in the apps of a traced test deployment, as
``opentelemetry-instrument`` would: with ``SUPERSTEP_TEST_SPANS`` naming a folder,
every finished span is appended to ``<folder>/<pid>.jsonl`` as it ends.

On ``PYTHONPATH`` only in the apps of ``tests/dapr/test_tracing.py``'s deployment.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path

_FOLDER = os.environ.get("SUPERSTEP_TEST_SPANS")

if _FOLDER:
    from opentelemetry import trace
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
    from opentelemetry.sdk.trace.export import (
        SimpleSpanProcessor,
        SpanExporter,
        SpanExportResult,
    )

    class _JsonLines(SpanExporter):
        def __init__(self, path: Path) -> None:
            self.path = path

        def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
            lines = []
            for s in spans:
                ctx = s.context
                assert ctx is not None
                lines.append(
                    json.dumps(
                        {
                            "name": s.name,
                            "service": s.resource.attributes.get("service.name"),
                            "trace_id": f"{ctx.trace_id:032x}",
                            "span_id": f"{ctx.span_id:016x}",
                            "parent": f"{s.parent.span_id:016x}" if s.parent else None,
                            "kind": s.kind.name,
                            "status": s.status.status_code.name,
                            "attributes": dict(s.attributes or {}),
                        }
                    )
                )
            with self.path.open("a") as f:
                f.write("".join(line + "\n" for line in lines))
            return SpanExportResult.SUCCESS

    _service = os.environ.get("SUPERSTEP_HOST_ID") or "superstep-api"
    _provider = TracerProvider(resource=Resource.create({"service.name": _service}))
    _provider.add_span_processor(
        SimpleSpanProcessor(_JsonLines(Path(_FOLDER) / f"{os.getpid()}.jsonl"))
    )
    trace.set_tracer_provider(_provider)
