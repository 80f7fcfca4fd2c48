"""The run console of the in-process runtime (``superstep console``) in a real browser:
start a run from the form and watch it complete on its one host, answer a request, read
a failure's traceback, open the runs of a checkpoint folder written by ``superstep run``
and resume one from a checkpoint, the plots of a run, a run of a workflow factory with
its parameters; the timeline of a run followed live holds every activation once, as
it is extended. The page logs no error."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.sync_api import expect

from tests.console.conftest import Console, open_console

ROOT = Path(__file__).resolve().parents[2]
LIVE = 30_000  # ms
WORKFLOWS = ["greeting", "review", "charging"]
FACTORIES = "tests.console.flows"
"""A module served as ``module:*``: its workflow factories, started with parameters."""
ACTIVATIONS = {"executor_completed", "executor_failed", "executor_skipped", "executor_fallback"}
_MAIN = "import sys; from runtime.cli import main; sys.exit(main())"


def _superstep(*argv: str, cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", _MAIN, *argv],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """A checkpoint folder holding a completed run of ``greeting``, written by the CLI,
    and the run's id."""
    directory = tmp_path_factory.mktemp("checkpoints")
    done = _superstep(
        "run",
        "tests.cli.flows:greeting",
        "--input",
        '{"name": "ada", "times": 2}',
        "--checkpoint-dir",
        str(directory),
        "--quiet",
    )
    assert done.returncode == 0, done.stderr
    [log] = directory.glob("*.jsonl")
    return directory, log.stem


@pytest.fixture(scope="module")
def server(folder: tuple[Path, str]) -> Iterator[str]:
    """``superstep console`` on a free port, serving the folder and three workflows."""
    argv = [
        sys.executable,
        "-c",
        _MAIN,
        "console",
        "--port",
        "0",
        "--checkpoint-dir",
        str(folder[0]),
    ]
    for name in WORKFLOWS:
        argv += ["--workflow", f"tests.cli.flows:{name}"]
    argv += ["--workflow", f"{FACTORIES}:*"]
    errors = folder[0].parent / "console-stderr.txt"
    with errors.open("w") as err:
        process = subprocess.Popen(argv, cwd=ROOT, stdout=subprocess.PIPE, stderr=err, text=True)
    try:
        assert process.stdout is not None
        line = process.stdout.readline()  # blocks until the server listens (or exits)
        found = re.search(r"(http://\S+)/", line)
        if found is None:
            pytest.fail(f"superstep console did not start: {line!r} {errors.read_text()}")
        yield found.group(1)
    finally:
        process.terminate()
        process.communicate(timeout=10)


@pytest.fixture
def console(browser: Any, server: str) -> Iterator[Console]:
    yield from open_console(browser, server)


def _status(console: Console, status: str) -> None:
    expect(console.page.locator(".run-head [data-status]")).to_have_attribute(
        "data-status", status, timeout=LIVE
    )


def _start(console: Console, workflow: str, fields: dict[str, str], run_id: str) -> None:
    console.page.goto(f"{console.url}/#/workflows/{workflow}")
    form = console.page.get_by_role("form", name=f"Start a run of {workflow}")
    for label, value in fields.items():
        form.get_by_label(label).fill(value)
    form.get_by_label("Run id (optional)").fill(run_id)
    form.get_by_role("button", name="Start run").click()
    expect(console.page).to_have_url(re.compile(rf"#/runs/{run_id}$"))


