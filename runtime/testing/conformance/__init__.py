"""The conformance suite: one behaviour suite for every runtime.

Each scenario is ``async def scenario_<name>(h: RuntimeHarness) -> None``; it builds
its workflow from a module-level factory (``h.build(factory, **params)``), runs it
on ``h.make_runtime()`` and raises ``ConformanceFailure`` when the runtime breaks a
rule of docs/concurrency.md. ``SCENARIOS`` maps each name to its ``Scenario``
(the function, the rules it proves, the capabilities it needs).

A runtime joins by providing a ``RuntimeHarness``::

    @pytest.mark.parametrize("name", list(SCENARIOS))
    async def test_conformance(name: str, harness: RuntimeHarness) -> None:
        await SCENARIOS[name](harness)
"""

from runtime.testing.conformance import (
    _scenarios_flow,
    _scenarios_lifecycle,
    _scenarios_state,
)
from runtime.testing.conformance._harness import (
    SAME_PROCESS,
    InProcessHarness,
    RuntimeHarness,
    WorkflowFactory,
    factory_ref,
)
from runtime.testing.conformance._registry import (
    RULES,
    SCENARIOS,
    ConformanceFailure,
    Scenario,
    ScenarioFn,
    scenarios_for_rule,
)

del _scenarios_flow, _scenarios_lifecycle, _scenarios_state  # imported to register them

__all__ = [
    "RULES",
    "SAME_PROCESS",
    "SCENARIOS",
    "ConformanceFailure",
    "InProcessHarness",
    "RuntimeHarness",
    "Scenario",
    "ScenarioFn",
    "WorkflowFactory",
    "factory_ref",
    "scenarios_for_rule",
]
