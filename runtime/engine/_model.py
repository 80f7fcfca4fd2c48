"""Frozen, versioned, JSON-serialisable data of the engine core.

These values are what runtimes exchange and persist: an in-process driver keeps
them in memory, the Dapr runtime sends them over pub/sub and stores them in the
state store. Functions in this package never mutate them; they return new ones.
"""

from __future__ import annotations

import enum
import hashlib
from collections.abc import Callable
from dataclasses import dataclass, field, fields
from typing import Any

from runtime.errors import CheckpointError

__all__ = [
    "EMPTY_TRACE_HASH",
    "SCHEMA_VERSION",
    "Activation",
    "ActivationResult",
    "ActivationStatus",
    "AttemptError",
    "Checkpoint",
    "ErrorInfo",
    "EventRecord",
    "ExecutorActivity",
    "Message",
    "MessageKind",
    "OutputRecord",
    "PendingRequest",
    "RunState",
    "RunStatus",
    "SentMessage",
    "StateWrite",
]

SCHEMA_VERSION = 1

INPUT_SOURCE = "$input"
"""Source id of the run input message."""
RESPONSE_SOURCE = "$response"
"""Source id of a human response."""

EMPTY_TRACE_HASH = hashlib.blake2b(b"", digest_size=16).hexdigest()
"""The trace hash of a run no superstep of which has committed: the digest of no bytes
(``digest("")``). Each committed superstep chains its digest onto the hash before it."""


class RunStatus(enum.StrEnum):
    RUNNING = "running"
    COMPLETED = "completed"
    AWAITING_INPUT = "awaiting_input"
    STALLED = "stalled"
    FAILED = "failed"
    CANCELLED = "cancelled"

    @property
    def is_final(self) -> bool:
        return self in (
            RunStatus.COMPLETED,
            RunStatus.STALLED,
            RunStatus.FAILED,
            RunStatus.CANCELLED,
        )


class MessageKind(enum.StrEnum):
    MESSAGE = "message"
    FAN_IN = "fan_in"
    RESPONSE = "response"


class ActivationStatus(enum.StrEnum):
    OK = "ok"
    FAILED = "failed"
    """Retries exhausted and the policy is ``fail``: the run fails."""
    SKIPPED = "skipped"
    """Retries exhausted and the policy is ``skip``: nothing of it is committed."""
    FALLBACK = "fallback"
    """Retries exhausted; its messages go to the fallback executor."""


@dataclass(frozen=True, slots=True)
class Message:
    """A message waiting for delivery (or delivered) to ``target``.

    ``data`` is the codec's JSON form. For ``FAN_IN`` messages ``data`` is a list
    of the buffered items' data and ``parts`` names their sources.
    """

    source: str
    target: str
    data: Any
    superstep: int
    """The superstep it was sent in (0 for external inputs)."""
    seq: int
    """The sender's send sequence within that superstep."""
    kind: MessageKind = MessageKind.MESSAGE
    group: int = -1
    """Edge group index that routed it (fan-in group for FAN_IN)."""
    request_id: str | None = None
    parts: tuple[str, ...] = ()

    def __init__(
        self,
        source: str,
        target: str,
        data: Any,
        superstep: int,
        seq: int,
        kind: MessageKind = MessageKind.MESSAGE,
        group: int = -1,
        request_id: str | None = None,
        parts: tuple[str, ...] = (),
    ) -> None:
        # slot setters, not object.__setattr__: W1 -1.9%, W2 -2.6% instructions (bench/README.md)
        s = _MESSAGE_SLOTS
        s[0](self, source)
        s[1](self, target)
        s[2](self, data)
        s[3](self, superstep)
        s[4](self, seq)
        s[5](self, kind)
        s[6](self, group)
        s[7](self, request_id)
        s[8](self, parts)

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "source": self.source,
            "target": self.target,
            "data": self.data,
            "superstep": self.superstep,
            "seq": self.seq,
        }
        if self.kind is not MessageKind.MESSAGE:
            out["kind"] = self.kind.value
        if self.group >= 0:
            out["group"] = self.group
        if self.request_id is not None:
            out["request_id"] = self.request_id
        if self.parts:
            out["parts"] = list(self.parts)
        return out

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> Message:
        return cls(
            source=d["source"],
            target=d["target"],
            data=d["data"],
            superstep=int(d["superstep"]),
            seq=int(d["seq"]),
            kind=MessageKind(d.get("kind", "message")),
            group=int(d.get("group", -1)),
            request_id=d.get("request_id"),
            parts=tuple(d.get("parts", ())),
        )


