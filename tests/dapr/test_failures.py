"""Cancellation, host failure and checkpoint portability on the Dapr runtime."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
import redis

from runtime import FileCheckpointStorage, RunResult, RunStatus
from runtime.errors import RemoteError
from tests.dapr import workflows
from tests.dapr.conftest import Deployment


async def test_cancel_stops_the_run_and_commits_nothing_more(deployment: Deployment) -> None:
    stream = workflows.slow().run(1.0, runtime=deployment.runtime(), stream=True)
    seen: list[str] = []
    async for ev in stream:
        seen.append(ev.type)
        if ev.type == "superstep_started" and ev.superstep == 2:
            stream.cancel()
    result = await stream
    assert result.status is RunStatus.CANCELLED
    assert result.supersteps == 1  # superstep 2 was in flight: nothing of it committed
    assert result.outputs == []
    assert seen[-1] == "status"


async def test_checkpoint_from_in_process_resumes_on_dapr(
    deployment: Deployment, tmp_path: Path
) -> None:
    storage = FileCheckpointStorage(tmp_path)
    full = await workflows.ping().run(0, checkpoint_storage=storage, run_id="portable-1")
    checkpoint_id = f"portable-1@{5:06d}"
    resumed = await workflows.ping().run(
        checkpoint_id=checkpoint_id,
        checkpoint_storage=FileCheckpointStorage(tmp_path),
        runtime=deployment.runtime(),
        run_id=f"portable-1-dapr-{id(storage)}",
    )
    assert resumed.status is RunStatus.COMPLETED
    assert resumed.outputs == full.outputs
    assert resumed.trace_hash == full.trace_hash


async def test_checkpoint_from_dapr_resumes_in_process(
    deployment: Deployment, tmp_path: Path
) -> None:
    remote = deployment.runtime()
    full = await workflows.ping().run(0, runtime=remote)
    cp_json = await remote.checkpoint(f"{full.run_id}@{4:06d}")
    from runtime import Checkpoint

    storage = FileCheckpointStorage(tmp_path)
    await storage.save(Checkpoint.from_json(cp_json))
    resumed = await workflows.ping().run(
        checkpoint_id=f"{full.run_id}@{4:06d}", checkpoint_storage=storage
    )
    assert resumed.status is RunStatus.COMPLETED
    assert resumed.outputs == full.outputs
    assert resumed.trace_hash == full.trace_hash


async def _slow_run_losing_the_host_of_s1(
    deployment: Deployment, hurt: Callable[[str], None], heal: Callable[[str], None]
) -> tuple[RunResult, str]:
    """Run ``slow`` on the deployment; once s1 has run, ``hurt`` its host (s1 runs again
    in superstep 3: on the other host) and ``heal`` it after the run. The run must end
    as in-process; returns its result and the hurt host."""
    expected = await workflows.slow().run(0.8)
    stream = workflows.slow().run(0.8, runtime=deployment.runtime(), stream=True)
    hurt_host = None
    try:
        async for ev in stream:
            if ev.type == "executor_completed" and ev.executor_id == "s1" and hurt_host is None:
                hurt_host = ev.details["host"]
                hurt(hurt_host)
        result = await stream
    finally:
        if hurt_host is not None:
            heal(hurt_host)
    assert hurt_host is not None and hurt_host.startswith("superstep-default-")
    assert result.status is RunStatus.COMPLETED
    assert result.outputs == expected.outputs
    assert result.trace_hash == expected.trace_hash
    return result, hurt_host


async def test_killing_an_executor_host_mid_run_still_completes(deployment: Deployment) -> None:
    result, killed = await _slow_run_losing_the_host_of_s1(
        deployment, deployment.kill, deployment.restart
    )
    async with httpx.AsyncClient(base_url=deployment.url, headers=deployment.headers) as client:
        topo = (await client.get(f"/runs/{result.run_id}/topology")).json()
    s1_hosts = next(e["hosts"] for e in topo["executors"] if e["executor_id"] == "s1")
    assert len(s1_hosts) == 2 and killed in s1_hosts


async def test_a_paused_executor_host_loses_its_work_to_the_live_one(
    deployment: Deployment,
) -> None:
    """A host stopped with SIGSTOP still accepts TCP connections but answers nothing:
    the sidecar's HTTP health check (500 ms timeout, two failures, 1 s apart) takes it
    out of placement and its subscriptions, and the run goes on on the other replica
    when the coordinator's deadline (2 s here) publishes the activation again."""
    started = time.monotonic()
    await _slow_run_losing_the_host_of_s1(deployment, deployment.pause, deployment.resume)
    # three supersteps of 0.8 s, a few seconds to notice the hung host, then deadlines
    # until a re-published activation reaches the live replica's actor (measured 10-40 s
    # on both sidecars; calls already routed to the hung host hang until they time out)
    assert time.monotonic() - started < 60


