"""The document-processing demo: a dispatcher, M analysis executors, an aggregator.

Scenario 1 of the distributed-runtime issue ("large-scale document processing"):
N legal documents are analysed independently by M analysis executors and an
aggregator collects the findings.

The dispatcher releases the documents in waves, one wave per superstep, by
sending itself the next ``Wave`` along a self-loop; each document is a message
targeted at one analyst (``doc.index % M``). So from superstep 2 on the analysts
work on wave *k* while the dispatcher releases wave *k + 1* and the aggregator
folds in the reports of wave *k - 1*: the run is a pipeline whose progress is
visible at every barrier (the aggregator adds a ``progress`` event). An analyst
handles its documents one at a time, each after ``latency_ms`` of simulated I/O.

Everything is deterministic: document texts derive from the job's seed, so two
runs of the same job give the same summary and the same trace hash. Analysts
are stateless; the aggregator's running totals are saved in checkpoints, so the
workflow can be resumed from any barrier on any runtime.
"""

from __future__ import annotations

import asyncio
import math
import random
from dataclasses import dataclass, field
from typing import Any, Never

from runtime.engine import Placement
from runtime.workflow import (
    Executor,
    Workflow,
    WorkflowBuilder,
    WorkflowContext,
    WorkflowEvent,
    handler,
    workflow_factory,
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

DEFAULT_DOCS = 2_000
DEFAULT_WORKERS = 20
DEFAULT_LATENCY_MS = 10.0
DEFAULT_WAVES = 20

CLAUSES: dict[str, float] = {
    # clause -> weight in the risk score
    "indemnification": 0.30,
    "limitation of liability": 0.25,
    "termination for convenience": 0.15,
    "exclusivity": 0.20,
    "non-compete": 0.25,
    "confidentiality": 0.05,
    "governing law": 0.02,
    "assignment": 0.08,
}
_FILLER_TEXT = (
    "the parties agree that this agreement shall be binding upon each party and its "
    "successors notwithstanding any prior understanding with respect to the services "
    "fees invoices payment schedule obligations warranties representations notices"
)
_FILLER = tuple(_FILLER_TEXT.split())
HIGH_RISK = 0.5
"""A document whose risk score reaches this is reported as high-risk."""


# -- messages ---------------------------------------------------------------------------
@dataclass(frozen=True)
class Job:
    """The workflow's input: how many documents to process, and the corpus seed."""

    docs: int = DEFAULT_DOCS
    seed: int = 0


@dataclass(frozen=True)
class Wave:
    """The dispatcher's note to itself: release wave ``index`` of ``job``."""

    job: Job
    index: int
    size: int


@dataclass(frozen=True)
class Manifest:
    """Tells the aggregator how many documents to expect."""

    total: int
    wave_size: int


@dataclass(frozen=True)
class Document:
    index: int
    title: str
    text: str


@dataclass(frozen=True)
class DocumentReport:
    index: int
    analyst: str
    words: int
    clauses: list[str]
    risk: float


@dataclass(frozen=True)
class Summary:
    """The workflow's output."""

    documents: int
    words: int
    clauses: dict[str, int]
    high_risk: int
    riskiest: list[int]
    """Indices of the (up to) five riskiest documents, riskiest first."""
    per_analyst: dict[str, int] = field(default_factory=dict)


# -- the corpus ---------------------------------------------------------------------------
def make_document(seed: int, index: int) -> Document:
    """A synthetic contract: 60-200 words with a few clauses, fixed by (seed, index)."""
    rng = random.Random(seed * 1_000_003 + index)
    names = list(CLAUSES)
    chosen = rng.sample(names, k=rng.randint(0, 4))
    words = [rng.choice(_FILLER) for _ in range(rng.randint(60, 200))]
    for clause in chosen:
        words.insert(rng.randrange(len(words) + 1), clause)
    return Document(index, f"contract-{index:06d}", " ".join(words))


def _analyse(doc: Document, analyst: str) -> DocumentReport:
    found = [c for c in CLAUSES if c in doc.text]
    risk = min(1.0, sum(CLAUSES[c] for c in found))
    return DocumentReport(doc.index, analyst, len(doc.text.split()), found, round(risk, 4))


# -- executors ------------------------------------------------------------------------------
class Dispatcher(Executor):
    """Releases one wave of documents per superstep, round-robin over the analysts."""

    def __init__(self, id: str, analysts: list[str], aggregator: str, waves: int) -> None:
        super().__init__(id)
        self.analysts = list(analysts)
        self.aggregator = aggregator
        self.waves = waves

    @handler
    async def on_job(self, job: Job, ctx: WorkflowContext[Manifest | Document | Wave]) -> None:
        if job.docs < 0:
            raise ValueError(f"a job needs a non-negative number of documents, got {job.docs}")
        size = max(1, math.ceil(job.docs / self.waves))
        await ctx.send_message(Manifest(job.docs, size), target_id=self.aggregator)
        if job.docs:
            await self._release(Wave(job, 0, size), ctx)

    @handler
    async def on_wave(self, wave: Wave, ctx: WorkflowContext[Document | Wave]) -> None:
        await self._release(wave, ctx)

    async def _release(self, wave: Wave, ctx: WorkflowContext[Any, Any]) -> None:
        job, m = wave.job, len(self.analysts)
        first = wave.index * wave.size
        for i in range(first, min(first + wave.size, job.docs)):
            await ctx.send_message(make_document(job.seed, i), target_id=self.analysts[i % m])
        if first + wave.size < job.docs:
            await ctx.send_message(Wave(job, wave.index + 1, wave.size), target_id=self.id)


class Analyst(Executor):
    """Analyses one document at a time: simulated I/O, then clause detection."""

    def __init__(self, id: str, latency_s: float, pool: str = "default") -> None:
        super().__init__(id, placement=Placement(pool=pool))
        self.latency_s = latency_s

    @handler
    async def on_document(self, doc: Document, ctx: WorkflowContext[DocumentReport]) -> None:
        if self.latency_s > 0:
            await asyncio.sleep(self.latency_s)  # fetching / OCR / a model call
        await ctx.send_message(_analyse(doc, self.id))


class Aggregator(Executor):
    """Folds the reports in; yields the ``Summary`` when every document is in."""

    def __init__(self, id: str) -> None:
        super().__init__(id)
        self._reset()

    def _reset(self) -> None:
        self.expected: int | None = None
        self.wave_size = 1
        self.documents = 0
        self.words = 0
        self.clauses: dict[str, int] = {}
        self.risks: list[tuple[float, int]] = []
        self.per_analyst: dict[str, int] = {}

    @handler
    async def on_manifest(self, manifest: Manifest, ctx: WorkflowContext[Never, Summary]) -> None:
        self._reset()
        self.expected = manifest.total
        self.wave_size = manifest.wave_size
        await self._progress(ctx)

    @handler
    async def on_report(self, report: DocumentReport, ctx: WorkflowContext[Never, Summary]) -> None:
        self.documents += 1
        self.words += report.words
        for c in report.clauses:
            self.clauses[c] = self.clauses.get(c, 0) + 1
        self.risks.append((report.risk, report.index))
        self.per_analyst[report.analyst] = self.per_analyst.get(report.analyst, 0) + 1
        # every report of a wave arrives in the same superstep: one progress event per wave
        if self.documents % self.wave_size == 0 or self.documents == self.expected:
            await self._progress(ctx)

    async def _progress(self, ctx: WorkflowContext[Never, Summary]) -> None:
        await ctx.add_event(
            WorkflowEvent("progress", data={"done": self.documents, "total": self.expected})
        )
        if self.documents == self.expected:
            riskiest = sorted(self.risks, key=lambda r: (-r[0], r[1]))
            await ctx.yield_output(
                Summary(
                    documents=self.documents,
                    words=self.words,
                    clauses=dict(sorted(self.clauses.items())),
                    high_risk=sum(1 for r, _ in self.risks if r >= HIGH_RISK),
                    riskiest=[i for _, i in riskiest[:5]],
                    per_analyst=dict(sorted(self.per_analyst.items())),
                )
            )

    async def on_checkpoint_save(self) -> dict[str, Any]:
        return {
            "expected": self.expected,
            "wave_size": self.wave_size,
            "documents": self.documents,
            "words": self.words,
            "clauses": self.clauses,
            "risks": [[r, i] for r, i in self.risks],
            "per_analyst": self.per_analyst,
        }

    async def on_checkpoint_restore(self, state: dict[str, Any]) -> None:
        self._reset()
        if not state:
            return
        self.expected = state["expected"]
        self.wave_size = state["wave_size"]
        self.documents = state["documents"]
        self.words = state["words"]
        self.clauses = dict(state["clauses"])
        self.risks = [(float(r), int(i)) for r, i in state["risks"]]
        self.per_analyst = dict(state["per_analyst"])


# -- the workflow ------------------------------------------------------------------------------
@workflow_factory
def build_workflow(
    workers: int = DEFAULT_WORKERS,
    latency_ms: float = DEFAULT_LATENCY_MS,
    *,
    waves: int = DEFAULT_WAVES,
    analysis_pool: str = "default",
) -> Workflow:
    """The demo workflow; run it with a ``Job``: ``await build_workflow().run(Job(docs=500))``.

    ``workers`` analysis executors each take ``latency_ms`` per document; the
    documents are released in ``waves`` waves (one per superstep), so a run takes
    ``waves + 2`` supersteps. On a distributed runtime the analysts run on the hosts
    of ``analysis_pool``, the dispatcher and the aggregator on pool ``default``.
    """
    if workers < 1:
        raise ValueError(f"the demo needs at least one analysis executor, got {workers}")
    if waves < 1:
        raise ValueError(f"the demo needs at least one wave, got {waves}")
    if latency_ms < 0:
        raise ValueError(f"latency_ms must not be negative, got {latency_ms}")
    analysts = [
        Analyst(f"analyst-{i:02d}", latency_ms / 1000.0, analysis_pool) for i in range(workers)
    ]
    aggregator = Aggregator("aggregator")
    dispatcher = Dispatcher("dispatcher", [a.id for a in analysts], aggregator.id, waves)
    builder = WorkflowBuilder(
        max_supersteps=waves + 3,
        name="document-processing",
        description="N documents analysed by M executors, findings aggregated",
        start_executor=dispatcher,
    )
    builder.add_edge(dispatcher, dispatcher)
    builder.add_edge(dispatcher, aggregator)
    for a in analysts:
        builder.add_edge(dispatcher, a)
        builder.add_edge(a, aggregator)
    return builder.build()
