"""The superstep algorithm: pure functions over frozen data.

``start`` makes the first run state, ``plan`` says which executors run in the
next superstep and with which messages, ``commit`` folds their results into the
next run state (or fails the superstep as a whole), ``respond`` adds human
responses. No I/O, no clocks, no mutation of arguments.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

from runtime.engine._codec import canonical_chunks, canonical_json, digest
from runtime.engine._graph import FanInGroup, Graph
from runtime.engine._model import (
    EMPTY_TRACE_HASH,
    INPUT_SOURCE,
    RESPONSE_SOURCE,
    Activation,
    ActivationResult,
    ActivationStatus,
    ErrorInfo,
    EventRecord,
    ExecutorActivity,
    Message,
    MessageKind,
    OutputRecord,
    PendingRequest,
    RunState,
    RunStatus,
    SentMessage,
)
from runtime.errors import (
    ConvergenceError,
    ExecutorFailedError,
    RequestError,
    RunCancelledError,
    StalledError,
    StateConflictError,
    UndeliverableMessageError,
)

__all__ = [
    "LIVELOCK_WINDOW",
    "Dropped",
    "SuperstepReport",
    "cancel",
    "commit",
    "derive_seed",
    "diagnose_stall",
    "message_digest",
    "message_digests",
    "plan",
    "respond",
    "start",
]

LIVELOCK_WINDOW = 64
"""How many recent barrier configurations are remembered to recognise a livelock."""


@dataclass(frozen=True, slots=True)
class Dropped:
    source: str
    reason: str
    data: Any


@dataclass(slots=True)
class SuperstepReport:
    """What a committed (or failed) superstep did, in canonical order.

    A plain record, not frozen like the run state: ``commit`` builds one for its caller
    to read once (events, telemetry); nothing keeps it, hashes it or persists it, and a
    frozen dataclass's ``__init__`` sets each field through ``object.__setattr__``,
    which made building it a large part of a small superstep's commit."""

    superstep: int
    activated: tuple[str, ...]
    delivered: int
    outputs: tuple[OutputRecord, ...] = ()
    events: tuple[EventRecord, ...] = ()
    requests: tuple[PendingRequest, ...] = ()
    dropped: tuple[Dropped, ...] = ()
    edges: tuple[tuple[str, str, int], ...] = ()
    """``(source, target, messages)`` of each edge a message sent in this superstep went
    along, sorted by source, then target: a fan-out's message counts once per target, a
    message into a fan-in group when it is sent; dropped messages and what a fallback
    is given count nowhere."""
    skipped: tuple[ActivationResult, ...] = ()
    fallbacks: tuple[ActivationResult, ...] = ()
    retried: tuple[ActivationResult, ...] = ()
    written: tuple[str, ...] = ()
    fan_in_flushed: tuple[str, ...] = ()
    step_digest: str = ""
    error: Exception | None = None
    committed: bool = True
    """False when the superstep failed as a whole and nothing of it was committed."""


def start(
    graph: Graph,
    data: Any,
    *,
    run_id: str,
    seed: int = 0,
) -> RunState:
    """The run state before superstep 1: the (encoded) input waits for the start executor."""
    state = {
        k: graph.codec.encode(s.initial)
        for k, s in graph.state_keys.items()
        if s.initial is not None
    }
    msg = Message(INPUT_SOURCE, graph.start, data, 0, 0)
    return RunState(
        run_id=run_id,
        workflow=graph.name,
        graph_signature=graph.signature,
        inbox=(msg,),
        state=state,
        state_digest=_state_digest(state),
        trace_hash=EMPTY_TRACE_HASH,
        seed=seed,
        external_seq=1,
    )


