"""How fast the run console shows a long run: a run of 1,000 supersteps on the in-process
console (``superstep console``), in headless Chromium (Debian's ``chromium`` through
Playwright's ``executable_path``).

* **Finished run**: the run page of a completed 1,000-superstep run, loaded afresh: the
  first contentful paint, and the time until the timeline shows every barrier (both
  from the start of the navigation).
* **Live run**: the page opened as such a run starts, following its events: the time
  between animation frames while they stream (median, 95th percentile, longest, frames
  over 50 ms), and the time from the run's end until the timeline shows every barrier.

    .venv/bin/python -m bench.console_bench                 # 1,000 supersteps, 3 loads
    .venv/bin/python -m bench.console_bench --steps 200 --reps 1 --json
    .venv/bin/python -m bench.console_bench --viewport 1440x3000  # the whole page in view
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

from runtime import Executor, Workflow, WorkflowBuilder, WorkflowContext, handler

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = Path(os.environ.get("SUPERSTEP_CHROMIUM", "/usr/bin/chromium"))
STEPS_ENV = "SUPERSTEP_BENCH_STEPS"
STEP_MS_ENV = "SUPERSTEP_BENCH_STEP_MS"
_MAIN = "import sys; from runtime.cli import main; sys.exit(main())"
_FRAMES = """
window.__frames = [];
(function tick(last) {
  requestAnimationFrame((now) => { window.__frames.push(now - last); tick(now); });
})(performance.now());
"""


class Loop(Executor):
    """Sends itself the next number until the last superstep; sleeps ``step_ms`` each."""

    def __init__(self, steps: int, step_ms: float) -> None:
        super().__init__("loop")
        self.steps = steps
        self.step_ms = step_ms

    @handler
    async def on_number(self, n: int, ctx: WorkflowContext[int, int]) -> None:
        if self.step_ms:
            import asyncio

            await asyncio.sleep(self.step_ms / 1000)
        if n >= self.steps:
            await ctx.yield_output(n)
        else:
            await ctx.send_message(n + 1)


def loop_workflow() -> Workflow:
    """A run of ``$SUPERSTEP_BENCH_STEPS`` supersteps (1,000), each one activation that
    sleeps ``$SUPERSTEP_BENCH_STEP_MS`` (2 ms); start it with input 1."""
    steps = int(os.environ.get(STEPS_ENV, "1000"))
    step_ms = float(os.environ.get(STEP_MS_ENV, "2"))
    loop = Loop(steps, step_ms)
    return (
        WorkflowBuilder(start_executor=loop, name="console-bench", max_iterations=steps + 10)
        .add_edge(loop, loop)
        .build()
    )


def _call(url: str, path: str, body: Any = None) -> Any:
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(
        url + path, data=data, headers={"content-type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=30) as answer:
        return json.loads(answer.read())


def _wait_status(url: str, run_id: str, status: str, within: float) -> None:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if _call(url, f"/runs/{run_id}")["status"] == status:
            return
        time.sleep(0.05)
    raise TimeoutError(f"run {run_id} not {status} after {within} s")


_BARRIERS_DRAWN = "(n) => document.querySelectorAll('svg.timeline line.barrier').length >= n"


def measure(
    url: str, steps: int, reps: int, window: tuple[int, int] = (1440, 900)
) -> dict[str, Any]:
    from playwright.sync_api import sync_playwright

    width, height = window
    out: dict[str, Any] = {"steps": steps, "viewport": {"width": width, "height": height}}
    _call(url, "/runs", {"workflow": "console-bench", "input": 1, "run_id": "bench-done"})
    _wait_status(url, "bench-done", "completed", 600)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=str(CHROMIUM), args=["--headless", "--no-sandbox", "--disable-gpu"]
        )
        try:
            loads = []
            for _ in range(reps):
                context = browser.new_context(viewport={"width": width, "height": height})
                page = context.new_page()
                page.goto(f"{url}/#/runs/bench-done")
                page.wait_for_function(_BARRIERS_DRAWN, arg=steps, timeout=120_000, polling="raf")
                drawn = page.evaluate("performance.now()")
                paint = page.evaluate(
                    "(performance.getEntriesByName('first-contentful-paint')[0] || {}).startTime"
                )
                loads.append({"first_paint_ms": paint, "timeline_ms": drawn})
                context.close()
            out["finished"] = loads
            context = browser.new_context(viewport={"width": width, "height": height})
            context.add_init_script(_FRAMES)
            page = context.new_page()
            page.goto(f"{url}/#/runs")
            page.wait_for_selector("table.runs")
            _call(url, "/runs", {"workflow": "console-bench", "input": 1, "run_id": "bench-live"})
            started = time.monotonic()
            page.goto(f"{url}/#/runs/bench-live")
            page.evaluate("window.__frames = []")
            status = page.locator(".run-head [data-status]")
            status.and_(page.locator('[data-status="completed"]')).wait_for(timeout=600_000)
            ended = page.evaluate("performance.now()")
            frames: list[float] = page.evaluate("window.__frames")
            page.wait_for_function(_BARRIERS_DRAWN, arg=steps, timeout=120_000, polling="raf")
            settled = page.evaluate("performance.now()") - ended
            frames.sort()
            out["live"] = {
                "run_s": time.monotonic() - started,
                "frames": len(frames),
                "frame_p50_ms": statistics.median(frames) if frames else None,
                "frame_p95_ms": frames[int(0.95 * (len(frames) - 1))] if frames else None,
                "frame_max_ms": frames[-1] if frames else None,
                "frames_over_50ms": sum(f > 50 for f in frames),
                "timeline_after_end_ms": settled,
            }
            context.close()
        finally:
            browser.close()
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=1000)
    parser.add_argument("--step-ms", type=float, default=2.0)
    parser.add_argument("--reps", type=int, default=3, help="loads of the finished run")
    parser.add_argument(
        "--viewport",
        default="1440x900",
        metavar="WxH",
        help="the browser window (default 1440x900: the plots and the event log below it)",
    )
    parser.add_argument("--json", action="store_true", help="print the numbers as JSON")
    args = parser.parse_args(argv)
    width, _, height = args.viewport.partition("x")
    if not (width.isdigit() and height.isdigit()):
        parser.error(f"--viewport is WIDTHxHEIGHT in pixels, got {args.viewport!r}")
    window = (int(width), int(height))
    if not CHROMIUM.exists():
        print(f"no Chromium at {CHROMIUM} (bash tools/browser/install installs it)")
        return 2
    env = {**os.environ, STEPS_ENV: str(args.steps), STEP_MS_ENV: str(args.step_ms)}
    argv_ = [sys.executable, "-c", _MAIN, "console", "--port", "0"]
    argv_ += ["--workflow", "bench.console_bench:loop_workflow"]
    with tempfile.TemporaryFile("w+") as err:
        process = subprocess.Popen(
            argv_, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=err, text=True
        )
        try:
            assert process.stdout is not None
            line = process.stdout.readline()
            found = re.search(r"(http://\S+)/", line)
            if found is None:
                err.seek(0)
                print(f"superstep console did not start: {line!r} {err.read()}")
                return 1
            result = measure(found.group(1), args.steps, args.reps, window)
        finally:
            process.terminate()
            process.communicate(timeout=10)
    if args.json:
        print(json.dumps(result, indent=2))
        return 0
    _report(result)
    return 0


def _report(result: dict[str, Any]) -> None:
    loads = result["finished"]
    size = result["viewport"]
    print(
        f"a finished run of {result['steps']} supersteps, {len(loads)} fresh loads "
        f"({size['width']}x{size['height']}):"
    )
    for n, load in enumerate(loads, 1):
        print(
            f"  load {n}: first paint {load['first_paint_ms']:.0f} ms, "
            f"timeline drawn {load['timeline_ms']:.0f} ms"
        )
    live = result["live"]
    print(f"the same run followed live ({live['run_s']:.1f} s, {live['frames']} frames):")
    print(
        f"  frame time median {live['frame_p50_ms']:.1f} ms, p95 {live['frame_p95_ms']:.1f} ms, "
        f"longest {live['frame_max_ms']:.0f} ms, {live['frames_over_50ms']} frames over 50 ms"
    )
    print(f"  timeline complete {live['timeline_after_end_ms']:.0f} ms after the run's end")


if __name__ == "__main__":
    sys.exit(main())
