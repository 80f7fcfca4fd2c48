"""Event streams of the API app: the event chunks its coordinators commit, handed over
in memory, and the wake-ups of streams waiting for the next chunk.

A run's events are committed in numbered chunks (one per barrier) with the run record.
A stream reads chunk after chunk. When the run's coordinator actor lives in this app
(the usual case), the chunk it just committed is taken from here instead of being
read back from the state store, and a stream whose next chunk this app has not seen
committed waits instead of asking the store for a chunk that is not there yet. The
store stays the source of truth: a chunk missing here (evicted, or committed by a
coordinator in another replica of the app) is read from it, and a stream that waited
``within`` seconds without news reads the store before it trusts this app again.

A stream sends its events as Server-Sent Events, each with its own id,
``<chunk>.<index>``: the chunk number and the event's position in it. Ids grow with
the run's event log, so a client that reconnects with the last one it got
(``Last-Event-ID``) gets exactly the events after it.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
from collections import OrderedDict
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any

__all__ = ["EventPosition", "RunWatch", "at_end", "sse_stream"]

Events = list[dict[str, Any]]
LoadChunk = Callable[[str, int], Awaitable[Events]]
"""Reads chunk ``n`` of a run's events from the store (empty when it is not there)."""

_EVENT_ID = re.compile(r"(\d{1,18})(?:\.(\d{1,18}))?")


@dataclass(frozen=True, slots=True)
class EventPosition:
    """Where a reader of a run's event log is: after event ``index`` of chunk ``chunk``,
    or after the whole chunk when ``index`` is None (chunk -1: before the first)."""

    chunk: int
    index: int | None = None

    @classmethod
    def parse(cls, event_id: str) -> EventPosition:
        """The position after the event ``event_id`` names: ``<chunk>.<index>``, or a
        bare ``<chunk>`` (the ids of servers before event indexes: the whole chunk).
        ``ValueError`` for anything else."""
        found = _EVENT_ID.fullmatch(event_id.strip())
        if found is None:
            raise ValueError(f"{event_id!r} is no event id of this API (<chunk>.<index>)")
        chunk, index = found.groups()
        return cls(int(chunk), int(index) if index is not None else None)


class RunWatch:
    """Recently committed event chunks per run (bounded) and the streams waiting on them."""

    def __init__(self, *, chunks_per_run: int = 64, runs: int = 256) -> None:
        self._chunks_per_run = chunks_per_run
        self._runs = runs
        self._recent: OrderedDict[str, dict[int, Events]] = OrderedDict()
        self._latest: dict[str, int] = {}
        self._waiters: dict[str, asyncio.Event] = {}

    def committed(self, run_id: str, chunk: int, events: Events) -> None:
        """A coordinator of this app committed ``events`` as the run's chunk ``chunk``."""
        recent = self._recent.get(run_id)
        if recent is None:
            recent = self._recent[run_id] = {}
            while len(self._recent) > self._runs:
                gone, _ = self._recent.popitem(last=False)
                self._latest.pop(gone, None)
        else:
            self._recent.move_to_end(run_id)
        recent[chunk] = events
        recent.pop(chunk - self._chunks_per_run, None)
        self._latest[run_id] = max(chunk, self._latest.get(run_id, -1))
        waiter = self._waiters.pop(run_id, None)
        if waiter is not None:
            waiter.set()

    def get(self, run_id: str, chunk: int) -> Events | None:
        """The chunk if this app committed it recently, else None (read the store)."""
        recent = self._recent.get(run_id)
        return None if recent is None else recent.get(chunk)

    def not_yet(self, run_id: str, chunk: int) -> bool:
        """True when this app committed the run's chunks up to before ``chunk``: the
        store would not have ``chunk`` either, unless another replica committed it."""
        latest = self._latest.get(run_id)
        return latest is not None and latest < chunk

    async def wait(self, run_id: str, within: float) -> bool:
        """Return True when this app commits a chunk of the run, False after ``within``
        seconds without one (another replica may have committed it without telling this
        one: read the store then)."""
        waiter = self._waiters.setdefault(run_id, asyncio.Event())
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(waiter.wait(), within)
            return True
        return False


def _closes(events: Events) -> bool:
    return bool(events) and events[-1].get("type") == "status"


async def at_end(position: EventPosition, chunks: int, load: LoadChunk, run_id: str) -> bool:
    """Whether ``position`` is at (or past) the end of a log of ``chunks`` chunks."""
    last = chunks - 1
    if position.chunk != last:
        return position.chunk > last
    if position.index is None:
        return True
    return position.index >= len(await load(run_id, last)) - 1


async def sse_stream(
    run_id: str,
    after: EventPosition,
    watch: RunWatch,
    load: LoadChunk,
    *,
    view: Callable[[dict[str, Any]], dict[str, Any]] | None = None,
    alive: Callable[[], Awaitable[bool]] | None = None,
) -> AsyncIterator[bytes]:
    """The run's events after ``after`` as Server-Sent Events, chunk by chunk (a chunk's
    events in one body message: one write, one read on the client), until a chunk whose
    last event is the closing ``status``. ``view`` turns each event's JSON into what the
    client reads (the plain form of its values).

    Chunks are numbered without gaps: the next one is taken from the watch (committed
    here) or the store until it is not there yet, then waited for. While it waits,
    ``alive`` tells whether the run still exists: a run record lost from the store
    (Redis restarted empty, say) ends the stream, and the client's next request about
    the run gets a 404 instead of a wait for ever."""
    chunk = after.chunk if after.index is not None else after.chunk + 1
    skip = after.index + 1 if after.index is not None else 0
    trust_watch = False
    while True:
        events = watch.get(run_id, chunk)
        if events is None and not (trust_watch and watch.not_yet(run_id, chunk)):
            events = await load(run_id, chunk)
        if not events:
            trust_watch = await watch.wait(run_id, 0.5)
            if not trust_watch and alive is not None and not await alive():
                return
            continue
        if skip < len(events):
            shown = events if view is None else [view(ev) for ev in events]
            yield "".join(
                f"id: {chunk}.{i}\nevent: {events[i]['type']}\ndata: {json.dumps(shown[i])}\n\n"
                for i in range(skip, len(events))
            ).encode()
            if _closes(events):
                return
        # a reader resuming after the last event of a chunk goes on with the next one
        chunk, skip = chunk + 1, 0
