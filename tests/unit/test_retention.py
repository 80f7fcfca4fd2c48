"""Retention and the runs index, over the in-memory state port: a run that ended is
removed, every key of it, once it has been over for longer than the retention; a run
that is alive keeps everything; the index holds pages of bounded size, and a listing
reads a page of it, newest first, with a cursor to go on."""

from __future__ import annotations

import asyncio
import json
from dataclasses import replace
from typing import Any

import pytest

from executor_host._retention import sweep_period
from executor_host._run_index import HEAD
from executor_host._settings import DEFAULT_RUN_RETENTION_S, Settings
from executor_host._store import RunHead, RunRecord, RunStore
from executor_host.protocol import ActivationEnvelope, ResultEnvelope
from runtime.engine import RunStatus
from runtime.ports import PortError
from runtime.testing.ports import InMemoryStateStore
from runtime.workflow.driver import new_run_state
from tests.dapr.workflows import ping
from tests.unit.test_coordinator import STORE, Deployment

RETENTION = 100.0


class Executors(Deployment):
    """A deployment whose executions store their results, as executor actors do."""

    async def execute(self, env: ActivationEnvelope, host: str = "h1") -> ResultEnvelope:
        result = await super().execute(env, host)
        await self.store.save_result(
            env.run_id, env.generation, env.superstep, env.executor_index, result.result
        )
        return result


def _keys(state: InMemoryStateStore, run_id: str) -> set[str]:
    """The run's keys in the store (blob parts and the index are no run's)."""
    return {
        key
        for _, key in state.items
        if key.startswith("superstep:") and key.split(":")[2].split("@")[0] == run_id
    }


def _kinds(keys: set[str]) -> set[str]:
    return {key.split(":")[1] for key in keys}


async def _ended(dep: Deployment, run_id: str) -> float:
    record = await dep.store.load_run(run_id)
    assert record is not None and record.state.status.is_final
    return record.updated_at


async def test_a_run_that_ended_is_removed_once_the_retention_has_passed() -> None:
    """Every key of the run goes: those of a generation resumed from a checkpoint too."""
    dep = Executors()
    d = await dep.start("fan", "a b|c|d e f|g")
    await dep.pump(d)
    done = await dep.store.load_run("r1")
    assert done is not None
    checkpoint = await dep.store.load_checkpoint(done.checkpoints[1])
    assert checkpoint is not None
    dep.now += 10
    resumed = dep.driver()
    await resumed.begin("fan", checkpoint.state, resume=True)
    await dep.pump(resumed)
    keys = _keys(dep.state, "r1")
    assert _kinds(keys) == {"run", "events", "outputs", "ckpt", "state", "result"}
    assert {k.split(":")[3] for k in keys if ":result:" in k} == {"1", "2"}, "two generations"
    ended = await _ended(dep, "r1")

    assert await dep.store.sweep(ended + RETENTION, RETENTION) == 0
    assert _keys(dep.state, "r1") == keys
    assert await dep.store.sweep(ended + RETENTION + 1, RETENTION) == 1
    assert _keys(dep.state, "r1") == set()
    assert await dep.store.load_run("r1") is None
    assert await dep.store.list_runs(limit=10) == ([], None)


async def test_a_run_alive_keeps_every_key_however_old() -> None:
    """A paused run (awaiting input) and a running one are never removed; the paused one
    is, once it has ended and its retention has passed."""
    dep = Executors()
    paused = await dep.start("hitl", "the plan")
    await dep.pump(paused)
    running = await dep.start("ping", 0, run_id="r2")
    await dep.pump(running, rounds=1)
    before = {r: _keys(dep.state, r) for r in ("r1", "r2")}
    assert await dep.store.sweep(dep.now + 1e9, RETENTION) == 0
    assert {r: _keys(dep.state, r) for r in ("r1", "r2")} == before

    record = await dep.store.load_run("r1")
    assert record is not None and record.state.status is RunStatus.AWAITING_INPUT
    dep.now += 1e6  # answered long after
    await paused.respond({next(iter(record.state.pending)): True})
    await dep.pump(paused)
    ended = await _ended(dep, "r1")
    assert await dep.store.sweep(ended + RETENTION / 2, RETENTION) == 0
    assert await dep.store.sweep(ended + RETENTION * 2, RETENTION) == 1
    assert _keys(dep.state, "r1") == set()
    assert _keys(dep.state, "r2") >= before["r2"], "r2 ran on (the bus is shared)"