def _slot_setters(cls: type) -> tuple[Callable[[Any, Any], None], ...]:
    """The setters of a slotted dataclass's fields, in field order."""
    return tuple(cls.__dict__[f.name].__set__ for f in fields(cls))


_MESSAGE_SLOTS = _slot_setters(Message)


@dataclass(frozen=True, slots=True)
class PendingRequest:
    """A ``request_info`` waiting for a human (or external) response."""

    request_id: str
    executor_id: str
    superstep: int
    data: Any
    """The request payload (codec JSON form)."""
    response_type: str
    """Codec name of the expected response type (``int``, ``str``, ``pkg.Model``...)."""

    def to_json(self) -> dict[str, Any]:
        return {
            "request_id": self.request_id,
            "executor_id": self.executor_id,
            "superstep": self.superstep,
            "data": self.data,
            "response_type": self.response_type,
        }

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> PendingRequest:
        return cls(
            request_id=d["request_id"],
            executor_id=d["executor_id"],
            superstep=int(d["superstep"]),
            data=d["data"],
            response_type=d["response_type"],
        )


_SHORT_MODULES = frozenset({"builtins", "__main__", "runtime.errors"})
"""Modules whose exception classes are named without their module: Python's own, the
main script's (as Python's tracebacks name them) and superstep's (``runtime`` exports
every one of them)."""


@dataclass(frozen=True, slots=True)
class AttemptError:
    """Why one attempt of an activation failed."""

    attempt: int
    """1 for the first attempt."""
    type: str
    """The exception class's ``__qualname__``."""
    message: str
    module: str | None = None
    """The exception class's module (``builtins`` for Python's own)."""

    @property
    def qualified_type(self) -> str:
        return _qualified(self.module, self.type)

    def __str__(self) -> str:
        return f"{self.qualified_type}: {self.message}"

    def to_json(self) -> dict[str, Any]:
        return {
            "attempt": self.attempt,
            "type": self.type,
            "module": self.module,
            "message": self.message,
        }

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> AttemptError:
        return cls(int(d["attempt"]), str(d["type"]), str(d["message"]), d.get("module"))

    @classmethod
    def of(cls, attempt: int, exc: BaseException) -> AttemptError:
        kind = type(exc)
        return cls(attempt, kind.__qualname__, str(exc) or kind.__name__, kind.__module__)


def _qualified(module: str | None, qualname: str) -> str:
    return qualname if module is None or module in _SHORT_MODULES else f"{module}.{qualname}"


