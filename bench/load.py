#!/usr/bin/env python
"""Load test: many concurrent runs through the HTTP API of a local deployment of the
Dapr runtime, every run's output checked, and the memory of every process over a long
sequence of runs.

Run:  .venv/bin/python bench/load.py [--sidecar local|daprd] [--levels 10,50,100,200]
                                     [--rounds 2] [--memory-runs 1000]
                                     [--memory-concurrency 20] [--sample-every 100]

The deployment is the tests' topology (``tests/dapr/conftest.py``): the API/coordinator
app, pool ``default`` with two host replicas, pool ``aux`` with one, each app beside
its sidecar — the local sidecar (all of them in one launcher process) or real daprd
(``tools/dapr/install``, with placement and scheduler) — on a Redis started for the
run on a free port. It runs in a child process of this one (``load.py serve``), so
that the load generator's own work is not counted in the sidecars' process.

The workflow is ``isolation`` of ``tests/dapr/workflows.py``: each run gets a tag of
its own and a random number; the start writes the tag to the run's shared state, four
workers in both pools read it back and add multiples of the number to a reducer key,
and the fan-in reports the tag, what each worker saw and both sums. A run that saw
another run's state or messages reports another output: every run's output is
compared with the one right answer.

1. **Concurrency levels**: for each level N, ``--rounds`` times, N runs are started at
   once (N concurrent ``POST /runs``) and each is followed to its end on its event
   stream (``GET /runs/{id}/events``), then read (``GET /runs/{id}``). Per level:
   runs started (201), completed with the right output, errors by kind, and the run
   time (start request to the end of its event stream) p50/p95 over completed runs,
   and the slowest answer of the API app's ``/healthz`` (asked every 0.25 s from a
   thread of its own; daprd's health probe gives up after 500 ms).
2. **Memory**: ``--memory-runs`` runs, ``--memory-concurrency`` at a time, the RSS of
   every process of the deployment (each app, each sidecar or the launcher holding the
   local sidecars, daprd's placement and scheduler, Redis) and its CPU time sampled
   before the first run and after every ``--sample-every`` runs.

Prints both tables (markdown) and writes the raw figures to
``bench/results/load-<sidecar>-<time>.json``; ``load.py summary FILE...`` joins saved
invocations of one sidecar (medians of their percentiles, with the range); the apps' log lines go to the file that
``--logs`` names (default: a temporary file, named at the end). The exit status is 1
when any run was not correct.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import contextlib
import json
import os
import random
import re
import shutil
import statistics
import sys
import tempfile
import threading
import time
import uuid
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import httpx

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(REPO))

from tests.dapr.workflows import isolation_output  # noqa: E402

API_TOKEN = "load-api-token-3b8e"
APP_TOKEN = "load-app-token-c41a"
WORKFLOW = "isolation"
ERROR_CODE = re.compile(r"ERR_[A-Z_]+")
nan = float("nan")


# -- the deployment (in a child process) -----------------------------------------------


async def serve(sidecar: str, logs: Path) -> None:
    """Start the deployment, print one JSON line (the API's URL and the process ids of
    the deployment), and stop it when stdin closes."""
    from sidecar.launcher import daprd as daprd_module
    from sidecar.launcher.deployment import LocalDeployment
    from sidecar.testing import BackgroundLoop
    from tests.chaos.harness import LocalRedis, write_components

    directory = Path(tempfile.mkdtemp(prefix="superstep-load-"))
    log_file = logs.open("a", encoding="utf-8", buffering=1)

    def sink(app: str, line: str) -> None:
        log_file.write(f"{time.strftime('%H:%M:%S')} {app}: {line}\n")

    binaries = None
    if sidecar == "daprd":
        daprd_module.use_free_ports(unless_chosen=True)
        binaries = daprd_module.find_binaries()
    redis = LocalRedis(directory / "redis")
    redis.directory.mkdir()
    await redis.start()
    local = LocalDeployment(
        workflows=["tests.dapr.workflows:isolation"],
        pools={"default": 2, "aux": 1},
        resources=write_components(directory / "components", redis.port),
        env={"SUPERSTEP_API_TOKEN": API_TOKEN},
        sink=sink,
        daprd=binaries,
        app_api_token=APP_TOKEN,
    )
    # the local sidecars run on a loop of their own, as under `python -m sidecar run`
    with BackgroundLoop() as bg:
        try:
            bg.run(local.start(), timeout=180)
            topology = local.topology
            assert topology is not None
            pids: dict[str, int | None] = {"redis": redis.process.pid}
            for name, process in topology.processes.items():
                pids[name] = process.pid
            for name, daprd in topology.daprds.items():
                pids[f"{name} daprd"] = daprd.process.pid
            if topology.control_plane is not None:
                for process in topology.control_plane.processes:
                    pids[process.app_id] = process.pid
            launcher = "launcher + local sidecars" if sidecar == "local" else "launcher"
            pids[launcher] = os.getpid()
            print(json.dumps({"api": local.api_url, "pids": pids}), flush=True)
            await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)
        finally:
            with contextlib.suppress(Exception):
                bg.run(local.stop(), timeout=90)
            with contextlib.suppress(Exception):
                await redis.stop()
            shutil.rmtree(directory, ignore_errors=True)
            log_file.close()


@dataclass
class Deployment:
    api: str
    pids: dict[str, int]
    child: asyncio.subprocess.Process

    async def stop(self) -> None:
        assert self.child.stdin is not None
        self.child.stdin.close()
        try:
            await asyncio.wait_for(self.child.wait(), 120)
        except TimeoutError:
            self.child.kill()
            await self.child.wait()


async def deploy(sidecar: str, logs: Path) -> Deployment:
    child = await asyncio.create_subprocess_exec(
        sys.executable,
        str(HERE / "load.py"),
        "serve",
        "--sidecar",
        sidecar,
        "--logs",
        str(logs),
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        env={
            **os.environ,
            "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])),
        },
    )
    assert child.stdout is not None
    line = await asyncio.wait_for(child.stdout.readline(), 240)
    if not line:
        raise SystemExit(f"the deployment did not start (its logs: {logs})")
    ready = json.loads(line)
    return Deployment(ready["api"], ready["pids"], child)


# -- memory ------------------------------------------------------------------------------


_TICK_S = 1 / os.sysconf("SC_CLK_TCK")


def usage(pid: int, *, group: bool) -> tuple[float, float]:
    """(RSS in MiB, CPU seconds so far) of process ``pid``, with ``group`` of every
    process of its process group (an app and anything it runs under, such as
    ``setpriv``); zeros when it is gone."""
    rss_kb, ticks = 0, 0
    every = [e.path for e in os.scandir("/proc") if e.name.isdigit()]
    paths = every if group else [f"/proc/{pid}"]
    for path in paths:
        try:
            fields = Path(path, "stat").read_text().rpartition(")")[2].split()
            if group and int(fields[2]) != pid and path != f"/proc/{pid}":
                continue
            ticks += int(fields[11]) + int(fields[12])
            for line in Path(path, "status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    rss_kb += int(line.split()[1])
        except (OSError, ValueError, IndexError):
            continue
    return rss_kb / 1024, ticks * _TICK_S


def sample(pids: dict[str, int], runs: int) -> dict[str, Any]:
    """RSS and CPU time of every process of the deployment (the launcher alone: its
    children are counted apart)."""
    rss, cpu = {}, {}
    for name, pid in pids.items():
        rss[name], cpu[name] = usage(pid, group=not name.startswith("launcher"))
    return {"runs": runs, "rss_mb": rss, "cpu_s": cpu}


# -- runs ----------------------------------------------------------------------------------


@dataclass
class Outcome:
    started: bool = False
    correct: bool = False
    error: str = ""
    """The kind of error (empty for a correct run)."""
    detail: str = ""
    start_s: float = 0.0
    """The start request's time."""
    run_s: float = 0.0
    """From the start request to the end of the run's event stream."""
    busy: int = 0
    """Start requests answered 503 (too many starts), waited out as ``Retry-After`` says
    and sent again, as ``RemoteRuntime`` does."""


