"""What runs where: which host ran each executor of a run, the registered executor
hosts, and the workflows and factories the API app serves."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import Response

from executor_host._catalog import WorkflowInfo, catalog
from executor_host._ids import RunId
from executor_host._problems import problems
from executor_host._services import Services
from executor_host._views import HostView, TopologyView, answers, json_response

__all__ = ["router"]

router = APIRouter()


@router.get(
    "/runs/{run_id}/topology",
    summary="Which host ran which executor",
    responses={**answers(TopologyView), **problems(400, 404, 422)},
)
async def topology(run_id: RunId, services: Services) -> Response:
    record = await services.record(run_id)
    graph = services.workflow(record.workflow, record.factory, record.params).graph
    ran: dict[str, set[str]] = {}
    for chunk in range(record.event_chunks):
        for ev in await services.store.load_events(run_id, chunk):
            host = (ev.get("details") or {}).get("host")
            if host and ev.get("executor_id"):
                ran.setdefault(ev["executor_id"], set()).add(host)
    return json_response(
        {
            "run_id": run_id,
            "executors": [
                {
                    "executor_id": n.id,
                    "pool": n.placement.pool,
                    "labels": dict(n.placement.labels),
                    "hosts": sorted(ran.get(n.id, ())),
                }
                for n in graph.executors
            ],
        }
    )


@router.get(
    "/hosts",
    summary="Registered executor hosts and whether they are alive",
    responses=answers(list[HostView]),
)
async def hosts(services: Services) -> Response:
    return json_response(await services.hosts())


@router.get(
    "/workflows",
    summary="The workflows and factories served, with their inputs and parameters",
)
async def workflows(services: Services) -> list[WorkflowInfo]:
    live = [h for h in await services.hosts() if h["alive"]]
    return catalog(services.registry, live)