async def _add(store: RunStore, run_id: str, created_at: float, **changes: Any) -> RunRecord:
    """A run record, as a coordinator creates it (with its index entry)."""
    state = new_run_state(ping(), 0, run_id, 0)
    status = changes.pop("status", RunStatus.RUNNING)
    record = RunRecord(
        run_id=run_id,
        workflow=changes.pop("workflow", "ping"),
        signature="sig",
        epoch=1,
        state=replace(state, status=status),
        created_at=created_at,
        updated_at=created_at,
        executors=1,
        **changes,
    )
    return await store.create_run(record)


async def _all_pages(store: RunStore, limit: int, **filters: Any) -> list[list[str]]:
    """Every page of a listing, following its cursors."""
    pages: list[list[str]] = []
    before = None
    while True:
        found, before = await store.list_runs(limit=limit, before=before, **filters)
        pages.append([run.run_id for run in found])
        if before is None:
            return pages


async def test_the_index_is_in_pages_and_a_listing_follows_its_cursor() -> None:
    state = InMemoryStateStore()
    store = RunStore(state, STORE, index_page_size=4)
    for i in range(11):
        await _add(store, f"r{i}", 1000.0 + i, workflow="ping" if i % 3 else "fan")
    head = json.loads(json.loads(state.value(STORE, f"superstep:{HEAD}") or b""))
    assert (head["page"], head["first"], len(head["runs"])) == (2, 0, 3)
    sealed = [
        json.loads(json.loads(state.value(STORE, f"superstep:runs:{n}") or b"")) for n in (0, 1)
    ]
    assert [len(page) for page in sealed] == [4, 4]

    newest_first = [f"r{i}" for i in range(10, -1, -1)]
    pages = await _all_pages(store, 3)
    assert [run for page in pages for run in page] == newest_first
    assert [len(p) for p in pages] == [3, 3, 3, 2]

    fans = await _all_pages(store, 2, keep=lambda run: run.workflow == "fan")
    assert [run for page in fans for run in page] == ["r9", "r6", "r3", "r0"]
    # a listing reads no more than it needs: the head, one bulk read of records
    calls = state.calls
    found, cursor = await store.list_runs(limit=2)
    assert [r.run_id for r in found] == ["r10", "r9"] and cursor == (2, 1)
    assert state.calls - calls == 2


async def test_the_index_and_the_store_stay_bounded_as_runs_come_and_go() -> None:
    """Runs that ended are removed with their index entries; pages left empty are
    removed, and the index holds what the retention keeps, not every run there was."""
    state = InMemoryStateStore()
    store = RunStore(state, STORE, index_page_size=4)
    now = 1000.0
    for i in range(40):
        await _add(store, f"r{i}", now, status=RunStatus.COMPLETED)
        now += 10
        await store.sweep(now, 35)
        index = {key for _, key in state.items if key.startswith("superstep:runs")}
        assert len(index) <= 3, index  # the head and at most two sealed pages
        assert len([k for _, k in state.items if k.startswith("superstep:run:")]) <= 4
    head = json.loads(json.loads(state.value(STORE, f"superstep:{HEAD}") or b""))
    assert head["page"] == 9 and head["first"] >= 8
    assert [r.run_id for r in (await store.list_runs(limit=10))[0]] == ["r39", "r38", "r37"]


