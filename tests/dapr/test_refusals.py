"""A barrier the state store refuses for good fails the run instead of being retried.

The sidecar (local or daprd) refuses a request body over its limit (4 MiB) with 400
``ERR_MALFORMED_REQUEST`` "stream too large", as it would refuse it on every try. The
run store here is told a far larger limit, so that a barrier of 5 Mi characters of
shared state goes out whole and is refused; the coordinator (``RunDriver``, driven
directly as in ``test_fencing.py``) must then end the run ``failed`` as of its last
committed barrier, naming the refusal, and try nothing again at the deadline.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Sequence

import pytest

from executor_host._coordinator import RunDriver
from executor_host._sidecar import SidecarClient
from executor_host._store import RunStore
from executor_host.protocol import ActivationEnvelope, ResultEnvelope
from runtime.engine import Activation, RunStatus, start
from runtime.workflow import execute_activation
from sidecar.launcher.daprd import DaprdSidecar
from sidecar.runtime import Sidecar
from tests.dapr import workflows

UNBOUNDED = 64 * 1024 * 1024
"""A request limit far over the sidecar's: the run store cuts nothing into parts."""


@pytest.fixture
async def store(
    store_sidecar: Sidecar | DaprdSidecar, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[RunStore]:
    monkeypatch.setenv("DAPR_HTTP_PORT", str(store_sidecar.http_port))  # SidecarClient
    http = SidecarClient()
    namespace = f"refusals-{uuid.uuid4().hex[:8]}"
    yield RunStore(
        http,
        "sharedstore",
        namespace,
        max_value_bytes=UNBOUNDED,
        max_request_bytes=UNBOUNDED,
    )
    await http.aclose()


async def test_a_barrier_over_the_sidecars_body_limit_fails_the_run(store: RunStore) -> None:
    wf, run_id = workflows.big_state(), uuid.uuid4().hex
    published: list[ActivationEnvelope] = []

    async def publish(envs: Sequence[ActivationEnvelope]) -> None:
        published.extend(envs)

    driver = RunDriver(run_id, store, lambda *_: wf, publish)
    await driver.create("big_state", start(wf.graph, 5, run_id=run_id))
    [env] = published  # the filler, which writes 5 Mi characters of shared state
    assert env.state is not None
    activation = Activation.from_json(env.activation)
    result = await execute_activation(wf.executors["filler"], wf.graph, activation, env.state)
    await driver.on_result(
        ResultEnvelope(
            run_id=run_id,
            epoch=env.epoch,
            superstep=env.superstep,
            executor_id=env.executor_id,
            host="test",
            result=result.to_json(),
        )
    )
    record = await store.load_run(run_id)
    assert record is not None and record.state.status is RunStatus.FAILED
    error = record.state.error
    assert error is not None and error.type == "StoreRefusedError"
    assert "answered 400" in error.message and "stream too large" in error.message
    assert (error.superstep, record.state.superstep) == (1, 0)
    events = [
        e for chunk in range(record.event_chunks) for e in await store.load_events(run_id, chunk)
    ]
    assert [e["type"] for e in events][-2:] == ["failed", "status"]
    assert len(published) == 1  # the reader was never published
    assert await driver.on_deadline(0.0) == 0  # nothing left to try again