@dataclass(frozen=True, slots=True)
class ErrorInfo:
    """Why a run, or one activation, failed: the exception as data, JSON-serialisable.

    ``type`` and ``module`` name the exception's class, ``message`` is its text. A
    handler's exception also carries its formatted ``traceback`` (taken where it ran:
    on the Dapr runtime, in the executor host) and, for an activation, ``attempts``:
    why each of its failed attempts failed, in order. A run that ends because an
    executor failed has an ``ExecutorFailedError`` whose ``cause`` is that executor's
    error. ``str(error)`` reads ``Type: message``.
    """

    type: str
    """The exception class's ``__qualname__`` (``ValueError``, ``ExecutorFailedError``)."""
    message: str
    executor_id: str | None = None
    superstep: int | None = None
    module: str | None = None
    """The exception class's module (``builtins`` for Python's own); None when unknown."""
    traceback: str | None = None
    """The formatted traceback (``traceback.format_exception``) of a raised exception."""
    attempts: tuple[AttemptError, ...] = ()
    """An activation's failed attempts, in order (the last one is this error)."""
    cause: ErrorInfo | None = None
    """The error this one reports (an ``ExecutorFailedError``'s: the executor's)."""

    @property
    def qualified_type(self) -> str:
        """``module.qualname`` of the exception class; the bare name for Python's
        built-in exceptions, the main script's and superstep's own (``runtime.errors``)."""
        return _qualified(self.module, self.type)

    def __str__(self) -> str:
        return f"{self.qualified_type}: {self.message}"

    def to_json(self) -> dict[str, Any]:
        return {
            "type": self.type,
            "message": self.message,
            "executor_id": self.executor_id,
            "superstep": self.superstep,
            "module": self.module,
            "traceback": self.traceback,
            "attempts": [a.to_json() for a in self.attempts],
            "cause": self.cause.to_json() if self.cause is not None else None,
        }

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> ErrorInfo:
        """Reads every version of the record: the fields after ``superstep`` are
        optional (errors written before them have none)."""
        cause = d.get("cause")
        return cls(
            d["type"],
            d["message"],
            d.get("executor_id"),
            d.get("superstep"),
            module=d.get("module"),
            traceback=d.get("traceback"),
            attempts=tuple(AttemptError.from_json(a) for a in d.get("attempts") or ()),
            cause=cls.from_json(cause) if cause else None,
        )

    @classmethod
    def of(
        cls,
        exc: BaseException,
        executor_id: str | None = None,
        superstep: int | None = None,
        *,
        traceback: str | None = None,
        attempts: tuple[AttemptError, ...] = (),
        cause: ErrorInfo | None = None,
    ) -> ErrorInfo:
        """The record of ``exc``. The traceback is the caller's to format (formatting
        reads source files: no business of the pure engine)."""
        kind = type(exc)
        return cls(
            kind.__qualname__,
            str(exc) or kind.__name__,
            executor_id,
            superstep,
            module=kind.__module__,
            traceback=traceback,
            attempts=attempts,
            cause=cause,
        )


@dataclass(frozen=True, slots=True)
class Activation:
    """One executor's work in one superstep: its messages in canonical order."""

    run_id: str
    superstep: int
    executor_id: str
    messages: tuple[Message, ...]
    timestamp: float
    """Logical time of the superstep (``ctx.now()``), fixed when it was planned."""
    seed: int
    """The run's seed; ``ctx.random()`` derives its own per (run, superstep, executor)."""

    def to_json(self) -> dict[str, Any]:
        return {
            "run_id": self.run_id,
            "superstep": self.superstep,
            "executor_id": self.executor_id,
            "messages": [m.to_json() for m in self.messages],
            "timestamp": self.timestamp,
            "seed": self.seed,
        }

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> Activation:
        return cls(
            run_id=d["run_id"],
            superstep=int(d["superstep"]),
            executor_id=d["executor_id"],
            messages=tuple(Message.from_json(m) for m in d["messages"]),
            timestamp=float(d["timestamp"]),
            seed=int(d["seed"]),
        )


@dataclass(frozen=True, slots=True)
class SentMessage:
    """A message an activation sent, already routed by the sender."""

    seq: int
    data: Any
    deliveries: tuple[tuple[str, int], ...]
    """(target executor id, edge group index) pairs; empty when no edge accepted it."""
    target_id: str | None = None
    drop_reason: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "seq": self.seq,
            "data": self.data,
            "deliveries": [list(d) for d in self.deliveries],
            "target_id": self.target_id,
            "drop_reason": self.drop_reason,
        }

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> SentMessage:
        return cls(
            int(d["seq"]),
            d["data"],
            tuple((str(t), int(g)) for t, g in d["deliveries"]),
            d.get("target_id"),
            d.get("drop_reason"),
        )