def respond(run_state: RunState, graph: Graph, responses: Mapping[str, Any]) -> RunState:
    """Add encoded responses to pending requests; they are delivered in the next superstep.

    Raises ``RequestError`` when an id names no pending request. Type checks of the
    response value are the caller's (it holds the live value).
    """
    if run_state.status.is_final:
        raise RequestError(
            f"run {run_state.run_id!r} has ended ({run_state.status.value}); it takes no responses"
        )
    unknown = [rid for rid in responses if rid not in run_state.pending]
    if unknown:
        known = ", ".join(sorted(run_state.pending)) or "none"
        raise RequestError(f"no pending request with id {unknown[0]!r} (pending: {known})")
    pending = dict(run_state.pending)
    inbox = list(run_state.inbox)
    seq = run_state.external_seq
    for rid in sorted(responses, key=lambda r: (run_state.pending[r].superstep, r)):
        req = pending.pop(rid)
        inbox.append(
            Message(
                RESPONSE_SOURCE,
                req.executor_id,
                {"request": req.data, "response": responses[rid]},
                run_state.superstep,
                seq,
                kind=MessageKind.RESPONSE,
                request_id=rid,
            )
        )
        seq += 1
    return replace(
        run_state,
        inbox=tuple(inbox),
        pending=pending,
        external_seq=seq,
        status=RunStatus.RUNNING,
        error=None,
    )


def cancel(run_state: RunState) -> RunState:
    """The run state of a run cancelled before superstep ``superstep + 1`` committed:
    the last barrier's state, status ``cancelled``."""
    return replace(
        run_state,
        status=RunStatus.CANCELLED,
        error=ErrorInfo.of(
            RunCancelledError("the run was cancelled"), superstep=run_state.superstep + 1
        ),
    )


def fail(run_state: RunState, error: BaseException) -> RunState:
    """The run state of a run that a driver gives up on before superstep ``superstep +
    1`` committed (no live host for an executor, say): the last barrier's state, status
    ``failed``, ``error`` as the reason, in that superstep."""
    return replace(
        run_state,
        status=RunStatus.FAILED,
        error=ErrorInfo.of(error, superstep=run_state.superstep + 1),
    )


_FAN_IN = MessageKind.FAN_IN
_EXTERNAL = (INPUT_SOURCE, RESPONSE_SOURCE)


def _canonical_key(graph: Graph) -> Callable[[Message], tuple[int, int, int, int]]:
    """The sort key of the canonical order among one target's messages: external
    inputs first, then (sender's position in the executor order, superstep sent,
    send sequence), then fan-in lists by group order."""
    nodes = graph.nodes

    def key(m: Message) -> tuple[int, int, int, int]:
        if m.kind is _FAN_IN:
            return (2, m.group, m.superstep, m.seq)
        source = m.source
        if source in _EXTERNAL:
            return (0, 0, m.superstep, m.seq)
        node = nodes.get(source)
        return (1, node.index if node is not None else -1, m.superstep, m.seq)

    return key


def plan(run_state: RunState, graph: Graph, *, timestamp: float) -> tuple[Activation, ...]:
    """The activations of superstep ``run_state.superstep + 1``, in executor order.

    Each executor with messages is activated once; its messages are in canonical
    order: external inputs first, then by (sender's position in the executor
    order, superstep sent, send sequence), then fan-in lists by group order.
    """
    if not run_state.inbox:
        return ()
    by_target: dict[str, list[Message]] = {}
    for m in run_state.inbox:
        by_target.setdefault(m.target, []).append(m)
    k = run_state.superstep + 1
    key = _canonical_key(graph)
    out: list[Activation] = []
    for target in sorted(by_target, key=graph.index_of):
        msgs = by_target[target]
        if len(msgs) > 1:
            msgs.sort(key=key)
        out.append(
            Activation(
                run_id=run_state.run_id,
                superstep=k,
                executor_id=target,
                messages=tuple(msgs),
                timestamp=timestamp,
                seed=run_state.seed,
            )
        )
    return tuple(out)


