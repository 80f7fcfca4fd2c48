"""``superstep demo``: the document-processing scenario with a live progress bar."""

from __future__ import annotations

import argparse
import statistics
import textwrap
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, TextIO

from runtime.cli._common import (
    EXIT_OK,
    EXIT_RUN_FAILED,
    CliError,
    format_table,
    non_negative_float,
    non_negative_int,
    one_line,
    positive_int,
)
from runtime.cli._progress import ProgressBar
from runtime.client import RemoteRuntime
from runtime.demo import (
    DEFAULT_DOCS,
    DEFAULT_LATENCY_MS,
    DEFAULT_WAVES,
    DEFAULT_WORKERS,
    Job,
    Summary,
    build_workflow,
)
from runtime.engine import RunStatus
from runtime.errors import RemoteError
from runtime.workflow import RunResult, Runtime

if TYPE_CHECKING:
    from runtime.cli._common import SubParsers

__all__ = ["ExecutorTiming", "add_demo_parser", "executor_timings", "run_demo"]

_ANALYSTS_SHOWN = 8
"""Above this many analysts the table shows the fastest, the slowest and their mean."""


@dataclass(slots=True)
class ExecutorTiming:
    executor_id: str
    activations: int = 0
    busy_s: float = 0.0
    documents: int | None = None

    @property
    def mean_ms(self) -> float:
        return self.busy_s / self.activations * 1000 if self.activations else 0.0


def executor_timings(result: RunResult) -> dict[str, ExecutorTiming]:
    """Per-executor activations and busy time, from the run's ``executor_completed`` events."""
    out: dict[str, ExecutorTiming] = {}
    for ev in result.events:
        if ev.type == "executor_completed" and ev.executor_id is not None:
            t = out.setdefault(ev.executor_id, ExecutorTiming(ev.executor_id))
            t.activations += 1
            t.busy_s += float(ev.details.get("duration_s", 0.0))
    return out


