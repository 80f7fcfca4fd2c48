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
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import OrderedDict
from typing import Any

__all__ = ["RunWatch"]

Events = list[dict[str, Any]]


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