def derive_seed(run_seed: int, superstep: int, executor_id: str) -> int:
    """The seed of ``ctx.random()`` for one (run, superstep, executor)."""
    return int(digest(str(run_seed), str(superstep), executor_id)[:16], 16)


_INLINE_PAYLOAD = 256
"""Payloads whose canonical JSON is at most this long enter a message digest as text;
longer ones as ``#`` + the digest of the text (a shared payload is hashed once)."""


def _payload_part(data: Any) -> str:
    text = canonical_json(data)
    # "#" never starts JSON text, so a hashed payload cannot pass for an inline one
    return text if len(text) <= _INLINE_PAYLOAD else "#" + digest(text)


def message_digest(m: Message, _memo: dict[int, str] | None = None) -> str:
    """Digest of a message's identity and content, independent of the superstep number:
    the digest of (source, target, send sequence, kind, request id, payload), where
    the payload is its canonical JSON, or ``#`` + that text's digest when it is longer
    than 256 characters. One hash per small message.

    ``_memo`` (id of data -> payload part) lets a caller that digests many messages
    sharing one payload (a fan-out) serialise and hash it once.
    """
    if _memo is None:
        payload = _payload_part(m.data)
    else:
        key = id(m.data)
        cached = _memo.get(key)
        if cached is None:
            cached = _memo[key] = _payload_part(m.data)
        payload = cached
    # MessageKind is a StrEnum: the member joins as its value
    return digest(m.source, m.target, str(m.seq), m.kind, m.request_id or "", payload)


_KIND_TEXT = {k: k.value for k in MessageKind}


def message_digests(messages: Iterable[Message], _memo: dict[int, str] | None = None) -> list[str]:
    """``message_digest`` of each message, in order: the same digests in one loop
    without the per-message calls (a barrier digests every delivered message). A
    payload several of them share (a fan-out) is serialised and hashed once; pass the
    same ``_memo`` to calls over parts of one set of messages for the same effect."""
    chunks = canonical_chunks
    join = "".join
    blake2b = hashlib.blake2b
    kinds = _KIND_TEXT
    memo: dict[int, str] = {} if _memo is None else _memo
    out: list[str] = []
    append = out.append
    try:
        for m in messages:
            data = m.data
            payload = memo.get(id(data))
            if payload is None:
                text = join(chunks(data, 0))  # canonical_json(data)
                # as in _payload_part
                payload = text if len(text) <= _INLINE_PAYLOAD else "#" + digest(text)
                memo[id(data)] = payload
            # the text digest() hashes: the parts joined with NUL
            rid = m.request_id or ""
            text = f"{m.source}\0{m.target}\0{m.seq}\0{kinds[m.kind]}\0{rid}\0{payload}"
            append(blake2b(text.encode(), digest_size=16).hexdigest())
    except RecursionError as exc:  # as canonical_json reports a cycle
        raise ValueError("Circular reference detected") from exc
    return out


