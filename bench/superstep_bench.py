#!/usr/bin/env python
"""Benchmark: superstep's in-process runtime on the peer workloads.

Run:  .venv/bin/python bench/superstep_bench.py [--reps 3] [--only W1,W2]

A port of ``bench/peers/af_bench.py`` (the agent-framework script of
../shared/peer-bench): the same workloads, parameters, assertions, timing points
and JSON summary shape, with ``runtime`` imports instead of ``agent_framework``.
Prints progress to stderr and exactly ONE JSON line (the summary) to stdout.
Every (workload, repetition) runs in a fresh child process so that peak RSS
(``resource.getrusage`` ru_maxrss) is per workload, not per script.

Workloads (see bench/README.md):
  W1        ping: two executors pass an int back and forth for 2,000 supersteps
  W1_ckpt   W1 with InMemoryCheckpointStorage (a checkpoint after every superstep)
  W1_fckpt  W1 with FileCheckpointStorage under a temp dir
  W2        dispatcher -> 100 workers (fan-out) -> aggregator (fan-in) -> dispatcher, 20 rounds
  W3a       10,000 docs, 50 workers; the doc list is broadcast, worker i processes
            docs[i::50] sequentially (asyncio.sleep(0.01) per doc), fan-in aggregator
  W3b       one message per document over 50 separate dispatcher->worker edges,
            per-doc results over 50 separate worker->aggregator edges (no fan-in)
  W3c       per-doc targeted messages through ONE fan-out edge group, 300 docs
  W3_floor  framework-free asyncio floor for W3 (50 tasks x 200 sequential sleeps)
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from typing import Any, Never

from runtime import (
    CheckpointStorage,
    Executor,
    FileCheckpointStorage,
    InMemoryCheckpointStorage,
    Workflow,
    WorkflowBuilder,
    WorkflowContext,
    handler,
)
from runtime.loop import run as run_on_loop

# ----------------------------------------------------------------------------------------------
# Parameters (identical to the peers' scripts)
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
# Message types
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
    docs: list[str]


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


# ----------------------------------------------------------------------------------------------
# Workloads
# ----------------------------------------------------------------------------------------------

LAST = W1_SUPERSTEPS - 1


class Ping(Executor):
    @handler
    async def on_int(self, x: int, ctx: WorkflowContext[int, int]) -> None:
        if x >= LAST:
            await ctx.yield_output(x)
        else:
            await ctx.send_message(x + 1)


def build_w1(checkpoint: str | None) -> tuple[Workflow, int, CheckpointStorage | None, str | None]:
    storage: CheckpointStorage | None = None
    tmpdir = None
    if checkpoint == "mem":
        storage = InMemoryCheckpointStorage()
    elif checkpoint == "file":
        tmpdir = tempfile.mkdtemp(prefix="superstep_ckpt_")
        storage = FileCheckpointStorage(tmpdir)
    a, b = Ping(id="a"), Ping(id="b")
    wf = (
        WorkflowBuilder(
            start_executor=a, max_iterations=W1_SUPERSTEPS + 10, checkpoint_storage=storage
        )
        .add_edge(a, b)
        .add_edge(b, a)
        .build()
    )
    return wf, 0, storage, tmpdir


class W2Dispatcher(Executor):
    @handler
    async def on_round(self, r: int, ctx: WorkflowContext[Task]) -> None:
        await ctx.send_message(Task(round=r))  # one message, broadcast by the fan-out group


class W2Worker(Executor):
    def __init__(self, id: str, idx: int) -> None:
        super().__init__(id=id)
        self.idx = idx

    @handler
    async def on_task(self, t: Task, ctx: WorkflowContext[Result]) -> None:
        await ctx.send_message(Result(round=t.round, idx=self.idx, value=t.round * 31 + self.idx))


class W2Aggregator(Executor):
    def __init__(self, id: str) -> None:
        super().__init__(id=id)
        self.totals: list[int] = []

    @handler
    async def on_results(self, rs: list[Result], ctx: WorkflowContext[int, list[int]]) -> None:
        assert len(rs) == W2_WORKERS, len(rs)
        self.totals.append(sum(r.value for r in rs))
        nxt = rs[0].round + 1
        if nxt >= W2_ROUNDS:
            await ctx.yield_output(list(self.totals))
        else:
            await ctx.send_message(nxt)


def build_w2() -> tuple[Workflow, int]:
    d = W2Dispatcher(id="dispatcher")
    ws = [W2Worker(id=f"w{i}", idx=i) for i in range(W2_WORKERS)]
    agg = W2Aggregator(id="aggregator")
    wf = (
        WorkflowBuilder(start_executor=d, max_iterations=10 * W2_ROUNDS)
        .add_fan_out_edges(d, ws)
        .add_fan_in_edges(ws, agg)
        .add_edge(agg, d)
        .build()
    )
    return wf, 0


class W3aDispatcher(Executor):
    @handler
    async def on_docs(self, docs: list[str], ctx: WorkflowContext[DocBatch]) -> None:
        await ctx.send_message(DocBatch(docs=docs))


class W3aWorker(Executor):
    def __init__(self, id: str, idx: int) -> None:
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


class W3aAggregator(Executor):
    @handler
    async def on_results(
        self, rs: list[WorkerResult], ctx: WorkflowContext[Never, dict[str, int]]
    ) -> None:
        await ctx.yield_output(
            {"docs": sum(r.n_docs for r in rs), "words": sum(r.words for r in rs)}
        )


def build_w3a() -> tuple[Workflow, list[str]]:
    d = W3aDispatcher(id="dispatcher")
    ws = [W3aWorker(id=f"w{i}", idx=i) for i in range(W3_WORKERS)]
    agg = W3aAggregator(id="aggregator")
    wf = (
        WorkflowBuilder(start_executor=d).add_fan_out_edges(d, ws).add_fan_in_edges(ws, agg).build()
    )
    return wf, make_docs(W3_DOCS)


class DocDispatcher(Executor):
    @handler
    async def on_docs(self, docs: list[str], ctx: WorkflowContext[Doc]) -> None:
        for i, text in enumerate(docs):
            await ctx.send_message(Doc(i=i, text=text), target_id=f"w{i % W3_WORKERS}")


class DocWorker(Executor):
    @handler
    async def on_doc(self, doc: Doc, ctx: WorkflowContext[DocResult]) -> None:
        await asyncio.sleep(W3_IO_S)  # simulated I/O
        await ctx.send_message(DocResult(i=doc.i, words=len(doc.text.split())))


class DocAggregator(Executor):
    def __init__(self, id: str, n_docs: int) -> None:
        super().__init__(id=id)
        self.n_docs = n_docs
        self.count = 0
        self.words = 0

    @handler
    async def on_result(self, r: DocResult, ctx: WorkflowContext[Never, dict[str, int]]) -> None:
        self.count += 1
        self.words += r.words
        if self.count == self.n_docs:
            await ctx.yield_output({"docs": self.count, "words": self.words})


def build_w3b() -> tuple[Workflow, list[str]]:
    d = DocDispatcher(id="dispatcher")
    ws = [DocWorker(id=f"w{i}") for i in range(W3_WORKERS)]
    agg = DocAggregator(id="aggregator", n_docs=W3_DOCS)
    b = WorkflowBuilder(start_executor=d)
    for w in ws:  # separate edges, as in the agent-framework script
        b.add_edge(d, w)
        b.add_edge(w, agg)
    return b.build(), make_docs(W3_DOCS)


def build_w3c() -> tuple[Workflow, list[str]]:
    d = DocDispatcher(id="dispatcher")
    ws = [DocWorker(id=f"w{i}") for i in range(W3_WORKERS)]
    agg = DocAggregator(id="aggregator", n_docs=W3C_DOCS)
    b = WorkflowBuilder(start_executor=d).add_fan_out_edges(d, ws)  # ONE edge group
    for w in ws:
        b.add_edge(w, agg)
    return b.build(), make_docs(W3C_DOCS)


async def w3_floor() -> dict[str, Any]:
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


async def run_child(workload: str) -> dict[str, Any]:
    if workload == "W3_floor":
        return await w3_floor()
    t_build = time.perf_counter()
    storage: CheckpointStorage | None = None
    tmpdir: str | None = None
    inp: Any
    if workload == "W1":
        wf, inp, storage, tmpdir = build_w1(None)
    elif workload == "W1_ckpt":
        wf, inp, storage, tmpdir = build_w1("mem")
    elif workload == "W1_fckpt":
        wf, inp, storage, tmpdir = build_w1("file")
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
    out: dict[str, Any] = {
        "workload": workload,
        "wall_s": wall,
        "build_s": build_s,
        "supersteps": supersteps,
        "events": len(result),
        "rss_before_run_mb": rss_before,
        "peak_rss_mb": rss_mb(),
    }
    assert result.status.value == "completed", (result.status, result.error)
    if workload.startswith("W1"):
        assert outputs == [W1_SUPERSTEPS - 1], outputs
        assert supersteps == W1_SUPERSTEPS, supersteps
        out["us_per_superstep"] = wall / supersteps * 1e6
        if storage is not None:
            out["checkpoints"] = len(await storage.list(workflow=wf.name))
        if tmpdir is not None:
            shutil.rmtree(tmpdir, ignore_errors=True)
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


def versions() -> dict[str, str | None]:
    from importlib.metadata import PackageNotFoundError, version

    v: dict[str, str | None] = {}
    for p in ("superstep", "pydantic"):
        try:
            v[p] = version(p)
        except PackageNotFoundError:  # pragma: no cover
            v[p] = None
    return v


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--only", default=",".join(ALL))
    ap.add_argument(
        "--interleave",
        action="store_true",
        help="run repetition by repetition across the workloads instead of workload by workload",
    )
    ap.add_argument(
        "--loop",
        choices=("asyncio", "uvloop"),
        default="asyncio",
        help="the children's event loop (asyncio, as the peers' scripts use, by default)",
    )
    ap.add_argument("--child", default=None, help=argparse.SUPPRESS)
    args = ap.parse_args()

    if args.child:
        print(json.dumps(run_on_loop(run_child(args.child), loop=args.loop)))
        return

    summary: dict[str, Any] = {
        "framework": "superstep",
        "versions": versions(),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
        "reps": args.reps,
        "loop": args.loop,
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
    workloads = [w for w in args.only.split(",") if w]
    all_runs: dict[str, list[dict[str, Any]]] = {wl: [] for wl in workloads}
    # --interleave: repetition-major (W1, W1_fckpt, W1, W1_fckpt, ...), so that a ratio
    # between two workloads is taken between runs seconds apart, not minutes
    order = (
        [(rep, wl) for rep in range(args.reps) for wl in workloads]
        if args.interleave
        else [(rep, wl) for wl in workloads for rep in range(args.reps)]
    )
    for rep, wl in order:
        proc = subprocess.run(
            [sys.executable, os.path.abspath(__file__), "--child", wl, "--loop", args.loop],
            capture_output=True,
            text=True,
        )
        if proc.returncode != 0:
            print(proc.stderr, file=sys.stderr)
            raise SystemExit(f"{wl} rep {rep} failed")
        r = json.loads(proc.stdout.strip().splitlines()[-1])
        all_runs[wl].append(r)
        print(
            f"[superstep] {wl} rep {rep + 1}/{args.reps}: wall={r['wall_s']:.3f}s",
            file=sys.stderr,
        )
    for wl, runs in all_runs.items():
        med = {
            f"median_{k}": statistics.median(r[k] for r in runs)
            for k in MEDIAN_KEYS
            if k in runs[0]
        }
        summary["workloads"][wl] = {**med, "runs": runs}
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
