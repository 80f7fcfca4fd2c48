"""The executor host's pure plumbing: payloads by reference, grouped actor calls, the
event-stream watch and the actor message serializer."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import pytest

from executor_host._batching import GroupCaller
from executor_host._payloads import PayloadCache, PayloadSplitter, restore_payloads
from executor_host._serializer import EnvelopeSerializer
from executor_host._watch import EventPosition, RunWatch, at_end, sse_stream


def _activation(*datas: Any) -> dict[str, Any]:
    return {
        "run_id": "r",
        "superstep": 2,
        "executor_id": "w",
        "messages": [
            {"source": "d", "target": "w", "data": d, "superstep": 1, "seq": i}
            for i, d in enumerate(datas)
        ],
        "timestamp": 0.0,
        "seed": 1,
    }


def test_small_payloads_stay_inline() -> None:
    splitter = PayloadSplitter("r", limit=1024)
    act = _activation(1, "short", {"a": [1, 2]})
    out, keys = splitter.split(act)
    assert out is act and keys == {} and splitter.to_write == {}


def test_a_large_payload_goes_by_reference_and_comes_back_equal() -> None:
    big = {"docs": [f"doc-{i}" for i in range(500)]}
    splitter = PayloadSplitter("r", limit=1024)
    act = _activation(7, big)
    out, keys = splitter.split(act)
    assert list(keys) == ["1"] and keys["1"].startswith("payload:r:")
    assert "data" not in out["messages"][1] and out["messages"][0]["data"] == 7
    assert act["messages"][1]["data"] is big, "the input activation is not modified"
    stored = {k: json.loads(v) for k, v in splitter.to_write.items()}
    assert restore_payloads(out, keys, stored) == act


def test_a_shared_payload_is_written_once() -> None:
    big = ["x" * 100] * 50
    splitter = PayloadSplitter("r", limit=1024)
    keys = [splitter.split(_activation(big))[1]["0"] for _ in range(50)]
    assert len(set(keys)) == 1 and len(splitter.to_write) == 1


def test_equal_payloads_get_equal_keys_and_different_ones_differ() -> None:
    a = PayloadSplitter("r", limit=10).split(_activation(["a" * 20]))[1]["0"]
    b = PayloadSplitter("r", limit=10).split(_activation(["a" * 20]))[1]["0"]
    c = PayloadSplitter("r", limit=10).split(_activation(["b" * 20]))[1]["0"]
    assert a == b != c


def test_limit_zero_sends_everything_inline() -> None:
    _, keys = PayloadSplitter("r", limit=0).split(_activation(["a" * 10_000]))
    assert keys == {}


async def test_cache_reads_a_key_once_for_concurrent_readers() -> None:
    loads: list[str] = []
    gate = asyncio.Event()

    async def load(key: str) -> tuple[Any, int]:
        loads.append(key)
        await gate.wait()
        return {"k": key}, 10

    cache = PayloadCache(load)
    readers = [asyncio.create_task(cache.get_many(["a", "b", "a"])) for _ in range(20)]
    await asyncio.sleep(0)
    gate.set()
    results = await asyncio.gather(*readers)
    assert sorted(loads) == ["a", "b"]
    assert all(r == {"a": {"k": "a"}, "b": {"k": "b"}} for r in results)
    assert await cache.get("a") == {"k": "a"} and len(loads) == 2


async def test_cache_evicts_least_recently_used_beyond_its_size() -> None:
    loads: list[str] = []

    async def load(key: str) -> tuple[Any, int]:
        loads.append(key)
        return key, 40

    cache = PayloadCache(load, max_bytes=100)
    for key in ("a", "b", "a", "c", "a", "b"):
        await cache.get(key)
    # a, b fit; c evicts b (a was used more recently); b is read again
    assert loads == ["a", "b", "c", "b"]


async def test_cache_load_errors_reach_the_reader_and_are_not_cached() -> None:
    calls = 0

    async def load(key: str) -> tuple[Any, int]:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise LookupError("missing")
        return "v", 1

    cache = PayloadCache(load)
    with pytest.raises(LookupError):
        await cache.get("k")
    assert await cache.get("k") == "v"


async def test_group_caller_batches_items_that_arrive_during_a_call() -> None:
    calls: list[tuple[str, list[int]]] = []
    release = asyncio.Event()
    in_call = asyncio.Event()

    async def send(key: str, items: list[Any]) -> None:
        calls.append((key, list(items)))
        if len(calls) == 1:
            in_call.set()
            await release.wait()

    caller = GroupCaller(send)
    first = asyncio.create_task(caller.submit("run", 0))
    await in_call.wait()
    assert calls == [("run", [0])], "a lone item is sent at once"
    rest = [asyncio.create_task(caller.submit("run", i)) for i in range(1, 6)]
    other = asyncio.create_task(caller.submit("other", 99))
    await asyncio.wait_for(other, 5)
    assert len(calls) == 2, "another key does not wait for this one"
    release.set()
    await asyncio.gather(first, *rest)
    assert calls[2] == ("run", [1, 2, 3, 4, 5])
    assert len(calls) == 3


async def test_group_caller_failure_reaches_every_waiter_of_that_call_only() -> None:
    release = asyncio.Event()
    in_call = asyncio.Event()
    sent: list[list[Any]] = []

    async def send(key: str, items: list[Any]) -> None:
        sent.append(items)
        if len(sent) == 1:
            in_call.set()
            await release.wait()
            return
        if len(sent) == 2:
            raise ConnectionError("coordinator unavailable")

    caller = GroupCaller(send)
    first = asyncio.create_task(caller.submit("run", "a"))
    await in_call.wait()
    failing = [asyncio.create_task(caller.submit("run", x)) for x in ("b", "c")]
    await asyncio.sleep(0)
    release.set()
    await first
    for task in failing:
        with pytest.raises(ConnectionError):
            await task
    await caller.submit("run", "d")
    assert sent == [["a"], ["b", "c"], ["d"]]


async def test_readiness_names_an_unreachable_sidecar(monkeypatch: pytest.MonkeyPatch) -> None:
    from executor_host._sidecar import SidecarClient
    from sidecar.testing import free_port

    monkeypatch.setenv("DAPR_HTTP_PORT", str(free_port()))  # nothing listens there
    invoker = SidecarClient()
    try:
        reason = await invoker.sidecar_ready(timeout_s=2)
    finally:
        await invoker.aclose()
    assert reason is not None and "unreachable" in reason


@pytest.mark.parametrize(
    ("adds", "ranges"),
    [
        ([1, 2, 3], [(1, 3)]),
        ([3, 1, 2], [(1, 3)]),
        ([1, 2, 5, 6, 4], [(1, 2), (4, 6)]),
        ([1, 2, 3, 2, 3], [(1, 3)]),  # a resumed timeline overwrites the same ids
        ([5, 1], [(1, 1), (5, 5)]),
        ([1, 3, 2], [(1, 3)]),
    ],
)
def test_checkpoint_ranges_stay_small_and_sorted(
    adds: list[int], ranges: list[tuple[int, int]]
) -> None:
    from executor_host._store import _add_to_ranges

    out: list[tuple[int, int]] = []
    for n in adds:
        out = _add_to_ranges(out, n)
    assert out == ranges


async def test_watch_hands_over_committed_chunks_and_wakes_waiters() -> None:
    watch = RunWatch()
    assert watch.get("r", 0) is None and not watch.not_yet("r", 0)  # unknown run: ask the store
    waiter = asyncio.create_task(watch.wait("r", 5.0))
    await asyncio.sleep(0)
    watch.committed("r", 0, [{"type": "started"}])
    assert await waiter is True
    assert watch.get("r", 0) == [{"type": "started"}]
    assert watch.not_yet("r", 1) and not watch.not_yet("r", 0)
    assert await watch.wait("r", 0.01) is False  # nothing committed: timed out


def test_watch_keeps_a_bounded_window_per_run_and_a_bounded_number_of_runs() -> None:
    watch = RunWatch(chunks_per_run=2, runs=2)
    for chunk in range(4):
        watch.committed("a", chunk, [{"n": chunk}])
    assert [watch.get("a", c) for c in range(4)] == [None, None, [{"n": 2}], [{"n": 3}]]
    watch.committed("b", 0, [])
    watch.committed("c", 0, [])  # "a" is the least recently committed run: forgotten
    assert watch.get("a", 3) is None and not watch.not_yet("a", 9)
    assert watch.get("b", 0) == [] and watch.get("c", 0) == []


# -- the event stream (Server-Sent Events) -----------------------------------------------------
class EventLog:
    """A run's event chunks, as the store holds them."""

    def __init__(self) -> None:
        self.chunks: dict[int, list[dict[str, Any]]] = {
            0: [{"type": "started"}, {"type": "superstep_started", "superstep": 1}],
            1: [{"type": "output", "data": i} for i in range(3)],
            2: [{"type": "failed"}, {"type": "status", "data": "failed"}],
        }
        self.asked: dict[int, asyncio.Event] = {}
        """Chunk -> set once a reader asked for it."""

    async def load(self, run_id: str, chunk: int) -> list[dict[str, Any]]:
        self.asked.setdefault(chunk, asyncio.Event()).set()
        return list(self.chunks.get(chunk, []))

    def events(self) -> list[dict[str, Any]]:
        return [e for chunk in sorted(self.chunks) for e in self.chunks[chunk]]


