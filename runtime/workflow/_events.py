"""Workflow events: one class with a ``type`` discriminator, as in agent-framework."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

__all__ = ["RESERVED_EVENT_TYPES", "RequestInfo", "WorkflowEvent"]

RESERVED_EVENT_TYPES = frozenset(
    {
        "started",
        "status",
        "failed",
        "output",
        "request_info",
        "superstep_started",
        "superstep_completed",
        "executor_completed",
        "executor_failed",
        "executor_retried",
        "executor_skipped",
        "executor_fallback",
        "message_dropped",
        "state_conflict",
        "checkpoint_saved",
    }
)
"""Event types emitted by the runtime itself; ``ctx.add_event`` may not use them."""


@dataclass(frozen=True, slots=True)
class RequestInfo:
    """A pending request for external input (``ctx.request_info``)."""

    request_id: str
    executor_id: str
    data: Any
    response_type: str
    superstep: int


@dataclass(slots=True)
class WorkflowEvent:
    """An event of a run. ``type`` says which; runtime types are listed in
    ``RESERVED_EVENT_TYPES``, any other string is a custom event from ``ctx.add_event``.

    Events of one superstep are reported at its barrier in canonical order
    (executor order, then emission order), so the stream is the same on every
    runtime and at any parallelism.
    """

    type: str
    data: Any = None
    executor_id: str | None = None
    superstep: int | None = None
    request_id: str | None = None
    details: dict[str, Any] = field(default_factory=dict)

    def __repr__(self) -> str:
        bits = [repr(self.type)]
        if self.executor_id is not None:
            bits.append(f"executor_id={self.executor_id!r}")
        if self.superstep is not None:
            bits.append(f"superstep={self.superstep}")
        if self.data is not None:
            bits.append(f"data={self.data!r}")
        return f"WorkflowEvent({', '.join(bits)})"