def _kind(what: str, resp: httpx.Response) -> tuple[str, str]:
    text = resp.text
    found = ERROR_CODE.search(text)
    code = f" {found.group(0)}" if found else ""
    return f"{what} {resp.status_code}{code}", text[:600]


async def _created(client: httpx.AsyncClient, run_id: str) -> str:
    """Whether a run whose start got no answer exists."""
    try:
        status = (await client.get(f"/runs/{run_id}")).status_code
    except httpx.HTTPError as exc:
        return f" (not known whether the run was created: {type(exc).__name__})"
    return {200: " (the run was created)", 404: " (no run was created)"}.get(
        status, f" (GET /runs/{{id}} answered {status})"
    )


async def one_run(client: httpx.AsyncClient, rng: random.Random, deadline_s: float) -> Outcome:
    tag, x = uuid.uuid4().hex, rng.randrange(1, 10**12)
    out = Outcome()
    phase = "start"
    t0 = time.perf_counter()
    try:
        async with asyncio.timeout(deadline_s):
            # the client names the run (its tag): after a start that got no answer, the
            # report says whether the run was created all the same
            body = {"workflow": WORKFLOW, "run_id": tag, "input": {"tag": tag, "x": x}}
            resp = await client.post("/runs", json=body)
            while resp.status_code == 503 and "retry-after" in resp.headers:
                out.busy += 1
                await asyncio.sleep(float(resp.headers["retry-after"]))
                resp = await client.post("/runs", json=body)
            out.start_s = time.perf_counter() - t0
            if resp.status_code != 201:
                out.error, out.detail = _kind("start", resp)
                return out
            out.started = True
            run_id = resp.json()["run_id"]
            phase = "events"
            async with client.stream("GET", f"/runs/{run_id}/events") as events:
                if events.status_code not in (200, 204):
                    await events.aread()
                    out.error, out.detail = _kind("events", events)
                    return out
                async for _ in events.aiter_bytes():
                    pass
            out.run_s = time.perf_counter() - t0
            phase = "read"
            resp = await client.get(f"/runs/{run_id}")
            if resp.status_code != 200:
                out.error, out.detail = _kind("read", resp)
                return out
    except TimeoutError:
        out.error = f"{phase}: no answer within the deadline"
        return out
    except httpx.HTTPError as exc:
        out.error, out.detail = f"{phase}: {type(exc).__name__}", repr(exc)[:600]
        if phase == "start":
            out.error += await _created(client, tag)
        return out
    view = resp.json()
    if view["status"] != "completed":
        error = view.get("error") or {}
        out.error = f"run {view['status']}: {error.get('type', '?')}"
        out.detail = str(error.get("message", ""))[:600]
    elif view["outputs"] != [{"type": "dict", "value": isolation_output(tag, x)}]:
        out.error = "WRONG OUTPUT"
        out.detail = json.dumps({"want": isolation_output(tag, x), "got": view["outputs"]})[:600]
    else:
        out.correct = True
    return out


