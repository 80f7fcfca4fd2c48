"""The document-processing demo workflow (``superstep demo``), importable by any runtime.

``build_workflow(workers, latency_ms)`` returns the workflow; its input is a ``Job``::

    from runtime.demo import Job, build_workflow

    result = await build_workflow(workers=8, latency_ms=1).run(Job(docs=200, seed=7))
    summary = result.outputs[0]
"""

from runtime.demo._workflow import (
    CLAUSES,
    DEFAULT_DOCS,
    DEFAULT_LATENCY_MS,
    DEFAULT_WAVES,
    DEFAULT_WORKERS,
    Aggregator,
    Analyst,
    Dispatcher,
    Document,
    DocumentReport,
    Job,
    Manifest,
    Summary,
    Wave,
    build_workflow,
    make_document,
)

__all__ = [
    "CLAUSES",
    "DEFAULT_DOCS",
    "DEFAULT_LATENCY_MS",
    "DEFAULT_WAVES",
    "DEFAULT_WORKERS",
    "Aggregator",
    "Analyst",
    "Dispatcher",
    "Document",
    "DocumentReport",
    "Job",
    "Manifest",
    "Summary",
    "Wave",
    "build_workflow",
    "make_document",
]