@dataclass(frozen=True, slots=True)
class StateWrite:
    key: str
    data: Any
    """Codec JSON form; ``None`` together with ``delete=True`` deletes the key."""
    delete: bool = False

    def to_json(self) -> list[Any]:
        return [self.key, self.data, self.delete]

    @classmethod
    def from_json(cls, d: list[Any]) -> StateWrite:
        return cls(str(d[0]), d[1], bool(d[2]))


@dataclass(frozen=True, slots=True)
class OutputRecord:
    executor_id: str
    data: Any


@dataclass(frozen=True, slots=True)
class EventRecord:
    executor_id: str
    type: str
    data: Any

    def to_json(self) -> list[Any]:
        return [self.executor_id, self.type, self.data]

    @classmethod
    def from_json(cls, d: list[Any]) -> EventRecord:
        return cls(str(d[0]), str(d[1]), d[2])


@dataclass(frozen=True, slots=True)
class ActivationResult:
    """Everything one activation produced. Only an ``OK`` result's effects commit."""

    executor_id: str
    superstep: int
    status: ActivationStatus
    attempts: int = 1
    sent: tuple[SentMessage, ...] = ()
    outputs: tuple[Any, ...] = ()
    events: tuple[EventRecord, ...] = ()
    writes: tuple[StateWrite, ...] = ()
    requests: tuple[PendingRequest, ...] = ()
    snapshot: Any = None
    """Executor snapshot after the activation (``on_checkpoint_save``), if it has one."""
    has_snapshot: bool = False
    error: ErrorInfo | None = None
    """Why the activation failed (not ``OK``): its last attempt's error."""
    fallback: str | None = None
    duration_s: float = 0.0
    started_at: float | None = None
    """When the activation started on its host (Unix time, that host's clock): where
    its bar starts in a timeline. Not part of the run trace."""
    failures: tuple[AttemptError, ...] = ()
    """Why each failed attempt failed, in order: every attempt of a failed activation,
    the attempts before the one that succeeded of an ``OK`` one."""

    def to_json(self) -> dict[str, Any]:
        return {
            "schema_version": SCHEMA_VERSION,
            "executor_id": self.executor_id,
            "superstep": self.superstep,
            "status": self.status.value,
            "attempts": self.attempts,
            "sent": [m.to_json() for m in self.sent],
            "outputs": list(self.outputs),
            "events": [e.to_json() for e in self.events],
            "writes": [w.to_json() for w in self.writes],
            "requests": [r.to_json() for r in self.requests],
            "snapshot": self.snapshot,
            "has_snapshot": self.has_snapshot,
            "error": self.error.to_json() if self.error else None,
            "fallback": self.fallback,
            "duration_s": self.duration_s,
            "started_at": self.started_at,
            "failures": [f.to_json() for f in self.failures],
        }

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> ActivationResult:
        if d.get("schema_version") != SCHEMA_VERSION:
            raise ValueError(
                f"activation result has schema version {d.get('schema_version')!r}, "
                f"expected {SCHEMA_VERSION}"
            )
        return cls(
            executor_id=str(d["executor_id"]),
            superstep=int(d["superstep"]),
            status=ActivationStatus(d["status"]),
            attempts=int(d["attempts"]),
            sent=tuple(SentMessage.from_json(m) for m in d["sent"]),
            outputs=tuple(d["outputs"]),
            events=tuple(EventRecord.from_json(e) for e in d["events"]),
            writes=tuple(StateWrite.from_json(w) for w in d["writes"]),
            requests=tuple(PendingRequest.from_json(r) for r in d["requests"]),
            snapshot=d.get("snapshot"),
            has_snapshot=bool(d.get("has_snapshot", False)),
            error=ErrorInfo.from_json(d["error"]) if d.get("error") else None,
            fallback=d.get("fallback"),
            duration_s=float(d.get("duration_s", 0.0)),
            started_at=float(d["started_at"]) if d.get("started_at") is not None else None,
            # absent from the results of hosts built before it
            failures=tuple(AttemptError.from_json(f) for f in d.get("failures") or ()),
        )


