"""The conformance suite on the in-process runtime, unbounded and with concurrency limits."""

from __future__ import annotations

from pathlib import Path

import pytest

from runtime.testing.conformance import SCENARIOS, InProcessHarness

LIMITS: dict[str, int | None] = {"unbounded": None, "limit1": 1, "limit2": 2}

CASES = [
    pytest.param(name, limit, id=f"{name}[{label}]")
    for name, scenario in SCENARIOS.items()
    for label, limit in LIMITS.items()
    if scenario.supports(InProcessHarness(Path("."), limit))
]


@pytest.mark.parametrize(("name", "limit"), CASES)
async def test_scenario(name: str, limit: int | None, tmp_path: Path) -> None:
    await SCENARIOS[name](InProcessHarness(tmp_path, max_concurrency=limit))


def test_every_scenario_runs_unbounded() -> None:
    unbounded = InProcessHarness(Path("."))
    assert [n for n, s in SCENARIOS.items() if not s.supports(unbounded)] == []


async def test_state_visibility_without_pacing(tmp_path: Path) -> None:
    """The rule-5 scenario as a runtime without ``same_process`` runs it (no pacing)."""
    harness = InProcessHarness(tmp_path, capabilities=frozenset())
    await SCENARIOS["read_your_writes_and_snapshot_isolation"](harness)
