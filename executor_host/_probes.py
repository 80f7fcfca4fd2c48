"""``/readyz``, in both apps: ready when the Dapr sidecar is (liveness stays on the
SDK's ``/healthz``). Left out of the OpenAPI document, as a probe."""

from __future__ import annotations

from fastapi import APIRouter

from executor_host._problems import Problem
from executor_host._services import AnyServices

__all__ = ["router"]

router = APIRouter()


@router.get("/readyz", include_in_schema=False)
async def readyz(services: AnyServices) -> dict[str, str]:
    """Ready when the Dapr sidecar is (liveness stays on ``/healthz``)."""
    reason = await services.sidecar.sidecar_ready()
    if reason is not None:
        raise Problem(503, "Not ready", reason)
    return services.ready