def commit(
    run_state: RunState,
    graph: Graph,
    activations: Sequence[Activation],
    results: Iterable[ActivationResult],
    *,
    delivered_digests: Sequence[str] | None = None,
) -> tuple[RunState, SuperstepReport]:
    """Fold the results of the planned superstep into the next run state.

    All or nothing: a failed activation (policy ``fail``), a state conflict or an
    undeliverable message in strict mode fails the run and commits nothing of the
    superstep — the returned state equals ``run_state`` except for its status, its
    error and its ``superstep``, which names the superstep that failed.

    ``delivered_digests``: ``message_digests`` of the activations' messages (in
    activation order), when the caller has them already; the in-process driver
    computes them while the activations run instead of in the barrier.

    The steps, in order: the results in activation order (``_in_order``), the first
    failed one (``_first_failure``), the shared state (``_merge_state``), the messages
    sent, outputs, events and requests (``_effects``), duplicate request ids, strict
    routing, fan-in buffering and flushing (``_fan_in``), the executors' bookkeeping,
    the trace (``_trace``) and the run's status (``_termination``).
    """
    k = run_state.superstep + 1
    ordered = _in_order(activations, results, k)
    activated = tuple(a.executor_id for a in activations)
    delivered = 0
    for a in activations:
        delivered += len(a.messages)

    failure, ok, unusual = _first_failure(ordered, k)
    if failure is not None:
        exc, err, eid = failure
        return _failed(run_state, k, activated, delivered, exc, eid, cause=err)

    new_state, written, conflict = _merge_state(run_state.state, graph, ok)
    if conflict is not None:
        return _failed(run_state, k, activated, delivered, conflict, None)

    fx = _effects(ordered, activations, graph, k)
    duplicate = _duplicate_request(run_state, fx.requests) if fx.requests else None
    if duplicate is not None:
        return _failed(run_state, k, activated, delivered, duplicate[0], duplicate[1])
    if fx.dropped and graph.strict_routing:
        d = fx.dropped[0]
        undeliverable = UndeliverableMessageError(
            f"strict routing: message from {d.source!r} dropped: {d.reason}"
        )
        return _failed(run_state, k, activated, delivered, undeliverable, d.source)

    inbox = fx.inbox
    if fx.buffers is not None or run_state.fan_in:
        fan_in, rounds, flushed = _fan_in(run_state, graph, fx.buffers, inbox, k)
    else:
        fan_in, rounds, flushed = run_state.fan_in, run_state.fan_in_rounds, []
    pending, snapshots, activity = _bookkeeping(run_state, ordered, ok, fx.requests, k)

    if delivered_digests is None:
        delivered_digests = message_digests([m for a in activations for m in a.messages])
    elif len(delivered_digests) != delivered:
        raise ValueError(
            f"commit of superstep {k}: {len(delivered_digests)} delivered digests "
            f"for {delivered} messages"
        )
    state_digest = run_state.state_digest if not written else _state_digest(new_state)
    step, trace_hash, recent = _trace(
        run_state, k, activated, delivered_digests, state_digest, fx.outputs
    )
    status, error, report_error = _termination(
        graph, k, inbox, pending, fan_in, activity, rounds, state_digest, recent
    )

    new_run_state = RunState(
        run_state.run_id,
        run_state.workflow,
        run_state.graph_signature,
        k,
        status,
        tuple(inbox),
        fan_in,
        rounds,
        new_state,
        pending,
        snapshots,
        activity,
        state_digest,
        trace_hash,
        recent,
        run_state.seed,
        run_state.external_seq,
        error,
        run_state.schema_version,
    )
    report = SuperstepReport(
        superstep=k,
        activated=activated,
        delivered=delivered,
        outputs=tuple(fx.outputs),
        events=tuple(fx.events),
        requests=tuple(fx.requests),
        dropped=tuple(fx.dropped),
        edges=_edge_counts(fx.edges),
        written=written,
        fan_in_flushed=tuple(flushed),
        step_digest=step,
        error=report_error,
    )
    if unusual:
        report.skipped = tuple(r for r in ordered if r.status is ActivationStatus.SKIPPED)
        report.fallbacks = tuple(r for r in ordered if r.status is ActivationStatus.FALLBACK)
        report.retried = tuple(r for r in ordered if r.attempts > 1)
    return new_run_state, report


def _in_order(
    activations: Sequence[Activation], results: Iterable[ActivationResult], k: int
) -> list[ActivationResult]:
    """The results in activation order; ``ValueError`` when one is missing."""
    by_id = {r.executor_id: r for r in results}
    ordered: list[ActivationResult] = []
    for a in activations:
        r = by_id.get(a.executor_id)
        if r is None:
            missing = [x.executor_id for x in activations if x.executor_id not in by_id]
            raise ValueError(f"commit of superstep {k} lacks results for {missing}")
        ordered.append(r)
    return ordered


