"""Which factories a ``module:*`` spec serves: public functions defined in that module
and nothing reached from it (a ``POST /runs`` names the factory and its parameters)."""

from __future__ import annotations

from pathlib import Path

import pytest

from executor_host._workflows import UnknownWorkflow, WorkflowRegistry

MODULE = "runtime.testing.conformance._workflows"


@pytest.fixture
def registry() -> WorkflowRegistry:
    return WorkflowRegistry({}, modules=[MODULE])


def test_a_public_factory_of_the_module_builds_its_workflow(registry: WorkflowRegistry) -> None:
    wf = registry.resolve("", factory=f"{MODULE}:failing_start_workflow")
    assert wf.name


@pytest.mark.parametrize(
    "attr",
    [
        "asyncio.base_events.os.mkdir",  # an attribute path through the module's imports
        "os.mkdir",
        "asyncio",  # a module it imported
        "_private_helper",
        "WorkflowBuilder",  # a class it imported
        "no_such_factory",
        "",
        "mkdir(1)",
    ],
)
def test_anything_else_is_refused_before_it_is_called(
    registry: WorkflowRegistry, attr: str, tmp_path: Path
) -> None:
    target = tmp_path / "made-by-a-request"
    with pytest.raises(UnknownWorkflow, match="does not exist"):
        registry.resolve("", factory=f"{MODULE}:{attr}", params={"path": str(target)})
    assert not target.exists()


def test_a_factory_the_package_exports_from_a_submodule_is_served() -> None:
    registry = WorkflowRegistry({}, modules=["runtime.demo"])
    assert registry.resolve("", factory="runtime.demo:build_workflow").name


def test_parameters_the_factory_does_not_take_are_refused(registry: WorkflowRegistry) -> None:
    with pytest.raises(UnknownWorkflow, match="does not take these parameters"):
        registry.resolve("", factory=f"{MODULE}:failing_start_workflow", params={"bogus": 1})


def test_a_module_not_served_is_refused(registry: WorkflowRegistry) -> None:
    with pytest.raises(UnknownWorkflow, match="not served here"):
        registry.resolve("", factory="os:mkdir", params={"path": "/tmp/x"})


def test_built_templates_are_bounded(registry: WorkflowRegistry) -> None:
    for i in range(1, 100):
        registry.resolve("", factory=f"{MODULE}:burst_workflow", params={"per_sender": i})
    assert len(registry._built) == 64
