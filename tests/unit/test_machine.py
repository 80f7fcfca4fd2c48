"""The barrier state machine: what each input makes a driver do.

Pure: the graphs and activation results are built by hand, and time is a number
passed in. Every driver (in-process, the Dapr coordinator) interprets these commands,
so what is asserted here is what both runtimes do.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from runtime.engine import (
    ActivationResult,
    ActivationStatus,
    Edge,
    ErrorInfo,
    ExecutorNode,
    Graph,
    JsonCodec,
    PendingRequest,
    Placement,
    RunState,
    RunStatus,
    SentMessage,
    route,
    start,
)
from runtime.errors import NoLiveHostError, RequestError
from runtime.workflow.driver import BarrierMachine, Command, Commit, Dispatch, Wait

# s -> a, s -> b; a -> c; b -> c  (c runs in pool "gpu")


def _graph() -> Graph:
    pools = {"c": "gpu"}
    nodes = tuple(
        ExecutorNode(
            id=eid,
            index=i,
            kind="test",
            input_types=(int, str),
            placement=Placement(pool=pools.get(eid, "default")),
        )
        for i, eid in enumerate(("s", "a", "b", "c"))
    )
    edges = (Edge(0, "s", "a"), Edge(1, "s", "b"), Edge(2, "a", "c"), Edge(3, "b", "c"))
    return Graph(
        name="m", start="s", executors=nodes, groups=edges, state_keys={}, codec=JsonCodec()
    )


G = _graph()


def _new(value: Any = 1, **kw: Any) -> tuple[BarrierMachine, list[Command]]:
    m = BarrierMachine(G, start(G, value, run_id="r"), **kw)
    return m, m.start(100.0)


def _ok(eid: str, k: int, *sends: Any, **kw: Any) -> ActivationResult:
    sent = []
    for seq, v in enumerate(sends):
        deliveries, reason = route(G, eid, v, None)
        sent.append(SentMessage(seq, v, deliveries, None, reason))
    return ActivationResult(eid, k, ActivationStatus.OK, sent=tuple(sent), **kw)


def _behave(eid: str, k: int) -> ActivationResult:
    """s sends to a and b; a and b each send to c; c yields an output."""
    if eid == "c":
        return _ok(eid, k, outputs=(k,))
    return _ok(eid, k, 1)


def _types(events: Any) -> list[str]:
    return [e.type for e in events]


def _only(commands: list[Command], kind: type) -> Any:
    found = [c for c in commands if isinstance(c, kind)]
    assert len(found) == 1, commands
    return found[0]


def _drive(m: BarrierMachine, commands: list[Command], now: float = 100.0) -> list[Commit]:
    """Answer every dispatch with ``_behave`` until the run stops; the commits, in order."""
    commits: list[Commit] = []
    while commands:
        follow: list[Command] = []
        for c in commands:
            if isinstance(c, Commit):
                commits.append(c)
            elif isinstance(c, Dispatch):
                for a in c.activations:
                    follow += m.on_result(_behave(a.executor_id, c.superstep), "h1", now)
        commands = follow
    return commits


# -- start --------------------------------------------------------------------------------


def test_start_commits_the_start_then_dispatches_superstep_1() -> None:
    m, cmds = _new(7)
    begin, go = cmds
    assert isinstance(begin, Commit) and isinstance(go, Dispatch)
    assert _types(begin.events) == ["started", "superstep_started"]
    assert begin.events[1].superstep == 1
    assert begin.report is None and begin.checkpoint is None
    assert begin.state_written  # the initial shared state is a version to keep
    assert not begin.ended
    assert (go.superstep, go.attempt, go.first, go.planned_at) == (1, 1, True, 100.0)
    assert [a.executor_id for a in go.activations] == ["s"]
    assert go.activations[0].timestamp == 100.0
    assert m.superstep_in_flight == 1 and m.missing == ("s",)


def test_starting_an_ended_run_commits_its_end_and_dispatches_nothing() -> None:
    for status in (RunStatus.COMPLETED, RunStatus.FAILED, RunStatus.CANCELLED):
        state = replace(start(G, 1, run_id="r"), status=status)
        (only,) = BarrierMachine(G, state).start(5.0)
        assert isinstance(only, Commit) and only.ended
        assert _types(only.events)[0] == "started"
        assert _types(only.events)[-1] == "status"


def test_starting_a_run_waiting_for_responses_commits_its_end_again() -> None:
    req = PendingRequest("q1", "a", 1, "ask", "str")
    state = replace(
        start(G, 1, run_id="r"),
        inbox=(),
        superstep=1,
        status=RunStatus.AWAITING_INPUT,
        pending={"q1": req},
    )
    (only,) = BarrierMachine(G, state).start(5.0)
    assert isinstance(only, Commit) and only.ended
    assert _types(only.events) == ["started", "status"]
    assert only.events[-1].data == "awaiting_input"


def test_a_running_state_with_nothing_to_deliver_completes_without_a_dispatch() -> None:
    state = replace(start(G, 1, run_id="r"), inbox=())
    begin, end = BarrierMachine(G, state).start(5.0)
    assert isinstance(begin, Commit) and isinstance(end, Commit)
    assert end.report is not None and end.report.superstep == 1
    assert end.state.status is RunStatus.COMPLETED and end.ended


# -- results and barriers ------------------------------------------------------------------


def test_the_last_result_commits_the_barrier_then_dispatches_the_next_superstep() -> None:
    m, _ = _new()
    cmds = m.on_result(_ok("s", 1, "x"), "host-1", 101.0)
    barrier, go = cmds
    assert isinstance(barrier, Commit) and isinstance(go, Dispatch)
    assert barrier.report is not None and barrier.report.committed
    assert barrier.checkpoint is not None
    assert barrier.checkpoint.checkpoint_id == "r@000001"
    assert barrier.checkpoint.state == barrier.state
    assert barrier.checkpoint.created_at == 101.0
    assert _types(barrier.events) == [
        "executor_completed",
        "superstep_completed",
        "superstep_started",
    ]
    assert barrier.events[0].details["host"] == "host-1"
    assert barrier.events[0].details["pool"] == "default"
    assert (go.superstep, [a.executor_id for a in go.activations]) == (2, ["a", "b"])
    assert go.planned_at == barrier.planned_at == 101.0
    assert m.state == barrier.state


def test_a_barrier_reports_the_messages_per_edge_and_when_each_activation_started() -> None:
    m, _ = _new()
    first = _only(m.on_result(_ok("s", 1, "x", "y", started_at=50.0), "h", 1.0), Commit)
    done, completed = first.events[0], first.events[1]
    assert list(done.details) == ["duration_s", "started_at", "attempts", "pool", "host"]
    assert done.details["started_at"] == 50.0
    assert completed.type == "superstep_completed"
    assert completed.details["edges"] == [["s", "a", 2], ["s", "b", 2]]
    assert first.report is not None and first.report.edges == (("s", "a", 2), ("s", "b", 2))
    m.on_result(_ok("a", 2, 1), "h", 2.0)
    second = _only(m.on_result(_ok("b", 2), "h", 3.0), Commit)
    assert list(second.events[0].details) == ["duration_s", "attempts", "pool", "host"]
    assert second.events[2].details["edges"] == [["a", "c", 1]]  # b sent nothing


def test_a_superstep_waits_for_every_result() -> None:
    m, _ = _new()
    m.on_result(_ok("s", 1, "x"), "h", 1.0)
    assert m.on_result(_ok("a", 2, 1), "h", 2.0) == []
    assert m.missing == ("b",)
    barrier = _only(m.on_result(_ok("b", 2, 1), "h", 3.0), Commit)
    assert barrier.report.activated == ("a", "b")


def test_duplicate_late_and_stranger_results_are_ignored() -> None:
    m, _ = _new()
    m.on_result(_ok("s", 1, "x"), "h", 1.0)
    m.on_result(_ok("a", 2, 1), "h", 2.0)
    assert not m.accepts(2, "a")  # a duplicate
    assert m.on_result(_ok("a", 2, 99), "other", 2.5) == []
    assert not m.accepts(1, "s")  # a late result of the committed superstep
    assert m.on_result(_ok("s", 1, "x"), "h", 2.5) == []
    assert not m.accepts(2, "c")  # an executor not activated in the superstep
    assert m.on_result(_ok("c", 2), "h", 2.5) == []
    barrier = _only(m.on_result(_ok("b", 2, 1), "h", 3.0), Commit)
    # the first result of a counts, not the duplicate
    assert barrier.events[0].details["host"] == "h"
    assert barrier.report.delivered == 2


def test_a_run_ends_with_its_final_events_and_nothing_after() -> None:
    m, cmds = _new()
    commits = _drive(m, cmds)
    last = commits[-1]
    assert last.ended and last.state.status is RunStatus.COMPLETED
    assert _types(last.events)[-1] == "status"
    assert "superstep_started" not in _types(last.events)
    assert [c.checkpoint.checkpoint_id for c in commits if c.checkpoint] == [
        "r@000001",
        "r@000002",
        "r@000003",
    ]
    assert m.superstep_in_flight is None
    assert m.on_result(_ok("c", 3), "h", 9.0) == []
    assert m.cancel() == [] and m.fail(RuntimeError("x")) == []


def test_without_checkpoints_no_barrier_has_one() -> None:
    m, cmds = _new(checkpoints=False)
    assert all(c.checkpoint is None for c in _drive(m, cmds))


def test_all_results_at_once_commit_what_one_at_a_time_commits() -> None:
    m1, c1 = _new()
    one_by_one = _drive(m1, c1)
    m2, cmds = _new()
    together: list[Commit] = []
    while cmds:
        follow: list[Command] = []
        for c in cmds:
            if isinstance(c, Commit):
                together.append(c)
            elif isinstance(c, Dispatch):
                results = [_behave(a.executor_id, c.superstep) for a in c.activations]
                follow = m2.on_results(results, dict.fromkeys(("s", "a", "b", "c"), "h1"), 100.0)
        cmds = follow
    assert [c.state for c in together] == [c.state for c in one_by_one]
    assert [c.events for c in together] == [c.events for c in one_by_one]


@settings(max_examples=60, deadline=None)
@given(st.data())
def test_arrival_order_and_duplicates_do_not_change_the_run(data: st.DataObject) -> None:
    """Results arriving in any order, some twice, give the trace of in-order arrival."""
    m1, c1 = _new()
    reference = _drive(m1, c1)[-1].state
    m, cmds = _new()
    last: Commit | None = None
    while cmds:
        follow: list[Command] = []
        for c in cmds:
            if isinstance(c, Commit):
                last = c
            elif isinstance(c, Dispatch):
                results = [_behave(a.executor_id, c.superstep) for a in c.activations]
                arrivals = data.draw(st.permutations(results + results[:1]))
                for r in arrivals:
                    follow += m.on_result(r, "h1", 100.0)
        cmds = follow
    assert last is not None and last.state == reference


# -- failures become commands ------------------------------------------------------------------


def test_a_failed_activation_commits_nothing_of_its_superstep_and_ends_the_run() -> None:
    m, _ = _new()
    before = m.state
    error = ErrorInfo.of(ValueError("boom"), superstep=1, executor_id="s")
    failed = ActivationResult("s", 1, ActivationStatus.FAILED, error=error)
    (barrier,) = m.on_result(failed, "h", 1.0)
    assert isinstance(barrier, Commit) and barrier.ended
    assert barrier.report is not None and not barrier.report.committed
    assert barrier.checkpoint is None and not barrier.state_written
    assert barrier.state.status is RunStatus.FAILED
    assert barrier.state.inbox == before.inbox and barrier.state.state == before.state
    assert _types(barrier.events)[0] == "executor_failed"
    assert barrier.events[0].details["type"] == "ValueError"
    # where it ran, as for a completed activation
    assert barrier.events[0].details["host"] == "h"
    assert barrier.events[0].details["pool"] == "default"


def test_cancel_in_flight_ends_the_run_at_the_last_barrier() -> None:
    m, _ = _new()
    m.on_result(_ok("s", 1, "x"), "h", 1.0)
    committed = m.state
    (barrier,) = m.cancel()
    assert isinstance(barrier, Commit) and barrier.ended
    assert barrier.aborted == 2 and barrier.report is None
    assert barrier.state.status is RunStatus.CANCELLED
    assert barrier.state.superstep == committed.superstep
    assert barrier.state.inbox == committed.inbox
    assert m.on_result(_ok("a", 2, 1), "h", 2.0) == []
    assert m.cancel() == []


def test_fail_ends_the_run_with_the_error_in_the_superstep_in_flight() -> None:
    m, _ = _new()
    (barrier,) = m.fail(NoLiveHostError("gone"))
    assert isinstance(barrier, Commit) and barrier.aborted == 1
    assert barrier.state.status is RunStatus.FAILED
    assert barrier.state.error is not None and barrier.state.error.superstep == 1
    assert "gone" in barrier.state.error.message


# -- deadlines -------------------------------------------------------------------------------


def test_a_deadline_redispatches_only_the_late_activations_as_planned() -> None:
    m, _ = _new()
    (_, go) = m.on_result(_ok("s", 1, "x"), "h", 10.0)
    assert isinstance(go, Dispatch)
    m.on_result(_ok("a", 2, 1), "h", 11.0)
    assert m.late(14.0, 5.0) == () and m.on_deadline(14.0, 5.0) == []
    assert m.late(15.0, 5.0) == ("b",)
    (again,) = m.on_deadline(15.0, 5.0)
    assert isinstance(again, Dispatch) and not again.first
    assert (again.superstep, again.attempt) == (2, 2)
    assert again.activations == go.activations[1:]  # b's, planned alike
    assert again.planned_at == go.planned_at
    assert m.on_deadline(16.0, 5.0) == []  # the deadline counts from the re-dispatch
    (third,) = m.on_deadline(20.0, 5.0)
    assert isinstance(third, Dispatch) and third.attempt == 3
    barrier, nxt = m.on_result(_ok("b", 2, 1), "h", 21.0)
    assert isinstance(barrier, Commit) and isinstance(nxt, Dispatch)
    # the next superstep's deadline is its own
    assert m.on_deadline(100.0, 5.0) == [Dispatch(3, nxt.activations, 2, 21.0)]


def test_nothing_is_late_when_every_result_is_in_or_nothing_is_in_flight() -> None:
    state = replace(start(G, 1, run_id="r"), status=RunStatus.COMPLETED)
    m = BarrierMachine(G, state)
    m.start(0.0)
    assert m.late(1e9, 1.0) == () and m.on_deadline(1e9, 1.0) == []


def _to_c(m: BarrierMachine) -> None:
    m.on_result(_ok("s", 1, "x"), "h", 0.0)
    m.on_result(_ok("a", 2, 1), "h", 0.0)
    m.on_result(_ok("b", 2, 1), "h", 0.0)
    assert m.missing == ("c",)


def test_a_pool_with_no_live_host_is_waited_for_then_fails_the_run() -> None:
    m, _ = _new()
    _to_c(m)
    (wait,) = m.on_deadline(10.0, 5.0, live_pools={"default"}, no_host_s=30.0)
    assert wait == Wait(3, {"gpu": ("c",)}, 0.0, 30.0)
    (wait,) = m.on_deadline(39.0, 5.0, live_pools={"default"}, no_host_s=30.0)
    assert isinstance(wait, Wait) and wait.waited_s == 29.0
    (barrier,) = m.on_deadline(40.0, 5.0, live_pools={"default"}, no_host_s=30.0)
    assert isinstance(barrier, Commit) and barrier.aborted == 3
    assert barrier.state.status is RunStatus.FAILED
    assert barrier.state.error is not None
    assert barrier.state.error.type == "NoLiveHostError"
    assert "'gpu'" in barrier.state.error.message and "c" in barrier.state.error.message


def test_a_host_coming_back_restarts_the_wait() -> None:
    m, _ = _new()
    _to_c(m)
    assert isinstance(m.on_deadline(10.0, 5.0, live_pools=set(), no_host_s=30.0)[0], Wait)
    back = m.on_deadline(20.0, 5.0, live_pools={"gpu"}, no_host_s=30.0)
    assert isinstance(back[0], Dispatch)
    (wait,) = m.on_deadline(45.0, 5.0, live_pools=set(), no_host_s=30.0)
    assert isinstance(wait, Wait) and wait.waited_s == 0.0


# -- responses ----------------------------------------------------------------------------------


def _paused() -> BarrierMachine:
    m, _ = _new()
    req = PendingRequest("q1", "s", 1, "ask", "str")
    (barrier,) = m.on_result(_ok("s", 1, requests=(req,)), "h", 1.0)
    assert isinstance(barrier, Commit) and barrier.ended
    assert barrier.state.status is RunStatus.AWAITING_INPUT
    return m


def test_responses_continue_a_paused_run() -> None:
    m = _paused()
    begin, go = m.respond({"q1": "yes"}, 50.0)
    assert isinstance(begin, Commit) and isinstance(go, Dispatch)
    assert _types(begin.events) == ["started", "superstep_started"]
    assert not begin.state_written and begin.checkpoint is None
    assert begin.state.status is RunStatus.RUNNING and not begin.state.pending
    assert go.superstep == 2 and go.planned_at == 50.0
    (a,) = go.activations
    assert a.executor_id == "s" and a.messages[0].request_id == "q1"


def test_a_response_to_no_pending_request_is_refused_and_changes_nothing() -> None:
    m = _paused()
    before = m.state
    with pytest.raises(RequestError, match="no pending request"):
        m.respond({"nope": 1}, 50.0)
    assert m.state == before


# -- taking over a run in flight ------------------------------------------------------------


def test_resume_dispatches_the_superstep_in_flight_as_it_was_planned() -> None:
    m, _ = _new()
    (barrier, go) = m.on_result(_ok("s", 1, "x"), "h", 10.0)
    assert isinstance(barrier, Commit) and isinstance(go, Dispatch)
    # a new driver takes over from the committed barrier, much later
    taken = BarrierMachine(G, barrier.state, planned_at=barrier.planned_at)
    (again,) = taken.resume(500.0)
    assert isinstance(again, Dispatch) and again.first
    assert again.activations == go.activations
    # both commit the same barrier from the same results
    results = [_ok("a", 2, 1), _ok("b", 2, 1)]
    mine = [m.on_result(r, "h", 600.0) for r in results][-1][0]
    theirs = [taken.on_result(r, "h", 600.0) for r in results][-1][0]
    assert isinstance(mine, Commit) and isinstance(theirs, Commit)
    assert mine.state == theirs.state


def test_resume_of_an_ended_run_does_nothing() -> None:
    state = replace(start(G, 1, run_id="r"), status=RunStatus.COMPLETED)
    assert BarrierMachine(G, state).resume(1.0) == []


def test_a_started_state_is_not_mutated() -> None:
    state: RunState = start(G, 1, run_id="r")
    m = BarrierMachine(G, state)
    _drive(m, m.start(0.0))
    assert state == start(G, 1, run_id="r")