def _first_failure(
    ordered: Sequence[ActivationResult], k: int
) -> tuple[tuple[ExecutorFailedError, ErrorInfo | None, str] | None, list[ActivationResult], bool]:
    """(the first failed activation's error, its cause and executor — or None; the OK
    results; whether any result is other than a first-attempt OK)."""
    ok: list[ActivationResult] = []
    unusual = False
    for r in ordered:
        if r.status is ActivationStatus.OK:
            ok.append(r)
            if r.attempts > 1:
                unusual = True
        elif r.status is ActivationStatus.FAILED:
            err = r.error
            exc = ExecutorFailedError(r.executor_id, k, r.attempts, str(err) if err else "failed")
            return (exc, err, r.executor_id), ok, unusual
        else:
            unusual = True
    return None, ok, unusual


@dataclass(slots=True)
class _Effects:
    """What a superstep's results produce besides state writes, in canonical order."""

    inbox: list[Message]
    buffers: dict[int, dict[str, list[SentMessage]]] | None
    """Fan-in group -> source -> messages sent into the group in this superstep (as
    sent: ``_fan_in`` makes a ``Message`` only of what stays buffered)."""
    dropped: list[Dropped]
    outputs: list[OutputRecord]
    events: list[EventRecord]
    requests: list[PendingRequest]
    edges: dict[tuple[str, str], int]
    """(source, target) -> messages routed along that edge."""


def _effects(
    ordered: Sequence[ActivationResult],
    activations: Sequence[Activation],
    graph: Graph,
    k: int,
) -> _Effects:
    """Route the messages sent into the next inbox and the fan-in buffers, counting them
    per edge; collect outputs, events and requests; re-route a fallback's messages."""
    groups = graph.groups
    fx = _Effects([], None, [], [], [], [], {})
    inbox = fx.inbox
    edges = fx.edges
    for r in ordered:
        eid = r.executor_id
        if r.status is ActivationStatus.OK:
            for sent in r.sent:
                if not sent.deliveries:
                    fx.dropped.append(Dropped(eid, sent.drop_reason or "no route", sent.data))
                    continue
                for target, gi in sent.deliveries:
                    if isinstance(groups[gi], FanInGroup):
                        if fx.buffers is None:
                            fx.buffers = {}
                        fx.buffers.setdefault(gi, {}).setdefault(eid, []).append(sent)
                    else:
                        inbox.append(Message(eid, target, sent.data, k, sent.seq, group=gi))
                    edge = (eid, target)
                    edges[edge] = edges.get(edge, 0) + 1
            for o in r.outputs:
                fx.outputs.append(OutputRecord(eid, o))
            fx.events.extend(r.events)
            fx.requests.extend(r.requests)
        elif r.status is ActivationStatus.FALLBACK and r.fallback is not None:
            # the fallback gets what the failed executor was given: its messages and
            # fan-in lists (as lists); a response belongs to the request's executor only
            act = next(a for a in activations if a.executor_id == eid)
            for seq, orig in enumerate(act.messages):
                if orig.kind is MessageKind.RESPONSE:
                    fx.dropped.append(
                        Dropped(
                            eid,
                            f"a response to {orig.request_id!r} cannot go to a fallback",
                            orig.data,
                        )
                    )
                    continue
                inbox.append(Message(eid, r.fallback, orig.data, k, seq))
    return fx


def _edge_counts(edges: dict[tuple[str, str], int]) -> tuple[tuple[str, str, int], ...]:
    """``SuperstepReport.edges`` from the counts per (source, target)."""
    if len(edges) == 1:  # as in most supersteps: no list to build and sort
        for (source, target), n in edges.items():
            return ((source, target, n),)
    return tuple(sorted([(source, target, n) for (source, target), n in edges.items()]))