@dataclass(frozen=True, slots=True)
class ExecutorActivity:
    """What an executor last did; used to explain stalls."""

    last_superstep: int
    status: ActivationStatus
    sent: int

    def to_json(self) -> list[Any]:
        return [self.last_superstep, self.status.value, self.sent]

    @classmethod
    def from_json(cls, d: list[Any]) -> ExecutorActivity:
        return cls(int(d[0]), ActivationStatus(d[1]), int(d[2]))


@dataclass(frozen=True, slots=True)
class RunState:
    """Everything needed to continue a run, as committed at the last barrier."""

    run_id: str
    workflow: str
    graph_signature: str
    superstep: int = 0
    """Number of committed supersteps; in a run that failed because superstep k committed
    nothing (status ``failed``, not a convergence error), k: the superstep that failed."""
    status: RunStatus = RunStatus.RUNNING
    inbox: tuple[Message, ...] = ()
    """Messages to deliver in the next superstep (external inputs included)."""
    fan_in: dict[int, dict[str, tuple[Message, ...]]] = field(default_factory=dict)
    """Fan-in group index -> source id -> buffered messages since the last flush."""
    fan_in_rounds: dict[int, tuple[int, int]] = field(default_factory=dict)
    """Fan-in group index -> (rounds flushed, superstep of the last flush), for the groups
    that have flushed; the stall diagnosis reads it."""
    state: dict[str, Any] = field(default_factory=dict)
    """Committed shared state: key -> codec JSON form."""
    pending: dict[str, PendingRequest] = field(default_factory=dict)
    snapshots: dict[str, Any] = field(default_factory=dict)
    """Executor id -> last committed executor snapshot."""
    activity: dict[str, ExecutorActivity] = field(default_factory=dict)
    state_digest: str = ""
    """Digest of ``state`` (maintained by ``commit``)."""
    trace_hash: str = EMPTY_TRACE_HASH
    """The committed supersteps' digests chained: ``digest(previous, step digest)``."""
    recent: tuple[str, ...] = ()
    """Short (16 hex digit) configuration digests of recent barriers, oldest first
    (livelock detection). Stored in JSON as one concatenated string."""
    seed: int = 0
    external_seq: int = 0
    """Sequence for external inputs (run input, responses)."""
    error: ErrorInfo | None = None
    schema_version: int = SCHEMA_VERSION

    def to_json(self) -> dict[str, Any]:
        """JSON form. A payload several pending messages share (a fan-out) is written
        once, in ``payloads``, and the messages refer to it by index (``data_ref``)."""
        msgs = [
            *self.inbox,
            *(m for buf in self.fan_in.values() for ms in buf.values() for m in ms),
        ]
        payloads: list[Any] = []
        refs: dict[int, int] = {}
        if len(msgs) > 1:
            seen: dict[int, int] = {}
            for m in msgs:
                seen[id(m.data)] = seen.get(id(m.data), 0) + 1
            for m in msgs:
                key = id(m.data)
                if seen[key] > 1 and key not in refs and isinstance(m.data, (dict, list)):
                    refs[key] = len(payloads)
                    payloads.append(m.data)

        def enc(m: Message) -> dict[str, Any]:
            out = m.to_json()
            ref = refs.get(id(m.data))
            if ref is not None:
                del out["data"]
                out["data_ref"] = ref
            return out

        return {
            "schema_version": self.schema_version,
            "run_id": self.run_id,
            "workflow": self.workflow,
            "graph_signature": self.graph_signature,
            "superstep": self.superstep,
            "status": self.status.value,
            "payloads": payloads,
            "inbox": [enc(m) for m in self.inbox],
            "fan_in": {
                str(g): {src: [enc(m) for m in ms] for src, ms in buf.items()}
                for g, buf in self.fan_in.items()
            },
            "fan_in_rounds": {str(g): list(r) for g, r in self.fan_in_rounds.items()},
            "state": self.state,
            "pending": [p.to_json() for p in self.pending.values()],
            "snapshots": self.snapshots,
            "activity": {k: v.to_json() for k, v in self.activity.items()},
            "state_digest": self.state_digest,
            "trace_hash": self.trace_hash,
            "recent": "".join(self.recent),
            "seed": self.seed,
            "external_seq": self.external_seq,
            "error": self.error.to_json() if self.error else None,
        }

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> RunState:
        if not isinstance(d, dict):
            raise CheckpointError("malformed run state: a run state is a JSON object")
        version = d.get("schema_version")
        if version != SCHEMA_VERSION:
            raise CheckpointError(
                f"run state has schema version {version!r}; this superstep reads version "
                f"{SCHEMA_VERSION}"
            )
        try:
            pending = [PendingRequest.from_json(p) for p in d["pending"]]
            payloads = list(d.get("payloads", ()))

            def dec(m: dict[str, Any]) -> Message:
                if "data_ref" in m:
                    m = {**m, "data": payloads[int(m["data_ref"])]}
                return Message.from_json(m)

            return cls(
                run_id=d["run_id"],
                workflow=d["workflow"],
                graph_signature=d["graph_signature"],
                superstep=int(d["superstep"]),
                status=RunStatus(d["status"]),
                inbox=tuple(dec(m) for m in d["inbox"]),
                fan_in={
                    int(g): {src: tuple(dec(m) for m in ms) for src, ms in b.items()}
                    for g, b in d["fan_in"].items()
                },
                # absent from run states written before it was kept
                fan_in_rounds={
                    int(g): (int(r[0]), int(r[1])) for g, r in d.get("fan_in_rounds", {}).items()
                },
                state=dict(d["state"]),
                pending={p.request_id: p for p in pending},
                snapshots=dict(d["snapshots"]),
                activity={k: ExecutorActivity.from_json(v) for k, v in d["activity"].items()},
                state_digest=d["state_digest"],
                trace_hash=d["trace_hash"],
                recent=_split16(d["recent"]),
                seed=int(d["seed"]),
                external_seq=int(d["external_seq"]),
                error=ErrorInfo.from_json(d["error"]) if d.get("error") else None,
            )
        except (KeyError, TypeError, ValueError, AttributeError, IndexError) as exc:
            raise CheckpointError(f"malformed run state: {exc!r}") from exc


