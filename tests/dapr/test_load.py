"""A small slice of the load test (``bench/load.py``): runs started at once through the
HTTP API all complete, each with the output of its own input and its own shared state,
none with another's."""

from __future__ import annotations

import asyncio
import random
import uuid
from typing import Any

import httpx

from tests.dapr.conftest import Deployment
from tests.dapr.workflows import isolation_output

CONCURRENT = 10


async def _run(client: httpx.AsyncClient, tag: str, x: int) -> dict[str, Any]:
    """Start a run of ``isolation``, read its event stream to the end, return its view."""
    resp = await client.post("/runs", json={"workflow": "isolation", "input": {"tag": tag, "x": x}})
    assert resp.status_code == 201, resp.text
    run_id = resp.json()["run_id"]
    async with client.stream("GET", f"/runs/{run_id}/events") as events:
        assert events.status_code in (200, 204), await events.aread()
        async for _ in events.aiter_bytes():
            pass
    resp = await client.get(f"/runs/{run_id}")
    assert resp.status_code == 200, resp.text
    view: dict[str, Any] = resp.json()
    return view


async def test_concurrent_runs_complete_and_see_only_their_own_state(
    deployment: Deployment,
) -> None:
    rng = random.Random(16)
    inputs = [(uuid.uuid4().hex, rng.randrange(1, 10**12)) for _ in range(CONCURRENT)]
    async with httpx.AsyncClient(
        base_url=deployment.url, headers=deployment.headers, timeout=60
    ) as client:
        views = await asyncio.wait_for(
            asyncio.gather(*(_run(client, tag, x) for tag, x in inputs)), 120
        )
    assert len({v["run_id"] for v in views}) == CONCURRENT
    for (tag, x), view in zip(inputs, views, strict=True):
        assert view["status"] == "completed", view["error"]
        assert view["outputs"] == [{"type": "dict", "value": isolation_output(tag, x)}]