async def _read(
    after: EventPosition, log: EventLog | None = None, watch: RunWatch | None = None
) -> list[tuple[str, Any]]:
    """(id, event) of every Server-Sent Event the stream sends, to its end."""
    load = (log or EventLog()).load
    body = b"".join([part async for part in sse_stream("r", after, watch or RunWatch(), load)])
    out = []
    for block in body.decode().split("\n\n")[:-1]:
        fields = dict(line.split(": ", 1) for line in block.split("\n"))
        event = json.loads(fields["data"])
        assert fields["event"] == event["type"]
        out.append((fields["id"], event))
    return out


async def test_every_event_has_its_own_id_in_log_order() -> None:
    sent = await _read(EventPosition(-1))
    assert [event for _, event in sent] == EventLog().events()
    assert [i for i, _ in sent] == ["0.0", "0.1", "1.0", "1.1", "1.2", "2.0", "2.1"]


async def test_a_reader_that_reconnects_with_the_last_event_id_gets_exactly_the_rest() -> None:
    sent = await _read(EventPosition(-1))
    for k, (last_id, _) in enumerate(sent[:-1]):
        assert await _read(EventPosition.parse(last_id)) == sent[k + 1 :], last_id


async def test_a_bare_chunk_number_resumes_after_the_whole_chunk() -> None:
    """An id as servers sent before event indexes (the chunk), or the ``after`` parameter."""
    sent = await _read(EventPosition(-1))
    assert await _read(EventPosition.parse("0")) == await _read(EventPosition(0)) == sent[2:]


