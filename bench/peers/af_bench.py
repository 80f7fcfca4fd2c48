# ruff: noqa
# fmt: off
# mypy: ignore-errors
# Vendored from ../shared/peer-bench/af_bench.py: the code below these five header lines is an
# unchanged copy, so that bench/run.py works from a fresh clone (--peer-scripts picks another copy).
#!/usr/bin/env python
"""Peer benchmark: Microsoft agent-framework (PyPI ``agent-framework-core``) workflow engine.

Run:  .peer-venvs/af/bin/python ../shared/peer-bench/af_bench.py [--reps 3] [--only W1,W2]

Prints progress to stderr and exactly ONE JSON line (the summary) to stdout.
Every (workload, repetition) runs in a fresh child process so that peak RSS
(resource.getrusage ru_maxrss) is per workload, not per script.

Workloads (same shapes as lg_bench.py; see README.md in this folder):
  W1        ping: two executors pass an int back and forth for N supersteps
  W1_ckpt   W1 with InMemoryCheckpointStorage (a checkpoint after every superstep)
  W1_fckpt  W1 with FileCheckpointStorage under a temp dir (AF only)
  W2        dispatcher -> 100 workers (fan-out) -> aggregator (fan-in) -> dispatcher, 20 rounds
  W3a       10,000 docs, 50 workers; dispatcher broadcasts the doc list, worker i
            processes docs[i::50] sequentially (asyncio.sleep(0.01) per doc), fan-in aggregator
  W3b       same but one message per document: 10,000 targeted messages over 50
            separate dispatcher->worker edges; per-doc results to the aggregator
            over 50 separate worker->aggregator edges (no fan-in)
  W3_floor  framework-free asyncio floor for W3 (50 tasks x 200 sequential sleeps)
  W3c       pitfall demo: per-doc targeted messages routed through ONE fan-out edge group
            (the runner delivers those sequentially); 300 docs only
"""

import argparse
import asyncio
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass

from typing_extensions import Never

from agent_framework import (
    Executor,
    FileCheckpointStorage,
    InMemoryCheckpointStorage,
    WorkflowBuilder,
    WorkflowContext,
    handler,
)

# ----------------------------------------------------------------------------------------------
# Parameters (kept identical in lg_bench.py)
# ----------------------------------------------------------------------------------------------
W1_SUPERSTEPS = 2000
W2_WORKERS = 100
W2_ROUNDS = 20
W3_DOCS = 10_000
W3_WORKERS = 50
W3_IO_S = 0.010
W3C_DOCS = 300


def make_docs(n: int) -> list[str]:
    # Small deterministic documents, 5..12 words each.
    return [" ".join(f"w{(i * 7 + j) % 97}" for j in range(5 + i % 8)) for i in range(n)]


def rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # Linux: KiB


# ----------------------------------------------------------------------------------------------
# Workload implementations 
# ----------------------------------------------------------------------------------------------


@dataclass
class Task:
    round: int


@dataclass
class Result:
    round: int
    idx: int
    value: int


@dataclass
class DocBatch:
    docs: list


@dataclass
class WorkerResult:
    idx: int
    n_docs: int
    words: int


@dataclass
class Doc:
    i: int
    text: str


@dataclass
class DocResult:
    i: int
    words: int


def build_w1(checkpoint):


    last = W1_SUPERSTEPS - 1

    class Ping(Executor):
        @handler
        async def on_int(self, x: int, ctx: WorkflowContext[int, int]) -> None:
            if x >= last:
                await ctx.yield_output(x)
            else:
                await ctx.send_message(x + 1)

    storage = None
    tmpdir = None
    if checkpoint == "mem":
        storage = InMemoryCheckpointStorage()
    elif checkpoint == "file":
        tmpdir = tempfile.mkdtemp(prefix="af_ckpt_")
        storage = FileCheckpointStorage(tmpdir)
    a, b = Ping(id="a"), Ping(id="b")
    wf = (
        WorkflowBuilder(start_executor=a, max_iterations=W1_SUPERSTEPS + 10, checkpoint_storage=storage)
        .add_edge(a, b)
        .add_edge(b, a)
        .build()
    )
    return wf, 0, storage


def build_w2():

    class Dispatcher(Executor):
        @handler
        async def on_round(self, r: int, ctx: WorkflowContext[Task]) -> None:
            await ctx.send_message(Task(round=r))  # one message, broadcast by the fan-out group

    class Worker(Executor):
        def __init__(self, id: str, idx: int):
            super().__init__(id=id)
            self.idx = idx

        @handler
        async def on_task(self, t: Task, ctx: WorkflowContext[Result]) -> None:
            await ctx.send_message(Result(round=t.round, idx=self.idx, value=t.round * 31 + self.idx))

    class Aggregator(Executor):
        def __init__(self, id: str):
            super().__init__(id=id)
            self.totals: list[int] = []

        @handler
        async def on_results(self, rs: list[Result], ctx: WorkflowContext[int, list]) -> None:
            assert len(rs) == W2_WORKERS, len(rs)
            self.totals.append(sum(r.value for r in rs))
            nxt = rs[0].round + 1
            if nxt >= W2_ROUNDS:
                await ctx.yield_output(list(self.totals))
            else:
                await ctx.send_message(nxt)

    d = Dispatcher(id="dispatcher")
    ws = [Worker(id=f"w{i}", idx=i) for i in range(W2_WORKERS)]
    agg = Aggregator(id="aggregator")
    wf = (
        WorkflowBuilder(start_executor=d, max_iterations=10 * W2_ROUNDS)
        .add_fan_out_edges(d, ws)
        .add_fan_in_edges(ws, agg)
        .add_edge(agg, d)
        .build()
    )
    return wf, 0