def _duplicate_request(
    run_state: RunState, requests: Sequence[PendingRequest]
) -> tuple[RequestError, str] | None:
    """The error for the first request whose id is pending already (or asked twice)."""
    seen: set[str] = set()
    for req in requests:
        if req.request_id in run_state.pending or req.request_id in seen:
            duplicate = RequestError(
                f"request id {req.request_id!r} (from {req.executor_id!r}) is already pending; "
                "request ids must be unique within a run"
            )
            return duplicate, req.executor_id
        seen.add(req.request_id)
    return None


def _fan_in(
    run_state: RunState,
    graph: Graph,
    buffers: dict[int, dict[str, list[SentMessage]]] | None,
    inbox: list[Message],
    k: int,
) -> tuple[dict[int, dict[str, tuple[Message, ...]]], dict[int, tuple[int, int]], list[str]]:
    """Buffer the messages sent into fan-in groups, and flush (into ``inbox``) the groups
    every source has contributed to: (the buffers left, the rounds, the flushed targets).
    Called when something is buffered or was sent into a fan-in group. What this
    superstep sent into a group that flushes goes straight into the fan-in list; only
    what stays buffered becomes a ``Message`` of the buffers."""
    groups = graph.groups
    fan_in = run_state.fan_in
    rounds = run_state.fan_in_rounds
    flushed: list[str] = []
    sent_now = buffers or {}
    merged: dict[int, dict[str, tuple[Message, ...]]] = {g: dict(b) for g, b in fan_in.items()}
    for gi, by_src in sent_now.items():
        buf = merged.setdefault(gi, {})
        for src in by_src:
            buf.setdefault(src, ())  # a new source's place in the buffers' order
    for g in sorted(merged):
        group = groups[g]
        assert isinstance(group, FanInGroup)
        buf = merged[g]
        new = sent_now.get(g, {})
        if not all(buf.get(src) or new.get(src) for src in group.sources):
            for src, sent in new.items():
                buf[src] = (
                    *buf[src],
                    *[Message(src, group.target, s.data, k, s.seq, group=g) for s in sent],
                )
            continue
        data: list[Any] = []
        parts: list[str] = []
        for src in group.sources:
            for m in buf.get(src, ()):
                data.append(m.data)
                parts.append(m.source)
            for s in new.get(src, ()):
                data.append(s.data)
                parts.append(src)
        inbox.append(
            Message(
                f"$fan_in:{g}",
                group.target,
                data,
                k,
                0,
                kind=MessageKind.FAN_IN,
                group=g,
                parts=tuple(parts),
            )
        )
        merged[g] = {}
        flushed.append(group.target)
        if rounds is run_state.fan_in_rounds:
            rounds = dict(rounds)
        rounds[g] = (rounds.get(g, (0, 0))[0] + 1, k)
    fan_in = {g: b for g, b in merged.items() if b}
    return fan_in, rounds, flushed


def _bookkeeping(
    run_state: RunState,
    ordered: Sequence[ActivationResult],
    ok: Sequence[ActivationResult],
    new_requests: Sequence[PendingRequest],
    k: int,
) -> tuple[dict[str, PendingRequest], dict[str, Any], dict[str, ExecutorActivity]]:
    """The pending requests, executor snapshots and activity after the superstep."""
    pending = run_state.pending
    if new_requests:
        pending = dict(pending)
        for req in new_requests:
            pending[req.request_id] = req
    snapshots = run_state.snapshots
    for r in ok:
        if r.has_snapshot:
            if snapshots is run_state.snapshots:
                snapshots = dict(snapshots)
            snapshots[r.executor_id] = r.snapshot
    activity = dict(run_state.activity)
    record: ExecutorActivity | None = None
    for r in ordered:
        sent = len(r.sent)
        # an activation that did what the one before it did shares its (immutable)
        # record: the targets of a fan-out mostly do alike
        if record is None or record.status is not r.status or record.sent != sent:
            record = ExecutorActivity(k, r.status, sent)
        activity[r.executor_id] = record
    return pending, snapshots, activity


