"""The API's checkpoints: the ids of a run's checkpoints, and one checkpoint as portable
JSON (which ``POST /runs`` resumes from)."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import Response

from executor_host._ids import CheckpointId, RunId
from executor_host._problems import Problem, problems
from executor_host._services import Services
from executor_host._views import CheckpointView, answers, json_response

__all__ = ["router"]

router = APIRouter()


@router.get(
    "/runs/{run_id}/checkpoints", summary="A run's checkpoints", responses=problems(404, 422)
)
async def checkpoints(run_id: RunId, services: Services) -> list[str]:
    return (await services.record(run_id)).checkpoints


@router.get(
    "/checkpoints/{checkpoint_id}",
    summary="A checkpoint (portable JSON)",
    responses={**answers(CheckpointView), **problems(404, 422)},
)
async def get_checkpoint(checkpoint_id: CheckpointId, services: Services) -> Response:
    cp = await services.store.load_checkpoint(checkpoint_id)
    if cp is None:
        raise Problem(404, "Unknown checkpoint", f"no checkpoint {checkpoint_id!r}")
    return json_response(cp.to_json())
