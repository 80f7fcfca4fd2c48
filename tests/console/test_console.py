"""The run console in a real browser against a real deployment: start a run from the
form and watch it complete with its timeline, answer a request, read a failure,
resume from a checkpoint, cancel. The screenshots in docs/console/ come from here."""

from __future__ import annotations

import re
from typing import Any

import httpx
from playwright.sync_api import expect

from tests.console.conftest import Console
from tests.dapr.conftest import Deployment

LIVE = 60_000  # ms: how long a run may take to reach the state a test waits for


def _status(console: Console, status: str) -> None:
    expect(console.page.locator(".run-head [data-status]")).to_have_attribute(
        "data-status", status, timeout=LIVE
    )


def _start(console: Console, workflow: str) -> None:
    """Open the workflow's page (its link in the list)."""
    console.page.get_by_role("navigation", name="Workflows").locator(
        f'a[data-name="{workflow}"]'
    ).click()
    expect(console.page.get_by_role("heading", name=workflow, exact=True)).to_be_visible()


def test_the_page_asks_for_the_token_and_its_files_need_none(
    console: Console, console_deployment: Deployment
) -> None:
    console.page.goto(f"{console.url}/")
    expect(console.page.get_by_role("heading", name="This API wants a token")).to_be_visible()
    expect(console.page.get_by_label("API token")).to_be_focused()
    with httpx.Client(base_url=console.url) as client:
        page = client.get("/")
        script = client.get("/console/app.js")
        data = client.get("/runs")
        schema = client.get("/openapi.json").json()
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert "default-src 'self'" in page.headers["content-security-policy"]
    assert script.status_code == 200 and "javascript" in script.headers["content-type"]
    assert data.status_code == 401  # the API keeps wanting its token
    assert not [p for p in schema["paths"] if p == "/" or p.startswith("/console")]
    assert console.errors == []


def test_workflows_show_their_graph_placement_and_hosts(
    console: Console, console_deployment: Deployment
) -> None:
    console.open()
    _start(console, "fan")
    page = console.page
    graph = page.locator("svg.graph").first
    expect(graph.locator("g.node")).to_have_count(5)
    expect(graph.locator('g.node.start[data-executor="split"]')).to_have_count(1)
    # fan-out split -> 3 counters, fan-in 3 counters -> total
    expect(graph.locator("path.edge.kind-fan_out")).to_have_count(3)
    expect(graph.locator("path.edge.kind-fan_in")).to_have_count(3)
    hosts = page.get_by_role("region", name="Hosts")
    for host in console_deployment.local.host_ids:
        expect(hosts.get_by_text(host, exact=True)).to_be_visible()
    expect(page.get_by_role("region", name="Placement").get_by_text("yes")).to_have_count(5)
    console.screenshot("workflows")
    assert console.errors == []


def _start_from(console: Console, workflow: str, fields: dict[str, str], run_id: str = "") -> Any:
    """Open the workflow's page by its address, fill in its start form and start a run;
    the form."""
    console.open(f"#/workflows/{workflow}")
    form = console.page.get_by_role("form", name=f"Start a run of {workflow}")
    for label, value in fields.items():
        form.get_by_label(label).fill(value)
    if run_id:
        form.get_by_label("Run id (optional)").fill(run_id)
    form.get_by_role("button", name="Start run").click()
    return form


def test_a_run_started_from_the_form_completes_with_its_timeline_and_hosts(
    console: Console, console_deployment: Deployment
) -> None:
    console.open()
    _start(console, "runtime.demo:build_workflow")
    page = console.page
    form = page.get_by_role("form", name="Start a run of runtime.demo:build_workflow")
    form.get_by_label("latency_ms").fill("2")
    form.get_by_label("waves").fill("4")
    form.get_by_label("Input: as").select_option(label="Job")
    form.get_by_label("Docs").fill("120")
    form.get_by_label("Run id (optional)").fill("console-demo")
    form.get_by_role("button", name="Start run").click()
    expect(page).to_have_url(re.compile(r"#/runs/console-demo$"))
    _status(console, "completed")
    # 4 waves + 2 supersteps; every activation a bar in its host's lane
    bars = page.locator("svg.timeline rect.bar")
    rows = page.locator("details.activations tbody tr")
    expect(page.locator("svg.timeline line.barrier")).to_have_count(6)
    assert bars.count() >= 4 * 2 + 2  # the dispatcher and some analysts each wave
    hosts = set(console_deployment.local.host_ids)
    bar_hosts = [bars.nth(i).get_attribute("data-host") for i in range(bars.count())]
    assert set(bar_hosts) <= hosts and all(bar_hosts), bar_hosts
    for host in set(bar_hosts):  # one lane per host that ran something
        expect(page.locator("svg.timeline text.lane-host", has_text=host)).to_have_count(1)
    outputs = page.get_by_role("region", name="Outputs")
    expect(outputs.get_by_text("runtime.demo.Summary")).to_be_visible()
    expect(outputs.get_by_text('"documents": 120')).to_be_visible()
    # the last superstep's executor highlighted in the graph
    active = page.locator("svg.graph g.node.state-active")
    expect(active).to_have_count(1)
    expect(active).to_have_attribute("data-executor", "aggregator")
    expect(page.locator("table.log tr.ev-status")).to_contain_text("completed")
    console.screenshot("run")
    page.locator("details.activations summary").click()  # its rows are drawn when opened
    expect(rows).to_have_count(bars.count())
    expect(rows.first).to_be_visible()
    cells = [rows.nth(i).locator("td.host").inner_text() for i in range(rows.count())]
    assert sorted(cells) == sorted(bar_hosts)

    page.get_by_role("link", name="Runs").click()
    page.get_by_label("Status").select_option("completed")
    row = page.locator('tr[data-run="console-demo"]')
    expect(row).to_be_visible()
    expect(row.locator("[data-status]")).to_have_text("completed")
    expect(row.locator("td.num").first).to_have_text("6")
    page.get_by_label("Status").select_option("failed")
    expect(row).to_have_count(0)
    page.get_by_label("Status").select_option("")
    console.screenshot("runs")
    assert console.errors == []


