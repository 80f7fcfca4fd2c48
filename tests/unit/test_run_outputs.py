"""A run's outputs over the in-memory state port: each barrier writes the outputs it
yielded once, in its own output chunk (``outputs:<run>:<generation>:<n>``), and the run
record keeps their count, not the outputs, so a run that yields an output at every
superstep writes O(n) bytes of outputs, not O(n^2), and its record stays small. Readers
get every output in order, as the in-process run yields them; a record written before
output chunks (outputs inline) still reads."""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from typing import Any

import pytest

from executor_host._coordinator import RunDriver
from executor_host._store import BLOB, MAX_VALUE_BYTES, RunRecord, RunStore
from runtime.checkpoint import InMemoryCheckpointStorage
from runtime.engine import RunStatus, compact_json
from runtime.ports import PortError, StateWrite, request_bytes
from runtime.testing.ports import InMemoryStateStore
from runtime.workflow.driver import new_run_state
from tests.dapr.workflows import ticks
from tests.unit.test_coordinator import STORE, Deployment

FACTORY = "tests.dapr.workflows:ticks"
RUN = "superstep:run:r1"


class CountingStateStore(InMemoryStateStore):
    """Keeps every write it receives: (key, value) of each save and transaction item,
    and the body bytes of each transaction."""

    def __init__(self) -> None:
        super().__init__()
        self.writes: list[tuple[str, str]] = []
        self.transactions: list[int] = []

    async def save_state(
        self, store: str, items: Sequence[StateWrite], metadata: dict[str, str] | None = None
    ) -> None:
        self.writes += [(key, value) for key, value, _ in items]
        await super().save_state(store, items, metadata)

    async def transact_state(self, store: str, upserts: Sequence[StateWrite]) -> None:
        self.writes += [(key, value) for key, value, _ in upserts]
        self.transactions.append(request_bytes(upserts))
        await super().transact_state(store, upserts)


def _deployment(max_value_bytes: int = MAX_VALUE_BYTES) -> tuple[Deployment, CountingStateStore]:
    dep = Deployment()
    dep.state = counting = CountingStateStore()
    dep.store = RunStore(counting, STORE, max_value_bytes=max_value_bytes)
    return dep, counting


async def _start(dep: Deployment, count: int, width: int = 100) -> RunDriver:
    params = {"count": count, "width": width}
    d = dep.driver()
    await d.create("ticks", new_run_state(ticks(**params), 1, "r1", 0), FACTORY, params)
    return d


async def _in_process(count: int, width: int = 100) -> list[Any]:
    wf = ticks(count=count, width=width)
    result = await wf.run(1)
    return [wf.graph.codec.encode(o) for o in result.outputs]


async def _to_the_end(dep: Deployment, count: int, width: int = 100) -> RunRecord:
    """Run ``ticks`` to its end; its record, its outputs checked against in-process."""
    await dep.pump(await _start(dep, count, width))
    record = await dep.store.load_run("r1")
    assert record is not None and record.state.status is RunStatus.COMPLETED
    assert await dep.store.load_outputs(record) == await _in_process(count, width)
    return record


def _stored(state: InMemoryStateStore, key: str) -> Any:
    raw = state.value(STORE, key)
    assert raw is not None, key
    return json.loads(json.loads(raw))


async def test_a_run_writes_each_output_once_and_its_record_stays_small() -> None:
    dep, counting = _deployment()
    record = await _to_the_end(dep, 50)

    # each output is written twice in all: in its barrier's events and its output chunk
    for x in range(1, 51):
        marker = re.compile(rf'"tick":{x},')
        written = sum(len(marker.findall(value)) for _, value in counting.writes)
        assert written == 2, (x, written)
    # the record holds counters: from the first barrier that refers to its checkpoint
    # for the run state (the start has none), it grows by their digits only
    records = [len(value) for key, value in counting.writes if key == RUN]
    assert len(records) == 52 and max(records[2:]) - records[2] <= 16
    # and a barrier's transaction does not grow with the outputs before it (the
    # checkpoint's window of recent digests grows by 16 bytes a superstep)
    early, late = counting.transactions[10:20], counting.transactions[40:50]
    assert sum(late) / 10 <= sum(early) / 10 + 1024, (early, late)
    assert (record.output_count, record.output_chunks) == (50, 50)


async def test_outputs_past_half_a_value_leave_no_parts_behind() -> None:
    """50 outputs of about 1,000 characters pass half of a 20,000-byte value: in the
    run record they went to parts at every barrier; in output chunks none is needed."""
    dep, counting = _deployment(max_value_bytes=20_000)
    await _to_the_end(dep, 50, width=1000)
    assert not [key for key, _ in counting.writes if ":blob:" in key]


async def test_an_output_chunk_larger_than_a_value_goes_to_parts_once() -> None:
    dep, counting = _deployment(max_value_bytes=2000)
    await _to_the_end(dep, 6, width=3000)
    chunk = _stored(counting, "superstep:outputs:r1:1:0")
    assert set(chunk) == {BLOB, "parts", "chars"}
    # every part stored is named by a reference stored: none is left behind
    parts = {key for _, key in counting.items if ":blob:" in key}
    named = {
        f"superstep:blob:{value[BLOB]}:{i}"
        for (_, key) in counting.items
        if ":blob:" not in key
        for value in [_stored(counting, key)]
        if isinstance(value, dict) and BLOB in value
        for i in range(value["parts"])
    }
    assert parts == named
    writes = [key for key, _ in counting.writes if ":blob:" in key]
    assert len(writes) == len(set(writes))  # each written once