def build_w3a():

    class Dispatcher(Executor):
        @handler
        async def on_docs(self, docs: list[str], ctx: WorkflowContext[DocBatch]) -> None:
            await ctx.send_message(DocBatch(docs=docs))

    class Worker(Executor):
        def __init__(self, id: str, idx: int):
            super().__init__(id=id)
            self.idx = idx

        @handler
        async def on_batch(self, b: DocBatch, ctx: WorkflowContext[WorkerResult]) -> None:
            shard = b.docs[self.idx :: W3_WORKERS]
            words = 0
            for d in shard:
                await asyncio.sleep(W3_IO_S)  # simulated I/O
                words += len(d.split())
            await ctx.send_message(WorkerResult(idx=self.idx, n_docs=len(shard), words=words))

    class Aggregator(Executor):
        @handler
        async def on_results(self, rs: list[WorkerResult], ctx: WorkflowContext[Never, dict]) -> None:
            await ctx.yield_output({"docs": sum(r.n_docs for r in rs), "words": sum(r.words for r in rs)})

    d = Dispatcher(id="dispatcher")
    ws = [Worker(id=f"w{i}", idx=i) for i in range(W3_WORKERS)]
    agg = Aggregator(id="aggregator")
    wf = WorkflowBuilder(start_executor=d).add_fan_out_edges(d, ws).add_fan_in_edges(ws, agg).build()
    return wf, make_docs(W3_DOCS)


def _per_doc_executors(n_docs: int):

    class Dispatcher(Executor):
        @handler
        async def on_docs(self, docs: list[str], ctx: WorkflowContext[Doc]) -> None:
            for i, text in enumerate(docs):
                await ctx.send_message(Doc(i=i, text=text), target_id=f"w{i % W3_WORKERS}")

    class Worker(Executor):
        @handler
        async def on_doc(self, doc: Doc, ctx: WorkflowContext[DocResult]) -> None:
            await asyncio.sleep(W3_IO_S)  # simulated I/O
            await ctx.send_message(DocResult(i=doc.i, words=len(doc.text.split())))

    class Aggregator(Executor):
        def __init__(self, id: str):
            super().__init__(id=id)
            self.count = 0
            self.words = 0

        @handler
        async def on_result(self, r: DocResult, ctx: WorkflowContext[Never, dict]) -> None:
            self.count += 1
            self.words += r.words
            if self.count == n_docs:
                await ctx.yield_output({"docs": self.count, "words": self.words})

    return Dispatcher, Worker, Aggregator


def build_w3b():

    Dispatcher, Worker, Aggregator = _per_doc_executors(W3_DOCS)
    d = Dispatcher(id="dispatcher")
    ws = [Worker(id=f"w{i}") for i in range(W3_WORKERS)]
    agg = Aggregator(id="aggregator")
    b = WorkflowBuilder(start_executor=d)
    for w in ws:  # separate edge groups => separate edge runners => concurrent delivery
        b.add_edge(d, w)
        b.add_edge(w, agg)
    return b.build(), make_docs(W3_DOCS)


def build_w3c():

    Dispatcher, Worker, Aggregator = _per_doc_executors(W3C_DOCS)
    d = Dispatcher(id="dispatcher")
    ws = [Worker(id=f"w{i}") for i in range(W3_WORKERS)]
    agg = Aggregator(id="aggregator")
    b = WorkflowBuilder(start_executor=d).add_fan_out_edges(d, ws)  # ONE edge group for all targets
    for w in ws:
        b.add_edge(w, agg)
    return b.build(), make_docs(W3C_DOCS)


async def w3_floor() -> dict:
    """Framework-free asyncio floor for W3: 50 tasks x (docs/50) sequential sleeps."""
    docs = make_docs(W3_DOCS)

    async def work(idx: int) -> tuple[int, int]:
        words = 0
        shard = docs[idx::W3_WORKERS]
        for d in shard:
            await asyncio.sleep(W3_IO_S)
            words += len(d.split())
        return len(shard), words

    rss_before = rss_mb()
    t0 = time.perf_counter()
    res = await asyncio.gather(*(work(i) for i in range(W3_WORKERS)))
    wall = time.perf_counter() - t0
    assert sum(n for n, _ in res) == W3_DOCS
    ideal = W3_DOCS * W3_IO_S / W3_WORKERS
    return {
        "workload": "W3_floor",
        "wall_s": wall,
        "build_s": 0.0,
        "rss_before_run_mb": rss_before,
        "peak_rss_mb": rss_mb(),
        "docs": W3_DOCS,
        "ideal_s": ideal,
        "ratio_vs_ideal": wall / ideal,
        "words": sum(w for _, w in res),
    }


