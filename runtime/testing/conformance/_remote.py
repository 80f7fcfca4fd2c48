"""The conformance harness of a remote runtime (the Dapr runtime's HTTP API)."""

from __future__ import annotations

import itertools
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from runtime.checkpoint import CheckpointStorage, FileCheckpointStorage
from runtime.client import RemoteRuntime
from runtime.testing.conformance._harness import WorkflowFactory
from runtime.workflow import Runtime, Workflow, workflow_factory

__all__ = ["RemoteHarness"]


@dataclass
class RemoteHarness:
    """Runs the suite through ``RemoteRuntime`` against a deployment at ``url``.

    The deployment must serve the suite's workflow module
    (``SUPERSTEP_WORKFLOWS=runtime.testing.conformance._workflows:*``): each workflow
    is built here and there by the same factory with the same JSON parameters.
    Run ids are scoped by a fresh prefix per harness, so scenarios can reuse theirs.
    Checkpoints the remote runs take are mirrored into the local file storage, where
    the in-process reference runtime reads them too.
    """

    url: str
    directory: Path
    name: str = "remote"
    max_concurrency: int | None = None
    capabilities: frozenset[str] = frozenset()
    token: str | None = None
    """The API's bearer token, if it wants one (default: ``SUPERSTEP_API_TOKEN``)."""
    prefix: str = field(default_factory=lambda: f"c{uuid.uuid4().hex[:10]}.")
    _counter: itertools.count[int] = field(default_factory=itertools.count, repr=False)

    def make_runtime(self) -> Runtime:
        return RemoteRuntime(self.url, run_id_prefix=self.prefix, token=self.token)

    def build(self, factory: WorkflowFactory, /, **params: Any) -> Workflow:
        # called as a workflow factory: the workflow records the call, which the
        # remote runtime sends to the deployment
        return workflow_factory(factory)(**params)

    def checkpoint_storage(self) -> CheckpointStorage:
        return FileCheckpointStorage(self.directory / f"checkpoints-{next(self._counter)}")

    async def restart(self, storage: CheckpointStorage) -> CheckpointStorage:
        if isinstance(storage, FileCheckpointStorage):
            storage.close()
            return FileCheckpointStorage(storage.directory)
        return storage