@pytest.mark.parametrize("applied", [True, False])
async def test_a_barrier_committed_again_writes_its_outputs_once(applied: bool) -> None:
    """The transaction of superstep 3 took effect and its answer was lost, or the
    store was down for it and it is committed again at the deadline: its outputs are in
    the run once either way."""
    dep = Deployment()
    d = await _start(dep, 6)
    await dep.pump(d, rounds=2)
    (env,) = dep.bus.take()
    dep.state.fail_next(applied=applied)
    if applied:
        await d.on_result(await dep.execute(env))
    else:
        with pytest.raises(PortError):
            await d.on_result(await dep.execute(env))
        dep.now += 5.0
        await d.on_deadline(5.0)
    await dep.pump(d)
    record = await dep.store.load_run("r1")
    assert record is not None and record.state.status is RunStatus.COMPLETED
    assert await dep.store.load_outputs(record) == await _in_process(6)
    assert (record.output_count, record.output_chunks) == (6, 6)


async def test_a_run_resumed_from_a_checkpoint_shows_the_outputs_of_its_new_timeline() -> None:
    """A resume from a checkpoint is a new generation: its outputs are counted from the
    resume on, as in-process, and the abandoned timeline's are not read."""
    dep = Deployment()
    first = await _to_the_end(dep, 8)
    checkpoint = await dep.store.load_checkpoint("r1@000003")
    assert checkpoint is not None

    again = dep.driver()
    params = {"count": 8, "width": 100}
    await again.create("ticks", checkpoint.state, FACTORY, params, existing=first)
    await dep.pump(again)
    record = await dep.store.load_run("r1")
    assert record is not None and record.state.status is RunStatus.COMPLETED
    assert record.generation == 2 and record.output_count == 5

    storage = InMemoryCheckpointStorage()
    await storage.save(checkpoint)
    wf = ticks(**params)
    resumed = await wf.run(checkpoint_id="r1@000003", checkpoint_storage=storage)
    expected = [wf.graph.codec.encode(o) for o in resumed.outputs]
    assert [o["tick"] for o in expected] == [4, 5, 6, 7, 8]
    assert await dep.store.load_outputs(record) == expected
    assert dep.state.value(STORE, "superstep:outputs:r1:1:7") is not None  # kept, unread


def _as_before_output_chunks(dep: Deployment, outputs: Any) -> None:
    """Rewrite r1's run record as coordinators wrote it before output chunks: its
    outputs inline (or a reference to their parts), no output counts, no chunks."""
    old = _stored(dep.state, RUN)
    chunks = old.pop("output_chunks")
    del old["output_count"]
    for n in range(chunks):
        del dep.state.items[(STORE, f"superstep:outputs:r1:1:{n}")]
    old["outputs"] = outputs
    _, etag = dep.state.items[(STORE, RUN)]
    dep.state.items[(STORE, RUN)] = (json.dumps(compact_json(old)).encode(), etag)


@pytest.mark.parametrize("in_parts", [False, True])
async def test_a_record_with_its_outputs_inline_still_reads_and_the_run_goes_on(
    in_parts: bool,
) -> None:
    """A record written before output chunks, taken over by a coordinator with them
    (an upgrade with the run in flight): its outputs read as before, the next barrier
    moves them to the first output chunk, and the run ends with every output."""
    dep = Deployment()
    d = await _start(dep, 8)
    await dep.pump(d, rounds=4)
    dep.bus.take()  # superstep 5, in flight when the old coordinator stopped
    expected = await _in_process(8)
    inline: Any = expected[:4]
    if in_parts:  # as the record held large outputs: a reference to their parts
        dep.store = RunStore(dep.state, STORE, max_value_bytes=300)
        inline = json.loads(await dep.store._fit(compact_json(inline), force=True))
        assert set(inline) == {BLOB, "parts", "chars"}
    _as_before_output_chunks(dep, inline)

    record = await dep.store.load_run("r1")
    assert record is not None and record.output_chunks == 0 and record.output_count == 4
    assert await dep.store.load_outputs(record) == expected[:4]

    new = dep.driver()
    await new.resume()  # a new epoch: the record, outputs inline, written again
    assert _stored(dep.state, RUN)["outputs"] == inline
    await dep.pump(new)
    record = await dep.store.load_run("r1")
    assert record is not None and record.state.status is RunStatus.COMPLETED
    assert await dep.store.load_outputs(record) == expected
    assert (record.output_count, record.output_chunks) == (8, 4)
    assert "outputs" not in _stored(dep.state, RUN)
    assert await dep.store.load_events("r1", 0)  # the events of before are there too


async def test_a_missing_output_chunk_is_an_error_not_fewer_outputs() -> None:
    dep = Deployment()
    await _to_the_end(dep, 3)
    del dep.state.items[(STORE, "superstep:outputs:r1:1:1")]
    record = await dep.store.load_run("r1")
    assert record is not None
    with pytest.raises(PortError, match="outputs:r1:1:1"):
        await dep.store.load_outputs(record)
