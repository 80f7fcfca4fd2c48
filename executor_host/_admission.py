"""Admission of run starts in the API app: at most ``limit`` starts are worked on at once,
up to ``queue`` more wait their turn, and a start beyond that is refused at once with a
503 problem and ``Retry-After`` (``RemoteRuntime`` waits and tries again).

A start is the API app's most expensive request (the workflow's check, the initial
state, the run record and the runs index, the coordinator's first barrier). A burst of
them all at once puts hundreds of requests in the app's one event loop, behind which
everything else waits, daprd's health probe of the app included; daprd then holds the
app for unhealthy and refuses actor calls to it (docs/reliability.md, "The 502 answers
to concurrent starts"). Waiting starts cost only their task.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

__all__ = ["Busy", "StartGate"]


class Busy(Exception):
    """More starts wait than the gate queues: refused, to be tried again later."""


class StartGate:
    """``async with gate.admit():`` around a start's work."""

    def __init__(self, limit: int, queue: int) -> None:
        if limit < 1 or queue < 0:
            raise ValueError(f"a start gate needs limit >= 1 and queue >= 0, got {limit}, {queue}")
        self.limit = limit
        self.queue = queue
        self._slots = asyncio.Semaphore(limit)
        self._waiting = 0
        self.active = 0

    @property
    def waiting(self) -> int:
        return self._waiting

    @asynccontextmanager
    async def admit(self) -> AsyncIterator[None]:
        if self._slots.locked() and self._waiting >= self.queue:
            raise Busy(
                f"{self.active} run starts are being worked on and {self._waiting} wait "
                f"(SUPERSTEP_MAX_STARTS={self.limit}, SUPERSTEP_START_QUEUE={self.queue})"
            )
        self._waiting += 1
        try:
            await self._slots.acquire()
        finally:
            self._waiting -= 1
        self.active += 1
        try:
            yield
        finally:
            self.active -= 1
            self._slots.release()