def test_a_run_started_from_the_form_completes_on_the_in_process_host(console: Console) -> None:
    page = console.page
    page.goto(f"{console.url}/")
    expect(page.get_by_role("heading", name="This API wants a token")).to_have_count(0)
    expect(page.get_by_role("region", name="Hosts").get_by_text("in-process:")).to_be_visible()
    _start(console, "workflow:greeter", {"Name": "grace", "Times": "3"}, "ip-greeting")
    _status(console, "completed")
    # two supersteps, each a barrier; both activations in the one lane of this process
    expect(page.locator("svg.timeline line.barrier")).to_have_count(2)
    bars = page.locator("svg.timeline rect.bar")
    expect(bars).to_have_count(2)
    lanes = page.locator("svg.timeline text.lane-host")
    expect(lanes).to_have_count(1)
    expect(lanes).to_contain_text("in-process:")
    assert {bars.nth(i).get_attribute("data-host") for i in range(2)} == {lanes.text_content()}
    outputs = page.get_by_role("region", name="Outputs")
    expect(outputs.get_by_text('"HELLO GRACE HELLO GRACE HELLO GRACE"')).to_be_visible()
    active = page.locator("svg.graph g.node.state-active")
    expect(active).to_have_attribute("data-executor", "shout")
    # the one message that reached shout, on its edge
    expect(page.locator('svg.graph text.edge-count[data-edge="greeter→shout"]')).to_have_text(
        "1 msg"
    )
    # the plots: a box per executor, a point per superstep
    plots = page.get_by_role("region", name="Plots")
    expect(plots.locator("svg.plot-durations g.box")).to_have_count(2)
    expect(plots.locator("svg.plot-steps circle.point")).to_have_count(2)
    expect(plots.locator("svg.plot-messages rect.count")).to_have_count(2)
    # and the messages delivered over time, a point at each superstep's end, with the rate
    throughput = plots.locator("svg.plot-throughput")
    expect(throughput.locator("circle.point")).to_have_count(2)
    expect(throughput).to_have_attribute(
        "aria-label", re.compile(r"^Throughput: \d+ messages in .+: [\d,]+ a second$")
    )
    console.screenshot("inprocess-run")
    # a click on a superstep of the timeline (off its bars) selects it
    timeline = page.locator("svg.timeline").bounding_box()
    bar = page.locator('svg.timeline rect.bar[data-superstep="1"]').bounding_box()
    assert timeline is not None and bar is not None
    page.mouse.click(bar["x"] + bar["width"] / 2, timeline["y"] + 4)
    expect(page.locator("output.step-out")).to_have_text("1 of 2")
    expect(page.locator("svg.graph g.node.state-active")).to_have_attribute(
        "data-executor", "greeter"
    )
    page.get_by_role("link", name="Runs").click()
    row = page.locator('tr[data-run="ip-greeting"]')
    expect(row.locator("[data-status]")).to_have_text("completed")
    assert console.errors == []


def test_a_pending_request_is_answered_from_the_page(console: Console) -> None:
    _start(console, "workflow:reviewer", {"Input": "40"}, "ip-review")
    page = console.page
    _status(console, "awaiting_input")
    request = page.get_by_role("form", name="Answer request of reviewer")
    expect(request.get_by_text('"amount": 40')).to_be_visible()
    request.get_by_label("Approved").check()
    request.get_by_label("Note").fill("looks right")
    request.get_by_role("button", name="Send response").click()
    _status(console, "completed")
    outputs = page.get_by_role("region", name="Outputs")
    expect(outputs.get_by_text('"40: approved (looks right)"')).to_be_visible()
    expect(page.get_by_role("form", name="Answer request of reviewer")).to_have_count(0)
    assert console.errors == []


def test_a_failed_run_shows_its_traceback_and_attempts(console: Console) -> None:
    _start(console, "workflow:charge", {"Input": "12"}, "ip-charge")
    page = console.page
    _status(console, "failed")
    failure = page.get_by_role("alert").filter(has_text="Failed in")
    expect(failure.get_by_role("heading")).to_contain_text("charge")
    expect(failure.locator(".exc-type")).to_have_text("tests.cli.flows.Declined")
    expect(failure.locator(".exc-message")).to_have_text("12 declined (attempt 2)")
    expect(failure.locator("pre.traceback")).to_contain_text("raise Declined(")
    expect(failure.locator("table.attempts tbody tr")).to_have_count(2)
    expect(page.locator('svg.graph g.node.state-failed[data-executor="charge"]')).to_have_count(1)
    assert console.errors == []


def test_a_run_of_the_checkpoint_folder_resumes_from_a_checkpoint(
    console: Console, folder: tuple[Path, str]
) -> None:
    original = folder[1]
    page = console.page
    page.goto(f"{console.url}/#/runs")
    row = page.locator(f'tr[data-run="{original}"]')
    expect(row.locator("[data-status]")).to_have_text("completed")
    row.get_by_role("link").click()
    _status(console, "completed")
    checkpoint = page.locator(f'li[data-checkpoint="{original}@000001"]')
    checkpoint.get_by_role("button", name="State").click()
    expect(page.get_by_text("After superstep 1 (checkpoint @000001)")).to_be_visible()
    checkpoint.get_by_role("button", name="Resume from here").click()
    expect(page).to_have_url(re.compile(rf"#/runs/{original}-from-1-\w+$"))
    _status(console, "completed")
    # superstep 2 only: the shout of the greeting the checkpoint holds
    expect(page.locator("svg.timeline line.barrier")).to_have_count(1)
    expect(page.locator("svg.timeline text.step-label").first).to_have_text("2")
    outputs = page.get_by_role("region", name="Outputs")
    expect(outputs.get_by_text('"HELLO ADA HELLO ADA"')).to_be_visible()
    assert console.errors == []


