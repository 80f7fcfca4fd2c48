"""Fencing of a stale coordinator (DESIGN: "a stale coordinator copy is fenced by an
epoch in the run record"): two copies of one run's coordinator over one state store, as
after an actor re-activation elsewhere. The older copy commits nothing once the newer
one took over — whether the takeover came before its commit or between its commit and
its read-back — and the newer copy finishes the run with the in-process outputs.

``RunDriver`` is driven directly (the actor turn lock is Dapr's; here each copy is
called from the test), against a local sidecar on the Redis state store; activations
are executed with ``execute_activation`` as the executor actors do.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from typing import Any

import pytest

from executor_host._coordinator import RunDriver
from executor_host._sidecar import SidecarClient
from executor_host._store import RunStore
from executor_host.protocol import ActivationEnvelope, ResultEnvelope
from runtime.engine import Activation, RunStatus, start
from runtime.workflow import Workflow, execute_activation
from sidecar.launcher.daprd import DaprdSidecar
from sidecar.runtime import Sidecar
from tests.dapr import workflows


@dataclass
class Stores:
    a: RunStore
    b: RunStore


@pytest.fixture
async def stores(
    store_sidecar: Sidecar | DaprdSidecar, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[Stores]:
    monkeypatch.setenv("DAPR_HTTP_PORT", str(store_sidecar.http_port))  # SidecarClient
    namespace = f"fencing-{uuid.uuid4().hex[:8]}"
    http = SidecarClient()
    yield Stores(
        RunStore(http, "sharedstore", namespace),
        RunStore(http, "sharedstore", namespace),
    )
    await http.aclose()


class Copy:
    """One coordinator copy and the activations it published."""

    def __init__(self, run_id: str, store: RunStore, wf: Workflow) -> None:
        self.published: list[ActivationEnvelope] = []

        async def publish(envs: Sequence[ActivationEnvelope]) -> None:
            self.published.extend(envs)

        self.driver = RunDriver(run_id, store, lambda *_: wf, publish)


async def _result(wf: Workflow, env: ActivationEnvelope) -> ResultEnvelope:
    """What the executor actor publishes for ``env`` (shared state inline, no payload
    references: the ping workflow is small)."""
    assert env.state is not None and not env.payload_keys
    activation = Activation.from_json(env.activation)
    executor = wf.executors[activation.executor_id]
    result = await execute_activation(executor, wf.graph, activation, env.state)
    return ResultEnvelope(
        run_id=env.run_id,
        epoch=env.epoch,
        superstep=env.superstep,
        executor_id=env.executor_id,
        host="test",
        result=result.to_json(),
    )


async def _finish(copy: Copy, wf: Workflow) -> Any:
    """Answer the copy's activations until its run ends; the run's record."""
    while True:
        record = copy.driver.record
        assert record is not None
        if record.state.status is not RunStatus.RUNNING:
            return record
        assert await copy.driver.on_result(await _result(wf, copy.published[-1]))


async def test_a_coordinator_taken_over_before_its_commit_commits_nothing(
    stores: Stores,
) -> None:
    wf, run_id = workflows.ping(), uuid.uuid4().hex
    old = Copy(run_id, stores.a, wf)
    await old.driver.create("ping", start(wf.graph, 0, run_id=run_id))
    [first] = old.published
    new = Copy(run_id, stores.b, wf)
    await new.driver.resume()  # re-activated elsewhere: a new epoch, superstep 1 again
    [again] = new.published
    assert (again.superstep, again.epoch) == (first.superstep, first.epoch + 1)

    # the old copy takes its result, but its ETag-guarded commit fails: it forgets the run
    assert await old.driver.on_result(await _result(wf, first))
    assert old.driver.record is None and len(old.published) == 1
    stored = await stores.b.load_run(run_id)
    assert stored is not None and stored.state.superstep == 0 and stored.epoch == again.epoch
    # and it ignores what still reaches it
    assert not await old.driver.on_result(await _result(wf, first))

    record = await _finish(new, wf)
    local = await workflows.ping().run(0)
    assert record.state.status is RunStatus.COMPLETED
    outputs = await stores.b.load_outputs(record)
    assert [wf.graph.codec.decode(o) for o in outputs] == local.outputs == [11]
    assert record.state.trace_hash == local.trace_hash
    assert {env.epoch for env in new.published} == {again.epoch}


async def test_a_coordinator_taken_over_after_its_commit_stops_there(
    stores: Stores, monkeypatch: pytest.MonkeyPatch
) -> None:
    wf, run_id = workflows.ping(), uuid.uuid4().hex
    old = Copy(run_id, stores.a, wf)
    await old.driver.create("ping", start(wf.graph, 0, run_id=run_id))
    new = Copy(run_id, stores.b, wf)
    read_back = stores.a.load_run_head

    async def taken_over_meanwhile(rid: str) -> tuple[int, float, str | None] | None:
        await new.driver.resume()  # between the old copy's commit and its read-back
        return await read_back(rid)

    monkeypatch.setattr(stores.a, "load_run_head", taken_over_meanwhile)
    assert await old.driver.on_result(await _result(wf, old.published[-1]))
    # superstep 1 is committed (and superstep 2 published) once; then the old copy sees
    # the newer epoch and forgets the run
    assert old.driver.record is None
    assert [env.superstep for env in old.published] == [1, 2]
    assert [(env.superstep, env.epoch) for env in new.published] == [
        (2, old.published[-1].epoch + 1)
    ]

    record = await _finish(new, wf)
    assert record.state.status is RunStatus.COMPLETED
    outputs = await stores.b.load_outputs(record)
    assert [wf.graph.codec.decode(o) for o in outputs] == [11]
    assert record.state.trace_hash == (await workflows.ping().run(0)).trace_hash
