"""Retention on a deployment (``SUPERSTEP_RUN_RETENTION_S``, 10 s here): a run that
ended leaves the state store, every key of it, and the listing, soon after the
retention; a paused run stays, however long it waits."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator

import httpx
import pytest
import redis

from tests.dapr.conftest import Deployment, _deploy

RETENTION_S = 10


@pytest.fixture(scope="module")
def short_retention() -> Iterator[Deployment]:
    yield from _deploy(
        pools={"default": 1, "aux": 1}, env={"SUPERSTEP_RUN_RETENTION_S": str(RETENTION_S)}
    )


def _stored_keys(run_id: str) -> list[str]:
    """The deployment's keys in Redis that name the run (``statestore||<namespace>:...``;
    each deployment has a namespace of its own)."""
    with redis.Redis() as raw:
        return sorted(k.decode() for k in raw.scan_iter(match=f"statestore||*:*{run_id}*"))


async def _start(client: httpx.AsyncClient, workflow: str, value: object) -> str:
    resp = await client.post("/runs", json={"workflow": workflow, "input": value})
    assert resp.status_code == 201, resp.text
    run_id: str = resp.json()["run_id"]
    return run_id


async def _settled(client: httpx.AsyncClient, run_id: str) -> None:
    """Wait for the run to stop (its event stream ends with its status)."""
    async with client.stream("GET", f"/runs/{run_id}/events") as resp:
        assert resp.status_code == 200, await resp.aread()
        async for _ in resp.aiter_lines():
            pass


async def test_a_run_that_ended_leaves_the_store_after_the_retention(
    short_retention: Deployment,
) -> None:
    dep = short_retention
    async with httpx.AsyncClient(base_url=dep.url, headers=dep.headers, timeout=30) as client:
        done = await _start(client, "fan", "a b|c|d e f|g")
        await _settled(client, done)
        kinds = {key.split(":")[1] for key in _stored_keys(done)}
        assert {"run", "events", "outputs", "ckpt", "result"} <= kinds, kinds
        assert (await client.get(f"/runs/{done}")).json()["status"] == "completed"
        paused = await _start(client, "hitl", "the plan")
        await _settled(client, paused)
        assert (await client.get(f"/runs/{paused}")).json()["status"] == "awaiting_input"
        paused_keys = _stored_keys(paused)
        # newest first, a page at a time
        first = await client.get("/runs", params={"limit": 1})
        assert [r["run_id"] for r in first.json()] == [paused]
        cursor = first.headers["x-next-cursor"]
        second = await client.get("/runs", params={"limit": 1, "cursor": cursor})
        assert [r["run_id"] for r in second.json()] == [done]
        waiting = await client.get("/runs", params={"status": "awaiting_input", "limit": 1000})
        assert paused in [r["run_id"] for r in waiting.json()]
        assert done not in [r["run_id"] for r in waiting.json()]
        bad = await client.get("/runs", params={"cursor": "page two"})
        assert bad.status_code == 422, bad.text

        # removed by a sweep (every RETENTION_S / 10, at least 1 s) once it is past
        deadline = time.monotonic() + RETENTION_S + 30
        while (answer := await client.get(f"/runs/{done}")).status_code != 404:
            assert time.monotonic() < deadline, f"{done} is still there: {answer.text}"
            await asyncio.sleep(0.5)
        assert answer.headers["content-type"] == "application/problem+json"
        assert answer.json()["title"] == "Unknown run"
        assert _stored_keys(done) == []
        listed = await client.get("/runs", params={"limit": 1000})
        assert listed.status_code == 200 and "x-total-count" not in listed.headers
        ids = [r["run_id"] for r in listed.json()]
        assert paused in ids and done not in ids
        assert (await client.get(f"/runs/{paused}")).json()["status"] == "awaiting_input"
        assert set(_stored_keys(paused)) >= set(paused_keys)
        cancel = await client.post(f"/runs/{paused}/cancel")
        assert cancel.status_code == 202, cancel.text
