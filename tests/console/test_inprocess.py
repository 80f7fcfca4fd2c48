"""The run console of the in-process runtime (``superstep console``) in a real browser:
start a run from the form and watch it complete on its one host, answer a request, read
a failure's traceback, open the runs of a checkpoint folder written by ``superstep run``
and resume one from a checkpoint, the plots of a run, a run of a workflow factory with
its parameters. The page logs no error."""

from __future__ import annotations

import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import expect

from tests.console.conftest import Console, open_console

ROOT = Path(__file__).resolve().parents[2]
LIVE = 30_000  # ms
WORKFLOWS = ["greeting", "review", "charging"]
FACTORIES = "tests.console.flows"
"""A module served as ``module:*``: its workflow factories, started with parameters."""
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
    console.screenshot("inprocess-run")
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