async def test_runs_of_the_index_before_pages_are_listed_last_and_removed_in_turn() -> None:
    state = InMemoryStateStore()
    store = RunStore(state, STORE, index_page_size=4)
    old = []
    for run_id in ("old1", "old2"):
        record = await _add(store, run_id, 10.0, status=RunStatus.COMPLETED)
        old.append(record)
    # as stores written before pages hold them: a list of ids, records without status
    for key in [k for _, k in state.items if k.startswith("superstep:runs")]:
        del state.items[(STORE, key)]
    await state.save_state(STORE, [("superstep:runs", json.dumps(["old1", "old2"]), None)])
    for record in old:
        written = record.to_json()
        del written["status"], written["superstep"]
        await state.save_state(
            STORE, [(f"superstep:run:{record.run_id}", json.dumps(written), None)]
        )
    await _add(store, "new", 2000.0, status=RunStatus.COMPLETED)

    assert await _all_pages(store, 2) == [["new", "old2"], ["old1"]]
    heads = await store.load_heads(["old1"])
    assert heads[0] is not None and heads[0].status is RunStatus.COMPLETED
    assert await store.sweep(500.0, 100) == 2
    assert state.value(STORE, "superstep:runs") is None
    assert await _all_pages(store, 2) == [["new"]]


async def test_two_replicas_sweeping_at_once_remove_each_run_without_error() -> None:
    state = InMemoryStateStore()
    stores = [RunStore(state, STORE, index_page_size=4) for _ in range(2)]
    for i in range(10):
        await _add(stores[i % 2], f"r{i}", 1000.0, status=RunStatus.FAILED)
    await asyncio.gather(*(s.sweep(2000.0, 100) for s in stores))
    assert [k for _, k in state.items if k.startswith("superstep:run:")] == []
    assert await stores[0].list_runs(limit=100) == ([], None)


async def test_a_run_resumed_since_it_was_read_is_left_alone() -> None:
    state = InMemoryStateStore()
    store = RunStore(state, STORE)
    record = await _add(store, "r1", 1000.0, status=RunStatus.COMPLETED)
    [head] = await store.load_heads(["r1"])
    assert head is not None
    await store.save_run(
        replace(record, epoch=2, state=replace(record.state, status=RunStatus.RUNNING))
    )
    assert not await store.remove_run(head, 1)
    assert (await store.load_run("r1")) is not None


async def test_a_removal_cut_short_hides_the_run_and_the_next_sweep_finishes_it() -> None:
    dep = Executors()
    d = await dep.start("ping", 0)
    await dep.pump(d)
    ended = await _ended(dep, "r1")
    dep.state.fail_next(applied=True)  # the run is marked, the answer is lost
    with pytest.raises(PortError):
        await dep.store.sweep(ended + 2 * RETENTION, RETENTION)
    assert await dep.store.load_run("r1") is None, "a run being removed is gone for readers"
    assert await dep.store.list_runs(limit=10) == ([], None)
    [head] = await dep.store.load_heads(["r1"])
    assert isinstance(head, RunHead) and head.removing
    assert await dep.store.sweep(ended + 2 * RETENTION, RETENTION) == 1
    assert _keys(dep.state, "r1") == set()


def test_the_retention_is_a_setting_of_seconds_and_zero_keeps_every_run() -> None:
    base = {"SUPERSTEP_WORKFLOWS": "m:a"}
    assert Settings.from_env(base).run_retention_s == DEFAULT_RUN_RETENTION_S == 7 * 86400
    assert Settings.from_env({**base, "SUPERSTEP_RUN_RETENTION_S": "0"}).run_retention_s == 0
    with pytest.raises(ValueError, match="SUPERSTEP_RUN_RETENTION_S: expected 0 or more"):
        Settings.from_env({**base, "SUPERSTEP_RUN_RETENTION_S": "-1"})
    assert [sweep_period(s) for s in (2, 600, DEFAULT_RUN_RETENTION_S)] == [1.0, 60.0, 3600.0]