def _trace(
    run_state: RunState,
    k: int,
    activated: tuple[str, ...],
    delivered_digests: Sequence[str],
    state_digest: str,
    outputs: Sequence[OutputRecord],
) -> tuple[str, str, tuple[str, ...]]:
    """(the step digest, the chained trace hash, the livelock memory with the
    configuration at the previous barrier: the messages delivered now, the fan-in
    buffers and the state as they were then)."""
    parts = [str(k), ",".join(activated), *delivered_digests, state_digest]
    for o in outputs:
        parts.append(canonical_json([o.executor_id, o.data]))
    step = digest(*parts)
    trace_hash = digest(run_state.trace_hash, step)
    recent = run_state.recent
    if run_state.superstep > 0:
        prev = _configuration(delivered_digests, run_state.fan_in, run_state.state_digest)
        recent = (*recent[1:], prev) if len(recent) >= LIVELOCK_WINDOW else (*recent, prev)
    return step, trace_hash, recent


def _termination(
    graph: Graph,
    k: int,
    inbox: Sequence[Message],
    pending: Mapping[str, PendingRequest],
    fan_in: dict[int, dict[str, tuple[Message, ...]]],
    activity: Mapping[str, ExecutorActivity],
    rounds: dict[int, tuple[int, int]],
    state_digest: str,
    recent: tuple[str, ...],
) -> tuple[RunStatus, ErrorInfo | None, Exception | None]:
    """The run's status after superstep ``k``: running while messages wait; else
    awaiting input, stalled (a fan-in waits for a source that is done) or completed;
    failed when the superstep bound is reached (livelock period named when found)."""
    if not inbox:
        if pending:
            return RunStatus.AWAITING_INPUT, None, None
        if fan_in:
            stalled = StalledError(diagnose_stall(graph, fan_in, activity, rounds=rounds))
            return RunStatus.STALLED, ErrorInfo.of(stalled, superstep=k), stalled
        return RunStatus.COMPLETED, None, None
    if graph.max_supersteps is not None and k >= graph.max_supersteps:
        now = _configuration(message_digests(inbox), fan_in, state_digest)
        # the most recent repetition gives the period (an older one, a multiple of it)
        period = recent[::-1].index(now) + 1 if now in recent else None
        conv = ConvergenceError(graph.max_supersteps, period)
        return RunStatus.FAILED, ErrorInfo.of(conv, superstep=k), conv
    return RunStatus.RUNNING, None, None


def _failed(
    run_state: RunState,
    k: int,
    activated: tuple[str, ...],
    delivered: int,
    exc: Exception,
    executor_id: str | None,
    *,
    cause: ErrorInfo | None = None,
) -> tuple[RunState, SuperstepReport]:
    """The superstep failed as a whole: nothing of it is committed. The run ends in
    superstep ``k`` (so its events, status and superstep count name the superstep that
    failed) with everything else as the last barrier committed it, trace hash included.
    ``cause``: the failed executor's error, kept in the run's error."""
    info = ErrorInfo.of(exc, executor_id, k, cause=cause)
    failed = replace(run_state, superstep=k, status=RunStatus.FAILED, error=info)
    return failed, SuperstepReport(k, activated, delivered, error=exc, committed=False)


def _configuration(
    pending_digests: Sequence[str],
    fan_in: Mapping[int, Mapping[str, tuple[Message, ...]]],
    state_digest: str,
) -> str:
    """Short digest of what is pending at a barrier, independent of the superstep number."""
    buffered = (
        message_digests(m for g in sorted(fan_in) for s in sorted(fan_in[g]) for m in fan_in[g][s])
        if fan_in
        else ()
    )
    return digest(*sorted(pending_digests), "|", *buffered, "|", state_digest)[:16]


