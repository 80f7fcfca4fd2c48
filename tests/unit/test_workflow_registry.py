"""Which factories a ``module:*`` spec serves: public functions defined in that module
and nothing reached from it (a ``POST /runs`` names the factory and its parameters)."""

from __future__ import annotations

from pathlib import Path

import pytest

from executor_host._catalog import catalog
from runtime.registry import InvalidParameters, UnknownWorkflow, WorkflowRegistry, refusal

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
    with pytest.raises(InvalidParameters, match="does not take these parameters"):
        registry.resolve("", factory=f"{MODULE}:failing_start_workflow", params={"bogus": 1})


def test_a_public_function_that_builds_no_workflow_is_not_called(
    registry: WorkflowRegistry,
) -> None:
    # runtime.demo exports make_document, conformance's module defines reducers: only
    # functions that return a Workflow are factories
    demo = WorkflowRegistry({}, modules=["runtime.demo"])
    with pytest.raises(UnknownWorkflow, match="is not a workflow factory"):
        demo.resolve("", factory="runtime.demo:make_document", params={"seed": 1, "index": 2})
    with pytest.raises(UnknownWorkflow, match="is not a workflow factory"):
        registry.resolve("", factory=f"{MODULE}:add", params={"total": 1, "update": 2})


def test_every_factory_of_a_module_is_listed_with_its_parameters() -> None:
    registry = WorkflowRegistry({}, modules=["runtime.demo"])
    assert registry.factory_names == ["runtime.demo:build_workflow"]
    params = registry.parameters("runtime.demo:build_workflow")
    assert [(p.name, p.type, p.required, p.default) for p in params] == [
        ("workers", "integer", False, 20),
        ("latency_ms", "number", False, 10.0),
        ("waves", "integer", False, 20),
        ("analysis_pool", "string", False, "default"),
    ]


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"workers": "four"}, "parameter 'workers': Input should be a valid integer"),
        ({"workers": 2.5}, "parameter 'workers': Input should be a valid integer"),
        ({"workers": 0}, "failed with these parameters: the demo needs at least one analysis"),
        ({"latency_ms": None}, "parameter 'latency_ms': Input should be a valid number"),
        ({"workers": 1, "nope": 1}, "does not take these parameters: got an unexpected keyword"),
    ],
)
def test_bad_parameters_are_refused_in_one_readable_line(
    params: dict[str, object], message: str
) -> None:
    registry = WorkflowRegistry({}, modules=["runtime.demo"])
    with pytest.raises(InvalidParameters) as caught:
        registry.resolve("", factory="runtime.demo:build_workflow", params=params)
    text = str(caught.value)
    assert message in text and "\n" not in text and "pydantic" not in text


def test_an_unknown_name_points_at_the_factories() -> None:
    registry = WorkflowRegistry.load(["tests.cli.flows:counter", "runtime.demo:*"])
    with pytest.raises(UnknownWorkflow) as caught:
        registry.resolve("document-processing")
    assert str(caught.value) == (
        "no workflow named 'document-processing' (served by name: 'workflow:double'; factories of "
        "runtime.demo; GET /workflows lists them). A workflow built by a factory runs by "
        "its factory: mark the factory @workflow_factory and serve its module as module:*"
    )


def test_the_catalog_lists_named_workflows_and_factories_with_their_input() -> None:
    registry = WorkflowRegistry.load(["tests.cli.flows:greeting", "runtime.demo:*"])
    live = [{"pool": "default", "labels": {}, "workflows": {}, "modules": ["runtime.demo"]}]
    named, factory = catalog(registry, live)
    assert (named.name, named.kind, named.parameters, named.start) == (
        "workflow:greeter",
        "workflow",
        [],
        "greeter",
    )
    assert named.input_schema is not None
    assert named.input_schema["required"] == ["name"]
    assert [e.placeable for e in named.executors] == [False, False]  # no host serves it

    assert (factory.name, factory.kind, factory.workflow) == (
        "runtime.demo:build_workflow",
        "factory",
        "document-processing",
    )
    assert factory.description is not None
    assert factory.description.startswith("The demo workflow; run it with a ``Job``")
    assert [p.name for p in factory.parameters] == [
        "workers",
        "latency_ms",
        "waves",
        "analysis_pool",
    ]
    assert factory.input_schema is not None
    # the dispatcher takes a Job, and the Wave it sends itself
    assert factory.input_schema["anyOf"] == [{"$ref": "#/$defs/Job"}, {"$ref": "#/$defs/Wave"}]
    assert set(factory.input_schema["$defs"]["Job"]["properties"]) == {"docs", "seed"}
    assert factory.executors and all(e.placeable for e in factory.executors)


def test_a_refusal_is_the_problem_both_apis_answer() -> None:
    assert refusal(UnknownWorkflow("gone"), None) == (404, "Unknown workflow", "gone")
    assert refusal(InvalidParameters("bad"), "m:f") == (422, "Invalid workflow parameters", "bad")
    assert refusal(TypeError("odd"), "m:f") == (400, "Invalid workflow parameters", "m:f: odd")
    assert refusal(KeyError("k"), "m:f") is None  # no refusal: an error of the server


def test_a_module_not_served_is_refused(registry: WorkflowRegistry) -> None:
    with pytest.raises(UnknownWorkflow, match="not served here"):
        registry.resolve("", factory="os:mkdir", params={"path": "/tmp/x"})


def test_built_templates_are_bounded(registry: WorkflowRegistry) -> None:
    for i in range(1, 100):
        registry.resolve("", factory=f"{MODULE}:burst_workflow", params={"per_sender": i})
    assert len(registry._built) == 64
