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

from runtime.registry import WorkflowRegistry, describe
from runtime.workflow import Workflow

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
    """Every workflow and factory ``registry`` serves (``runtime.registry.describe``), the
    executors' placeability judged by the ``live`` host records: a host of the
    executor's pool that serves the workflow by name, or the factory's module (with the
    executor's labels)."""

    def placeable(name: str, kind: Literal["workflow", "factory"], wf: Workflow) -> dict[str, bool]:
        if kind == "workflow":
            return {
                n.id: any(
                    h["pool"] == n.placement.pool and n.id in h["workflows"].get(name, [])
                    for h in live
                )
                for n in wf.graph.executors
            }
        module = name.partition(":")[0]
        return {
            n.id: any(
                h["pool"] == n.placement.pool
                and module in h.get("modules", [])
                and all(h["labels"].get(k) == v for k, v in n.placement.labels.items())
                for h in live
            )
            for n in wf.graph.executors
        }

    return [WorkflowInfo.model_validate(entry) for entry in describe(registry, placeable)]
