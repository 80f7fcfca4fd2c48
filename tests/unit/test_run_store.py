"""The run store's large values, over the in-memory state port: a value larger than one
request may carry is stored in content-addressed parts, and read back whole; no request
the store makes is larger than the sidecar takes (daprd: 4 MiB)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from executor_host._coordinator import RunDriver
from executor_host._store import BLOB, RunRecord, RunStore
from runtime.engine import Checkpoint, RunStatus
from runtime.ports import PortError, wire_bytes
from runtime.testing.ports import InMemoryStateStore
from runtime.workflow.driver import new_run_state
from tests.unit.test_coordinator import TEMPLATES, Deployment, _in_process

STORE = "statestore"


def _stored(state: InMemoryStateStore, key: str) -> Any:
    raw = state.value(STORE, f"superstep:{key}")
    assert raw is not None, key
    return json.loads(json.loads(raw))


async def test_a_large_value_is_stored_in_parts_and_read_back_whole() -> None:
    state = InMemoryStateStore()
    store = RunStore(state, STORE, max_value_bytes=100)
    value = {"text": "x" * 950, "n": 1}
    await store.save_result("r", 1, 1, 0, value)
    ref = _stored(state, "result:r:1:1:0")
    assert set(ref) == {BLOB, "parts", "chars"} and ref["parts"] >= 10
    parts = [k for (_, k) in state.items if k.startswith("superstep:blob:")]
    assert len(parts) == ref["parts"]
    # each part's stored value (a JSON string of its text) at most 100 bytes in a request
    assert all(wire_bytes(json.loads(state.value(STORE, k) or b"")) <= 100 for k in parts)
    assert await store.load_result("r", 1, 1, 0) == value


async def test_text_beyond_ascii_is_cut_by_its_bytes_in_a_request() -> None:
    """A character of the basic plane takes 6 bytes escaped, one beyond it 12 (and the
    JSON string of a part escapes its backslashes again): parts are cut by those bytes,
    not by characters, and read back whole."""
    state = InMemoryStateStore(max_request_bytes=1200)
    store = RunStore(state, STORE, max_value_bytes=1000)
    value = {"text": '漢字かな "引用" 😀🚀' * 400}
    await store.save_result("r", 1, 1, 0, value)
    assert _stored(state, "result:r:1:1:0")[BLOB]
    parts = [k for (_, k) in state.items if k.startswith("superstep:blob:")]
    assert all(wire_bytes(json.loads(state.value(STORE, k) or b"")) <= 1000 for k in parts)
    assert await store.load_result("r", 1, 1, 0) == value


async def test_a_barrier_of_several_large_values_stays_under_the_request_limit() -> None:
    """Events, checkpoint and shared state each under one value's size make a
    transaction larger than a request may be: its largest values go to parts first."""
    state = InMemoryStateStore(max_request_bytes=4000)
    store = RunStore(state, STORE, max_value_bytes=1500, max_request_bytes=3000)
    run_state = new_run_state(TEMPLATES["fan"](), "x", "r1", 0)
    signature = TEMPLATES["fan"]().graph.signature
    record = await store.create_run(RunRecord("r1", "fan", signature, 1, run_state))
    checkpoint = Checkpoint("r1@000001", "fan", signature, 0.0, run_state)
    big = {"note": "é" * 230}  # about 1,400 bytes escaped: one value, not three
    committed = await store.commit_barrier(
        record, events=[big], checkpoint=checkpoint, state_version=(1, big)
    )
    assert committed.event_chunks == 1
    assert await store.load_events("r1", 0) == [big]
    assert await store.load_shared_state("r1", 1) == big
    assert any(k.startswith("superstep:blob:") for _, k in state.items)


async def test_payloads_saved_together_stay_under_the_request_limit() -> None:
    state = InMemoryStateStore(max_request_bytes=4000)
    store = RunStore(state, STORE, max_value_bytes=1500, max_request_bytes=3000)
    payloads = {f"payload:{i}": json.dumps({"t": "ü" * 200, "i": i}) for i in range(5)}
    await store.save_payloads(payloads, ttl_s=60)
    for key, text in payloads.items():
        assert (await store.load_payload(key))[0] == json.loads(text)


async def test_the_same_large_value_is_written_once() -> None:
    state = InMemoryStateStore()
    store = RunStore(state, STORE, max_value_bytes=100)
    await store.save_result("r", 1, 1, 0, {"text": "y" * 500})
    calls = state.calls
    await store.save_result("r", 1, 2, 0, {"text": "y" * 500})
    assert state.calls == calls + 1  # the reference only: its parts are there


async def test_a_damaged_part_is_an_error_not_a_wrong_value() -> None:
    state = InMemoryStateStore()
    store = RunStore(state, STORE, max_value_bytes=100)
    await store.save_result("r", 1, 1, 0, {"text": "z" * 500})
    key = next(k for (_, k) in state.items if k.endswith(":0") and "blob:" in k)
    _, etag = state.items[(STORE, key)]
    state.items[(STORE, key)] = (json.dumps(json.dumps("q" * 100)).encode(), etag)
    with pytest.raises(PortError, match="does not match its digest"):
        await store.load_result("r", 1, 1, 0)


async def test_a_run_with_large_state_commits_every_value_in_parts() -> None:
    """Every value the coordinator writes (run record's state, checkpoints, shared-state
    versions, events, stored results) over a store that takes at most 2,000 characters."""
    dep = Deployment()
    dep.store = RunStore(dep.state, STORE, max_value_bytes=2000)
    d = RunDriver("r1", dep.store, dep.resolve, dep.bus.publish, clock=lambda: dep.now)
    text = "|".join(" ".join(["word"] * 120) for _ in range(6))
    await d.create("fan", new_run_state(TEMPLATES["fan"](), text, "r1", 0))
    await dep.pump(d)
    record = await dep.store.load_run("r1")
    assert record is not None and record.state.status is RunStatus.COMPLETED
    trace, _, outputs = await _in_process("fan", text)
    assert record.state.trace_hash == trace
    assert await dep.store.load_outputs(record) == outputs
    assert all(len(v) <= 2 * 2000 + 2 for v, _ in dep.state.items.values())  # JSON strings
    assert _stored(dep.state, f"ckpt:{record.checkpoints[0]}")[BLOB]  # a checkpoint in parts
    assert any(k.startswith("superstep:blob:") for _, k in dep.state.items)


async def test_a_barrier_writes_its_run_state_once_in_the_checkpoint() -> None:
    """The run record refers to the checkpoint its barrier wrote instead of holding the
    same run state again; loading the record reads it from there."""
    dep = Deployment()
    d = await dep.start("ping", 0)
    await dep.pump(d, rounds=3)
    record = await dep.store.load_run("r1")
    assert record is not None and record.last_checkpoint == 3
    stored = _stored(dep.state, "run:r1")
    assert stored["state"] == {"$superstep.checkpoint": "r1@000003"}
    checkpoint = await dep.store.load_checkpoint("r1@000003")
    assert checkpoint is not None and record.state == checkpoint.state


async def test_small_values_that_fit_a_request_stay_whole_in_one_save() -> None:
    """Sizes of small values start as bounds (12 bytes a character); a request whose
    bounds pass the limit is measured before anything goes to parts."""
    state = InMemoryStateStore(max_request_bytes=4000)
    store = RunStore(state, STORE, max_value_bytes=1500, max_request_bytes=3000)
    payloads = {f"payload:{i}": json.dumps({"t": "a" * 100, "i": i}) for i in range(10)}
    await store.save_payloads(payloads, ttl_s=60)
    assert state.calls == 1  # one bulk save
    assert not any(k.startswith("superstep:blob:") for _, k in state.items)
