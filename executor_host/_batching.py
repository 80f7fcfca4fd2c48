"""Group calls to one actor: while a call to an actor is in flight, the items that
arrive for it wait and go together in the next call.

The API app receives one result CloudEvent per executor; calling the coordinator
actor once per result would queue those calls behind the actor's turn lock one
by one. With this, a superstep of a hundred executors costs a few coordinator
calls, and a lone result is sent at once (no timer, no added latency).
Each submitter waits for the call that carried its item and sees its error.
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
        self.items: list[tuple[Any, asyncio.Future[None]]] = []
        self.running = False


class GroupCaller:
    def __init__(self, send: Send, *, max_items: int = 512) -> None:
        self._send = send
        self._max = max_items
        self._queues: dict[str, _Queue] = {}
        self._tasks: set[asyncio.Task[None]] = set()

    async def submit(self, key: str, item: Any) -> None:
        """Send ``item`` with the next call for ``key``; returns when that call did."""
        queue = self._queues.get(key)
        if queue is None:
            queue = self._queues[key] = _Queue()
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        queue.items.append((item, done))
        if not queue.running:
            queue.running = True
            task = asyncio.create_task(self._drain(key, queue))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        await done

    async def _drain(self, key: str, queue: _Queue) -> None:
        try:
            while queue.items:
                batch, queue.items = queue.items[: self._max], queue.items[self._max :]
                try:
                    await self._send(key, [item for item, _ in batch])
                except BaseException as exc:  # every waiter of this call sees its failure
                    for _, done in batch:
                        if not done.done():
                            done.set_exception(exc)
                    if not isinstance(exc, Exception):
                        raise
                else:
                    for _, done in batch:
                        if not done.done():
                            done.set_result(None)
        finally:
            queue.running = False
            if not queue.items and self._queues.get(key) is queue:
                del self._queues[key]
