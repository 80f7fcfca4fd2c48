"""``Workflow``: a validated graph with its executors, runnable on any runtime."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from runtime.engine import Graph
from runtime.workflow._executor import Executor
from runtime.workflow._run import NO_INPUT, RunRequest, RunStream, Runtime, default_runtime

if TYPE_CHECKING:
    from runtime.checkpoint import CheckpointStorage

__all__ = ["Workflow"]


class Workflow:
    """An immutable workflow graph and its executors. Build it with ``WorkflowBuilder``.

    ``await workflow.run(input)`` runs it to the end (or until it awaits input) and
    returns a ``RunResult``; ``async for event in workflow.run(input)`` gives the events
    as supersteps commit. ``runtime=`` picks where it runs (in-process by default); the
    same workflow object runs everywhere.
    """

    def __init__(
        self,
        graph: Graph,
        executors: Mapping[str, Executor],
        *,
        description: str | None = None,
        checkpoint_storage: CheckpointStorage | None = None,
    ) -> None:
        self.graph = graph
        self.executors: Mapping[str, Executor] = dict(executors)
        self.description = description
        self.checkpoint_storage = checkpoint_storage
        self.origin: tuple[str, dict[str, Any]] | None = None
        """``("module:function", params)``: the factory call that built this workflow,
        recorded by ``@workflow_factory`` (None otherwise). ``RemoteRuntime`` sends it, so
        servers that serve the factory's module (``module:*``) build the same workflow."""
        self._rebuild: Callable[[], Workflow] | None = None
        """The factory call that built this workflow (``@workflow_factory``), to build
        it again with executor instances of its own (``fresh``)."""

    def fresh(self) -> Workflow | None:
        """This workflow again, with executor instances of its own, for a run beside one
        that holds this object's executors: its factory called again (the same
        arguments) when ``@workflow_factory`` built it; None otherwise, or when the call
        gives another graph (a factory whose graph changes between calls)."""
        if self._rebuild is None:
            return None
        copy = self._rebuild()
        if copy.signature != self.signature:
            return None
        copy.checkpoint_storage = self.checkpoint_storage
        return copy

    @property
    def name(self) -> str:
        return self.graph.name

    @property
    def signature(self) -> str:
        return self.graph.signature

    def get_start_executor(self) -> Executor:
        return self.executors[self.graph.start]

    def get_executors_list(self) -> list[Executor]:
        return list(self.executors.values())

    def run(
        self,
        message: Any = NO_INPUT,
        *,
        stream: bool = False,
        responses: Mapping[str, Any] | None = None,
        checkpoint_id: str | None = None,
        checkpoint_storage: CheckpointStorage | None = None,
        runtime: Runtime | None = None,
        run_id: str | None = None,
        seed: int = 0,
    ) -> RunStream:
        """Start a run, continue a paused one with ``responses``, or resume from
        ``checkpoint_id`` (found in ``checkpoint_storage``).

        Returns a ``RunStream``: ``await`` it for the ``RunResult``, or ``async for``
        over it for the events as supersteps commit (then ``await`` it for the result);
        ``asyncio.run()`` takes it as it takes a coroutine. ``stream=True`` is accepted
        as agent-framework spells it and returns the same ``RunStream``.
        """
        del stream  # both forms give a RunStream; the caller chooses by how it consumes it
        if runtime is None:
            runtime = default_runtime()
        request = RunRequest(
            input=message,
            responses=responses,
            checkpoint_id=checkpoint_id,
            checkpoint_storage=checkpoint_storage,
            run_id=run_id,
            seed=seed,
        )
        return runtime.start(self, request)

    def to_mermaid(self) -> str:
        from runtime.workflow._viz import to_mermaid

        return to_mermaid(self.graph)

    def to_dot(self) -> str:
        from runtime.workflow._viz import to_dot

        return to_dot(self.graph)

    def __repr__(self) -> str:
        return f"Workflow(name={self.name!r}, executors={list(self.executors)})"