def _pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


@dataclass
class Level:
    concurrency: int
    runs: int = 0
    started: int = 0
    correct: int = 0
    errors: dict[str, int] = field(default_factory=dict)
    examples: dict[str, str] = field(default_factory=dict)
    run_p50_s: float = 0.0
    run_p95_s: float = 0.0
    start_p50_s: float = 0.0
    start_p95_s: float = 0.0
    wall_s: list[float] = field(default_factory=list)
    healthz_max_s: float = 0.0
    """The slowest answer of the API app's ``/healthz`` during the bursts (what the
    sidecar's health probe waits for; it gives up after 500 ms in these deployments)."""
    busy: int = 0
    """Start requests answered 503 and sent again."""

    def take(self, outcomes: list[Outcome]) -> None:
        self.runs += len(outcomes)
        self.busy += sum(o.busy for o in outcomes)
        self.started += sum(o.started for o in outcomes)
        self.correct += sum(o.correct for o in outcomes)
        for o in outcomes:
            if o.error:
                self.errors[o.error] = self.errors.get(o.error, 0) + 1
                self.examples.setdefault(o.error, o.detail)


class HealthProbe(threading.Thread):
    """Asks the API app's ``/healthz`` every ``every_s`` on a new connection, from a
    thread of its own (the load's own loop is busy with hundreds of runs: a probe on it
    would measure that loop), and keeps the slowest answer's time."""

    def __init__(self, base_url: str, every_s: float = 0.25) -> None:
        super().__init__(daemon=True)
        self.base_url, self.every_s = base_url, every_s
        self.slowest_s = 0.0
        self.done = threading.Event()

    def run(self) -> None:
        with httpx.Client(base_url=self.base_url, timeout=30) as probe:
            while not self.done.wait(self.every_s):
                t0 = time.perf_counter()
                with contextlib.suppress(httpx.HTTPError):
                    probe.get("/healthz", headers={"Connection": "close"})
                self.slowest_s = max(self.slowest_s, time.perf_counter() - t0)


