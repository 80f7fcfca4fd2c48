#!/usr/bin/env python
"""State-store calls and bytes of a run start, of a page of ``GET /runs`` and of a
barrier's commit, with N runs already in the store, over the in-memory state port
(what the run store asks of the sidecar; no sidecar, no Redis).

Run:  .venv/bin/python bench/run_index_cost.py [--runs 0 1000 5000]

It runs against the run store on its ``PYTHONPATH``, of this tree or of an older one
(``PYTHONPATH=/path/to/older/tree``: the runs index of one list, read whole by the
listing, record by record), to compare the two:

- a start: ``RunStore.create_run`` (the record, the runs index), one at a time;
- a listing: the 100 newest runs, as ``GET /runs`` reads them;
- a commit: ``RunStore.commit_barrier`` of one event chunk; and the CPU time of a
  commit with the read-back of the record's ETag that follows it.

Bytes written are the request bodies' values and keys (``runtime.ports.request_bytes``);
bytes read, the stored values read back.
"""

from __future__ import annotations

import argparse
import asyncio
import inspect
import statistics
import time
from collections.abc import Sequence
from dataclasses import replace
from typing import Any

from executor_host._store import RunRecord, RunStore
from runtime.engine import RunState
from runtime.ports import StateWrite, request_bytes
from runtime.testing.ports import InMemoryStateStore

STORE = "statestore"
STARTS = 20


class Metered(InMemoryStateStore):
    """The in-memory store, counting the bytes of what is written and read."""

    written = 0
    read = 0

    async def get_state(self, store: str, key: str) -> tuple[bytes | None, str | None]:
        data, etag = await super().get_state(store, key)
        self.read += len(data or b"")
        return data, etag

    async def get_bulk_state(
        self, store: str, keys: Sequence[str]
    ) -> list[tuple[bytes | None, str | None]]:
        items = await super().get_bulk_state(store, keys)
        self.read += sum(len(data or b"") for data, _ in items)
        return items

    async def save_state(
        self, store: str, items: Sequence[StateWrite], metadata: dict[str, str] | None = None
    ) -> None:
        self.written += request_bytes(items)
        await super().save_state(store, items, metadata)

    async def transact_state(self, store: str, upserts: Sequence[StateWrite]) -> None:
        self.written += request_bytes(upserts)
        await super().transact_state(store, upserts)


def _record(n: int) -> RunRecord:
    run_id = f"{n:08d}-5f0c6a2e9b1d4c7a8e3f"  # 32 characters, as uuid4().hex
    state = RunState(run_id=run_id, workflow="ping", graph_signature="sig")
    return RunRecord(
        run_id=run_id,
        workflow="ping",
        signature="sig",
        epoch=1,
        state=state,
        created_at=float(n),
        updated_at=float(n),
    )


async def _list_page(store: RunStore, limit: int) -> int:
    """The newest ``limit`` runs, as ``GET /runs`` reads them; how many."""
    list_runs: Any = store.list_runs  # of this tree or of an older one
    if "limit" in inspect.signature(list_runs).parameters:  # the paged index
        found, _ = await list_runs(limit=limit)
        return len(found)
    ids = await list_runs()  # the run ids, oldest first
    records = [await store.load_run(run_id) for run_id in reversed(ids)]
    return len([r for r in records if r is not None][:limit])


async def measure(existing: int) -> dict[str, float]:
    state = Metered()
    store = RunStore(state, STORE)
    for start in range(0, existing, 500):  # concurrent creations share index writes
        await asyncio.gather(
            *(store.create_run(_record(n)) for n in range(start, min(existing, start + 500)))
        )
    calls, written = state.calls, state.written
    for n in range(existing, existing + STARTS):
        await store.create_run(_record(n))
    out = {
        "start_calls": (state.calls - calls) / STARTS,
        "start_bytes_written": (state.written - written) / STARTS,
    }
    calls, read = state.calls, state.read
    listed = await _list_page(store, 100)
    out |= {
        "list_runs": listed,
        "list_calls": state.calls - calls,
        "list_bytes_read": state.read - read,
    }
    record = await store.load_run(_record(existing).run_id)
    assert record is not None
    written = state.written
    await store.commit_barrier(
        record, events=[{"type": "superstep_completed"}], checkpoint=None, state_version=None
    )
    out["commit_bytes_written"] = state.written - written
    return out


async def commit_cpu_us(commits: int = 2000, reps: int = 7) -> float:
    """CPU time (of this process: the run store and the in-memory port) of a barrier's
    commit and the read-back of the record's ETag, as the coordinator makes them; the
    median of ``reps`` runs of ``commits``, in microseconds."""
    store = RunStore(InMemoryStateStore(), STORE)
    record = await store.create_run(_record(0))
    samples = []
    for _ in range(reps):
        start = time.process_time()
        for i in range(commits):
            events = [{"type": "superstep_completed", "superstep": i}]
            new = await store.commit_barrier(
                record, events=events, checkpoint=None, state_version=None, reload=False
            )
            head = await store.load_run_head(record.run_id)
            assert head is not None
            record = replace(new, etag=head[2])
        samples.append((time.process_time() - start) / commits * 1e6)
    return statistics.median(samples)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, nargs="+", default=[0, 1000, 5000])
    args = parser.parse_args()
    print(
        "runs in store | start: calls  bytes written | GET /runs (100): calls  bytes read "
        "| commit: bytes written"
    )
    for existing in args.runs:
        m = asyncio.run(measure(existing))
        print(
            f"{existing:>13} | {m['start_calls']:>12.1f}  {m['start_bytes_written']:>13,.0f} "
            f"| {m['list_calls']:>20}  {m['list_bytes_read']:>10,} "
            f"| {m['commit_bytes_written']:>21,.0f}"
        )
    cpu = asyncio.run(commit_cpu_us())
    print(f"commit and ETag read-back: {cpu:.1f} us of CPU (median of 7 x 2000)")


if __name__ == "__main__":
    main()
