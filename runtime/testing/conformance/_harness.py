"""The runtime harness: what the conformance suite needs from a runtime.

A runtime joins the suite by providing a ``RuntimeHarness``. The in-process one
is ``InProcessHarness``; a distributed runtime provides its own (it builds its
workflows from the same module-level factories, named by ``factory_ref``).
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from runtime.checkpoint import CheckpointStorage, FileCheckpointStorage
from runtime.inprocess import InProcessRuntime
from runtime.workflow import Runtime, Workflow

__all__ = [
    "SAME_PROCESS",
    "InProcessHarness",
    "RuntimeHarness",
    "WorkflowFactory",
    "factory_ref",
]

SAME_PROCESS = "same_process"
"""Capability: executors run in the test's process and event loop, so a scenario
may observe and pace them through shared objects (``asyncio.Event``, counters).
Scenarios that need it say so; a runtime whose executors live in other processes
does not declare it and does not run them."""

WorkflowFactory = Callable[..., Workflow]
"""A module-level function that builds a fresh workflow (fresh executor objects)."""


def factory_ref(factory: WorkflowFactory) -> str:
    """``module:qualname`` of a factory, for runtimes that build workflows elsewhere."""
    return f"{factory.__module__}:{factory.__qualname__}"


@runtime_checkable
class RuntimeHarness(Protocol):
    """How the conformance suite drives one runtime configuration."""

    @property
    def name(self) -> str:
        """A short id for test reports, e.g. ``inprocess-unbounded``."""
        ...

    @property
    def max_concurrency(self) -> int | None:
        """How many activations of one superstep may run at once (None: no limit)."""
        ...

    @property
    def capabilities(self) -> frozenset[str]:
        """Optional abilities such as ``SAME_PROCESS``."""
        ...

    def make_runtime(self) -> Runtime:
        """A runtime to pass as ``workflow.run(..., runtime=...)``."""
        ...

    def build(self, factory: WorkflowFactory, /, **params: Any) -> Workflow:
        """Build the workflow ``factory(**params)`` for this runtime.

        ``params`` are JSON values, except in scenarios that need ``SAME_PROCESS``."""
        ...

    def checkpoint_storage(self) -> CheckpointStorage:
        """A fresh, empty checkpoint storage that survives ``restart``."""
        ...

    async def restart(self, storage: CheckpointStorage) -> CheckpointStorage:
        """Simulate a process restart: forget everything the runtime holds in memory
        and return a handle on ``storage`` that is valid afterwards. Workflows used
        after it must be built again with ``build``."""
        ...


@dataclass
class InProcessHarness:
    """The in-process runtime, with file checkpoints under ``directory``.

    ``restart`` reopens the checkpoint files with a new storage object; scenarios
    then build a fresh workflow, so nothing survives but what was checkpointed.
    (``tests/conformance`` also restarts a real process.)
    """

    directory: Path
    max_concurrency: int | None = None
    capabilities: frozenset[str] = frozenset({SAME_PROCESS})
    _counter: itertools.count[int] = field(default_factory=itertools.count, repr=False)

    @property
    def name(self) -> str:
        limit = "unbounded" if self.max_concurrency is None else f"limit{self.max_concurrency}"
        return f"inprocess-{limit}"

    def make_runtime(self) -> Runtime:
        return InProcessRuntime(max_concurrency=self.max_concurrency)

    def build(self, factory: WorkflowFactory, /, **params: Any) -> Workflow:
        return factory(**params)

    def checkpoint_storage(self) -> CheckpointStorage:
        return FileCheckpointStorage(self.directory / f"checkpoints-{next(self._counter)}")

    async def restart(self, storage: CheckpointStorage) -> CheckpointStorage:
        if isinstance(storage, FileCheckpointStorage):
            storage.close()
            return FileCheckpointStorage(storage.directory)
        return storage
