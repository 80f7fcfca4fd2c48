"""Preparing the run state a run (or a continuation) starts from.

Shared by every runtime so that bad input, a checkpoint of another graph or a
wrong response is refused the same way — before anything runs.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from runtime.engine import Checkpoint, RunState, respond, start
from runtime.errors import CheckpointError, RequestError
from runtime.workflow._responses import check_response

if TYPE_CHECKING:
    from runtime.checkpoint import CheckpointStorage
    from runtime.workflow._workflow import Workflow

__all__ = ["apply_responses", "load_checkpoint", "new_run_state"]


async def load_checkpoint(
    wf: Workflow, storage: CheckpointStorage | None, checkpoint_id: str
) -> Checkpoint:
    """Load a checkpoint and check that it belongs to this workflow's graph."""
    if storage is None:
        raise CheckpointError("checkpoint_id given but no checkpoint_storage to load it from")
    cp = await storage.load(checkpoint_id)
    graph = wf.graph
    if cp.graph_signature != graph.signature:
        raise CheckpointError(
            f"checkpoint {checkpoint_id!r} belongs to a different graph (signature "
            f"{cp.graph_signature[:12]}, this workflow {graph.signature[:12]}); restore it "
            "with the workflow that wrote it"
        )
    return cp


def new_run_state(wf: Workflow, value: Any, run_id: str | None, seed: int) -> RunState:
    """The state before superstep 1 of a new run with input ``value``."""
    graph = wf.graph
    node = graph.nodes[graph.start]
    if not node.accepts(value):
        raise TypeError(
            f"the start executor {graph.start!r} has no handler for "
            f"{type(value).__qualname__}; it handles " + ", ".join(map(repr, node.input_types))
        )
    return start(graph, graph.codec.encode(value), run_id=run_id or uuid.uuid4().hex, seed=seed)


def apply_responses(wf: Workflow, state: RunState, responses: Mapping[str, Any]) -> RunState:
    """Check live response values against their requests and add them to the run."""
    codec = wf.graph.codec
    encoded = {}
    for rid, value in responses.items():
        pending = state.pending.get(rid)
        if pending is None:
            known = ", ".join(sorted(state.pending)) or "none"
            raise RequestError(f"no pending request with id {rid!r} (pending: {known})")
        check_response(codec, pending, value)
        encoded[rid] = codec.encode(value)
    return respond(state, wf.graph, encoded)