def test_a_pending_request_is_answered_from_the_page(console: Console) -> None:
    fields = {"limit": "10", "Item": "ink", "Quantity": "25"}
    _start_from(console, "tests.dapr.workflows:orders", fields, "console-order")
    page = console.page
    _status(console, "awaiting_input")
    request = page.get_by_role("form", name="Answer request of desk")
    expect(request.get_by_text('"quantity": 25')).to_be_visible()
    expect(page.locator('svg.graph g.node.state-waiting[data-executor="desk"]')).to_have_count(1)
    console.screenshot("request")
    request.get_by_label("Approved").check()
    request.get_by_label("Note").fill("fine by me")
    request.get_by_role("button", name="Send response").click()
    _status(console, "completed")
    outputs = page.get_by_role("region", name="Outputs")
    expect(outputs.get_by_text("tests.dapr.workflows.Receipt")).to_be_visible()
    expect(outputs.get_by_text('"note": "fine by me"')).to_be_visible()
    expect(page.get_by_role("form", name="Answer request of desk")).to_have_count(0)
    assert console.errors == []


def test_a_failed_run_shows_the_exception_traceback_and_attempts(console: Console) -> None:
    _start_from(
        console, "runtime.testing.conformance._workflows:declining_workflow", {"Input": "3"}
    )
    page = console.page
    _status(console, "failed")
    failure = page.get_by_role("alert").filter(has_text="Failed in")
    expect(failure.get_by_role("heading")).to_contain_text("card")
    expect(failure.locator(".exc-type")).to_have_text(
        "runtime.testing.conformance._workflows.Declined"
    )
    expect(failure.locator(".exc-message")).to_have_text("card declined on attempt 2")
    expect(failure.locator("pre.traceback")).to_contain_text('raise Declined(f"card declined')
    attempts = failure.locator("table.attempts tbody tr")
    expect(attempts).to_have_count(2)
    expect(attempts.nth(0)).to_contain_text("card declined on attempt 1")
    expect(page.locator('svg.graph g.node.state-failed[data-executor="card"]')).to_have_count(1)
    expect(page.locator("svg.timeline rect.bar.kind-failed")).to_have_count(1)
    console.screenshot("failed")
    assert console.errors == []


def test_a_run_resumes_from_a_checkpoint_as_a_new_run(console: Console) -> None:
    _start_from(console, "ping", {"Input": "0"}, "console-ping")
    page = console.page
    _status(console, "completed")
    checkpoint = page.locator('li[data-checkpoint="console-ping@000005"]')
    checkpoint.get_by_role("button", name="State").click()
    expect(page.get_by_text("After superstep 5 (checkpoint @000005)")).to_be_visible()
    checkpoint.get_by_role("button", name="Resume from here").click()
    expect(page).to_have_url(re.compile(r"#/runs/console-ping-from-5-\w+$"))
    assert console.run_id() != "console-ping"
    _status(console, "completed")
    # supersteps 6 to 12 only, on both pools' hosts
    expect(page.locator("svg.timeline line.barrier")).to_have_count(7)
    expect(page.locator("svg.timeline text.step-label").first).to_have_text("6")
    expect(page.locator("svg.timeline text.lane-host", has_text="superstep-aux-1")).to_have_count(1)
    expect(page.get_by_role("region", name="Outputs").get_by_text("11", exact=True)).to_be_visible()
    assert console.errors == []


def test_a_running_run_is_cancelled_from_the_page(console: Console) -> None:
    _start_from(console, "slow", {"Input": "1.5"})
    page = console.page
    _status(console, "running")
    expect(page.locator("svg.timeline text.step-label.live")).to_be_visible(timeout=LIVE)
    page.get_by_role("button", name="Cancel run").click()
    _status(console, "cancelled")
    expect(page.get_by_role("button", name="Cancel run")).to_be_disabled()
    assert console.errors == []