def _merge_state(
    state: Mapping[str, Any], graph: Graph, ok: Sequence[ActivationResult]
) -> tuple[dict[str, Any], tuple[str, ...], StateConflictError | None]:
    writers: dict[str, list[ActivationResult]] = {}
    for r in ok:
        seen: set[str] = set()
        for w in r.writes:
            if w.key not in seen:
                seen.add(w.key)
                writers.setdefault(w.key, []).append(r)
    if not writers:
        return dict(state) if not isinstance(state, dict) else state, (), None
    new_state = dict(state)
    codec = graph.codec
    for key in sorted(writers):
        rs = writers[key]
        spec = graph.state_keys.get(key)
        if spec is not None and spec.reducer is not None:
            acc = codec.decode(state[key]) if key in state else codec.roundtrip(spec.initial)
            for r in rs:
                for w in r.writes:
                    if w.key == key:
                        acc = spec.reducer(acc, codec.decode(w.data))
            new_state[key] = codec.encode(acc)
            continue
        if len(rs) > 1:
            return (
                dict(state),
                (),
                StateConflictError(key, [r.executor_id for r in rs], rs[0].superstep),
            )
        last = [w for w in rs[0].writes if w.key == key][-1]
        if last.delete:
            new_state.pop(key, None)
        else:
            new_state[key] = last.data
    return new_state, tuple(sorted(writers)), None


def _state_digest(state: Mapping[str, Any]) -> str:
    if not state:
        return ""
    return digest(canonical_json(state))


def diagnose_stall(
    graph: Graph,
    fan_in: Mapping[int, Mapping[str, tuple[Message, ...]]],
    activity: Mapping[str, ExecutorActivity],
    *,
    rounds: Mapping[int, tuple[int, int]] | None = None,
) -> str:
    """Explain, per stuck fan-in, which round waits, which sources are missing and why
    each sent nothing into that round.

    ``rounds``: fan-in group -> (rounds flushed, superstep of the last flush), as
    ``RunState.fan_in_rounds`` keeps it; without it every group reads as never flushed.
    """
    parts: list[str] = []
    for g in sorted(fan_in):
        group = graph.groups[g]
        assert isinstance(group, FanInGroup)
        buf = fan_in[g]
        flushed, flushed_in = (rounds or {}).get(g, (0, 0))
        have = [s for s in group.sources if buf.get(s)]
        missing = [s for s in group.sources if not buf.get(s)]
        reasons = [f"{s!r} {_why_silent(activity.get(s), flushed, flushed_in)}" for s in missing]
        waiting = f"round {flushed + 1}"
        if flushed:
            waiting += f" (round {flushed} was flushed in superstep {flushed_in})"
        parts.append(
            f"fan-in into {group.target!r} (sources {list(group.sources)}) can never fill "
            f"{waiting}: it holds messages from {have} but nothing from {missing}: "
            + "; ".join(reasons)
        )
    return "run stalled: " + " | ".join(parts)


def _why_silent(act: ExecutorActivity | None, flushed: int, flushed_in: int) -> str:
    if act is None:
        return "was never activated (no message ever reached it)"
    s = act.last_superstep
    if act.status is ActivationStatus.SKIPPED:
        why = f"failed in superstep {s} and was skipped (on_failure=skip)"
    elif act.status is ActivationStatus.FALLBACK:
        why = f"failed in superstep {s}; its messages went to its fallback"
    elif act.sent == 0:
        why = f"was last activated in superstep {s} and sent nothing"
    else:
        why = f"was last activated in superstep {s} and sent {act.sent} message(s)"
    if flushed and s <= flushed_in:
        # not activated since the last flush, to which every source contributed: what it
        # sent into this fan-in went there
        return (
            f"{why}; what it sent into this fan-in went into round {flushed}, flushed in "
            f"superstep {flushed_in}, and it has not been activated since"
        )
    if act.status is ActivationStatus.OK and act.sent:
        # activated after the last flush (or before any): a message of it into this fan-in
        # would be in the buffer
        why += ", none of them into this fan-in"
    return why
