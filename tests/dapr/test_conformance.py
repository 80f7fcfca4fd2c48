"""The conformance suite, unchanged, on the Dapr runtime (API app + executor hosts,
each with its local sidecar): every scenario that does not need executors in the
test's own process."""

from __future__ import annotations

from pathlib import Path

import pytest

from runtime.testing.conformance import SCENARIOS, Scenario
from runtime.testing.conformance._remote import RemoteHarness
from tests.dapr.conftest import API_TOKEN, Deployment

REMOTE = [s for s in SCENARIOS.values() if not s.needs]


@pytest.mark.parametrize("scenario", REMOTE, ids=[s.name for s in REMOTE])
async def test_scenario_on_dapr(scenario: Scenario, deployment: Deployment, tmp_path: Path) -> None:
    harness = RemoteHarness(deployment.url, tmp_path, name="dapr", token=API_TOKEN)
    assert scenario.supports(harness)
    await scenario(harness)