async def test_a_reader_at_the_end_of_a_running_run_s_log_waits_for_the_next_chunk() -> None:
    log, watch = EventLog(), RunWatch()
    del log.chunks[2]  # the run is still going
    reader = asyncio.create_task(_read(EventPosition.parse("1.2"), log, watch))
    await asyncio.wait_for(log.asked.setdefault(2, asyncio.Event()).wait(), 5)
    log.chunks[2] = [{"type": "status", "data": "completed"}]  # committed now
    watch.committed("r", 2, log.chunks[2])
    assert await asyncio.wait_for(reader, 5) == [("2.0", {"type": "status", "data": "completed"})]


async def test_a_reader_waiting_on_a_run_whose_record_is_lost_is_let_go() -> None:
    """The run record vanished (Redis restarted empty): the stream ends instead of
    waiting for ever, and the client's next request about the run gets its 404."""
    log, watch = EventLog(), RunWatch()
    del log.chunks[2]  # the run was still going when its record was lost
    checks: list[bool] = []

    async def alive() -> bool:
        checks.append(len(checks) < 1)  # there at the first look, gone at the second
        return checks[-1]

    stream = sse_stream("r", EventPosition.parse("1.2"), watch, log.load, alive=alive)
    sent = await asyncio.wait_for(_drain(stream), 10)
    assert sent == [] and checks == [True, False]


async def _drain(stream: AsyncIterator[bytes]) -> list[bytes]:
    return [part async for part in stream]


@pytest.mark.parametrize("text", ["", "x", "1.", ".1", "1.2.3", "-1", "1,2", "9" * 19])
def test_what_is_no_event_id_is_refused(text: str) -> None:
    with pytest.raises(ValueError, match="no event id"):
        EventPosition.parse(text)


@pytest.mark.parametrize(
    ("position", "expected"),
    [
        (EventPosition(-1), False),
        (EventPosition(1), False),
        (EventPosition(2, 0), False),
        (EventPosition(2, 1), True),
        (EventPosition(2), True),
        (EventPosition(5, 0), True),
    ],
)
async def test_at_end_of_the_log(position: EventPosition, expected: bool) -> None:
    log = EventLog()
    assert await at_end(position, len(log.chunks), log.load, "r") is expected


def test_actor_messages_decode_as_plain_json_and_reminders_as_the_sdk_does() -> None:
    serializer = EnvelopeSerializer()
    body = json.dumps({"texts": ["2024-01-01", "2024-01-01 report", "10s", "1h2m3s"]})
    assert serializer.deserialize(body.encode(), dict[str, Any]) == json.loads(body)
    reminder = serializer.deserialize(b'{"dueTime": "0h0m5s", "period": "0h0m5s"}', object)
    assert reminder["dueTime"] == reminder["period"] == timedelta(seconds=5)


async def test_group_caller_keeps_each_call_under_its_byte_limit() -> None:
    """daprd refuses a body over its --max-body-size: a call takes items until the next
    would pass ``max_bytes`` (one item always goes, however large)."""
    release = asyncio.Event()
    in_call = asyncio.Event()
    calls: list[list[Any]] = []

    async def send(key: str, items: list[Any]) -> None:
        calls.append(items)
        if len(calls) == 1:
            in_call.set()
            await release.wait()

    caller = GroupCaller(send, max_bytes=100)
    first = asyncio.create_task(caller.submit("run", "first", size=10))
    await in_call.wait()
    sizes = {"a": 40, "b": 40, "c": 40, "huge": 500, "d": 10}
    rest = [asyncio.create_task(caller.submit("run", k, size=v)) for k, v in sizes.items()]
    await asyncio.sleep(0)
    release.set()
    await asyncio.gather(first, *rest)
    assert calls == [["first"], ["a", "b"], ["c"], ["huge"], ["d"]]