async def level(
    client: httpx.AsyncClient, n: int, rounds: int, rng: random.Random, deadline_s: float
) -> Level:
    result = Level(n)
    times: list[float] = []
    starts: list[float] = []
    for _ in range(rounds):
        t0 = time.perf_counter()
        probe = HealthProbe(str(client.base_url))
        probe.start()
        try:
            outcomes = await asyncio.gather(*(one_run(client, rng, deadline_s) for _ in range(n)))
        finally:
            probe.done.set()
            await asyncio.to_thread(probe.join)
        result.healthz_max_s = max(result.healthz_max_s, probe.slowest_s)
        result.wall_s.append(time.perf_counter() - t0)
        result.take(outcomes)
        times += [o.run_s for o in outcomes if o.correct]
        starts += [o.start_s for o in outcomes if o.started]
        print(
            f"  {n} at once: {sum(o.correct for o in outcomes)}/{n} correct, "
            f"{result.wall_s[-1]:.1f} s, errors {collections.Counter(o.error for o in outcomes if o.error)}",
            file=sys.stderr,
        )
    result.run_p50_s, result.run_p95_s = (
        statistics.median(times) if times else float("nan"),
        _pct(times, 0.95),
    )
    result.start_p50_s, result.start_p95_s = (
        statistics.median(starts) if starts else float("nan"),
        _pct(starts, 0.95),
    )
    return result


async def memory(
    client: httpx.AsyncClient,
    dep: Deployment,
    runs: int,
    concurrency: int,
    every: int,
    rng: random.Random,
    deadline_s: float,
) -> tuple[list[dict[str, Any]], Level]:
    samples = [sample(dep.pids, 0)]
    result = Level(concurrency)
    done = 0
    todo = iter(range(runs))
    lock = asyncio.Lock()

    async def worker() -> None:
        nonlocal done
        for _ in todo:
            outcome = await one_run(client, rng, deadline_s)
            result.take([outcome])
            async with lock:
                done += 1
                if done % every == 0:
                    samples.append(sample(dep.pids, done))
                    print(f"  memory: {done} runs, {result.correct} correct", file=sys.stderr)

    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return samples, result


# -- tables --------------------------------------------------------------------------------