def test_a_timeline_bar_starts_when_its_activation_started(console: Console) -> None:
    """Bars of one superstep start after its first activation's start by their own
    (``started_at`` of the events; one without starts with the superstep), and the
    superstep is as wide as its activations span."""
    console.page.goto(f"{console.url}/")
    xs = console.page.evaluate(
        """async () => {
        const { drawTimeline } = await import("/console/timeline.js");
        const a = (executor, host, start, duration) =>
          ({ executor, host, pool: "default", start, duration, attempts: 1,
             kind: "executor_completed" });
        const steps = [{ k: 1, completed: true, activations: [
          a("early", "h1", 100.0, 0.01), a("late", "h2", 100.05, 0.01),
          a("unknown", "h3", null, 0.01)] }];
        const svg = drawTimeline(steps, { width: 900 });
        const x = (name) => Number(svg.querySelector(`rect.bar[data-executor="${name}"]`)
          .getAttribute("x"));
        const scale = svg.querySelector("line.barrier").getAttribute("x1");
        return { early: x("early"), late: x("late"), unknown: x("unknown"),
                 barrier: Number(scale) };
      }"""
    )
    assert xs["early"] == xs["unknown"] < xs["late"] < xs["barrier"]
    # the late bar starts 5/6 of the way through the 60 ms the superstep spans
    span = xs["barrier"] - xs["early"]
    assert abs((xs["late"] - xs["early"]) / span - 5 / 6) < 0.05


def test_a_factory_run_starts_from_the_form_with_its_parameters(console: Console) -> None:
    """A factory of a ``module:*`` module is listed with its parameters, its graph as it
    builds it with its defaults; a run starts with the parameters of the form (those
    it refuses: tests/unit/test_console_app.py, a refused load being an error the page
    logs)."""
    page = console.page
    page.goto(f"{console.url}/")
    factories = page.get_by_role("navigation", name="Workflows")
    factories.locator(f'a[data-name="{FACTORIES}:rounds"]').click()
    form = page.get_by_role("form", name=f"Start a run of {FACTORIES}:rounds")
    expect(page.locator("svg.graph g.node")).to_have_count(4)  # built with its defaults
    expect(form.get_by_label("rounds")).to_have_value("2")  # the defaults filled in
    _start(console, f"{FACTORIES}:rounds", {"workers": "3", "Input": "1"}, "ip-rounds")
    _status(console, "completed")
    meta = page.locator("dl.meta")
    expect(meta).to_contain_text(f"{FACTORIES}:rounds")
    expect(meta).to_contain_text('"workers":3')
    # the hub, the three workers, the tally: each round
    expect(page.locator("svg.timeline line.barrier")).to_have_count(6)
    bars = page.locator("svg.timeline rect.bar")
    expect(bars).to_have_count(2 * 5)
    executors = {bars.nth(i).get_attribute("data-executor") for i in range(10)}
    assert executors == {"hub", "w0", "w1", "w2", "tally"}
    outputs = page.get_by_role("region", name="Outputs")
    expect(outputs.get_by_text("2", exact=True)).to_be_visible()
    assert console.errors == []


def _server_events(url: str, run_id: str) -> list[dict[str, Any]]:
    """The run's events as the API has them (the stream ends at a pause or the end)."""
    answer = httpx.get(f"{url}/runs/{run_id}/events", timeout=30)
    answer.raise_for_status()
    lines = answer.text.splitlines()
    return [json.loads(line[6:]) for line in lines if line.startswith("data: ")]