async def test_a_lost_run_record_ends_the_clients_wait_with_a_clear_error(
    deployment: Deployment,
) -> None:
    """Redis restarted empty, say: the run's record is gone. The event stream ends and
    the client gets a 404 naming the run, instead of waiting for ever."""
    run_id = f"lost-{uuid.uuid4().hex[:8]}"
    stream = workflows.slow().run(0.8, runtime=deployment.runtime(), stream=True, run_id=run_id)
    deleted = False
    started = time.monotonic()
    with pytest.raises(RemoteError) as caught:
        async for ev in stream:
            if ev.type == "superstep_started" and not deleted:
                key = f"statestore||{deployment.local.namespace}:run:{run_id}"
                with redis.Redis() as raw:
                    deleted = raw.delete(key) == 1
        await stream
    assert deleted
    assert caught.value.status == 404 and "no run" in str(caught.value)
    assert time.monotonic() - started < 30


async def test_a_pool_left_without_hosts_fails_the_run_naming_it(deployment: Deployment) -> None:
    """Its only host gone, pool ``aux`` has no live host: the run does not stay
    ``running`` for ever (its activation published again at every deadline) but fails,
    after SUPERSTEP_NO_HOST_DEADLINE_S (4 s here), with an error naming the pool and the
    executor."""
    run_id = f"nohost-{uuid.uuid4().hex[:8]}"
    stream = workflows.ping().run(0, runtime=deployment.runtime(), stream=True, run_id=run_id)
    killed = None
    waiting: dict[str, list[str]] = {}
    started = time.monotonic()
    try:
        async for ev in stream:
            if ev.type == "executor_completed" and ev.executor_id == "b" and killed is None:
                killed = ev.details["host"]
                deployment.kill(killed)
                waiting = await _waiting_for_hosts(deployment, run_id)
        result = await stream
    finally:
        if killed is not None:
            deployment.restart(killed)
            await _until_alive(deployment, killed)
    assert killed == "superstep-aux-1"
    assert waiting == {"aux": ["b"]}  # what GET /runs/{id} said while the run waited
    assert result.status is RunStatus.FAILED
    assert result.error is not None and result.error.type == "NoLiveHostError"
    assert "'aux'" in result.error.message and "executor(s) b " in result.error.message
    assert time.monotonic() - started < 40


async def _waiting_for_hosts(
    deployment: Deployment, run_id: str, within: float = 15.0
) -> dict[str, list[str]]:
    """What ``GET /runs/{id}`` says the run waits for, once it says anything (the dead
    host's last heartbeat ages past SUPERSTEP_HOST_TTL_S first)."""
    deadline = time.monotonic() + within
    async with httpx.AsyncClient(base_url=deployment.url, headers=deployment.headers) as client:
        while True:
            view = (await client.get(f"/runs/{run_id}")).json()
            if view["waiting_for_hosts"] or view["status"] != "running":
                return dict(view["waiting_for_hosts"])
            assert time.monotonic() < deadline, "the run never said it waits for a host"
            await asyncio.sleep(0.2)


async def _until_alive(deployment: Deployment, host: str, within: float = 30.0) -> None:
    """Until the restarted host is registered again (the next tests need pool aux)."""
    deadline = time.monotonic() + within
    async with httpx.AsyncClient(base_url=deployment.url, headers=deployment.headers) as client:
        while True:
            hosts = (await client.get("/hosts")).json()
            if any(h["host_id"] == host and h["alive"] for h in hosts):
                return
            assert time.monotonic() < deadline, f"{host} not alive again after {within} s"
            await asyncio.sleep(0.2)
