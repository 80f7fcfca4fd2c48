"""Testing kit: the conformance suite every runtime runs (``runtime.testing.conformance``)."""

from runtime.testing.conformance import (
    RULES,
    SAME_PROCESS,
    SCENARIOS,
    ConformanceFailure,
    InProcessHarness,
    RuntimeHarness,
    Scenario,
    scenarios_for_rule,
)

__all__ = [
    "RULES",
    "SAME_PROCESS",
    "SCENARIOS",
    "ConformanceFailure",
    "InProcessHarness",
    "RuntimeHarness",
    "Scenario",
    "scenarios_for_rule",
]