def _split16(text: str) -> tuple[str, ...]:
    if not isinstance(text, str) or len(text) % 16:
        raise ValueError("recent digests must be a string of 16-character digests")
    return tuple(text[i : i + 16] for i in range(0, len(text), 16))


@dataclass(frozen=True, slots=True)
class Checkpoint:
    """A run state taken at a barrier, with what is needed to find and check it."""

    checkpoint_id: str
    workflow: str
    graph_signature: str
    created_at: float
    state: RunState
    schema_version: int = SCHEMA_VERSION

    @property
    def run_id(self) -> str:
        return self.state.run_id

    @property
    def superstep(self) -> int:
        return self.state.superstep

    def to_json(self) -> dict[str, Any]:
        return {
            "schema_version": self.schema_version,
            "checkpoint_id": self.checkpoint_id,
            "workflow": self.workflow,
            "graph_signature": self.graph_signature,
            "created_at": self.created_at,
            "run_state": self.state.to_json(),
        }

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> Checkpoint:
        if not isinstance(d, dict):
            raise CheckpointError("a checkpoint is a JSON object")
        version = d.get("schema_version")
        if version != SCHEMA_VERSION:
            raise CheckpointError(
                f"checkpoint has schema version {version!r}; this superstep reads version "
                f"{SCHEMA_VERSION}"
            )
        try:
            return cls(
                checkpoint_id=d["checkpoint_id"],
                workflow=d["workflow"],
                graph_signature=d["graph_signature"],
                created_at=float(d["created_at"]),
                state=RunState.from_json(d["run_state"]),
            )
        except KeyError as exc:
            raise CheckpointError(f"malformed checkpoint: missing {exc}") from exc
        except (TypeError, ValueError) as exc:
            raise CheckpointError(f"malformed checkpoint: {exc!r}") from exc
