"""What ``GET /workflows`` lists: every workflow a run may name.

* a workflow served by name (``SUPERSTEP_WORKFLOWS=module:attr``): ``kind`` ``workflow``,
  started with ``{"workflow": name, "input": ...}``;
* each factory of a ``module:*`` module: ``kind`` ``factory``, its ``name``
  ``module:function``, started with ``{"factory": name, "params": {...}, "input": ...}``;
  its parameters come from its signature. What it builds may depend on them: the
  graph fields describe the workflow it builds with its defaults, and are null when
  it has required parameters.

Each gives the JSON schema of what its start executor takes, the ``input`` of a run.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Literal

from pydantic import BaseModel, Field

from executor_host._workflows import WorkflowRegistry
from runtime.engine import describe_group
from runtime.workflow import Workflow, input_schema

__all__ = ["EdgeGroupInfo", "ExecutorInfo", "ParameterInfo", "WorkflowInfo", "catalog"]


class ParameterInfo(BaseModel):
    name: str
    type: str | list[str] | None = Field(
        description="its JSON type (or types), where its annotation says"
    )
    json_schema: dict[str, Any] | None = Field(
        description="the JSON schema of its annotation, where there is one"
    )
    required: bool
    default: Any = Field(default=None, description="its default, when that is JSON data")


class ExecutorInfo(BaseModel):
    id: str
    pool: str
    labels: dict[str, str]
    placeable: bool = Field(description="whether a live host of its pool can run it")


class EdgeGroupInfo(BaseModel):
    kind: Literal["edge", "fan_out", "fan_in", "switch_case", "multi_selection"]
    sources: list[str]
    targets: list[str] = Field(description="a switch-case group's cases in order, then its default")
    conditional: bool = Field(
        description="whether a condition or selector decides which targets a message takes"
    )


class WorkflowInfo(BaseModel):
    name: str = Field(description="the workflow's name, or a factory's module:function")
    kind: Literal["workflow", "factory"] = Field(
        description='start a run with {"workflow": name} or {"factory": name, "params": {...}}'
    )
    description: str | None
    parameters: list[ParameterInfo] = Field(description="a factory's parameters")
    workflow: str | None = Field(description="the name of the workflow it builds")
    signature: str | None
    start: str | None = Field(description="the start executor")
    input_schema: dict[str, Any] | None = Field(
        description="the JSON schema of a run's input (what the start executor takes)"
    )
    executors: list[ExecutorInfo]
    edges: list[EdgeGroupInfo] = Field(
        default_factory=list, description="the graph's edge groups, in the order they were added"
    )


def catalog(registry: WorkflowRegistry, live: Sequence[Mapping[str, Any]]) -> list[WorkflowInfo]:
    """Every workflow and factory ``registry`` serves, the executors' placeability
    judged by the ``live`` host records."""
    out: list[WorkflowInfo] = []
    for name in registry.names:
        wf = registry.resolve(name)
        placeable = {
            n.id: any(
                h["pool"] == n.placement.pool and n.id in h["workflows"].get(name, []) for h in live
            )
            for n in wf.graph.executors
        }
        out.append(_info(name, "workflow", wf, [], placeable, wf.description))
    for ref in registry.factory_names:
        parameters = [
            ParameterInfo(
                name=p.name,
                type=p.type,
                json_schema=p.json_schema,
                required=p.required,
                default=p.default,
            )
            for p in registry.parameters(ref)
        ]
        built: Workflow | None = None
        if not any(p.required for p in parameters):
            try:
                built = registry.resolve("", ref, {})
            except (LookupError, ValueError):  # its defaults do not build (a probe needed)
                built = None
        module = ref.partition(":")[0]
        placeable = {}
        if built is not None:
            placeable = {
                n.id: any(
                    h["pool"] == n.placement.pool
                    and module in h.get("modules", [])
                    and all(h["labels"].get(k) == v for k, v in n.placement.labels.items())
                    for h in live
                )
                for n in built.graph.executors
            }
        description = _first_paragraph(registry.factory(ref).__doc__)
        out.append(_info(ref, "factory", built, parameters, placeable, description))
    return out


def _info(
    name: str,
    kind: Literal["workflow", "factory"],
    wf: Workflow | None,
    parameters: list[ParameterInfo],
    placeable: Mapping[str, bool],
    description: str | None,
) -> WorkflowInfo:
    graph = wf.graph if wf is not None else None
    return WorkflowInfo(
        name=name,
        kind=kind,
        description=description,
        parameters=parameters,
        workflow=wf.name if wf is not None else None,
        signature=graph.signature if graph is not None else None,
        start=graph.start if graph is not None else None,
        input_schema=input_schema(wf) if wf is not None else None,
        executors=[
            ExecutorInfo(
                id=n.id,
                pool=n.placement.pool,
                labels=dict(n.placement.labels),
                placeable=placeable.get(n.id, False),
            )
            for n in (graph.executors if graph is not None else ())
        ],
        edges=[
            EdgeGroupInfo(**describe_group(g)) for g in (graph.groups if graph is not None else ())
        ],
    )


def _first_paragraph(doc: str | None) -> str | None:
    if not doc:
        return None
    return " ".join(doc.strip().split("\n\n")[0].split()) or None
