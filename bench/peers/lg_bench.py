# ruff: noqa
# fmt: off
# mypy: ignore-errors
# Vendored from ../shared/peer-bench/lg_bench.py: the code below these five header lines is an
# unchanged copy, so that bench/run.py works from a fresh clone (--peer-scripts picks another copy).
#!/usr/bin/env python
"""Peer benchmark: LangGraph (PyPI ``langgraph``) StateGraph / Pregel engine.

Run:  .peer-venvs/lg/bin/python ../shared/peer-bench/lg_bench.py [--reps 3] [--only W1,W2]

Prints progress to stderr and exactly ONE JSON line (the summary) to stdout.
Every (workload, repetition) runs in a fresh child process so that peak RSS
(resource.getrusage ru_maxrss) is per workload, not per script.

Same workload shapes as af_bench.py (see README.md in this folder):
  W1        ping: nodes a <-> b pass an int (state key x) for N supersteps (conditional edges)
  W1_ckpt   W1 compiled with InMemorySaver (a checkpoint after every superstep; default durability)
  W2        dispatcher --Send x100--> worker --> aggregator --> dispatcher, 20 rounds;
            fan-in = reducer on a state key + the superstep barrier
  W3a       10,000 docs, 50 workers: 50 Sends, each carrying a 200-doc shard processed
            sequentially (asyncio.sleep(0.01) per doc); results via operator.add reducer
  W3b       10,000 Sends (one per doc) with config max_concurrency=50
  W3_floor  framework-free asyncio floor for W3 (50 tasks x 200 sequential sleeps)
All nodes are ``async def`` and graphs run with ``ainvoke`` (asyncio, like agent-framework).
"""

import argparse
import asyncio
import json
import operator
import os
import platform
import resource
import statistics
import subprocess
import sys
import time
from typing import Annotated, TypedDict

from langgraph.checkpoint.memory import InMemorySaver
from langgraph.graph import END, START, StateGraph
from langgraph.types import Overwrite, Send

# ----------------------------------------------------------------------------------------------
# Parameters (kept identical in af_bench.py)
# ----------------------------------------------------------------------------------------------
W1_SUPERSTEPS = 2000
W2_WORKERS = 100
W2_ROUNDS = 20
W3_DOCS = 10_000
W3_WORKERS = 50
W3_IO_S = 0.010


def make_docs(n: int) -> list[str]:
    # Small deterministic documents, 5..12 words each (identical to af_bench.py).
    return [" ".join(f"w{(i * 7 + j) % 97}" for j in range(5 + i % 8)) for i in range(n)]


def rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # Linux: KiB


# ----------------------------------------------------------------------------------------------
# W1: ping
# ----------------------------------------------------------------------------------------------


class PingState(TypedDict):
    x: int


def build_w1(checkpoint: bool):
    last = W1_SUPERSTEPS  # node executions == supersteps; x counts them

    async def a(s: PingState) -> dict:
        return {"x": s["x"] + 1}

    async def b(s: PingState) -> dict:
        return {"x": s["x"] + 1}

    def route_a(s: PingState) -> str:
        return END if s["x"] >= last else "b"

    def route_b(s: PingState) -> str:
        return END if s["x"] >= last else "a"

    g = StateGraph(PingState)
    g.add_node("a", a)
    g.add_node("b", b)
    g.add_edge(START, "a")
    g.add_conditional_edges("a", route_a, ["b", END])
    g.add_conditional_edges("b", route_b, ["a", END])
    graph = g.compile(checkpointer=InMemorySaver() if checkpoint else None)
    config = {"recursion_limit": W1_SUPERSTEPS + 10}
    if checkpoint:
        config["configurable"] = {"thread_id": "w1"}
    return graph, {"x": 0}, config


# ----------------------------------------------------------------------------------------------
# W2: fan-out / fan-in loop
# ----------------------------------------------------------------------------------------------


class W2State(TypedDict):
    round: int
    results: Annotated[list, operator.add]
    totals: list


class W2Task(TypedDict):
    round: int
    idx: int


def build_w2():
    async def dispatcher(s: W2State) -> dict:
        return {"results": Overwrite([])}  # clear the fan-in accumulator for this round

    def fan_out(s: W2State) -> list[Send]:
        return [Send("worker", {"round": s["round"], "idx": i}) for i in range(W2_WORKERS)]

    async def worker(t: W2Task) -> dict:
        return {"results": [t["round"] * 31 + t["idx"]]}

    async def aggregator(s: W2State) -> dict:
        assert len(s["results"]) == W2_WORKERS, len(s["results"])
        return {"totals": s["totals"] + [sum(s["results"])], "round": s["round"] + 1}

    def loop(s: W2State) -> str:
        return END if s["round"] >= W2_ROUNDS else "dispatcher"

    g = StateGraph(W2State)
    g.add_node("dispatcher", dispatcher)
    g.add_node("worker", worker)
    g.add_node("aggregator", aggregator)
    g.add_edge(START, "dispatcher")
    g.add_conditional_edges("dispatcher", fan_out, ["worker"])
    g.add_edge("worker", "aggregator")
    g.add_conditional_edges("aggregator", loop, ["dispatcher", END])
    return g.compile(), {"round": 0, "results": [], "totals": []}, {"recursion_limit": 10 * W2_ROUNDS}


