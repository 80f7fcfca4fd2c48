"""The run store's encoding of state values (``executor_host._store``): every value goes
through the sidecar's HTTP state API as a JSON string holding our JSON text, so what
comes back is exactly what was written — integers above 2^53, key order and all —
whatever the sidecar does to a JSON value it decodes; values stored as raw JSON bytes
(by gRPC) still read back; ETag conflicts are ``ETagMismatch``.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator, Sequence
from dataclasses import replace
from typing import Any

import pytest
from dapr.aio.clients import DaprClient
from dapr.conf import settings

from executor_host._sidecar import SidecarClient, SidecarError, StateWrite
from executor_host._store import RunRecord, RunStore
from runtime.engine import RunState, RunStatus, compact_json
from runtime.ports import ETagMismatch, PortError
from sidecar.launcher.daprd import DaprdSidecar
from sidecar.runtime import Sidecar

AWKWARD: dict[str, Any] = {
    "z": 2**60 + 1,  # a double would round it
    "a": [0.1, 1e21, -0.0, 1.5e-7],
    "m": 'ünïcode \u2028 and "quotes" and \\ backslashes',
    "nested": {"y": None, "b": True, "x": {}},
}


@pytest.fixture
async def store(
    store_sidecar: Sidecar | DaprdSidecar, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[tuple[RunStore, SidecarClient, str]]:
    monkeypatch.setenv("DAPR_HTTP_PORT", str(store_sidecar.http_port))
    namespace = f"store-{uuid.uuid4().hex[:8]}"
    http = SidecarClient()
    yield RunStore(http, "sharedstore", namespace), http, namespace
    await http.aclose()


async def test_a_value_reads_back_exactly_as_written(
    store: tuple[RunStore, SidecarClient, str],
) -> None:
    runs, http, namespace = store
    await runs.save_result("r1", 1, 3, 0, AWKWARD)
    back = await runs.load_result("r1", 1, 3, 0)
    assert back == AWKWARD
    assert list(back or {}) == ["z", "a", "m", "nested"]  # key order kept
    assert list((back or {})["nested"]) == ["y", "b", "x"]
    # the stored bytes are a JSON string whose content is the value's compact JSON text
    raw, _ = await http.get_state("sharedstore", f"{namespace}:result:r1:1:3:0")
    assert raw is not None and raw.startswith(b'"')
    assert json.loads(raw) == compact_json(AWKWARD)


async def test_payloads_by_reference_read_back_exactly(
    store: tuple[RunStore, SidecarClient, str],
) -> None:
    runs, _, _ = store
    texts = {"p:1": compact_json(AWKWARD), "p:2": compact_json("a plain string payload")}
    await runs.save_payloads(texts, ttl_s=60)
    assert (await runs.load_payload("p:1"))[0] == AWKWARD
    assert (await runs.load_payload("p:2"))[0] == "a plain string payload"


async def test_a_value_stored_as_raw_json_bytes_still_reads(
    store: tuple[RunStore, SidecarClient, str],
    store_sidecar: Sidecar | DaprdSidecar,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    runs, _, namespace = store
    monkeypatch.setattr(settings, "DAPR_HTTP_PORT", store_sidecar.http_port)  # its health wait
    client = DaprClient(address=f"127.0.0.1:{store_sidecar.grpc_port}")
    try:
        await client.save_state(
            "sharedstore", f"{namespace}:result:r2:1:1:0", compact_json({"b": 1, "a": [2]})
        )
    finally:
        await client.close()  # type: ignore[no-untyped-call]  # untyped SDK
    assert await runs.load_result("r2", 1, 1, 0) == {"b": 1, "a": [2]}


async def test_a_write_with_a_stale_etag_is_a_conflict(
    store: tuple[RunStore, SidecarClient, str],
) -> None:
    runs, _, _ = store
    await runs._save("index", ["a"])
    _, etag = await runs._get("index")
    assert etag is not None
    await runs._save("index", ["a", "b"], etag=etag)
    with pytest.raises(ETagMismatch):
        await runs._save("index", ["a", "c"], etag=etag)  # the first write moved the ETag on
    assert (await runs._get("index"))[0] == ["a", "b"]


def _record(run_id: str) -> RunRecord:
    state = RunState(run_id=run_id, workflow="w", graph_signature="sig")
    return RunRecord(run_id=run_id, workflow="w", signature="sig", epoch=1, state=state)


async def test_a_stale_commit_is_a_conflict_whatever_the_store_says(
    store: tuple[RunStore, SidecarClient, str],
) -> None:
    """daprd answers an ETag conflict inside a transaction with 500 and the store's own
    text, which on Redis does not say "etag": the run store tells it by the record."""
    runs, _, _ = store
    created = await runs.create_run(_record(f"conflict-{uuid.uuid4().hex[:8]}"))
    await runs.save_run(replace(created, epoch=2))  # a newer coordinator took over
    with pytest.raises(ETagMismatch, match="another coordinator"):
        await runs.commit_barrier(
            replace(created, updated_at=1.0), events=[], checkpoint=None, state_version=None
        )
    back = await runs.load_run(created.run_id)
    assert back is not None and back.epoch == 2


async def test_a_failed_commit_with_etag_in_its_run_id_is_an_outage_not_a_conflict(
    store: tuple[RunStore, SidecarClient, str],
) -> None:
    """A transaction that fails for another reason (here a body over the sidecar's
    4 MiB limit, from a store told to write long values whole) leaves the record at its
    ETag: the port's error for the failed call (``PortError``), not a conflict
    (``ETagMismatch``, a fence) — even when the run id, and so the error text, contains
    "etag"."""
    _, http, namespace = store
    runs = RunStore(
        http, "sharedstore", namespace, max_value_bytes=10 << 20, max_request_bytes=20 << 20
    )
    created = await runs.create_run(_record(f"etag-run-{uuid.uuid4().hex[:8]}"))
    with pytest.raises(PortError) as caught:
        await runs.commit_barrier(
            created,
            events=[{"blob": "x" * (5 << 20)}],
            checkpoint=None,
            state_version=None,
        )
    assert not isinstance(caught.value, ETagMismatch)
    back = await runs.load_run(created.run_id)
    assert back is not None and back.etag == created.etag and back.event_chunks == 0


class _AnswerLost(SidecarClient):
    """A sidecar client whose transaction goes through but whose answer is lost."""

    async def transact_state(self, store: str, upserts: Sequence[StateWrite]) -> None:
        await super().transact_state(store, upserts)
        raise SidecarError("state transaction: connection reset by peer", None)


async def test_a_commit_whose_answer_was_lost_counts_as_committed(
    store_sidecar: Sidecar | DaprdSidecar, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DAPR_HTTP_PORT", str(store_sidecar.http_port))
    http = _AnswerLost()
    try:
        runs = RunStore(http, "sharedstore", f"store-{uuid.uuid4().hex[:8]}")
        created = await runs.create_run(_record(f"lost-{uuid.uuid4().hex[:8]}"))
        committed = await runs.commit_barrier(
            replace(created, updated_at=5.0),
            events=[{"type": "superstep_completed"}],
            checkpoint=None,
            state_version=None,
        )
        assert committed.event_chunks == 1 and committed.updated_at == 5.0
        assert await runs.load_events(created.run_id, 0) == [{"type": "superstep_completed"}]
    finally:
        await http.aclose()


async def test_a_value_over_the_body_limit_is_written_in_parts_and_read_whole(
    store: tuple[RunStore, SidecarClient, str],
) -> None:
    runs, _, _ = store
    created = await runs.create_run(_record(f"large-{uuid.uuid4().hex[:8]}"))
    events = [{"blob": "x" * (5 << 20)}]  # the sidecar takes 4 MiB a request
    committed = await runs.commit_barrier(
        created, events=events, checkpoint=None, state_version=None
    )
    assert committed.event_chunks == 1
    assert await runs.load_events(created.run_id, 0) == events


async def test_runs_created_at_once_all_reach_the_runs_index(
    store: tuple[RunStore, SidecarClient, str],
) -> None:
    """Every run created adds its id to one index key: concurrent creations must not
    exhaust each other's ETag retries (which answered 1 start in 100 with 502 at 200
    concurrent starts)."""
    runs, _, _ = store
    ids = [f"many-{i}-{uuid.uuid4().hex[:8]}" for i in range(120)]
    created = await asyncio.gather(*(runs.create_run(_record(run_id)) for run_id in ids))
    assert [c.run_id for c in created] == ids
    listed, more = await runs.list_runs(limit=1000)
    assert sorted(r.run_id for r in listed) == sorted(ids) and more is None


async def test_a_run_past_its_retention_is_deleted_key_by_key_and_leaves_the_listing(
    store: tuple[RunStore, SidecarClient, str],
) -> None:
    """Bulk reads of run records, deletes in a transaction and the ETag-guarded delete
    of the record, as the sidecar answers them."""
    runs, http, namespace = store
    gone, kept = f"gone-{uuid.uuid4().hex[:8]}", f"kept-{uuid.uuid4().hex[:8]}"
    created = await runs.create_run(replace(_record(gone), executors=1))
    ended = replace(created.state, status=RunStatus.COMPLETED, superstep=1)
    await runs.commit_barrier(
        replace(created, state=ended, updated_at=10.0),
        events=[{"type": "status"}],
        checkpoint=None,
        state_version=(1, {"a": 1}),
        outputs=[{"out": 1}],
    )
    await runs.save_result(gone, 1, 1, 0, {"x": 1})
    await runs.create_run(_record(kept))  # running: kept however old
    keys = [f"run:{gone}", f"events:{gone}:0", f"outputs:{gone}:1:0", f"state:{gone}:1"]
    keys.append(f"result:{gone}:1:1:0")

    async def stored() -> list[str]:
        return [k for k in keys if (await http.get_state("sharedstore", f"{namespace}:{k}"))[0]]

    assert await stored() == keys
    listed, _ = await runs.list_runs(limit=10)
    assert [r.run_id for r in listed] == [kept, gone]
    assert await runs.sweep(100.0, 50.0) == 1
    assert await stored() == []
    assert await runs.load_run(gone) is None
    listed, _ = await runs.list_runs(limit=10)
    assert [r.run_id for r in listed] == [kept]
