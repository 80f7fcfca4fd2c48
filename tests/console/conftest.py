"""The run console's tests: headless Chromium (Debian's ``chromium``, driven by
Playwright through ``executable_path``: a browser download of Playwright's own is never
used) against a local deployment of the Dapr runtime (tests/dapr/conftest.py: the API
app, three executor hosts, their sidecars, an API token).

Without the browser the tests skip with the reason printed; with ``CI`` set they fail
instead (``tools/browser/install`` installs it). Each test fails on any error the page
logs (console errors, failed loads, uncaught exceptions), and takes screenshots of the
pages it shows: ``SUPERSTEP_SCREENSHOTS=docs/console pytest tests/console`` writes them
where the README and docs/console.md show them.
"""

from __future__ import annotations

import os
import re
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from tests.dapr.conftest import API_TOKEN, Deployment, _deploy

CHROMIUM = Path(os.environ.get("SUPERSTEP_CHROMIUM", "/usr/bin/chromium"))
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
SCREENSHOTS = Path(
    os.environ.get("SUPERSTEP_SCREENSHOTS") or Path(tempfile.gettempdir()) / "superstep-console"
)
"""Where the pages' screenshots go: a temporary folder, or (to refresh the docs' pictures)
``SUPERSTEP_SCREENSHOTS=docs/console``."""
VIEWPORT = {"width": 1440, "height": 900}
WORKFLOWS = [
    "tests.dapr.workflows:all_workflows",
    "tests.dapr.workflows:*",
    "runtime.testing.conformance._workflows:*",
    "runtime.demo:*",
]


@pytest.fixture(scope="module")
def console_deployment() -> Iterator[Deployment]:
    """The tests' Dapr deployment serving the demo's factory too."""
    yield from _deploy(env={"SUPERSTEP_WORKFLOWS": ",".join(WORKFLOWS)})


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """Chromium, for one test module: Playwright's sync API runs an event loop of its
    own in this thread while it is open, and the asyncio tests after these need it
    closed."""
    if not CHROMIUM.exists():
        message = f"no Chromium at {CHROMIUM} (bash tools/browser/install installs Debian's)"
        if os.environ.get("CI"):
            pytest.fail(f"{message}; CI is set: the browser is required", pytrace=False)
        pytest.skip(message)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            yield launched
        finally:
            launched.close()


@dataclass
class Console:
    """A page of the console in a fresh browser context, and what it logged."""

    page: Any
    url: str
    errors: list[str] = field(default_factory=list)

    def open(self, route: str = "") -> None:
        """Load the console at ``route`` (``#/runs``, ...), giving it the API token."""
        self.page.goto(f"{self.url}/")
        self.page.get_by_label("API token").fill(API_TOKEN)
        self.page.get_by_role("button", name="Use token").click()
        if route:
            self.page.goto(f"{self.url}/{route}")

    def screenshot(self, name: str) -> None:
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        self.page.evaluate("window.scrollTo(0, 0)")  # the sticky header at the top
        self.page.screenshot(
            path=str(SCREENSHOTS / f"{name}.png"),
            full_page=True,
            animations="disabled",
            caret="hide",
        )

    def run_id(self) -> str:
        """The id of the run the page shows (from its address)."""
        found = re.search(r"#/runs/([^/]+)$", self.page.url)
        assert found is not None, self.page.url
        from urllib.parse import unquote

        return unquote(found.group(1))


def open_console(browser: Any, url: str) -> Iterator[Console]:
    """A fresh browser context on the console at ``url``; fails the test on any error
    the page logged."""
    context = browser.new_context(viewport=VIEWPORT, locale="en-GB", timezone_id="UTC")
    context.set_default_timeout(30_000)
    page = context.new_page()
    seen = Console(page, url)
    page.on("console", lambda msg: seen.errors.append(msg.text) if msg.type == "error" else None)
    page.on("pageerror", lambda exc: seen.errors.append(f"uncaught: {exc}"))
    try:
        yield seen
    finally:
        context.close()
    assert seen.errors == [], f"the page logged errors: {seen.errors}"


@pytest.fixture
def console(browser: Any, console_deployment: Deployment) -> Iterator[Console]:
    yield from open_console(browser, console_deployment.url)