# ----------------------------------------------------------------------------------------------
# W3: documents
# ----------------------------------------------------------------------------------------------


class W3State(TypedDict):
    docs: list
    results: Annotated[list, operator.add]
    out: dict


class ShardTask(TypedDict):
    idx: int
    shard: list


class DocTask(TypedDict):
    i: int
    text: str


def _w3_graph(fan_out, worker):
    async def dispatcher(s: W3State) -> dict:
        return {}

    async def aggregator(s: W3State) -> dict:
        return {"out": {"docs": sum(n for n, _ in s["results"]), "words": sum(w for _, w in s["results"])}}

    g = StateGraph(W3State)
    g.add_node("dispatcher", dispatcher)
    g.add_node("worker", worker)
    g.add_node("aggregator", aggregator)
    g.add_edge(START, "dispatcher")
    g.add_conditional_edges("dispatcher", fan_out, ["worker"])
    g.add_edge("worker", "aggregator")
    g.add_edge("aggregator", END)
    return g.compile()


def build_w3a():
    def fan_out(s: W3State) -> list[Send]:
        return [Send("worker", {"idx": i, "shard": s["docs"][i::W3_WORKERS]}) for i in range(W3_WORKERS)]

    async def worker(t: ShardTask) -> dict:
        words = 0
        for d in t["shard"]:
            await asyncio.sleep(W3_IO_S)  # simulated I/O
            words += len(d.split())
        return {"results": [(len(t["shard"]), words)]}

    return _w3_graph(fan_out, worker), {"docs": make_docs(W3_DOCS), "results": [], "out": {}}, {}


def build_w3b():
    def fan_out(s: W3State) -> list[Send]:
        return [Send("worker", {"i": i, "text": d}) for i, d in enumerate(s["docs"])]

    async def worker(t: DocTask) -> dict:
        await asyncio.sleep(W3_IO_S)  # simulated I/O
        return {"results": [(1, len(t["text"].split()))]}

    return (
        _w3_graph(fan_out, worker),
        {"docs": make_docs(W3_DOCS), "results": [], "out": {}},
        {"max_concurrency": W3_WORKERS},
    )


# ----------------------------------------------------------------------------------------------
# Child
# ----------------------------------------------------------------------------------------------


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
    if workload == "W1":
        graph, inp, config = build_w1(False)
    elif workload == "W1_ckpt":
        graph, inp, config = build_w1(True)
    elif workload == "W2":
        graph, inp, config = build_w2()
    elif workload == "W3a":
        graph, inp, config = build_w3a()
    elif workload == "W3b":
        graph, inp, config = build_w3b()
    else:
        raise SystemExit(f"unknown workload {workload}")
    build_s = time.perf_counter() - t_build
    rss_before = rss_mb()

    t0 = time.perf_counter()
    final = await graph.ainvoke(inp, config)
    wall = time.perf_counter() - t0

    out: dict = {
        "workload": workload,
        "wall_s": wall,
        "build_s": build_s,
        "rss_before_run_mb": rss_before,
        "peak_rss_mb": rss_mb(),
    }
    if workload.startswith("W1"):
        assert final["x"] == W1_SUPERSTEPS, final
        out["supersteps"] = W1_SUPERSTEPS
        out["us_per_superstep"] = wall / W1_SUPERSTEPS * 1e6
        if workload == "W1_ckpt":
            cps = list(graph.checkpointer.list({"configurable": {"thread_id": "w1"}}))
            out["checkpoints"] = len(cps)
    elif workload == "W2":
        assert len(final["totals"]) == W2_ROUNDS, final["totals"]
        msgs = (2 * W2_WORKERS + 1) * W2_ROUNDS
        out["supersteps"] = 3 * W2_ROUNDS
        out["ms_per_round"] = wall / W2_ROUNDS * 1e3
        out["messages"] = msgs
        out["msgs_per_s"] = msgs / wall
    else:
        assert final["out"]["docs"] == W3_DOCS, final["out"]
        ideal = W3_DOCS * W3_IO_S / W3_WORKERS
        out["supersteps"] = 3
        out["docs"] = W3_DOCS
        out["ideal_s"] = ideal
        out["ratio_vs_ideal"] = wall / ideal
        out["words"] = final["out"]["words"]
    return out


# ----------------------------------------------------------------------------------------------
# Parent
# ----------------------------------------------------------------------------------------------

ALL = ["W1", "W1_ckpt", "W2", "W3a", "W3b", "W3_floor"]
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
    for p in ("langgraph", "langgraph-checkpoint", "langchain-core", "pydantic"):
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
        "framework": "langgraph",
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
            print(f"[lg] {wl} rep {rep + 1}/{args.reps}: wall={r['wall_s']:.3f}s", file=sys.stderr)
        med = {f"median_{k}": statistics.median(r[k] for r in runs) for k in MEDIAN_KEYS if k in runs[0]}
        summary["workloads"][wl] = {**med, "runs": runs}
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