def level_table(sidecar: str, levels: list[Level]) -> str:
    lines = [
        "| sidecar | concurrent runs | runs | started | correct | errors | run p50 s | run p95 s "
        "| start p50 s | start p95 s | slowest /healthz s | starts answered 503, sent again |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for lv in levels:
        errors = "; ".join(f"{k}: {v}" for k, v in sorted(lv.errors.items())) or "0"
        lines.append(
            f"| {sidecar} | {lv.concurrency} | {lv.runs} | {lv.started} | {lv.correct} | {errors} "
            f"| {lv.run_p50_s:.2f} | {lv.run_p95_s:.2f} | {lv.start_p50_s:.2f} | {lv.start_p95_s:.2f} "
            f"| {lv.healthz_max_s:.2f} | {lv.busy} |"
        )
    return "\n".join(lines)


def _cpu_ms_a_run(first: dict[str, Any], last: dict[str, Any], name: str) -> float:
    """CPU time of a process per run between two samples (nan for files without it)."""
    if "cpu_s" not in first or last["runs"] == first["runs"]:
        return nan
    spent = float(last["cpu_s"][name]) - float(first["cpu_s"][name])
    return 1000 * spent / (int(last["runs"]) - int(first["runs"]))


def memory_table(sidecar: str, samples: list[dict[str, Any]], warm_up: int) -> str:
    """RSS per process: before, after the warm-up, at the end, growth after the warm-up."""
    first = samples[0]
    warm = next((s for s in samples if s["runs"] >= warm_up), samples[-1])
    last = samples[-1]
    marks = [s["runs"] for s in samples]
    lines = [
        f"| sidecar | process | RSS MiB before | after {warm['runs']} runs | after {last['runs']} runs "
        f"| growth after run {warm['runs']} | peak | CPU ms a run |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for name in first["rss_mb"]:
        series = [s["rss_mb"].get(name, 0.0) for s in samples]
        lines.append(
            f"| {sidecar} | {name} | {first['rss_mb'][name]:.1f} | {warm['rss_mb'][name]:.1f} "
            f"| {last['rss_mb'][name]:.1f} | {last['rss_mb'][name] - warm['rss_mb'][name]:+.1f} "
            f"| {max(series):.1f} | {_cpu_ms_a_run(first, last, name):.1f} |"
        )
    lines.append(f"\nsamples after runs {marks}")
    return "\n".join(lines)


def _range(values: list[float]) -> str:
    return f"{statistics.median(values):.2f} [{min(values):.2f}-{max(values):.2f}]"


def summary(files: list[Path], warm_up: int) -> str:
    """The tables of several saved invocations of one sidecar joined: runs, starts,
    correct runs and errors summed per level; the median of the invocations' p50 and
    p95 run times with their range; per process, the RSS at the end of the sequence
    and its growth after ``warm_up`` runs (median and range)."""
    results = [json.loads(f.read_text()) for f in files]
    sidecar = results[0]["sidecar"]
    lines = [
        f"{len(results)} invocations: {', '.join(r['started'] for r in results)}",
        "",
        "| sidecar | concurrent runs | runs | started | correct | errors "
        "| run p50 s | run p95 s | start p50 s | start p95 s | slowest /healthz s "
        "| starts answered 503, sent again |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    by_level: dict[int, list[dict[str, Any]]] = {}
    for r in results:
        for lv in r["levels"]:
            by_level.setdefault(lv["concurrency"], []).append(lv)
    for n, lvs in sorted(by_level.items()):
        errors: collections.Counter[str] = collections.Counter()
        for lv in lvs:
            errors.update(lv["errors"])
        shown = "; ".join(f"{k}: {v}" for k, v in sorted(errors.items())) or "0"
        lines.append(
            f"| {sidecar} | {n} | {sum(lv['runs'] for lv in lvs)} "
            f"| {sum(lv['started'] for lv in lvs)} | {sum(lv['correct'] for lv in lvs)} | {shown} "
            f"| {_range([lv['run_p50_s'] for lv in lvs])} | {_range([lv['run_p95_s'] for lv in lvs])} "
            f"| {_range([lv['start_p50_s'] for lv in lvs])} "
            f"| {_range([lv['start_p95_s'] for lv in lvs])} "
            f"| {_range([lv['healthz_max_s'] for lv in lvs if 'healthz_max_s' in lv] or [nan])} "
            f"| {sum(lv.get('busy', 0) for lv in lvs)} |"
        )
    memories = [r["memory"] for r in results if r.get("memory")]
    if memories:
        runs = sum(m["runs"]["runs"] for m in memories)
        correct = sum(m["runs"]["correct"] for m in memories)
        errors = collections.Counter[str]()
        for m in memories:
            errors.update(m["runs"]["errors"])
        last_mark = memories[0]["samples"][-1]["runs"]
        lines += [
            "",
            f"Memory sequences: {runs} runs, {correct} correct, errors {dict(errors) or 0}.",
            "",
            f"| sidecar | process | RSS MiB after {last_mark} runs "
            f"| growth from run {warm_up} to run {last_mark}, MiB | peak MiB | CPU ms a run |",
            "|---|---|---|---|---|---|",
        ]
        for name in memories[0]["samples"][0]["rss_mb"]:
            ends, growths, peaks, cpus = [], [], [], []
            for m in memories:
                samples = m["samples"]
                warm = next((x for x in samples if x["runs"] >= warm_up), samples[-1])
                ends.append(samples[-1]["rss_mb"][name])
                growths.append(samples[-1]["rss_mb"][name] - warm["rss_mb"][name])
                peaks.append(max(x["rss_mb"][name] for x in samples))
                cpus.append(_cpu_ms_a_run(samples[0], samples[-1], name))
            lines.append(
                f"| {sidecar} | {name} | {statistics.median(ends):.1f} "
                f"| {statistics.median(growths):+.1f} [{min(growths):+.1f} to {max(growths):+.1f}] "
                f"| {max(peaks):.1f} | {statistics.median(cpus):.1f} |"
            )
    loads = [f"{r['load_before'][0]:.1f}-{r['load_after'][0]:.1f}" for r in results]
    lines.append(f"\nload average (1 min) before-after each invocation: {', '.join(loads)}")
    return "\n".join(lines)


async def main(args: argparse.Namespace) -> int:
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    logs = Path(
        args.logs or Path(tempfile.gettempdir()) / f"superstep-load-{args.sidecar}-{stamp}.log"
    )
    rng = random.Random(args.seed)
    levels = [int(n) for n in args.levels.split(",") if n]
    started = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    load_before = os.getloadavg()
    dep = await deploy(args.sidecar, logs)
    results: dict[str, Any] = {
        "command": " ".join(sys.argv),
        "sidecar": args.sidecar,
        "started": started,
    }
    try:
        limits = httpx.Limits(max_connections=2 * max([*levels, args.memory_concurrency]) + 8)
        async with httpx.AsyncClient(
            base_url=dep.api,
            headers={"Authorization": f"Bearer {API_TOKEN}"},
            timeout=httpx.Timeout(60, read=None),
            limits=limits,
        ) as client:
            # one run to warm the deployment up (imports, first actor activations)
            warm = await one_run(client, rng, args.deadline)
            if not warm.correct:
                print(f"warm-up run: {warm.error} {warm.detail}", file=sys.stderr)
            measured: list[Level] = []
            for n in levels:
                print(f"{n} concurrent runs x {args.rounds} ...", file=sys.stderr)
                measured.append(await level(client, n, args.rounds, rng, args.deadline))
            results["levels"] = [asdict(lv) for lv in measured]
            samples: list[dict[str, Any]] = []
            if args.memory_runs:
                print(
                    f"memory: {args.memory_runs} runs, {args.memory_concurrency} at a time ...",
                    file=sys.stderr,
                )
                samples, seq = await memory(
                    client,
                    dep,
                    args.memory_runs,
                    args.memory_concurrency,
                    args.sample_every,
                    rng,
                    args.deadline,
                )
                results["memory"] = {"samples": samples, "runs": asdict(seq)}
    finally:
        await dep.stop()
    results["load_before"], results["load_after"] = load_before, os.getloadavg()
    out_dir = HERE / "results"
    out_dir.mkdir(exist_ok=True)
    out = out_dir / f"load-{args.sidecar}-{stamp}.json"
    out.write_text(json.dumps(results, indent=2))
    print(level_table(args.sidecar, measured))
    bad = sum(lv.runs - lv.correct for lv in measured)
    for lv in measured:
        for kind, example in lv.examples.items():
            print(f"\n{lv.concurrency} at once, {kind}: {example}")
    if samples:
        print()
        print(memory_table(args.sidecar, samples, args.warm_up))
        seq_level = Level(**{**results["memory"]["runs"]})
        print(
            f"\nmemory sequence: {seq_level.runs} runs, {seq_level.correct} correct, errors {seq_level.errors or 0}"
        )
        bad += seq_level.runs - seq_level.correct
    print(
        f"\nload average before {load_before[0]:.2f}, after {results['load_after'][0]:.2f}; "
        f"raw figures {out.relative_to(REPO)}; apps' logs {logs}"
    )
    return 1 if bad else 0


def parse(argv: list[str]) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    ap.add_argument("mode", nargs="?", default="run", choices=["run", "serve", "summary"])
    ap.add_argument("files", nargs="*", type=Path, help="summary: saved invocations")
    ap.add_argument("--sidecar", choices=["local", "daprd"], default="local")
    ap.add_argument("--levels", default="10,50,100,200")
    ap.add_argument("--rounds", type=int, default=2, help="bursts per concurrency level")
    ap.add_argument("--memory-runs", type=int, default=1000)
    ap.add_argument("--memory-concurrency", type=int, default=20)
    ap.add_argument("--sample-every", type=int, default=100)
    ap.add_argument(
        "--warm-up", type=int, default=300, help="runs before the memory bound is taken"
    )
    ap.add_argument("--deadline", type=float, default=300.0, help="seconds a run may take")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--logs", default="")
    return ap.parse_args(argv)


if __name__ == "__main__":
    ns = parse(sys.argv[1:])
    if ns.mode == "serve":
        asyncio.run(serve(ns.sidecar, Path(ns.logs)))
    elif ns.mode == "summary":
        print(summary(ns.files, ns.warm_up))
    else:
        sys.exit(asyncio.run(main(ns)))
