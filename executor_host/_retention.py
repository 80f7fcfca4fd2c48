"""Retention: the API app removes from the state store the runs that ended more than
``SUPERSTEP_RUN_RETENTION_S`` ago (``RunStore.sweep``), so the store holds the runs of
that window and those still alive, not every run there ever was.

A sweep runs every tenth of the retention (at least every second, at most every hour),
a little earlier or later at random so that the replicas of the API app take turns.
Two replicas sweeping at once do no harm: deleting a key twice is no error, and the
run record and index writes are ETag-guarded (``RunStore.remove_run``,
``RunIndex.remove``). A sweep that fails (the store is down) is logged and tried
again at the next.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections.abc import Callable

from executor_host._store import RunHead, RunStore
from runtime.ports import PortError
from runtime.registry import WorkflowRegistry

__all__ = ["Retention", "sweep_period"]

log = logging.getLogger(__name__)


def sweep_period(retention_s: float) -> float:
    """Seconds between sweeps for a retention of ``retention_s``."""
    return min(3600.0, max(1.0, retention_s / 10))


class Retention:
    """The sweeps of one API app: ``start`` in its lifespan, ``stop`` at its end."""

    def __init__(
        self,
        store: Callable[[], RunStore],
        registry: WorkflowRegistry,
        retention_s: float,
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._store = store
        self._registry = registry
        self._retention_s = retention_s
        self._clock = clock
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        """Sweep from now on (never with a retention of 0: runs are kept for ever)."""
        if self._retention_s > 0 and self._task is None:
            self._task = asyncio.create_task(self._loop(), name="superstep-retention")

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def sweep(self) -> int:
        """One sweep: the number of runs it removed."""
        return await self._store().sweep(self._clock(), self._retention_s, self._executors)

    def _executors(self, run: RunHead) -> int:
        """The executors of a run whose record does not say, from its workflow (0, and
        its stored results stay, when the workflow is not served here any more)."""
        try:
            return len(self._registry.resolve(run.workflow, run.factory, None).graph.nodes)
        except (LookupError, ValueError, TypeError):
            return 0

    async def _loop(self) -> None:
        period = sweep_period(self._retention_s)
        while True:
            await asyncio.sleep(period * random.uniform(0.8, 1.2))
            try:
                removed = await self.sweep()
            except PortError as exc:
                log.warning("retention: the sweep failed (%s); trying again later", exc)
                continue
            except Exception:  # a record it cannot read: the next sweep tries again
                log.exception("retention: the sweep failed; trying again later")
                continue
            if removed:
                log.info(
                    "retention: removed %d run(s) that ended over %ss ago",
                    removed,
                    self._retention_s,
                )
