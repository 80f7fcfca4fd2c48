"""The superstep algorithm: start, plan, commit, respond, stall and livelock diagnosis.

Everything here is pure: the tests build graphs and activation results by hand
and drive ``plan``/``commit`` like a runtime would, without executing handlers.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from runtime.engine import (
    EMPTY_TRACE_HASH,
    INPUT_SOURCE,
    RESPONSE_SOURCE,
    SCHEMA_VERSION,
    Activation,
    ActivationResult,
    ActivationStatus,
    AttemptError,
    Checkpoint,
    Edge,
    EdgeGroup,
    ErrorInfo,
    EventRecord,
    ExecutorNode,
    FanInGroup,
    FanOutGroup,
    Graph,
    JsonCodec,
    Message,
    MessageKind,
    PendingRequest,
    RunState,
    RunStatus,
    SentMessage,
    StateKey,
    StateWrite,
    SuperstepReport,
    commit,
    derive_seed,
    diagnose_stall,
    digest,
    plan,
    respond,
    route,
    start,
)
from runtime.errors import (
    CheckpointError,
    ConvergenceError,
    ExecutorFailedError,
    RequestError,
    StalledError,
    StateConflictError,
    UndeliverableMessageError,
)

# -- helpers ------------------------------------------------------------------------------

IDS = ("s", "a", "b", "c", "agg")
"""Executor order of the default test graph: the position is the canonical rank."""


def _graph(
    groups: Sequence[EdgeGroup] = (),
    *,
    ids: Sequence[str] = IDS,
    types: Mapping[str, tuple[Any, ...]] | None = None,
    state_keys: Mapping[str, StateKey] | None = None,
    max_supersteps: int | None = 100,
    strict: bool = False,
) -> Graph:
    types = types or {}
    nodes = tuple(
        ExecutorNode(
            id=eid,
            index=i,
            kind="test",
            input_types=types.get(eid, (int, str, list[int], list[str], dict[str, Any])),
        )
        for i, eid in enumerate(ids)
    )
    return Graph(
        name="algo",
        start=ids[0],
        executors=nodes,
        groups=tuple(groups),
        state_keys=dict(state_keys or {}),
        codec=JsonCodec(),
        max_supersteps=max_supersteps,
        strict_routing=strict,
    )


def _send(
    graph: Graph, source: str, seq: int, value: Any, target_id: str | None = None
) -> SentMessage:
    deliveries, reason = route(graph, source, value, target_id)
    return SentMessage(seq, graph.codec.encode(value), deliveries, target_id, reason)


def _sends(graph: Graph, source: str, *values: Any) -> tuple[SentMessage, ...]:
    return tuple(_send(graph, source, i, v) for i, v in enumerate(values))


def _ok(eid: str, k: int, **kw: Any) -> ActivationResult:
    return ActivationResult(executor_id=eid, superstep=k, status=ActivationStatus.OK, **kw)


def _writes(*pairs: tuple[str, Any]) -> tuple[StateWrite, ...]:
    return tuple(StateWrite(key, value) for key, value in pairs)


def _msg(
    source: str, target: str, data: Any, superstep: int = 1, seq: int = 0, **kw: Any
) -> Message:
    return Message(source, target, data, superstep, seq, **kw)


def _state(
    graph: Graph, *, inbox: Sequence[Message] = (), superstep: int = 1, **kw: Any
) -> RunState:
    """A run state after ``superstep`` committed supersteps, with ``inbox`` pending."""
    base = start(graph, 0, run_id="r")
    return replace(base, inbox=tuple(inbox), superstep=superstep, **kw)


def _acts(graph: Graph, rs: RunState) -> tuple[Activation, ...]:
    return plan(rs, graph, timestamp=1000.0)


Behaviour = Callable[[Activation], ActivationResult]


def _drive(
    graph: Graph, rs: RunState, behave: Mapping[str, Behaviour], limit: int = 200
) -> tuple[RunState, list[SuperstepReport]]:
    """Run plan/commit like a runtime until the status leaves RUNNING."""
    reports: list[SuperstepReport] = []
    for _ in range(limit):
        if rs.status is not RunStatus.RUNNING:
            break
        acts = _acts(graph, rs)
        rs, report = commit(rs, graph, acts, [behave[a.executor_id](a) for a in acts])
        reports.append(report)
    return rs, reports


def _silent(a: Activation) -> ActivationResult:
    return _ok(a.executor_id, a.superstep)


def _json_roundtrip_state(rs: RunState) -> RunState:
    return RunState.from_json(json.loads(json.dumps(rs.to_json())))


# -- start ---------------------------------------------------------------------------------


def test_start_puts_the_input_in_the_inbox_of_the_start_executor() -> None:
    g = _graph(state_keys={"n": StateKey("n", 5), "none": StateKey("none")})
    rs = start(g, {"x": 1}, run_id="run-1", seed=42)
    assert rs.superstep == 0
    assert rs.status is RunStatus.RUNNING
    assert rs.inbox == (Message(INPUT_SOURCE, "s", {"x": 1}, 0, 0),)
    assert rs.state == {"n": 5}  # keys without an initial value are absent
    assert rs.state_digest != ""
    assert rs.graph_signature == g.signature
    assert rs.seed == 42
    assert rs.external_seq == 1


# -- plan ----------------------------------------------------------------------------------


def test_plan_of_an_empty_inbox_is_empty() -> None:
    g = _graph()
    assert plan(_state(g), g, timestamp=0.0) == ()


def test_plan_of_the_start_state_activates_the_start_executor() -> None:
    g = _graph()
    rs = start(g, 7, run_id="r", seed=3)
    (act,) = plan(rs, g, timestamp=12.5)
    assert act == Activation("r", 1, "s", (Message(INPUT_SOURCE, "s", 7, 0, 0),), 12.5, 3)


def test_plan_activates_each_executor_once_in_executor_order() -> None:
    g = _graph()
    inbox = [
        _msg("s", "c", 1),
        _msg("s", "a", 2),
        _msg("b", "c", 3),
        _msg("s", "agg", 4),
        _msg("s", "b", 5),
    ]
    acts = _acts(g, _state(g, inbox=inbox))
    assert [a.executor_id for a in acts] == ["a", "b", "c", "agg"]
    assert [len(a.messages) for a in acts] == [1, 1, 2, 1]
    assert all(a.superstep == 2 for a in acts)


_CANONICAL_C_INBOX = [
    # the expected canonical order of messages to "c"
    Message(INPUT_SOURCE, "c", "input", 0, 0),
    Message(RESPONSE_SOURCE, "c", "resp-1", 1, 1, kind=MessageKind.RESPONSE, request_id="q1"),
    Message(RESPONSE_SOURCE, "c", "resp-2", 1, 2, kind=MessageKind.RESPONSE, request_id="q2"),
    _msg("s", "c", "s0", seq=0),
    _msg("s", "c", "s1", seq=1),
    _msg("a", "c", "a0", seq=0),
    _msg("a", "c", "a3", seq=3),
    _msg("a", "c", "a10", seq=10),
    _msg("b", "c", "b0", seq=0),
    _msg("agg", "c", "agg0", seq=0),
    Message("$fan_in:1", "c", ["x"], 1, 0, kind=MessageKind.FAN_IN, group=1, parts=("a",)),
    Message("$fan_in:4", "c", ["y"], 1, 0, kind=MessageKind.FAN_IN, group=4, parts=("b",)),
]


@given(st.permutations(_CANONICAL_C_INBOX))
def test_plan_orders_messages_canonically_whatever_the_inbox_order(
    inbox: list[Message],
) -> None:
    g = _graph()
    (act,) = _acts(g, _state(g, inbox=inbox))
    assert list(act.messages) == _CANONICAL_C_INBOX


def test_plan_orders_senders_by_executor_position_not_by_name() -> None:
    g = _graph(ids=("start", "zeta", "alpha", "t"))
    inbox = [_msg("alpha", "t", 1), _msg("zeta", "t", 2)]
    (act,) = _acts(g, _state(g, inbox=inbox))
    assert [m.source for m in act.messages] == ["zeta", "alpha"]


def test_plan_does_not_mutate_the_run_state() -> None:
    g = _graph()
    inbox = tuple(reversed(_CANONICAL_C_INBOX))
    rs = _state(g, inbox=inbox)
    before = copy.deepcopy(rs)
    _acts(g, rs)
    assert rs == before
    assert rs.inbox == inbox


def test_plan_carries_timestamp_and_run_seed() -> None:
    g = _graph()
    rs = _state(g, inbox=[_msg("s", "a", 1)], seed=99)
    (act,) = plan(rs, g, timestamp=55.0)
    assert (act.timestamp, act.seed, act.run_id) == (55.0, 99, "r")


def test_derive_seed_differs_per_superstep_and_executor_and_is_stable() -> None:
    seeds = {derive_seed(1, k, e) for k in (1, 2) for e in ("a", "b")}
    assert len(seeds) == 4
    assert derive_seed(1, 1, "a") == derive_seed(1, 1, "a")
    assert derive_seed(1, 1, "a") != derive_seed(2, 1, "a")


# -- commit: messages -------------------------------------------------------------------


def test_commit_routes_sent_messages_into_the_next_inbox() -> None:
    g = _graph([Edge(0, "s", "a"), Edge(1, "s", "b")])
    rs = start(g, 0, run_id="r")
    acts = _acts(g, rs)
    new, report = commit(rs, g, acts, [_ok("s", 1, sent=_sends(g, "s", "x", "y"))])
    assert new.superstep == 1
    assert new.status is RunStatus.RUNNING
    assert new.inbox == (
        Message("s", "a", "x", 1, 0, group=0),
        Message("s", "b", "x", 1, 0, group=1),
        Message("s", "a", "y", 1, 1, group=0),
        Message("s", "b", "y", 1, 1, group=1),
    )
    assert report.committed and report.activated == ("s",) and report.delivered == 1
    # delivered in the next superstep, never earlier
    assert [a.superstep for a in _acts(g, new)] == [2, 2]


def test_commit_requires_a_result_per_activation() -> None:
    g = _graph([Edge(0, "s", "a")])
    rs = _state(g, inbox=[_msg("s", "a", 1), _msg("s", "b", 1)])
    acts = _acts(g, rs)
    with pytest.raises(ValueError, match=r"lacks results for \['b'\]"):
        commit(rs, g, acts, [_ok("a", 2)])


def test_outputs_and_events_are_reported_in_executor_order() -> None:
    g = _graph()
    rs = _state(g, inbox=[_msg("s", "b", 1), _msg("s", "a", 1)])
    acts = _acts(g, rs)
    results = [
        _ok("b", 2, outputs=("b1", "b2"), events=(EventRecord("b", "e", 1),)),
        _ok("a", 2, outputs=("a1",), events=(EventRecord("a", "e", 2), EventRecord("a", "f", 3))),
    ]
    _, report = commit(rs, g, acts, results)
    assert [(o.executor_id, o.data) for o in report.outputs] == [
        ("a", "a1"),
        ("b", "b1"),
        ("b", "b2"),
    ]
    assert [(e.executor_id, e.data) for e in report.events] == [("a", 2), ("a", 3), ("b", 1)]


def test_dropped_messages_are_reported_with_reason() -> None:
    g = _graph([Edge(0, "a", "b", lambda v: False)])
    rs = _state(g, inbox=[_msg("s", "a", 1)])
    acts = _acts(g, rs)
    new, report = commit(rs, g, acts, [_ok("a", 2, sent=_sends(g, "a", 5))])
    assert len(report.dropped) == 1
    d = report.dropped[0]
    assert (d.source, d.data) == ("a", 5)
    assert "no edge from 'a' accepted a int" in d.reason
    assert new.status is RunStatus.COMPLETED


def test_strict_routing_fails_the_superstep_and_commits_nothing() -> None:
    g = _graph([Edge(0, "a", "b", lambda v: False)], strict=True)
    rs = _state(g, inbox=[_msg("s", "a", 1), _msg("s", "b", 2)])
    acts = _acts(g, rs)
    results = [
        _ok("a", 2, sent=_sends(g, "a", 5), writes=_writes(("k", 1))),
        _ok("b", 2, outputs=("out",)),
    ]
    new, report = commit(rs, g, acts, results)
    assert new == replace(rs, superstep=2, status=RunStatus.FAILED, error=new.error)
    assert new.error is not None and new.error.type == "UndeliverableMessageError"
    assert isinstance(report.error, UndeliverableMessageError)
    assert "'a'" in str(report.error)
    assert not report.committed
    assert report.outputs == ()


# -- commit: messages per edge -----------------------------------------------------------


def test_edges_count_a_fan_out_message_once_per_target() -> None:
    g = _graph([FanOutGroup(0, "s", ("a", "b", "c"))])
    rs = start(g, 0, run_id="r")
    _, report = commit(rs, g, _acts(g, rs), [_ok("s", 1, sent=_sends(g, "s", "x", "y"))])
    assert report.edges == (("s", "a", 2), ("s", "b", 2), ("s", "c", 2))


def test_edges_count_a_targeted_send_on_its_target_only() -> None:
    g = _graph([FanOutGroup(0, "s", ("a", "b"))])
    rs = start(g, 0, run_id="r")
    sent = (_send(g, "s", 0, "x", target_id="b"), _send(g, "s", 1, "y"))
    _, report = commit(rs, g, _acts(g, rs), [_ok("s", 1, sent=sent)])
    assert report.edges == (("s", "a", 1), ("s", "b", 2))


def test_edges_leave_out_dropped_messages() -> None:
    g = _graph([Edge(0, "a", "b", lambda v: v > 0)])
    rs = _state(g, inbox=[_msg("s", "a", 1)])
    _, report = commit(rs, g, _acts(g, rs), [_ok("a", 2, sent=_sends(g, "a", 0, 5, -1))])
    assert len(report.dropped) == 2
    assert report.edges == (("a", "b", 1),)
    _, report = commit(rs, g, _acts(g, rs), [_ok("a", 2, sent=_sends(g, "a", 0))])
    assert report.edges == ()


def test_edges_count_messages_into_a_fan_in_when_sent_not_when_flushed() -> None:
    g = _fan_in_graph()
    rs = _state(g, inbox=[_msg("s", "a", 0)])
    rs, report = commit(rs, g, _acts(g, rs), [_ok("a", 2, sent=_sends(g, "a", "a1", "a2"))])
    assert report.fan_in_flushed == ()
    assert report.edges == (("a", "agg", 2),)
    rs = replace(rs, status=RunStatus.RUNNING, error=None, inbox=(_msg("s", "b", 0, 2),))
    rs, report = commit(rs, g, _acts(g, rs), [_ok("b", 3, sent=_sends(g, "b", "b1"))])
    assert report.fan_in_flushed == ("agg",)
    assert report.edges == (("b", "agg", 1),)  # not the flushed list's three messages
    _, report = commit(rs, g, _acts(g, rs), [_ok("agg", 4)])
    assert report.edges == ()


def test_edges_are_sorted_by_source_then_target_name_not_executor_order() -> None:
    # executor order s, a, b, c, agg; names sort a, agg, b, c, s
    g = _graph([Edge(0, "s", "c"), Edge(1, "s", "agg"), Edge(2, "b", "a"), Edge(3, "a", "s")])
    rs = _state(g, inbox=[_msg("s", "s", 0), _msg("s", "a", 0), _msg("s", "b", 0)])
    results = [
        _ok("s", 2, sent=_sends(g, "s", 1, 2)),
        _ok("a", 2, sent=_sends(g, "a", 3)),
        _ok("b", 2, sent=_sends(g, "b", 4, 5, 6)),
    ]
    _, report = commit(rs, g, _acts(g, rs), results)
    assert report.edges == (("a", "s", 1), ("b", "a", 3), ("s", "agg", 2), ("s", "c", 2))


def test_edges_leave_out_what_a_skipped_or_fallback_activation_sent() -> None:
    g = _graph([Edge(0, "a", "c"), Edge(1, "b", "c")])
    rs = _state(g, inbox=[_msg("s", "a", 1), _msg("s", "b", 1)])
    error = ErrorInfo("RuntimeError", "boom", "a", 2)
    skipped = ActivationResult(
        "a", 2, ActivationStatus.SKIPPED, sent=_sends(g, "a", "lost"), error=error
    )
    fallback = ActivationResult(
        "b", 2, ActivationStatus.FALLBACK, sent=_sends(g, "b", "lost"), error=error, fallback="c"
    )
    new, report = commit(rs, g, _acts(g, rs), [skipped, fallback])
    assert [(m.source, m.target) for m in new.inbox] == [("b", "c")]  # the fallback's input
    assert report.edges == ()


def test_a_failed_superstep_reports_no_edges() -> None:
    g = _graph([Edge(0, "a", "b")])
    rs = _state(g, inbox=[_msg("s", "a", 1), _msg("s", "b", 1)])
    failed = ActivationResult(
        "b", 2, ActivationStatus.FAILED, error=ErrorInfo("RuntimeError", "boom", "b", 2)
    )
    _, report = commit(rs, g, _acts(g, rs), [_ok("a", 2, sent=_sends(g, "a", 1)), failed])
    assert not report.committed
    assert report.edges == ()


@settings(max_examples=60)
@given(
    st.lists(
        st.tuples(st.sampled_from(("s", "a", "b")), st.integers(-2, 2), st.booleans()),
        max_size=12,
    )
)
def test_edges_count_every_delivery_of_what_committed(
    sends: list[tuple[str, int, bool]],
) -> None:
    """Whatever is sent (conditional edges, a fan-out, a fan-in, targeted sends), the
    edges count each delivery of an OK activation's messages once, on its (source,
    target)."""
    g = _graph(
        [
            FanOutGroup(0, "s", ("a", "b")),
            Edge(1, "a", "c", lambda v: v >= 0),
            Edge(2, "a", "b", lambda v: v != 0),
            FanInGroup(3, ("a", "b"), "agg"),
            Edge(4, "b", "s"),
        ],
        types={"agg": (list[int],)},
    )
    rs = _state(g, inbox=[_msg("s", eid, 0) for eid in ("s", "a", "b")])
    by_source: dict[str, list[SentMessage]] = {"s": [], "a": [], "b": []}
    for source, value, targeted in sends:
        msgs = by_source[source]
        target = g.by_source[source][-1].targets[0] if targeted else None
        msgs.append(_send(g, source, len(msgs), value, target_id=target))
    results = [_ok(eid, 2, sent=tuple(msgs)) for eid, msgs in by_source.items()]
    _, report = commit(rs, g, _acts(g, rs), results)
    expected: dict[tuple[str, str], int] = {}
    for r in results:
        for sent in r.sent:
            for target, _ in sent.deliveries:
                expected[r.executor_id, target] = expected.get((r.executor_id, target), 0) + 1
    assert report.edges == tuple((s, t, n) for (s, t), n in sorted(expected.items()))
    delivered = sum(len(s.deliveries) for r in results for s in r.sent)
    assert sum(n for _, _, n in report.edges) == delivered


# -- commit: shared state ----------------------------------------------------------------


def test_one_writer_sets_the_value_and_the_state_digest() -> None:
    g = _graph()
    rs = _state(g, inbox=[_msg("s", "a", 1)])
    new, report = commit(rs, g, _acts(g, rs), [_ok("a", 2, writes=_writes(("k", {"v": 1})))])
    assert new.state == {"k": {"v": 1}}
    assert report.written == ("k",)
    assert new.state_digest != rs.state_digest


def test_one_writer_writing_twice_keeps_its_last_value() -> None:
    g = _graph()
    rs = _state(g, inbox=[_msg("s", "a", 1)])
    new, _ = commit(rs, g, _acts(g, rs), [_ok("a", 2, writes=_writes(("k", 1), ("k", 2)))])
    assert new.state == {"k": 2}


def test_unchanged_state_keeps_its_digest() -> None:
    g = _graph(state_keys={"k": StateKey("k", 1)})
    rs = start(g, 0, run_id="r")
    new, report = commit(rs, g, _acts(g, rs), [_ok("s", 1)])
    assert new.state == rs.state
    assert new.state_digest == rs.state_digest
    assert report.written == ()


def test_delete_removes_a_key() -> None:
    g = _graph()
    rs = _state(g, inbox=[_msg("s", "a", 1)], state={"k": 1, "j": 2})
    writes = (StateWrite("k", None, delete=True),)
    new, _ = commit(rs, g, _acts(g, rs), [_ok("a", 2, writes=writes)])
    assert new.state == {"j": 2}


def test_delete_of_a_missing_key_is_harmless() -> None:
    g = _graph()
    rs = _state(g, inbox=[_msg("s", "a", 1)])
    new, _ = commit(rs, g, _acts(g, rs), [_ok("a", 2, writes=(StateWrite("k", None, True),))])
    assert new.state == {} and new.status is RunStatus.COMPLETED


@pytest.mark.parametrize(
    ("writes", "expected"),
    [
        ((StateWrite("k", 5), StateWrite("k", None, delete=True)), {}),
        ((StateWrite("k", None, delete=True), StateWrite("k", 5)), {"k": 5}),
    ],
)
def test_last_write_of_the_one_writer_wins_between_set_and_delete(
    writes: tuple[StateWrite, ...], expected: dict[str, Any]
) -> None:
    g = _graph()
    rs = _state(g, inbox=[_msg("s", "a", 1)], state={"k": 1})
    new, _ = commit(rs, g, _acts(g, rs), [_ok("a", 2, writes=writes)])
    assert new.state == expected


def _concat(acc: Any, update: Any) -> Any:
    return [*acc, update]


def test_reducer_folds_writes_in_canonical_order_from_the_committed_value() -> None:
    g = _graph(state_keys={"log": StateKey("log", [], _concat)})
    rs = _state(
        g,
        inbox=[_msg("s", "c", 1), _msg("s", "a", 1), _msg("s", "b", 1)],
        state={"log": ["committed"]},
    )
    acts = _acts(g, rs)
    results = [
        _ok("c", 2, writes=_writes(("log", "c1"))),
        _ok("b", 2, writes=_writes(("log", "b1"), ("log", "b2"))),
        _ok("a", 2, writes=_writes(("log", "a1"))),
    ]
    new, report = commit(rs, g, acts, results)
    assert new.state == {"log": ["committed", "a1", "b1", "b2", "c1"]}
    assert report.written == ("log",)


def test_reducer_with_one_writer_folds_into_the_committed_value() -> None:
    g = _graph(state_keys={"n": StateKey("n", 0, lambda a, b: a + b)})
    rs = _state(g, inbox=[_msg("s", "a", 1)], state={"n": 10})
    new, _ = commit(rs, g, _acts(g, rs), [_ok("a", 2, writes=_writes(("n", 1)))])
    assert new.state == {"n": 11}


def test_reducer_starts_from_the_initial_value_when_nothing_is_committed() -> None:
    g = _graph(state_keys={"n": StateKey("n", 100, lambda a, b: a + b)})
    rs = _state(g, inbox=[_msg("s", "a", 1), _msg("s", "b", 1)], state={})
    new, _ = commit(
        rs,
        g,
        _acts(g, rs),
        [_ok("a", 2, writes=_writes(("n", 1))), _ok("b", 2, writes=_writes(("n", 2)))],
    )
    assert new.state == {"n": 103}


def test_many_writers_with_a_reducer_get_the_exact_total() -> None:
    ids = ("s", *(f"w{i:02d}" for i in range(40)))
    g = _graph(ids=ids, state_keys={"n": StateKey("n", 0, lambda a, b: a + b)})
    rs = _state(g, inbox=[_msg("s", w, 1) for w in ids[1:]], state={"n": 0})
    acts = _acts(g, rs)
    new, _ = commit(rs, g, acts, [_ok(w, 2, writes=_writes(("n", 1))) for w in ids[1:]])
    assert new.state == {"n": 40}


def test_reducer_values_cross_the_codec() -> None:
    g = _graph(state_keys={"m": StateKey("m", {}, lambda a, b: {**a, **b})})
    rs = _state(g, inbox=[_msg("s", "a", 1), _msg("s", "b", 1)], state={"m": {"$dict": {"$x": 1}}})
    new, _ = commit(
        rs,
        g,
        _acts(g, rs),
        [
            _ok("a", 2, writes=_writes(("m", {"y": 2}))),
            _ok("b", 2, writes=_writes(("m", {"z": 3}))),
        ],
    )
    assert g.codec.decode(new.state["m"]) == {"$x": 1, "y": 2, "z": 3}


def test_several_writers_without_reducer_fail_and_commit_nothing() -> None:
    g = _graph([Edge(0, "a", "c")], state_keys={"k": StateKey("k", 0)})
    rs = _state(
        g,
        inbox=[_msg("s", "b", 1), _msg("s", "a", 1), _msg("s", "agg", 1)],
        state={"k": 0, "other": "x"},
        pending={"p": PendingRequest("p", "s", 1, None, "int")},
    )
    acts = _acts(g, rs)
    results = [
        _ok("agg", 2, writes=_writes(("other", "y"))),
        _ok("b", 2, writes=_writes(("k", 2)), outputs=("b-out",)),
        _ok(
            "a",
            2,
            writes=_writes(("k", 1), ("unrelated", 5)),
            sent=_sends(g, "a", 9),
            requests=(PendingRequest("q", "a", 2, None, "int"),),
            snapshot={"x": 1},
            has_snapshot=True,
        ),
    ]
    new, report = commit(rs, g, acts, results)
    assert new.status is RunStatus.FAILED
    assert new == replace(rs, superstep=2, status=RunStatus.FAILED, error=new.error)
    assert new.error is not None
    assert new.error.type == "StateConflictError"
    assert new.error.superstep == 2
    err = report.error
    assert isinstance(err, StateConflictError)
    assert err.key == "k"
    assert err.writers == ["a", "b"]  # canonical order
    assert "'k'" in str(err) and "'a', 'b'" in str(err) and "reducer" in str(err)
    assert not report.committed
    assert report.outputs == () and report.requests == ()


def test_conflict_is_reported_even_when_other_keys_merge_cleanly() -> None:
    g = _graph(state_keys={"sum": StateKey("sum", 0, lambda a, b: a + b)})
    rs = _state(g, inbox=[_msg("s", "a", 1), _msg("s", "b", 1)], state={"sum": 0})
    results = [
        _ok("a", 2, writes=_writes(("sum", 1), ("zz", 1))),
        _ok("b", 2, writes=_writes(("sum", 1), ("zz", 2))),
    ]
    new, report = commit(rs, g, _acts(g, rs), results)
    assert isinstance(report.error, StateConflictError)
    assert report.error.key == "zz"
    assert new.state == {"sum": 0}


def test_writes_of_a_skipped_activation_do_not_count_as_a_writer() -> None:
    g = _graph()
    rs = _state(g, inbox=[_msg("s", "a", 1), _msg("s", "b", 1)])
    skipped = ActivationResult(
        "b",
        2,
        ActivationStatus.SKIPPED,
        attempts=3,
        writes=_writes(("k", 2)),
        error=ErrorInfo("RuntimeError", "boom", "b", 2),
    )
    new, report = commit(rs, g, _acts(g, rs), [_ok("a", 2, writes=_writes(("k", 1))), skipped])
    assert new.state == {"k": 1}
    assert report.committed


# -- commit: activation statuses ----------------------------------------------------------


def test_failed_activation_fails_the_run_and_commits_nothing() -> None:
    g = _graph([Edge(0, "a", "c")])
    rs = _state(g, inbox=[_msg("s", "a", 1), _msg("s", "b", 1)], state={"k": 0})
    acts = _acts(g, rs)
    results = [
        _ok("a", 2, writes=_writes(("k", 1)), sent=_sends(g, "a", 3), outputs=("o",)),
        ActivationResult(
            "b",
            2,
            ActivationStatus.FAILED,
            attempts=3,
            error=ErrorInfo("ValueError", "bad input", "b", 2),
        ),
    ]
    new, report = commit(rs, g, acts, results)
    assert new == replace(rs, superstep=2, status=RunStatus.FAILED, error=new.error)
    assert new.error is not None
    assert (new.error.type, new.error.executor_id, new.error.superstep) == (
        "ExecutorFailedError",
        "b",
        2,
    )
    assert isinstance(report.error, ExecutorFailedError)
    assert report.error.executor_id == "b" and report.error.attempts == 3
    assert "bad input" in str(report.error) and "3 attempt(s)" in str(report.error)
    assert not report.committed and report.outputs == ()


def test_the_run_s_error_keeps_the_failed_executor_s_error_as_its_cause() -> None:
    g = _graph()
    rs = _state(g, inbox=[_msg("s", "a", 1)])
    cause = ErrorInfo(
        "Declined",
        "card declined",
        "a",
        2,
        module="shop.payments",
        traceback="Traceback (most recent call last):\n  ...\nshop.payments.Declined: card declined\n",
        attempts=(
            AttemptError(1, "TimeoutError", "attempt 1 exceeded the timeout of 5s", "builtins"),
            AttemptError(2, "Declined", "card declined", "shop.payments"),
        ),
    )
    failed = ActivationResult(
        "a", 2, ActivationStatus.FAILED, attempts=2, error=cause, failures=cause.attempts
    )
    new, report = commit(rs, g, _acts(g, rs), [failed])
    assert new.error is not None
    assert (new.error.type, new.error.module, new.error.cause) == (
        "ExecutorFailedError",
        "runtime.errors",
        cause,
    )
    assert new.error.message == (
        "executor 'a' failed in superstep 2 after 2 attempt(s): "
        "shop.payments.Declined: card declined"
    )
    assert str(new.error) == f"ExecutorFailedError: {new.error.message}"
    assert str(report.error) == new.error.message


def test_a_run_failing_in_superstep_1_ends_there_with_the_empty_trace_hash() -> None:
    g = _graph()
    rs = start(g, 0, run_id="r")
    assert rs.trace_hash == EMPTY_TRACE_HASH == digest("")
    failed = ActivationResult(
        "s", 1, ActivationStatus.FAILED, error=ErrorInfo("RuntimeError", "boom", "s", 1)
    )
    new, report = commit(rs, g, _acts(g, rs), [failed])
    assert (new.status, new.superstep, report.superstep) == (RunStatus.FAILED, 1, 1)
    assert new.error is not None and new.error.superstep == 1
    assert new.trace_hash == EMPTY_TRACE_HASH


def test_a_failed_run_keeps_the_trace_hash_of_what_committed() -> None:
    g = _graph([Edge(0, "s", "a")])
    rs = start(g, 0, run_id="r")
    rs, first = commit(rs, g, _acts(g, rs), [_ok("s", 1, sent=_sends(g, "s", 1))])
    assert rs.trace_hash == digest(EMPTY_TRACE_HASH, first.step_digest)
    failed = ActivationResult(
        "a", 2, ActivationStatus.FAILED, error=ErrorInfo("RuntimeError", "boom", "a", 2)
    )
    new, _ = commit(rs, g, _acts(g, rs), [failed])
    assert (new.superstep, new.trace_hash) == (2, rs.trace_hash)


def test_skipped_activation_commits_nothing_of_its_own_but_the_rest_commits() -> None:
    g = _graph([Edge(0, "a", "c"), Edge(1, "b", "c")])
    rs = _state(g, inbox=[_msg("s", "a", 1), _msg("s", "b", 1)])
    acts = _acts(g, rs)
    skipped = ActivationResult(
        "b",
        2,
        ActivationStatus.SKIPPED,
        attempts=2,
        sent=_sends(g, "b", "lost"),
        outputs=("lost",),
        error=ErrorInfo("RuntimeError", "boom", "b", 2),
    )
    new, report = commit(rs, g, acts, [_ok("a", 2, sent=_sends(g, "a", "kept")), skipped])
    assert [m.data for m in new.inbox] == ["kept"]
    assert report.outputs == ()
    assert report.skipped == (skipped,)
    assert report.retried == (skipped,)
    assert new.activity["b"].status is ActivationStatus.SKIPPED
    assert new.status is RunStatus.RUNNING


def test_fallback_sends_the_failed_executors_messages_to_the_fallback_next_superstep() -> None:
    g = _graph()
    rs = _state(
        g, inbox=[_msg("s", "a", "m1", seq=0), _msg("s", "a", "m2", seq=1), _msg("b", "a", "m3")]
    )
    acts = _acts(g, rs)
    fb = ActivationResult(
        "a",
        2,
        ActivationStatus.FALLBACK,
        attempts=1,
        sent=_sends(g, "a", "lost"),
        error=ErrorInfo("TimeoutError", "slow", "a", 2),
        fallback="c",
    )
    new, report = commit(rs, g, acts, [fb])
    assert new.inbox == (
        Message("a", "c", "m1", 2, 0),
        Message("a", "c", "m2", 2, 1),
        Message("a", "c", "m3", 2, 2),
    )
    assert report.fallbacks == (fb,)
    (act,) = _acts(g, new)
    assert act.executor_id == "c" and act.superstep == 3


# -- fan-in ------------------------------------------------------------------------------


def _fan_in_graph(**kw: Any) -> Graph:
    # sources listed as (b, a): the flushed list follows the group's source order
    return _graph(
        [Edge(0, "s", "a"), Edge(1, "s", "b"), FanInGroup(2, ("b", "a"), "agg")],
        types={"agg": (list[str],)},
        **kw,
    )


def test_fan_in_flushes_once_every_source_contributed_with_several_messages_per_source() -> None:
    g = _fan_in_graph()
    rs = _state(g, inbox=[_msg("s", "a", 0), _msg("s", "b", 0)])
    results = [_ok("a", 2, sent=_sends(g, "a", "a1", "a2")), _ok("b", 2, sent=_sends(g, "b", "b1"))]
    new, report = commit(rs, g, _acts(g, rs), results)
    (flush,) = new.inbox
    assert flush.kind is MessageKind.FAN_IN
    assert flush.target == "agg" and flush.group == 2 and flush.superstep == 2
    assert flush.data == ["b1", "a1", "a2"]
    assert flush.parts == ("b", "a", "a")
    assert new.fan_in == {}
    assert report.fan_in_flushed == ("agg",)
    (act,) = _acts(g, new)
    assert act.executor_id == "agg" and act.superstep == 3 and act.messages == (flush,)


def test_fan_in_buffers_across_supersteps_until_the_last_source_sends() -> None:
    g = _fan_in_graph()
    rs = _state(g, inbox=[_msg("s", "a", 0)])
    rs, report = commit(rs, g, _acts(g, rs), [_ok("a", 2, sent=_sends(g, "a", "a1"))])
    assert rs.inbox == ()
    assert report.fan_in_flushed == ()
    assert {src: [m.data for m in ms] for src, ms in rs.fan_in[2].items()} == {"a": ["a1"]}
    assert rs.status is RunStatus.STALLED  # nothing else can run: see the stall tests

    rs = replace(
        rs, status=RunStatus.RUNNING, error=None, inbox=(_msg("s", "a", 0, 2), _msg("s", "b", 0, 2))
    )
    results = [_ok("a", 3, sent=_sends(g, "a", "a2")), _ok("b", 3, sent=_sends(g, "b", "b1"))]
    rs, report = commit(rs, g, _acts(g, rs), results)
    (flush,) = rs.inbox
    assert flush.data == ["b1", "a1", "a2"]
    assert flush.parts == ("b", "a", "a")
    assert rs.fan_in == {}


def test_what_stays_in_a_fan_in_buffer_is_the_messages_sent_in_arrival_order() -> None:
    edges = [Edge(i, "s", target) for i, target in enumerate("abc")]
    g = _graph([*edges, FanInGroup(3, ("c", "b", "a"), "agg")], types={"agg": (list[str],)})
    rs = _state(g, inbox=[_msg("s", "a", 0)])
    rs, _ = commit(rs, g, _acts(g, rs), [_ok("a", 2, sent=_sends(g, "a", "a1", "a2"))])
    rs = replace(
        rs, status=RunStatus.RUNNING, error=None, inbox=(_msg("s", "c", 0, 2), _msg("s", "a", 0, 2))
    )
    results = [_ok("a", 3, sent=_sends(g, "a", "a3")), _ok("c", 3, sent=_sends(g, "c", "c1"))]
    rs, report = commit(rs, g, _acts(g, rs), results)
    assert report.fan_in_flushed == ()
    assert list(rs.fan_in[3]) == ["a", "c"]  # sources in the order they first sent
    assert rs.fan_in[3] == {
        "a": (
            Message("a", "agg", "a1", 2, 0, group=3),
            Message("a", "agg", "a2", 2, 1, group=3),
            Message("a", "agg", "a3", 3, 0, group=3),
        ),
        "c": (Message("c", "agg", "c1", 3, 0, group=3),),
    }

    rs = replace(rs, status=RunStatus.RUNNING, error=None, inbox=(_msg("s", "b", 0, 3),))
    rs, report = commit(rs, g, _acts(g, rs), [_ok("b", 4, sent=_sends(g, "b", "b1"))])
    (flush,) = rs.inbox
    assert flush == Message(
        "$fan_in:3",
        "agg",
        ["c1", "b1", "a1", "a2", "a3"],
        4,
        0,
        kind=MessageKind.FAN_IN,
        group=3,
        parts=("c", "b", "a", "a", "a"),
    )
    assert rs.fan_in == {}
    assert report.fan_in_flushed == ("agg",)


def test_messages_after_a_flush_start_a_new_round() -> None:
    g = _fan_in_graph()
    rs = _state(g, inbox=[_msg("s", "a", 0), _msg("s", "b", 0)])
    rs, _ = commit(
        rs,
        g,
        _acts(g, rs),
        [_ok("a", 2, sent=_sends(g, "a", "a1")), _ok("b", 2, sent=_sends(g, "b", "b1"))],
    )
    # superstep 3: agg gets the list while "a" contributes again
    rs = replace(rs, inbox=(*rs.inbox, _msg("s", "a", 0, 2)))
    acts = _acts(g, rs)
    assert [a.executor_id for a in acts] == ["a", "agg"]
    rs, _ = commit(rs, g, acts, [_ok("a", 3, sent=_sends(g, "a", "a2")), _ok("agg", 3)])
    assert rs.inbox == ()
    assert {src: [m.data for m in ms] for src, ms in rs.fan_in[2].items()} == {"a": ["a2"]}


def test_fan_in_source_also_sending_on_a_plain_edge() -> None:
    g = _graph(
        [Edge(0, "a", "c"), FanInGroup(1, ("a", "b"), "agg")],
        types={"agg": (list[int],), "c": (int,)},
    )
    rs = _state(g, inbox=[_msg("s", "a", 0), _msg("s", "b", 0)])
    results = [_ok("a", 2, sent=_sends(g, "a", 1)), _ok("b", 2, sent=_sends(g, "b", 2))]
    new, _ = commit(rs, g, _acts(g, rs), results)
    assert [(m.target, m.kind, m.data) for m in new.inbox] == [
        ("c", MessageKind.MESSAGE, 1),
        ("agg", MessageKind.FAN_IN, [1, 2]),
    ]


def test_two_fan_ins_flush_independently() -> None:
    g = _graph(
        [FanInGroup(0, ("a", "b"), "agg"), FanInGroup(1, ("a", "c"), "agg")],
        types={"agg": (list[int],)},
    )
    rs = _state(g, inbox=[_msg("s", "a", 0), _msg("s", "b", 0)])
    results = [_ok("a", 2, sent=_sends(g, "a", 1)), _ok("b", 2, sent=_sends(g, "b", 2))]
    new, _ = commit(rs, g, _acts(g, rs), results)
    assert [(m.group, m.data) for m in new.inbox] == [(0, [1, 2])]
    assert {src: [m.data for m in ms] for src, ms in new.fan_in[1].items()} == {"a": [1]}


@settings(max_examples=60)
@given(
    st.lists(
        st.tuples(st.integers(0, 2), st.integers(0, 2)),  # messages sent by a and b per superstep
        min_size=1,
        max_size=8,
    )
)
def test_fan_in_strands_nothing(rounds: list[tuple[int, int]]) -> None:
    """Whatever a and b send, every message ends up delivered in a flush or still
    buffered, in send order; a flush happens exactly when both have contributed."""
    g = _graph([FanInGroup(0, ("a", "b"), "agg")], types={"agg": (list[str],)})
    rs = _state(g, inbox=[])
    sent: list[str] = []
    delivered: list[str] = []
    for step, (na, nb) in enumerate(rounds, start=2):
        inbox = [m for m in rs.inbox]  # fan-in lists flushed at the previous barrier
        inbox += [_msg("s", "a", 0, step - 1), _msg("s", "b", 0, step - 1)]
        rs = replace(rs, inbox=tuple(inbox), status=RunStatus.RUNNING, error=None)
        acts = _acts(g, rs)
        results = []
        for a in acts:
            if a.executor_id == "agg":
                (m,) = a.messages
                delivered.extend(m.data)
                results.append(_ok("agg", step))
                continue
            n = na if a.executor_id == "a" else nb
            values = [f"{a.executor_id}{step}.{i}" for i in range(n)]
            sent.extend(values)
            results.append(_ok(a.executor_id, step, sent=_sends(g, a.executor_id, *values)))
        had_a = bool(rs.fan_in.get(0, {}).get("a")) or na > 0
        had_b = bool(rs.fan_in.get(0, {}).get("b")) or nb > 0
        rs, report = commit(rs, g, acts, results)
        assert report.fan_in_flushed == (("agg",) if had_a and had_b else ())
    # deliver the last flush, if any
    for m in rs.inbox:
        delivered.extend(m.data)
    buffered = [m.data for src in ("a", "b") for m in rs.fan_in.get(0, {}).get(src, ())]
    assert sorted(delivered + buffered) == sorted(sent)
    assert len(delivered) + len(buffered) == len(sent)


# -- termination -------------------------------------------------------------------------


def test_completed_when_nothing_is_pending() -> None:
    g = _graph()
    rs = start(g, 0, run_id="r")
    new, report = commit(rs, g, _acts(g, rs), [_ok("s", 1, outputs=("done",))])
    assert new.status is RunStatus.COMPLETED
    assert new.error is None and report.error is None


def test_awaiting_input_when_requests_are_pending() -> None:
    g = _graph()
    rs = start(g, 0, run_id="r")
    req = PendingRequest("q1", "s", 1, "question", "str")
    new, report = commit(rs, g, _acts(g, rs), [_ok("s", 1, requests=(req,))])
    assert new.status is RunStatus.AWAITING_INPUT
    assert new.pending == {"q1": req}
    assert report.requests == (req,)


def test_pending_requests_do_not_stop_other_work() -> None:
    g = _graph([Edge(0, "s", "a")])
    rs = start(g, 0, run_id="r")
    req = PendingRequest("q1", "s", 1, "question", "str")
    new, _ = commit(rs, g, _acts(g, rs), [_ok("s", 1, requests=(req,), sent=_sends(g, "s", 1))])
    assert new.status is RunStatus.RUNNING


def test_stalled_fan_in_is_diagnosed_with_the_missing_sources_and_why() -> None:
    g = _graph(
        [
            Edge(0, "s", "a"),
            Edge(1, "s", "b"),
            Edge(2, "b", "s"),
            FanInGroup(3, ("a", "b", "c"), "agg"),
        ],
        types={"agg": (list[int],)},
    )
    rs = start(g, 0, run_id="r")
    # superstep 1: s -> a, b
    rs, _ = commit(rs, g, _acts(g, rs), [_ok("s", 1, sent=_sends(g, "s", 1))])
    # superstep 2: a sends into the fan-in; b sends back to s (not into the fan-in)
    acts = _acts(g, rs)
    rs, _ = commit(
        rs,
        g,
        acts,
        [_ok("a", 2, sent=_sends(g, "a", 10, 11)), _ok("b", 2, sent=(_send(g, "b", 0, 5, "s"),))],
    )
    # superstep 3: s sends nothing
    rs, report = commit(rs, g, _acts(g, rs), [_ok("s", 3)])
    assert rs.status is RunStatus.STALLED
    assert isinstance(report.error, StalledError)
    assert rs.error is not None and rs.error.type == "StalledError"
    text = report.error.diagnosis
    assert "fan-in into 'agg'" in text
    assert "sources ['a', 'b', 'c']" in text
    assert "holds messages from ['a']" in text
    assert "nothing from ['b', 'c']" in text
    assert (
        "'b' was last activated in superstep 2 and sent 1 message(s), none of them into this fan-in"
        in text
    )
    assert "'c' was never activated" in text
    # the buffered messages are kept, not thrown away
    assert [m.data for m in rs.fan_in[3]["a"]] == [10, 11]


def test_stall_diagnosis_explains_silent_skipped_and_fallback_sources() -> None:
    from runtime.engine import ExecutorActivity

    g = _graph([FanInGroup(0, ("a", "b", "c", "s"), "agg")], types={"agg": (list[int],)})
    buf = {0: {"s": (Message("s", "agg", 1, 1, 0, group=0),)}}
    activity = {
        "a": ExecutorActivity(4, ActivationStatus.OK, 0),
        "b": ExecutorActivity(5, ActivationStatus.SKIPPED, 0),
        "c": ExecutorActivity(6, ActivationStatus.FALLBACK, 0),
    }
    text = diagnose_stall(g, buf, activity)
    assert text.startswith("run stalled: fan-in into 'agg'")
    assert "'a' was last activated in superstep 4 and sent nothing" in text
    assert "'b' failed in superstep 5 and was skipped (on_failure=skip)" in text
    assert "'c' failed in superstep 6; its messages went to its fallback" in text


def test_stall_after_a_flush_names_the_waiting_round_and_the_flush_that_took_the_message() -> None:
    # s -> a, b; fan-in [a, b] -> agg; agg -> a. Superstep 2: a and b fill round 1, which
    # flushes. Superstep 3: agg sends to a. Superstep 4: a alone starts round 2.
    g = _graph(
        [
            Edge(0, "s", "a"),
            Edge(1, "s", "b"),
            FanInGroup(2, ("a", "b"), "agg"),
            Edge(3, "agg", "a"),
        ],
        types={"agg": (list[int],)},
    )

    def forward(a: Activation) -> ActivationResult:
        return _ok(a.executor_id, a.superstep, sent=_sends(g, a.executor_id, 1))

    rs, reports = _drive(
        g, start(g, 0, run_id="r"), {"s": forward, "a": forward, "b": forward, "agg": forward}
    )
    assert [r.fan_in_flushed for r in reports] == [(), ("agg",), (), ()]
    assert rs.status is RunStatus.STALLED and rs.superstep == 4
    assert rs.fan_in_rounds == {2: (1, 2)}
    assert rs.error is not None
    text = rs.error.message
    assert "fan-in into 'agg' (sources ['a', 'b']) can never fill round 2" in text
    assert "(round 1 was flushed in superstep 2)" in text
    assert "holds messages from ['a'] but nothing from ['b']" in text
    assert (
        "'b' was last activated in superstep 2 and sent 1 message(s); what it sent into this "
        "fan-in went into round 1, flushed in superstep 2, and it has not been activated since"
    ) in text
    assert "none of them into this fan-in" not in text


def test_fan_in_rounds_count_every_flush_of_each_group() -> None:
    g = _graph([FanInGroup(0, ("a", "b"), "agg")], types={"agg": (list[int],)})
    rs = _state(g, inbox=[])
    for step in (2, 3, 5):
        rs = replace(rs, superstep=step - 1, inbox=(_msg("s", "a", 0), _msg("s", "b", 0)))
        results = [_ok("a", step, sent=_sends(g, "a", 1)), _ok("b", step, sent=_sends(g, "b", 2))]
        rs, _ = commit(rs, g, _acts(g, rs), results)
        rs = replace(rs, inbox=())
    assert rs.fan_in_rounds == {0: (3, 5)}


def test_stall_diagnosis_of_a_source_activated_after_the_last_flush() -> None:
    from runtime.engine import ExecutorActivity

    g = _graph([FanInGroup(0, ("a", "b", "c"), "agg")], types={"agg": (list[int],)})
    buf = {0: {"a": (Message("a", "agg", 1, 7, 0, group=0),)}}
    activity = {
        "b": ExecutorActivity(6, ActivationStatus.OK, 2),  # after the flush of superstep 5
        "c": ExecutorActivity(5, ActivationStatus.SKIPPED, 0),  # in the superstep of the flush
    }
    text = diagnose_stall(g, buf, activity, rounds={0: (4, 5)})
    assert "can never fill round 5 (round 4 was flushed in superstep 5)" in text
    assert "'b' was last activated in superstep 6 and sent 2 message(s), none of them into" in text
    assert (
        "'c' failed in superstep 5 and was skipped (on_failure=skip); what it sent into this "
        "fan-in went into round 4, flushed in superstep 5, and it has not been activated since"
    ) in text


def test_stall_is_not_declared_while_requests_are_pending() -> None:
    g = _fan_in_graph()
    rs = _state(g, inbox=[_msg("s", "a", 0)])
    req = PendingRequest("q", "a", 2, None, "int")
    new, _ = commit(rs, g, _acts(g, rs), [_ok("a", 2, sent=_sends(g, "a", "x"), requests=(req,))])
    assert new.status is RunStatus.AWAITING_INPUT
    assert new.fan_in[2]["a"]


def _ping_pong(graph: Graph, *, counter: bool = False) -> dict[str, Behaviour]:
    def bounce(a: Activation) -> ActivationResult:
        (m,) = a.messages
        writes = _writes(("n", a.superstep)) if counter else ()
        return _ok(
            a.executor_id, a.superstep, sent=_sends(graph, a.executor_id, m.data), writes=writes
        )

    return {"s": bounce, "a": bounce}


def test_max_supersteps_fails_with_a_convergence_error_reporting_a_ping_pong_livelock() -> None:
    g = _graph([Edge(0, "s", "a"), Edge(1, "a", "s")], max_supersteps=20)
    rs, reports = _drive(g, start(g, "ping", run_id="r"), _ping_pong(g))
    assert rs.status is RunStatus.FAILED
    assert rs.superstep == 20
    err = reports[-1].error
    assert isinstance(err, ConvergenceError)
    assert err.max_supersteps == 20
    assert err.livelock_period == 2
    assert "repeat every 2 superstep(s)" in str(err)
    assert rs.error is not None and rs.error.type == "ConvergenceError"


def test_self_loop_livelock_has_period_one() -> None:
    g = _graph([Edge(0, "s", "s")], max_supersteps=10)
    bounce = _ping_pong(g)["s"]
    _rs, reports = _drive(g, start(g, "x", run_id="r"), {"s": bounce})
    err = reports[-1].error
    assert isinstance(err, ConvergenceError)
    assert err.livelock_period == 1


def test_livelock_longer_than_the_window_is_still_reported_as_its_period() -> None:
    g = _graph([Edge(0, "s", "a"), Edge(1, "a", "s")], max_supersteps=300)
    _rs, reports = _drive(g, start(g, "ping", run_id="r"), _ping_pong(g), limit=400)
    err = reports[-1].error
    assert isinstance(err, ConvergenceError)
    assert err.livelock_period == 2


def test_progressing_loop_is_not_reported_as_a_livelock() -> None:
    g = _graph([Edge(0, "s", "a"), Edge(1, "a", "s")], max_supersteps=12)
    _rs, reports = _drive(g, start(g, "ping", run_id="r"), _ping_pong(g, counter=True))
    err = reports[-1].error
    assert isinstance(err, ConvergenceError)
    assert err.livelock_period is None
    assert "livelock" not in str(err)


def test_run_finishing_exactly_at_max_supersteps_completes() -> None:
    g = _graph([Edge(0, "s", "a")], max_supersteps=2)
    behave: dict[str, Behaviour] = {
        "s": lambda a: _ok("s", a.superstep, sent=_sends(g, "s", 1)),
        "a": _silent,
    }
    rs, _ = _drive(g, start(g, 0, run_id="r"), behave)
    assert rs.status is RunStatus.COMPLETED
    assert rs.superstep == 2


def test_unbounded_graph_never_fails_on_convergence() -> None:
    g = _graph([Edge(0, "s", "a"), Edge(1, "a", "s")], max_supersteps=None)
    rs, _reports = _drive(g, start(g, "ping", run_id="r"), _ping_pong(g), limit=150)
    assert rs.status is RunStatus.RUNNING and rs.superstep == 150


# -- respond -----------------------------------------------------------------------------


def _awaiting(g: Graph) -> RunState:
    rs = start(g, 0, run_id="r")
    reqs = (
        PendingRequest("q2", "a", 1, "second", "str"),
        PendingRequest("q1", "s", 1, "first", "int"),
    )
    new, _ = commit(rs, g, _acts(g, rs), [_ok("s", 1, requests=reqs)])
    assert new.status is RunStatus.AWAITING_INPUT
    return new


def test_respond_queues_responses_for_the_next_superstep_and_clears_pending() -> None:
    g = _graph()
    rs = _awaiting(g)
    new = respond(rs, g, {"q2": "yes", "q1": 5})
    assert new.status is RunStatus.RUNNING and new.error is None
    assert new.pending == {}
    assert new.external_seq == rs.external_seq + 2
    assert [(m.target, m.request_id, m.kind, m.data) for m in new.inbox] == [
        ("s", "q1", MessageKind.RESPONSE, {"request": "first", "response": 5}),
        ("a", "q2", MessageKind.RESPONSE, {"request": "second", "response": "yes"}),
    ]
    acts = _acts(g, new)
    assert [a.executor_id for a in acts] == ["s", "a"]
    assert all(a.superstep == 2 for a in acts)


def test_respond_to_part_of_the_requests_keeps_the_rest_pending() -> None:
    g = _graph()
    new = respond(_awaiting(g), g, {"q1": 1})
    assert set(new.pending) == {"q2"}


def test_respond_with_an_unknown_id_raises_and_lists_pending() -> None:
    g = _graph()
    rs = _awaiting(g)
    with pytest.raises(
        RequestError, match=r"no pending request with id 'nope' \(pending: q1, q2\)"
    ):
        respond(rs, g, {"nope": 1})
    assert set(rs.pending) == {"q1", "q2"}


def test_responses_come_before_messages_of_executors() -> None:
    g = _graph()
    rs = replace(_awaiting(g), inbox=(_msg("b", "s", "from-b"),))
    new = respond(rs, g, {"q1": 5})
    (act_s,) = [a for a in _acts(g, new) if a.executor_id == "s"]
    assert [m.source for m in act_s.messages] == [RESPONSE_SOURCE, "b"]


# -- purity and determinism ----------------------------------------------------------------


def _busy_superstep() -> tuple[Graph, RunState, tuple[Activation, ...], list[ActivationResult]]:
    g = _graph(
        [Edge(0, "a", "c"), FanInGroup(1, ("a", "b"), "agg")],
        types={"agg": (list[int],)},
        state_keys={
            "sum": StateKey("sum", 0, lambda x, y: x + y),
            "log": StateKey("log", [], _concat),
        },
    )
    rs = _state(
        g,
        inbox=[_msg("s", "a", 1), _msg("s", "b", 2), _msg("s", "c", 3)],
        state={"sum": 1, "log": []},
        fan_in={1: {"b": (Message("b", "agg", 0, 1, 0, group=1),)}},
        snapshots={"a": {"old": True}},
    )
    acts = _acts(g, rs)
    results = [
        _ok(
            "a",
            2,
            sent=_sends(g, "a", 10, 11),
            writes=_writes(("sum", 2), ("log", "a")),
            outputs=("oa",),
            snapshot={"new": True},
            has_snapshot=True,
        ),
        _ok(
            "b",
            2,
            sent=_sends(g, "b", 20),
            writes=_writes(("sum", 3), ("log", "b")),
            outputs=("ob",),
        ),
        _ok(
            "c",
            2,
            writes=_writes(("mine", 1)),
            requests=(PendingRequest("q", "c", 2, None, "int"),),
            events=(EventRecord("c", "custom", {"x": 1}),),
        ),
    ]
    return g, rs, acts, results


def test_commit_never_mutates_its_inputs() -> None:
    g, rs, acts, results = _busy_superstep()
    before = copy.deepcopy((rs, acts, results))
    new, report = commit(rs, g, acts, results)
    assert (rs, acts, results) == before
    assert report.committed and new.superstep == 2
    # and the new state is independent of the old one
    assert new.state == {"sum": 6, "log": ["a", "b"], "mine": 1}
    assert rs.state == {"sum": 1, "log": []}
    assert rs.fan_in == {1: {"b": (Message("b", "agg", 0, 1, 0, group=1),)}}
    assert rs.snapshots == {"a": {"old": True}} and new.snapshots == {"a": {"new": True}}


def test_failed_commit_never_mutates_its_inputs() -> None:
    g, rs, acts, results = _busy_superstep()
    results = [*results, _ok("d", 2)]  # extra results are ignored
    results[2] = replace(results[2], writes=_writes(("log", "c"), ("mine", 1)))
    results[1] = replace(results[1], writes=_writes(("mine", 2)))
    before = copy.deepcopy((rs, acts, results))
    _new, report = commit(rs, g, acts, results)
    assert not report.committed
    assert (rs, acts, results) == before


@settings(max_examples=50)
@given(st.permutations(range(3)))
def test_commit_is_independent_of_the_order_results_arrive_in(order: list[int]) -> None:
    g, rs, acts, results = _busy_superstep()
    expected_state, expected_report = commit(rs, g, acts, results)
    got_state, got_report = commit(rs, g, acts, [results[i] for i in order])
    assert got_state == expected_state
    assert got_state.trace_hash == expected_state.trace_hash
    assert got_report == expected_report


def test_trace_hash_chains_and_reflects_outputs() -> None:
    g, rs, acts, results = _busy_superstep()
    a, ra = commit(rs, g, acts, results)
    results2 = [replace(results[0], outputs=("different",)), *results[1:]]
    b, rb = commit(rs, g, acts, results2)
    assert a.trace_hash != b.trace_hash
    assert ra.step_digest != rb.step_digest
    assert a.trace_hash != rs.trace_hash


def test_trace_hash_is_independent_of_the_superstep_timestamp() -> None:
    g, rs, _, results = _busy_superstep()
    a, _ = commit(rs, g, plan(rs, g, timestamp=1.0), results)
    b, _ = commit(rs, g, plan(rs, g, timestamp=2.0), results)
    assert a.trace_hash == b.trace_hash


def test_activity_records_what_each_executor_last_did() -> None:
    g, rs, acts, results = _busy_superstep()
    new, _ = commit(rs, g, acts, results)
    assert new.activity["a"].to_json() == [2, "ok", 2]
    assert new.activity["c"].to_json() == [2, "ok", 0]


def test_activity_of_activations_that_did_alike_and_unlike() -> None:
    g = _graph()
    rs = _state(g, inbox=[_msg("s", t, 0) for t in ("a", "b", "c", "agg")])
    results = [
        _ok("a", 2, sent=_sends(g, "a", 1)),
        _ok("b", 2, sent=_sends(g, "b", 2)),
        _ok("c", 2, sent=_sends(g, "c", 3, 4)),
        ActivationResult("agg", 2, ActivationStatus.SKIPPED, sent=_sends(g, "agg", 5, 6)),
    ]
    new, _ = commit(rs, g, _acts(g, rs), results)
    assert {eid: a.to_json() for eid, a in new.activity.items()} == {
        "a": [2, "ok", 1],
        "b": [2, "ok", 1],
        "c": [2, "ok", 2],
        "agg": [2, "skipped", 2],
    }


# -- persistence ---------------------------------------------------------------------------


def _rich_state() -> RunState:
    g, rs, acts, results = _busy_superstep()
    new, _ = commit(rs, g, acts, results)
    fan_in: dict[int, dict[str, tuple[Message, ...]]] = {
        1: {"a": (Message("a", "agg", 5, 2, 0, group=1), Message("a", "agg", 6, 2, 1, group=1))}
    }
    return replace(
        new, error=ErrorInfo("X", "y", "a", 2), seed=7, fan_in=fan_in, fan_in_rounds={1: (3, 2)}
    )


def test_run_state_json_roundtrip() -> None:
    rs = _rich_state()
    assert rs.fan_in and rs.pending and rs.snapshots and rs.activity and rs.inbox
    assert rs.fan_in_rounds
    assert _json_roundtrip_state(rs) == rs


def test_run_state_written_without_fan_in_rounds_reads_as_never_flushed() -> None:
    d = _rich_state().to_json()
    del d["fan_in_rounds"]
    assert RunState.from_json(d).fan_in_rounds == {}


def test_run_state_json_roundtrip_after_a_long_run_keeps_livelock_memory() -> None:
    g = _graph([Edge(0, "s", "a"), Edge(1, "a", "s")], max_supersteps=None)
    rs, _ = _drive(g, start(g, "ping", run_id="r"), _ping_pong(g), limit=10)
    assert rs.recent
    assert _json_roundtrip_state(rs) == rs


def test_checkpoint_json_roundtrip() -> None:
    rs = _rich_state()
    cp = Checkpoint("cp-1", "algo", rs.graph_signature, 123.5, rs)
    back = Checkpoint.from_json(json.loads(json.dumps(cp.to_json())))
    assert back == cp
    assert (back.run_id, back.superstep) == ("r", 2)


@pytest.mark.parametrize("version", [None, 0, SCHEMA_VERSION + 1, "1"])
def test_run_state_with_another_schema_version_is_refused(version: Any) -> None:
    d = _rich_state().to_json()
    d["schema_version"] = version
    with pytest.raises(CheckpointError, match="schema version"):
        RunState.from_json(d)


@pytest.mark.parametrize("version", [None, SCHEMA_VERSION + 1])
def test_checkpoint_with_another_schema_version_is_refused(version: Any) -> None:
    rs = _rich_state()
    d = Checkpoint("cp", "algo", rs.graph_signature, 1.0, rs).to_json()
    d["schema_version"] = version
    with pytest.raises(CheckpointError, match="schema version"):
        Checkpoint.from_json(d)


def test_checkpoint_holding_a_run_state_of_another_version_is_refused() -> None:
    rs = _rich_state()
    d = Checkpoint("cp", "algo", rs.graph_signature, 1.0, rs).to_json()
    d["run_state"]["schema_version"] = SCHEMA_VERSION + 1
    with pytest.raises(CheckpointError, match="schema version"):
        Checkpoint.from_json(d)


@pytest.mark.parametrize("drop", ["inbox", "state", "run_id", "pending", "fan_in"])
def test_malformed_run_state_is_a_checkpoint_error(drop: str) -> None:
    d = _rich_state().to_json()
    del d[drop]
    with pytest.raises(CheckpointError, match="malformed run state"):
        RunState.from_json(d)


def test_malformed_checkpoint_is_a_checkpoint_error() -> None:
    with pytest.raises(CheckpointError):
        Checkpoint.from_json([])  # type: ignore[arg-type]
    d = Checkpoint("cp", "algo", "sig", 1.0, _rich_state()).to_json()
    del d["checkpoint_id"]
    with pytest.raises(CheckpointError, match="malformed checkpoint"):
        Checkpoint.from_json(d)


def test_activation_json_roundtrip() -> None:
    _g, _rs, acts, _ = _busy_superstep()
    for a in acts:
        assert Activation.from_json(json.loads(json.dumps(a.to_json()))) == a
    fan = Message(
        "$fan_in:1", "agg", [1, 2], 3, 0, kind=MessageKind.FAN_IN, group=1, parts=("a", "b")
    )
    resp = Message(
        RESPONSE_SOURCE,
        "s",
        {"request": 1, "response": 2},
        3,
        4,
        kind=MessageKind.RESPONSE,
        request_id="q",
    )
    for m in (fan, resp):
        assert Message.from_json(json.loads(json.dumps(m.to_json()))) == m


def test_reducer_folding_from_the_initial_value_does_not_mutate_the_graph() -> None:
    def append_in_place(acc: list[Any], update: Any) -> list[Any]:
        acc.append(update)
        return acc

    key = StateKey("log", [], append_in_place)
    g = _graph(state_keys={"log": key})
    for run in ("r1", "r2"):
        rs = _state(g, inbox=[_msg("s", "a", 1)], state={}, run_id=run)
        new, _ = commit(rs, g, _acts(g, rs), [_ok("a", 2, writes=_writes(("log", run)))])
        assert new.state == {"log": [run]}
    assert key.initial == []


@pytest.mark.parametrize(
    "corrupt",
    [
        pytest.param(lambda d: d.__setitem__("run_state", []), id="run-state-not-an-object"),
        pytest.param(lambda d: d["run_state"].__setitem__("fan_in", []), id="fan-in-a-list"),
        pytest.param(
            lambda d: d["run_state"].__setitem__("activity", {"a": []}), id="activity-short"
        ),
        pytest.param(lambda d: d["run_state"].__setitem__("inbox", [[]]), id="message-a-list"),
        pytest.param(lambda d: d["run_state"].__setitem__("pending", [{}]), id="request-empty"),
        pytest.param(lambda d: d.__setitem__("created_at", "noon"), id="created-at-text"),
    ],
)
def test_any_malformed_checkpoint_is_a_checkpoint_error(
    corrupt: Callable[[dict[str, Any]], None],
) -> None:
    """A checkpoint file from disk or a peer is untrusted: every defect is a CheckpointError."""
    d = json.loads(json.dumps(Checkpoint("cp", "algo", "sig", 1.0, _rich_state()).to_json()))
    corrupt(d)
    with pytest.raises(CheckpointError, match="malformed"):
        Checkpoint.from_json(d)


# -- message digests ----------------------------------------------------------------


@pytest.mark.parametrize("size", [1, 200, 5000])
def test_message_digest_covers_identity_and_payload_of_any_size(size: int) -> None:
    from runtime.engine import message_digest

    data = {"text": "x" * size}
    m = Message("a", "b", data, 1, 0)
    same = Message("a", "b", {"text": "x" * size}, 7, 0)  # the superstep is not part of it
    assert message_digest(m) == message_digest(same)
    memo: dict[int, str] = {}
    assert message_digest(m, memo) == message_digest(m) == message_digest(m, memo)
    others = [
        Message("a", "b", {"text": "x" * size + "y"}, 1, 0),
        Message("a", "c", data, 1, 0),
        Message("c", "b", data, 1, 0),
        Message("a", "b", data, 1, 1),
        Message("a", "b", data, 1, 0, kind=MessageKind.RESPONSE, request_id="r"),
        Message("a", "b", data, 1, 0, kind=MessageKind.RESPONSE, request_id="s"),
    ]
    digests = {message_digest(o) for o in others} | {message_digest(m)}
    assert len(digests) == len(others) + 1


def test_message_digests_are_pinned() -> None:
    # message digests enter every trace hash, which is compared across runtimes and
    # processes: these values must never change
    from runtime.engine import message_digest, message_digests

    msgs = [
        Message("a", "b", {"$type": "m.T", "$value": {"x": 1, "é": "ü"}}, 3, 7, group=2),
        Message(
            "$response",
            "b",
            {"request": 1, "response": [1.5, None, True]},
            0,
            1,
            kind=MessageKind.RESPONSE,
            request_id="r1",
        ),
        Message(
            "$fan_in:0",
            "c",
            ["x" * 300, 2],
            3,
            0,
            kind=MessageKind.FAN_IN,
            group=0,
            parts=("a", "b"),
        ),
    ]
    pinned = [
        "d182bab6922e338a0242f82ad1c6e1b3",
        "36ea55b66594a401f595c2106732415b",
        "e4f5e11ce467f4925de12f8a67b36950",
    ]
    assert [message_digest(m) for m in msgs] == pinned
    assert message_digests(msgs) == pinned


_payloads = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=12,
)


@settings(max_examples=60, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.sampled_from(["a", "b", "$input", "$fan_in:1"]),
            st.sampled_from(["x", "y"]),
            st.integers(0, 3),
            st.sampled_from(list(MessageKind)),
            st.none() | st.text(max_size=5),
            _payloads | st.text(min_size=250, max_size=300),
        ),
        max_size=8,
    ),
    st.booleans(),
)
def test_message_digests_equal_message_digest_one_by_one(
    specs: list[tuple[str, str, int, MessageKind, str | None, Any]], share: bool
) -> None:
    from runtime.engine import message_digest, message_digests

    shared = {"shared": ["payload", 1]}
    msgs = [
        Message(src, tgt, shared if share and i % 2 else data, 1, seq, kind=kind, request_id=rid)
        for i, (src, tgt, seq, kind, rid, data) in enumerate(specs)
    ]
    one_by_one = [message_digest(m) for m in msgs]
    assert message_digests(msgs) == one_by_one
    assert message_digests(iter(msgs)) == one_by_one
    memo: dict[int, str] = {}
    half = len(msgs) // 2
    assert message_digests(msgs[:half], memo) + message_digests(msgs[half:], memo) == one_by_one


def test_message_digests_report_a_cyclic_payload_as_canonical_json_does() -> None:
    from runtime.engine import message_digests

    cyclic: list[Any] = []
    cyclic.append(cyclic)
    with pytest.raises(ValueError, match="Circular reference"):
        message_digests([Message("a", "b", cyclic, 1, 0)])


def test_commit_takes_the_delivered_digests_a_caller_computed() -> None:
    from runtime.engine import message_digests

    g = _graph([Edge(0, "s", "a"), Edge(1, "s", "b")])
    rs = _state(g, inbox=[_msg("$input", "s", 1, 0, 0), _msg("$input", "s", 2, 0, 1)])
    acts = _acts(g, rs)
    res = [_ok("s", 2, sent=_sends(g, "s", "x", "y"))]
    msgs = [m for a in acts for m in a.messages]
    given = commit(rs, g, acts, res, delivered_digests=message_digests(msgs))
    assert given == commit(rs, g, acts, res)
    with pytest.raises(ValueError, match="delivered digests"):
        commit(rs, g, acts, res, delivered_digests=[])