async def run_child(workload: str) -> dict:
    if workload == "W3_floor":
        return await w3_floor()
    t_build = time.perf_counter()
    storage = None
    if workload == "W1":
        wf, inp, storage = build_w1(None)
    elif workload == "W1_ckpt":
        wf, inp, storage = build_w1("mem")
    elif workload == "W1_fckpt":
        wf, inp, storage = build_w1("file")
    elif workload == "W2":
        wf, inp = build_w2()
    elif workload == "W3a":
        wf, inp = build_w3a()
    elif workload == "W3b":
        wf, inp = build_w3b()
    elif workload == "W3c":
        wf, inp = build_w3c()
    else:
        raise SystemExit(f"unknown workload {workload}")
    build_s = time.perf_counter() - t_build
    rss_before = rss_mb()

    t0 = time.perf_counter()
    result = await wf.run(inp)
    wall = time.perf_counter() - t0

    outputs = result.get_outputs()
    supersteps = sum(1 for e in result if e.type == "superstep_completed")
    out: dict = {
        "workload": workload,
        "wall_s": wall,
        "build_s": build_s,
        "supersteps": supersteps,
        "events": len(result),
        "rss_before_run_mb": rss_before,
        "peak_rss_mb": rss_mb(),
    }
    if workload.startswith("W1"):
        assert outputs == [W1_SUPERSTEPS - 1], outputs
        assert supersteps == W1_SUPERSTEPS, supersteps
        out["us_per_superstep"] = wall / supersteps * 1e6
        if storage is not None:
            out["checkpoints"] = len(await storage.list_checkpoint_ids(workflow_name=wf.name))
    elif workload == "W2":
        assert len(outputs) == 1 and len(outputs[0]) == W2_ROUNDS, outputs
        msgs = (2 * W2_WORKERS + 1) * W2_ROUNDS
        out["ms_per_round"] = wall / W2_ROUNDS * 1e3
        out["messages"] = msgs
        out["msgs_per_s"] = msgs / wall
    else:
        n = W3C_DOCS if workload == "W3c" else W3_DOCS
        assert len(outputs) == 1 and outputs[0]["docs"] == n, outputs
        ideal = n * W3_IO_S / W3_WORKERS
        out["docs"] = n
        out["ideal_s"] = ideal
        out["ratio_vs_ideal"] = wall / ideal
        out["words"] = outputs[0]["words"]
    return out


# ----------------------------------------------------------------------------------------------
# Parent: spawn one child per (workload, rep), aggregate medians, print one JSON line
# ----------------------------------------------------------------------------------------------

ALL = ["W1", "W1_ckpt", "W1_fckpt", "W2", "W3a", "W3b", "W3c", "W3_floor"]
MEDIAN_KEYS = [
    "wall_s",
    "us_per_superstep",
    "ms_per_round",
    "msgs_per_s",
    "ratio_vs_ideal",
    "peak_rss_mb",
    "rss_before_run_mb",
    "build_s",
]


def versions() -> dict:
    from importlib.metadata import version

    v = {}
    for p in ("agent-framework-core", "pydantic", "opentelemetry-api"):
        try:
            v[p] = version(p)
        except Exception:  # pragma: no cover
            v[p] = None
    return v


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--only", default=",".join(ALL))
    ap.add_argument("--child", default=None, help=argparse.SUPPRESS)
    args = ap.parse_args()

    if args.child:
        print(json.dumps(asyncio.run(run_child(args.child))))
        return

    summary: dict = {
        "framework": "agent-framework-core",
        "versions": versions(),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
        "reps": args.reps,
        "params": {
            "W1_supersteps": W1_SUPERSTEPS,
            "W2_workers": W2_WORKERS,
            "W2_rounds": W2_ROUNDS,
            "W3_docs": W3_DOCS,
            "W3_workers": W3_WORKERS,
            "W3_io_s": W3_IO_S,
            "W3c_docs": W3C_DOCS,
        },
        "workloads": {},
    }
    for wl in [w for w in args.only.split(",") if w]:
        runs = []
        for rep in range(args.reps):
            proc = subprocess.run(
                [sys.executable, os.path.abspath(__file__), "--child", wl],
                capture_output=True,
                text=True,
            )
            if proc.returncode != 0:
                print(proc.stderr, file=sys.stderr)
                raise SystemExit(f"{wl} rep {rep} failed")
            r = json.loads(proc.stdout.strip().splitlines()[-1])
            runs.append(r)
            print(f"[af] {wl} rep {rep + 1}/{args.reps}: wall={r['wall_s']:.3f}s", file=sys.stderr)
        med = {f"median_{k}": statistics.median(r[k] for r in runs) for k in MEDIAN_KEYS if k in runs[0]}
        summary["workloads"][wl] = {**med, "runs": runs}
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
