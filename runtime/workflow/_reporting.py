"""Turning committed supersteps into ``WorkflowEvent``s, the same way on every runtime.

The in-process driver and the Dapr coordinator both call these, so a run's event
stream is identical wherever it ran. Events also cross the wire as JSON
(``event_to_json``/``event_from_json``), their data encoded by the workflow's codec.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from runtime.engine import ActivationResult, Graph, JsonCodec, RunState, SuperstepReport
from runtime.errors import StateConflictError
from runtime.workflow._events import WorkflowEvent

__all__ = ["event_from_json", "event_to_json", "final_events", "superstep_events"]


def superstep_events(
    graph: Graph,
    report: SuperstepReport,
    results: Sequence[ActivationResult],
    hosts: Mapping[str, str] | None = None,
) -> list[WorkflowEvent]:
    """The events of one superstep, in canonical order (rule 3).

    Executor events record where each activation ran: its placement pool and,
    when the runtime knows it, the host (``hosts``: executor id -> host name).
    """
    codec = graph.codec
    k = report.superstep
    out: list[WorkflowEvent] = []
    if not report.committed:
        for r in results:
            if r.error is not None:
                where: dict[str, Any] = {"pool": graph.nodes[r.executor_id].placement.pool}
                if hosts is not None and r.executor_id in hosts:
                    where["host"] = hosts[r.executor_id]
                out.append(
                    WorkflowEvent(
                        "executor_failed",
                        executor_id=r.executor_id,
                        superstep=k,
                        details={
                            "attempts": r.attempts,
                            "duration_s": r.duration_s,
                            **_started(r),
                            **where,
                            **_failure(r),
                        },
                    )
                )
        if isinstance(report.error, StateConflictError):
            out.append(
                WorkflowEvent("state_conflict", superstep=k, details={"error": str(report.error)})
            )
        return out
    by_id = {r.executor_id: r for r in results}
    for eid in report.activated:
        r = by_id[eid]
        details: dict[str, Any] = {"duration_s": r.duration_s}
        if r.started_at is not None:
            details["started_at"] = r.started_at
        details["attempts"] = r.attempts
        details["pool"] = graph.nodes[eid].placement.pool
        if hosts is not None and eid in hosts:
            details["host"] = hosts[eid]
        if r.attempts > 1:
            retried = {**details, "failures": [f.to_json() for f in r.failures]}
            out.append(
                WorkflowEvent("executor_retried", executor_id=eid, superstep=k, details=retried)
            )
        if r.error is None:
            out.append(
                WorkflowEvent("executor_completed", executor_id=eid, superstep=k, details=details)
            )
        else:
            details = {**details, **_failure(r)}
            kind = "executor_skipped"
            if r.fallback is not None:
                kind = "executor_fallback"
                details["fallback"] = r.fallback
            out.append(WorkflowEvent(kind, executor_id=eid, superstep=k, details=details))
    for e in report.events:
        out.append(
            WorkflowEvent(e.type, data=codec.decode(e.data), executor_id=e.executor_id, superstep=k)
        )
    for o in report.outputs:
        out.append(
            WorkflowEvent(
                "output", data=codec.decode(o.data), executor_id=o.executor_id, superstep=k
            )
        )
    for req in report.requests:
        out.append(
            WorkflowEvent(
                "request_info",
                data=codec.decode(req.data),
                executor_id=req.executor_id,
                superstep=k,
                request_id=req.request_id,
                details={"response_type": req.response_type},
            )
        )
    for d in report.dropped:
        out.append(
            WorkflowEvent(
                "message_dropped",
                data=codec.decode(d.data),
                executor_id=d.source,
                superstep=k,
                details={"reason": d.reason},
            )
        )
    edges: list[list[Any]] = []  # a loop costs less than a comprehension for a few edges
    for source, target, n in report.edges:
        edges.append([source, target, n])
    out.append(
        WorkflowEvent(
            "superstep_completed",
            superstep=k,
            details={
                "activated": list(report.activated),
                "delivered": report.delivered,
                "edges": edges,
                "digest": report.step_digest,
            },
        )
    )
    return out


def _failure(r: ActivationResult) -> dict[str, Any]:
    """What an executor event tells of a failed activation: the last attempt's error
    (message, qualified type, traceback) and why each attempt failed."""
    assert r.error is not None
    return {
        "error": r.error.message,
        "type": r.error.qualified_type,
        "traceback": r.error.traceback,
        "failures": [f.to_json() for f in r.failures],
    }


def final_events(state: RunState) -> list[WorkflowEvent]:
    """The closing events of a run (or of one continuation of it)."""
    out: list[WorkflowEvent] = []
    if state.error is not None:
        out.append(
            WorkflowEvent(
                "failed",
                data=state.error.message,
                superstep=state.superstep,
                details={
                    "type": state.error.type,
                    "executor_id": state.error.executor_id,
                    "error": state.error.to_json(),
                },
            )
        )
    out.append(WorkflowEvent("status", data=state.status.value, superstep=state.superstep))
    return out


def event_to_json(codec: JsonCodec, event: WorkflowEvent) -> dict[str, Any]:
    return {
        "type": event.type,
        "data": codec.encode(event.data),
        "executor_id": event.executor_id,
        "superstep": event.superstep,
        "request_id": event.request_id,
        "details": codec.encode(event.details),
    }


def event_from_json(codec: JsonCodec, d: dict[str, Any]) -> WorkflowEvent:
    return WorkflowEvent(
        type=str(d["type"]),
        data=codec.decode(d.get("data")),
        executor_id=d.get("executor_id"),
        superstep=d.get("superstep"),
        request_id=d.get("request_id"),
        details=codec.decode(d.get("details") or {}),
    )


def _started(r: ActivationResult) -> dict[str, float]:
    """``started_at`` of an activation's events, when its host said."""
    return {} if r.started_at is None else {"started_at": r.started_at}