_TIMELINE = """() => {
  const svg = document.querySelector("svg.timeline");
  const lanes = [...svg.querySelectorAll("text.lane-host")].map((text) => {
    const rect = text.previousElementSibling.previousElementSibling; // the lane's band
    return [text.textContent, Number(rect.getAttribute("y")), Number(rect.getAttribute("height"))];
  });
  const bars = [...svg.querySelectorAll("rect.bar")].map((bar) => [
    Number(bar.dataset.superstep), bar.dataset.executor, bar.dataset.host,
    Number(bar.getAttribute("y")), Number(bar.getAttribute("height")),
    Number(bar.getAttribute("x")), Number(bar.getAttribute("width")),
  ]);
  const barriers = [...svg.querySelectorAll("line.barrier")].map((line) =>
    [Number(line.dataset.superstep), Number(line.getAttribute("x1"))]);
  return { lanes, bars, barriers };
}"""


def _in_place(bars: list[list[Any]], barriers: list[list[Any]]) -> None:
    """Each bar is in its superstep: after the barrier before it, up to its own."""
    at: dict[int, float] = {k: x for k, x in barriers}
    for k, executor, _, _, _, x, width in bars:
        assert at.get(k - 1, 0) <= x and x + width <= at.get(k, float("inf")) + 1, (k, executor)


def _check_timeline(console: Console, run_id: str) -> int:
    """The timeline holds a bar for each activation the API reported, in the lane of its
    host, and nothing else (no bar twice); a barrier for each superstep completed.
    Returns how many supersteps completed."""
    events = _server_events(console.url, run_id)
    wanted = Counter(
        (ev["superstep"], ev["executor_id"], ev["details"]["host"])
        for ev in events
        if ev["type"] in ACTIVATIONS
    )
    completed: int = sum(ev["type"] == "superstep_completed" for ev in events)
    page = console.page
    # (the page may still be reading the last of them: wait until it has as many)
    expect(page.locator("svg.timeline rect.bar")).to_have_count(sum(wanted.values()))
    expect(page.locator("svg.timeline line.barrier")).to_have_count(completed)
    drawn = page.evaluate(_TIMELINE)  # at once: the page draws between evaluations
    bars = drawn["bars"]
    assert Counter((k, executor, host) for k, executor, host, *_ in bars) == wanted
    assert sorted(k for k, _ in drawn["barriers"]) == list(range(1, completed + 1))
    _in_place(bars, drawn["barriers"])
    lanes = {host: (y, h) for host, y, h in drawn["lanes"]}
    assert len(lanes) == len(drawn["lanes"]) == len({host for _, _, host in wanted})
    for k, executor, host, y, h, *_ in bars:
        top, height = lanes[host]
        assert top <= y and y + h <= top + height, (k, executor, host)
    expect(page.locator(".events-panel .hint")).to_have_text(f"{len(events)} events.")
    return completed


def test_a_live_timeline_holds_every_activation_once_as_it_grows(console: Console) -> None:
    """Followed live, the timeline is extended as events come: at each pause of the run
    (the page still following it), and at its end, it holds exactly the bars of the
    activations the API reported, each in its host's lane, and a barrier for each
    superstep; the event log counts every event."""
    # (past 150 supersteps, where the layout settles: the page appends to the timeline
    # between the pauses, not drawing it again)
    params = {"rounds": 60, "workers": 2, "gates": [52, 56], "pause_ms": 1}
    body = {"factory": f"{FACTORIES}:rounds", "params": params, "input": 1, "run_id": "ip-live"}
    started = httpx.post(f"{console.url}/runs", json=body, timeout=30)
    assert started.status_code == 201, started.text
    page = console.page
    page.goto(f"{console.url}/#/runs/ip-live")
    request = page.get_by_role("form", name="Answer request of tally")
    # three supersteps a round; the answer to a gate is one more (the tally's)
    for gate, barriers in ((52, 156), (56, 169)):
        expect(request).to_contain_text(f'"round": {gate}', timeout=LIVE)
        assert _check_timeline(console, "ip-live") == barriers
        expect(page.locator(".run-head [data-status]")).to_have_attribute(
            "data-status", "awaiting_input"
        )
        view = httpx.get(f"{console.url}/runs/ip-live", timeout=30).json()
        [pending] = view["pending_requests"]
        answer = {"responses": {pending["request_id"]: True}}
        httpx.post(f"{console.url}/runs/ip-live/responses", json=answer, timeout=30)
    _status(console, "completed")
    assert _check_timeline(console, "ip-live") == 182
    # the log draws the rows in view: back at its top, the first event is there
    page.locator(".log-scroll").evaluate("box => box.scrollTo(0, 0)")
    expect(page.locator("table.log tbody tr:not(.log-gap)").first).to_contain_text("started")
    assert console.errors == []


