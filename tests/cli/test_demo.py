"""``superstep demo``: the document-processing scenario, its progress and its summary."""

from __future__ import annotations

import io
import re

from runtime import InMemoryCheckpointStorage
from runtime.cli._progress import ProgressBar
from runtime.demo import Job, Summary, build_workflow
from runtime.engine import RunStatus
from tests.cli.conftest import Cli

SMALL = ("demo", "--docs", "120", "--workers", "4", "--latency-ms", "1", "--waves", "6")


def _trace_hash(text: str) -> str:
    m = re.search(r"trace hash\s+([0-9a-f]{32})", text)
    assert m, text
    return m.group(1)


def test_demo_prints_summary_with_rate_supersteps_timings_and_hash(cli: Cli) -> None:
    r = cli(*SMALL)
    assert r.code == 0, r.err
    assert "Processed 120 documents" in r.out
    assert re.search(r"throughput\s+[\d,]+ documents/s", r.out)
    assert re.search(r"supersteps\s+8\b", r.out)  # 6 waves + the last analysis + aggregation
    for eid in ("dispatcher", "analyst-00", "analyst-03", "aggregator"):
        assert re.search(rf"^\s+{eid}\s+\d+\s+", r.out, re.M), eid
    assert re.search(r"analyst-01\s+6\s+30\s", r.out)  # 6 activations, 30 documents
    _trace_hash(r.out)


def test_demo_progress_goes_to_stderr_as_plain_lines_when_not_a_tty(cli: Cli) -> None:
    r = cli(*SMALL)
    lines = [ln for ln in r.err.splitlines() if ln.startswith("analysing:")]
    assert lines[0].startswith("analysing:   0%")
    assert lines[-1].startswith("analysing: 100%  120/120 docs")
    assert len(lines) <= 11  # at most one line per tenth
    assert "\r" not in r.err
    assert "Processed" not in r.err


def test_demo_is_deterministic_for_a_seed(cli: Cli) -> None:
    a, b = cli(*SMALL), cli(*SMALL)
    c = cli(*SMALL, "--seed", "7")
    assert _trace_hash(a.out) == _trace_hash(b.out)
    assert _trace_hash(a.out) != _trace_hash(c.out)


def test_demo_many_workers_summarises_analysts(cli: Cli) -> None:
    r = cli("demo", "--docs", "50", "--workers", "12", "--latency-ms", "0", "--waves", "2")
    assert r.code == 0, r.err
    assert "(fastest)" in r.out and "(slowest)" in r.out
    assert "12 analysts, mean" in r.out


def test_demo_with_no_documents(cli: Cli) -> None:
    r = cli("demo", "--docs", "0", "--workers", "2", "--latency-ms", "0")
    assert r.code == 0, r.err
    assert "Processed 0 documents" in r.out


def test_demo_rejects_bad_numbers_in_one_line(cli: Cli) -> None:
    for argv in (
        ("demo", "--workers", "0"),
        ("demo", "--docs", "-3"),
        ("demo", "--latency-ms", "fast"),
        ("demo", "--latency-ms", "nan"),
    ):
        r = cli(*argv)
        assert r.code == 2, argv
        assert r.out == ""
        assert r.err.count("\n") == 1 and r.err.startswith("superstep: error: "), r.err


async def test_demo_workflow_is_importable_and_aggregates_every_document() -> None:
    wf = build_workflow(workers=3, latency_ms=0, waves=4)
    result = await wf.run(Job(docs=37, seed=1))
    assert result.status is RunStatus.COMPLETED
    (summary,) = result.outputs
    assert isinstance(summary, Summary)
    assert summary.documents == 37
    assert sum(summary.per_analyst.values()) == 37
    assert set(summary.per_analyst) == {"analyst-00", "analyst-01", "analyst-02"}
    progress = [e.data["done"] for e in result.events if e.type == "progress"]
    assert progress == sorted(progress) and progress[-1] == 37
    assert len(progress) >= 4  # progress at (almost) every superstep, not only at the end


def test_progress_bar_redraws_one_line_on_a_tty() -> None:
    stream = io.StringIO()
    ticks = iter(float(i) for i in range(100))
    bar = ProgressBar(stream, 10, label="x", unit="docs", tty=True, clock=lambda: next(ticks))
    for done in range(0, 11, 2):
        bar.update(done, superstep=done)
    bar.close()
    text = stream.getvalue()
    assert text.count("\n") == 1 and text.endswith("\x1b[K\n")
    assert text.count("\r") >= 6
    assert "100%  10/10 docs" in text.rsplit("\r", 1)[-1]


async def test_demo_workflow_resumes_from_a_mid_run_checkpoint_with_the_same_result() -> None:
    storage = InMemoryCheckpointStorage()
    full = await build_workflow(workers=3, latency_ms=0, waves=5).run(
        Job(docs=40, seed=3), checkpoint_storage=storage
    )
    mid = next(i for i in await storage.list(run_id=full.run_id) if i.superstep == 4)
    resumed = await build_workflow(workers=3, latency_ms=0, waves=5).run(
        checkpoint_id=mid.checkpoint_id, checkpoint_storage=storage
    )
    assert resumed.status is RunStatus.COMPLETED
    assert resumed.outputs == full.outputs
    assert resumed.trace_hash == full.trace_hash