async def run_demo(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    docs: int = args.docs
    workers: int = args.workers
    latency_ms: float = args.latency_ms
    remote = args.runtime == "dapr"
    try:
        # a factory: the workflow records how it was built, and the Dapr runtime's
        # servers build the same one (they serve runtime.demo:*)
        wf = build_workflow(
            workers,
            latency_ms,
            waves=args.waves,
            analysis_pool="analysis" if remote else "default",
        )
    except ValueError as exc:
        raise CliError(one_line(exc)) from exc
    runtime: Runtime | None = None
    where = "in-process runtime"
    if remote:
        runtime = RemoteRuntime(args.url, timeout_s=120)
        where = f"Dapr runtime at {args.url}"
    print(
        f"superstep demo: {docs:,} documents, {workers} analysis executors, "
        f"{latency_ms:g} ms simulated I/O per document ({where})",
        file=err,
    )
    bar = ProgressBar(err, docs, label="analysing", unit="docs")
    bar.update(0)
    t0 = time.perf_counter()
    try:
        stream = wf.run(Job(docs=docs, seed=args.seed), stream=True, runtime=runtime)
    except RemoteError as exc:
        raise CliError(one_line(exc)) from exc
    try:
        async for ev in stream:
            if ev.type == "progress" and isinstance(ev.data, dict):
                bar.update(int(ev.data.get("done", 0)), superstep=ev.superstep)
            elif ev.type == "superstep_completed":
                bar.update(superstep=ev.superstep)
    finally:
        bar.close()
    wall = time.perf_counter() - t0
    result = await stream
    if result.status is not RunStatus.COMPLETED or not result.outputs:
        why = result.error.message if result.error else result.status.value
        print(f"superstep demo: the run ended {result.status.value}: {why}", file=err)
        return EXIT_RUN_FAILED
    summary = result.outputs[0]
    assert isinstance(summary, Summary)
    _print_summary(out, result, summary, wall, docs, workers, latency_ms, args)
    if remote:
        _print_hosts(out, result)
    return EXIT_OK


def _print_hosts(out: TextIO, result: RunResult) -> None:
    """Which host ran which executors (from the executor events' ``host``)."""
    by_host: dict[str, set[str]] = {}
    for ev in result.events:
        if ev.type == "executor_completed" and ev.executor_id and ev.details.get("host"):
            by_host.setdefault(str(ev.details["host"]), set()).add(ev.executor_id)
    out.write("\nWhere executors ran\n")
    for host in sorted(by_host):
        ids = sorted(by_host[host])
        shown = ", ".join(ids[:6]) + (f" and {len(ids) - 6} more" if len(ids) > 6 else "")
        out.write(f"  {host:28s} {shown}\n")


def _print_summary(
    out: TextIO,
    result: RunResult,
    summary: Summary,
    wall: float,
    docs: int,
    workers: int,
    latency_ms: float,
    args: argparse.Namespace,
) -> None:
    ideal = docs * latency_ms / 1000 / workers
    rate = docs / wall if wall > 0 else 0.0
    w = out.write
    w(f"\nProcessed {summary.documents:,} documents in {wall:.2f} s\n")
    if ideal > 0:
        w(
            f"  throughput    {rate:,.0f} documents/s  (ideal {docs / ideal:,.0f}/s with "
            f"{workers} executors at {latency_ms:g} ms per document: {ideal / wall:.0%} "
            "of ideal)\n"
        )
    else:
        w(f"  throughput    {rate:,.0f} documents/s\n")
    waves = max(0, result.supersteps - 2)
    w(f"  supersteps    {result.supersteps}  ({waves} waves of documents, pipelined)\n")
    riskiest = ", ".join(f"#{i}" for i in summary.riskiest) or "none"
    w(
        f"  findings      {summary.words:,} words; {summary.high_risk:,} high-risk documents; "
        f"riskiest {riskiest}\n"
    )
    clauses = ", ".join(f"{c} {n:,}" for c, n in summary.clauses.items()) or "none"
    w(textwrap.fill(clauses, 96, initial_indent="  clauses       ", subsequent_indent=" " * 16))
    w("\n")
    w(f"  trace hash    {result.trace_hash}  (the same on every run with these options)\n")
    w("\n")
    _print_timings(out, result, summary)


def _print_timings(out: TextIO, result: RunResult, summary: Summary) -> None:
    timings = executor_timings(result)
    for eid, n in summary.per_analyst.items():
        timings.setdefault(eid, ExecutorTiming(eid)).documents = n
    analysts = sorted(
        (t for eid, t in timings.items() if eid.startswith("analyst-")),
        key=lambda t: t.executor_id,
    )
    rows: list[tuple[str, str, str, str, str]] = []

    def row(label: str, t: ExecutorTiming) -> None:
        docs = f"{t.documents:,}" if t.documents is not None else "-"
        rows.append((label, str(t.activations), docs, f"{t.busy_s:.3f}", f"{t.mean_ms:.1f}"))

    if "dispatcher" in timings:
        row("dispatcher", timings["dispatcher"])
    if len(analysts) <= _ANALYSTS_SHOWN:
        for t in analysts:
            row(t.executor_id, t)
    else:
        by_busy = sorted(analysts, key=lambda t: (t.busy_s, t.executor_id))
        row(f"{by_busy[0].executor_id} (fastest)", by_busy[0])
        row(f"{by_busy[-1].executor_id} (slowest)", by_busy[-1])
        mean = ExecutorTiming(
            f"{len(analysts)} analysts, mean",
            activations=round(statistics.fmean(t.activations for t in analysts)),
            busy_s=statistics.fmean(t.busy_s for t in analysts),
            documents=round(statistics.fmean(t.documents or 0 for t in analysts)),
        )
        row(mean.executor_id, mean)
    if "aggregator" in timings:
        agg = timings["aggregator"]
        agg.documents = summary.documents
        row("aggregator", agg)
    header = ("executor", "activations", "documents", "busy s", "ms/activation")
    out.write("Per-executor timings (from executor_completed events)\n")
    for line in format_table(header, rows, right=range(1, 5)):
        out.write(f"  {line}\n")


def add_demo_parser(sub: SubParsers) -> None:
    p = sub.add_parser(
        "demo",
        help="process documents with analysis executors and an aggregator, in-process or "
        "on a Dapr deployment (--runtime dapr)",
        description=(
            "The document-processing scenario: N documents split over M analysis executors, "
            "each with simulated I/O latency per document, and an aggregator. Documents are "
            "released in waves, one per superstep; progress goes to stderr, the summary to "
            "stdout."
        ),
    )
    p.add_argument("--docs", type=non_negative_int, default=DEFAULT_DOCS, metavar="N")
    p.add_argument("--workers", type=positive_int, default=DEFAULT_WORKERS, metavar="M")
    p.add_argument("--latency-ms", type=non_negative_float, default=DEFAULT_LATENCY_MS, metavar="X")
    p.add_argument("--seed", type=int, default=0, metavar="S")
    p.add_argument(
        "--runtime",
        choices=("inprocess", "dapr"),
        default="inprocess",
        help="where to run: in this process (default) or on a running Dapr deployment "
        "(start one with `python -m sidecar run -f dapr.yaml` or `dapr run -f dapr.yaml`)",
    )
    p.add_argument(
        "--url",
        default="http://127.0.0.1:8300",
        help="the Dapr deployment's API (with --runtime dapr; default %(default)s)",
    )
    p.add_argument(
        "--waves",
        type=positive_int,
        default=DEFAULT_WAVES,
        metavar="W",
        help="release the documents in W waves, one per superstep (default %(default)s)",
    )
    p.set_defaults(handler=run_demo)
