"""The scenario registry and the assertion helpers scenarios use."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

from runtime.engine import canonical_json
from runtime.testing.conformance._harness import RuntimeHarness
from runtime.workflow import NO_INPUT, RunResult, Workflow, WorkflowEvent

__all__ = [
    "RULES",
    "SCENARIOS",
    "ConformanceFailure",
    "Scenario",
    "ScenarioFn",
    "activations",
    "check",
    "check_equal",
    "events",
    "outputs",
    "run",
    "scenario",
    "scenarios_for_rule",
    "timed_outputs",
]

ScenarioFn = Callable[[RuntimeHarness], Awaitable[None]]

RULES = range(1, 17)
"""The rules of docs/concurrency.md."""


class ConformanceFailure(AssertionError):
    """A runtime broke a rule of the concurrency model."""


@dataclass(frozen=True, slots=True)
class Scenario:
    """One conformance scenario: an async function of a harness, and what it proves."""

    name: str
    fn: ScenarioFn
    rules: tuple[int, ...]
    summary: str
    needs: frozenset[str] = frozenset()
    """Capabilities the harness must declare (see ``SAME_PROCESS``)."""
    min_concurrency: int = 1
    """The smallest ``max_concurrency`` the scenario makes sense at (None counts as unbounded)."""

    def supports(self, harness: RuntimeHarness) -> bool:
        limit = harness.max_concurrency
        fits = limit is None or limit >= self.min_concurrency
        return fits and self.needs <= harness.capabilities

    async def __call__(self, harness: RuntimeHarness) -> None:
        await self.fn(harness)


_REGISTRY: dict[str, Scenario] = {}
SCENARIOS: Mapping[str, Scenario] = MappingProxyType(_REGISTRY)
"""Every scenario by name, in definition order."""


def scenario(
    *rules: int, needs: Iterable[str] = (), min_concurrency: int = 1
) -> Callable[[ScenarioFn], ScenarioFn]:
    """Register ``async def scenario_<name>(h)`` as proving ``rules``; returns it unchanged."""
    bad = [r for r in rules if r not in RULES]
    if not rules or bad:
        raise ValueError(f"a scenario proves rules 1..16, got {rules}")

    def register(fn: ScenarioFn) -> ScenarioFn:
        name = fn.__name__.removeprefix("scenario_")
        if name in _REGISTRY:
            raise ValueError(f"duplicate conformance scenario {name!r}")
        doc = (fn.__doc__ or "").strip()
        if not doc:
            raise ValueError(f"conformance scenario {name!r} needs a docstring")
        _REGISTRY[name] = Scenario(
            name,
            fn,
            tuple(sorted(rules)),
            " ".join(doc.split("\n\n")[0].split()),
            frozenset(needs),
            min_concurrency,
        )
        return fn

    return register


def scenarios_for_rule(rule: int) -> list[Scenario]:
    return [s for s in _REGISTRY.values() if rule in s.rules]


# -- assertions -----------------------------------------------------------------------
def check(condition: bool, what: str) -> None:
    if not condition:
        raise ConformanceFailure(what)


def check_equal(actual: Any, expected: Any, what: str) -> None:
    if actual != expected:
        raise ConformanceFailure(f"{what}:\n  expected {expected!r}\n  got      {actual!r}")


def outputs(result: RunResult) -> str:
    """The run's outputs as canonical JSON text (byte-comparable across runs)."""
    return canonical_json(result.outputs)


def timed_outputs(result: RunResult) -> list[tuple[int | None, str | None, Any]]:
    """(superstep, executor id, value) of every output event, in reported order."""
    return [(e.superstep, e.executor_id, e.data) for e in result.events if e.type == "output"]


def events(result: RunResult, type_: str) -> list[WorkflowEvent]:
    return [e for e in result.events if e.type == type_]


def activations(result: RunResult) -> dict[int, list[str]]:
    """Superstep -> executors that completed an activation in it, in reported order."""
    out: dict[int, list[str]] = {}
    for e in result.events:
        if e.type == "executor_completed" and e.superstep is not None and e.executor_id:
            out.setdefault(e.superstep, []).append(e.executor_id)
    return out


async def run(
    harness: RuntimeHarness, workflow: Workflow, message: Any = NO_INPUT, **kw: Any
) -> RunResult:
    """Run ``workflow`` to its end on a new runtime of ``harness``."""
    result: RunResult = await workflow.run(message, runtime=harness.make_runtime(), **kw)
    return result