_EXTEND = """async () => {
  const { createTimeline, drawTimeline } = await import("/console/timeline.js");
  const timeline = createTimeline({});
  const svg = timeline.element;
  const steps = [];
  const act = (k, executor, host, offset) => ({ executor, host, pool: "default",
    start: 100 + k + offset, duration: 0.004, attempts: 1, kind: "executor_completed" });
  const snapshots = [];
  let first = null; // the bar drawn for superstep 1
  const snap = (live) => {
    const bars = [...svg.querySelectorAll("rect.bar")];
    const lanes = [...svg.querySelectorAll("text.lane-host")].map((text) => {
      const band = text.previousElementSibling.previousElementSibling;
      return [text.textContent, Number(band.getAttribute("y")), Number(band.getAttribute("height"))];
    });
    const wanted = steps.flatMap((st) => st.activations.map((a) => [st.k, a.executor, a.host]));
    const one = svg.querySelector('rect.bar[data-superstep="1"]');
    snapshots.push({
      n: steps.length, live, kept: one === first, wanted, lanes,
      bars: bars.map((b) => [Number(b.dataset.superstep), b.dataset.executor, b.dataset.host,
                             Number(b.getAttribute("y")), Number(b.getAttribute("height")),
                             Number(b.getAttribute("x")), Number(b.getAttribute("width"))]),
      barriers: [...svg.querySelectorAll("line.barrier")].map((line) =>
        [Number(line.dataset.superstep), Number(line.getAttribute("x1"))]),
      completed: steps.filter((st) => st.completed).length,
    });
    first = one;
  };
  for (let k = 1; k <= 200; k++) {
    // a host more from superstep 90 on (its executor named with markup's characters);
    // the last superstep of each update arrives in two parts: drawn open with its first
    // activation, completed with the rest after
    const activations = [act(k, "a", "h1", 0), act(k, "b", "h2", 0.001)];
    if (k >= 90) activations.push(act(k, 'say "<hi>" & go', 'h"3', 0));
    const step = { k, completed: k % 9 !== 0, activations: k % 9 ? activations : activations.slice(0, 1) };
    steps.push(step);
    if (k % 9 === 0) {
      timeline.update(steps, { width: 600, live: true });
      snap(true);
      step.activations = activations;
      step.completed = true;
      timeline.update(steps, { width: 600, live: true });
      snap(true);
    }
  }
  timeline.update(steps, { width: 600, live: false });
  snap(false);
  // once it is not live: the picture of a timeline drawn at once
  const at = (root) => [...root.querySelectorAll("rect.bar, line.barrier")].map((e) =>
    ["x", "x1", "y", "width"].map((name) => e.getAttribute(name)).join());
  const once = drawTimeline(steps, { width: 600 });
  return { snapshots, exact: JSON.stringify(at(svg)) === JSON.stringify(at(once)) };
}"""


def test_a_timeline_is_extended_with_the_supersteps_added(console: Console) -> None:
    """``createTimeline().update`` as a live run calls it: after each update every
    activation has one bar, in its host's lane, every completed superstep its barrier;
    a superstep drawn while open is drawn again, not twice; once the layout has settled
    (here from 151 supersteps on) the bars drawn stay as they are, new ones are appended;
    not live, it is the picture ``drawTimeline`` draws at once. Names with markup's
    characters are drawn as they are (the bars are made from markup)."""
    console.page.goto(f"{console.url}/")
    found = console.page.evaluate(_EXTEND)
    snapshots = found["snapshots"]
    assert len(snapshots) == 2 * (200 // 9) + 1
    for snap in snapshots:
        wanted = Counter(tuple(w) for w in snap["wanted"])
        assert Counter((k, e, host) for k, e, host, *_ in snap["bars"]) == wanted, snap["n"]
        assert len(snap["barriers"]) == snap["completed"]
        _in_place(snap["bars"], snap["barriers"])
        lanes = {host: (y, h) for host, y, h in snap["lanes"]}
        assert len(lanes) == len(snap["lanes"]) == len({host for _, _, host in wanted})
        for k, executor, host, y, h, *_ in snap["bars"]:
            assert lanes[host][0] <= y and y + h <= sum(lanes[host]), (snap["n"], k, executor)
    settled = [snap["kept"] for snap in snapshots if snap["live"] and snap["n"] > 160]
    assert settled and all(settled)  # appended to, not drawn again
    assert found["exact"]
