"""The per-actor turn lock: FIFO, one turn at a time, optional reentrancy (§4.5).

Method calls, timer fires and reminder fires all take the same lock. With reentrancy on,
a request carrying the reentrancy id of the turn that holds the lock enters at once
(depth + 1, up to ``max_depth``).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from sidecar.errors import ApiError

__all__ = ["TurnLock"]


class TurnLock:
    def __init__(self, *, max_depth: int = 32) -> None:
        self._lock = asyncio.Lock()  # FIFO: waiters are woken in arrival order
        self._holder: str | None = None
        self._depth = 0
        self._max_depth = max_depth
        self._waiting = 0

    @property
    def busy(self) -> bool:
        """True while a turn runs or calls are queued."""
        return self._lock.locked() or self._waiting > 0

    async def wait_idle(self) -> None:
        """Wait until no turn runs and nothing is queued."""
        while self.busy:
            async with self._lock:
                pass

    @asynccontextmanager
    async def turn(self, reentrancy_id: str | None = None) -> AsyncIterator[None]:
        if reentrancy_id is not None and self._lock.locked() and reentrancy_id == self._holder:
            if self._depth >= self._max_depth:
                raise ApiError(
                    500,
                    "RESOURCE_EXHAUSTED",
                    "ERR_ACTOR_STACK_DEPTH",
                    f"maximum stack depth of {self._max_depth} exceeded for reentrant call",
                )
            self._depth += 1
            try:
                yield
            finally:
                self._depth -= 1
            return
        self._waiting += 1
        try:
            await self._lock.acquire()
        finally:
            self._waiting -= 1
        self._holder = reentrancy_id
        self._depth = 1
        try:
            yield
        finally:
            self._holder = None
            self._depth = 0
            self._lock.release()
