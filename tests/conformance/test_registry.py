"""The scenario registry: every rule is proved, and docs/concurrency.md names exactly
the scenarios tagged with each rule."""

from __future__ import annotations

import importlib
import re
from pathlib import Path

import pytest

from runtime.testing import conformance
from runtime.testing.conformance import (
    RULES,
    SAME_PROCESS,
    SCENARIOS,
    InProcessHarness,
    RuntimeHarness,
    _workflows,
    factory_ref,
    scenarios_for_rule,
)
from runtime.testing.conformance._registry import scenario

DOC = Path(__file__).resolve().parents[2] / "docs" / "concurrency.md"


def _doc_sections() -> dict[int, str]:
    text = DOC.read_text(encoding="utf-8")
    parts = re.split(r"^## (\d+)\. ", text, flags=re.MULTILINE)
    return {int(parts[i]): parts[i + 1] for i in range(1, len(parts), 2)}


def test_every_rule_is_proved_by_a_scenario() -> None:
    assert [r for r in RULES if not scenarios_for_rule(r)] == []


def test_scenarios_are_tagged_with_known_rules_and_described() -> None:
    for name, s in SCENARIOS.items():
        assert s.name == name
        assert s.rules and set(s.rules) <= set(RULES)
        assert s.summary.endswith("."), name


def test_the_document_has_one_section_per_rule_in_order() -> None:
    assert list(_doc_sections()) == list(RULES)


@pytest.mark.parametrize("rule", list(RULES))
def test_the_document_names_exactly_the_scenarios_of_each_rule(rule: int) -> None:
    section = _doc_sections()[rule]
    lines = [ln for ln in section.splitlines() if ln.startswith("**Conformance:**")]
    assert len(lines) == 1, f"rule {rule} needs one '**Conformance:**' line"
    named = re.findall(r"`([a-z0-9_]+)`", lines[0])
    assert sorted(named) == sorted(s.name for s in scenarios_for_rule(rule))


def test_the_document_names_no_unknown_scenario() -> None:
    text = DOC.read_text(encoding="utf-8")
    quoted = set(re.findall(r"`([a-z][a-z0-9]*(?:_[a-z0-9]+){2,})`", text))
    looks_like_scenario = {q for q in quoted if not q.startswith(("test_", "on_", "add_"))}
    known = set(SCENARIOS) | {"same_process", "max_concurrency", "source_executor_ids"}
    known |= {"request_info", "checkpoint_storage", "idempotency_key", "strict_routing"}
    known |= {"message_dropped", "executor_skipped", "executor_fallback", "superstep_started"}
    known |= {"on_checkpoint_save", "on_checkpoint_restore", "max_supersteps", "factory_ref"}
    assert looks_like_scenario - known == set()


def test_the_unit_tests_the_document_cites_exist() -> None:
    root = DOC.parents[1]
    text = DOC.read_text(encoding="utf-8")
    current: Path | None = None
    missing: list[str] = []
    for path, name in re.findall(r"`(tests/unit/test_\w+\.py)?::(test_\w+)`", text):
        if path:
            current = root / path
        assert current is not None, f"{name} is cited before any file"
        if not re.search(rf"^(async )?def {name}\(", current.read_text(), flags=re.MULTILINE):
            missing.append(f"{current.name}::{name}")
    assert missing == []


def test_factories_are_importable_by_reference() -> None:
    for name in _workflows.__all__:
        if not name.endswith("_workflow"):
            continue
        factory = getattr(_workflows, name)
        module, _, qualname = factory_ref(factory).partition(":")
        assert getattr(importlib.import_module(module), qualname) is factory


def test_the_in_process_harness_is_a_runtime_harness(tmp_path: Path) -> None:
    h = InProcessHarness(tmp_path, max_concurrency=2)
    assert isinstance(h, RuntimeHarness)
    assert h.name == "inprocess-limit2"
    assert SAME_PROCESS in h.capabilities


def test_scenarios_needing_more_concurrency_or_capabilities_are_not_supported(
    tmp_path: Path,
) -> None:
    blocked = SCENARIOS["blocked_executor_delays_only_the_barrier"]
    assert not blocked.supports(InProcessHarness(tmp_path, max_concurrency=1))
    remote = InProcessHarness(tmp_path, capabilities=frozenset())
    assert not blocked.supports(remote)
    assert SCENARIOS["delivery_in_next_superstep"].supports(remote)


def test_every_rule_is_proved_without_same_process_too() -> None:
    remote = [s for s in SCENARIOS.values() if SAME_PROCESS not in s.needs]
    assert [r for r in RULES if not any(r in s.rules for s in remote)] == []


def test_registering_a_scenario_checks_rules_and_docstring() -> None:
    async def scenario_nameless(h: RuntimeHarness) -> None:
        del h

    with pytest.raises(ValueError, match=r"rules 1\.\.16"):
        scenario(17)(scenario_nameless)
    with pytest.raises(ValueError, match="docstring"):
        scenario(1)(scenario_nameless)
    assert "nameless" not in SCENARIOS


def test_the_registry_is_read_only() -> None:
    with pytest.raises(TypeError):
        conformance.SCENARIOS["x"] = SCENARIOS["delivery_in_next_superstep"]  # type: ignore[index]
