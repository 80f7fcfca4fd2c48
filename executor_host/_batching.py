"""Group calls by key: while a call for a key is in flight, the items that arrive for
it wait and go together in the next call.

The run store adds each started run to the runs index this way: a burst of starts
makes a few grouped read-modify-writes of the index instead of one per run, each of
which would race the others for the index's ETag. A lone item goes at once (no timer,
no added latency). Each submitter waits for the call that carried its item and sees
its error.

A call carries at most ``max_items`` items and, past its first item, at most
``max_bytes`` of their sizes: daprd refuses a request body over its
``--max-body-size`` (4 MiB by default).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

__all__ = ["GroupCaller"]

Send = Callable[[str, list[Any]], Awaitable[None]]


class _Queue:
    __slots__ = ("items", "running")

    def __init__(self) -> None:
        self.items: list[tuple[Any, int, asyncio.Future[None]]] = []
        self.running = False


class GroupCaller:
    def __init__(self, send: Send, *, max_items: int = 512, max_bytes: int = 2 << 20) -> None:
        self._send = send
        self._max = max_items
        self._max_bytes = max_bytes
        self._queues: dict[str, _Queue] = {}
        self._tasks: set[asyncio.Task[None]] = set()

    async def submit(self, key: str, item: Any, size: int = 0) -> None:
        """Send ``item`` (about ``size`` bytes on the wire) with the next call for
        ``key``; returns when that call did."""
        queue = self._queues.get(key)
        if queue is None:
            queue = self._queues[key] = _Queue()
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        queue.items.append((item, size, done))
        if not queue.running:
            queue.running = True
            task = asyncio.create_task(self._drain(key, queue))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        await done

    def _batch_length(self, items: list[tuple[Any, int, asyncio.Future[None]]]) -> int:
        """How many of the waiting items go in the next call: at least one."""
        total = 0
        for n, (_, size, _) in enumerate(items[: self._max]):
            total += size
            if n and total > self._max_bytes:
                return n
        return min(len(items), self._max)

    async def _drain(self, key: str, queue: _Queue) -> None:
        try:
            while queue.items:
                n = self._batch_length(queue.items)
                batch, queue.items = queue.items[:n], queue.items[n:]
                try:
                    await self._send(key, [item for item, _, _ in batch])
                except BaseException as exc:  # every waiter of this call sees its failure
                    for _, _, done in batch:
                        if not done.done():
                            done.set_exception(exc)
                    if not isinstance(exc, Exception):
                        raise
                else:
                    for _, _, done in batch:
                        if not done.done():
                            done.set_result(None)
        finally:
            queue.running = False
            if not queue.items and self._queues.get(key) is queue:
                del self._queues[key]
