"""Routing: which executors a sent message goes to, and why it goes nowhere."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal

import pytest

from runtime.engine import (
    Edge,
    EdgeGroup,
    ExecutorNode,
    FanInGroup,
    FanOutGroup,
    Graph,
    JsonCodec,
    MultiSelectionGroup,
    SwitchCaseGroup,
    route,
)


def _node(eid: str, index: int, *types: Any) -> ExecutorNode:
    return ExecutorNode(id=eid, index=index, kind="test", input_types=types)


def _graph(nodes: Sequence[tuple[str, tuple[Any, ...]]], groups: Sequence[EdgeGroup]) -> Graph:
    return Graph(
        name="routing",
        start=nodes[0][0],
        executors=tuple(_node(eid, i, *types) for i, (eid, types) in enumerate(nodes)),
        groups=tuple(groups),
        state_keys={},
        codec=JsonCodec(),
    )


INT: tuple[Any, ...] = (int,)
STR: tuple[Any, ...] = (str,)
ANY: tuple[Any, ...] = (int, str)


def _is_even(v: Any) -> bool:
    return isinstance(v, int) and v % 2 == 0


# -- plain edges ------------------------------------------------------------------


def test_unconditional_edge_delivers_with_its_group_index() -> None:
    g = _graph([("a", INT), ("b", INT)], [Edge(0, "a", "b")])
    assert route(g, "a", 1, None) == ((("b", 0),), None)


def test_edge_condition_is_called_with_the_value_and_filters() -> None:
    seen: list[Any] = []

    def cond(v: Any) -> bool:
        seen.append(v)
        return bool(v > 5)

    g = _graph([("a", INT), ("b", INT)], [Edge(0, "a", "b", cond)])
    assert route(g, "a", 6, None) == ((("b", 0),), None)
    deliveries, reason = route(g, "a", 5, None)
    assert deliveries == ()
    assert reason == "no edge from 'a' accepted a int (conditions or handler types)"
    assert seen == [6, 5]


def test_handler_type_filters_per_target() -> None:
    g = _graph(
        [("a", ANY), ("ints", INT), ("strs", STR)],
        [Edge(0, "a", "ints"), Edge(1, "a", "strs")],
    )
    assert route(g, "a", 3, None) == ((("ints", 0),), None)
    assert route(g, "a", "x", None) == ((("strs", 1),), None)
    deliveries, reason = route(g, "a", 2.5, None)
    assert deliveries == ()
    assert reason is not None and "accepted a float" in reason


def test_bool_is_not_delivered_to_an_int_only_handler_by_accident() -> None:
    # bool is a subclass of int in Python; an int handler accepts it (isinstance semantics)
    g = _graph([("a", ANY), ("b", INT)], [Edge(0, "a", "b")])
    assert route(g, "a", True, None) == ((("b", 0),), None)


def test_several_edges_deliver_in_edge_group_order() -> None:
    g = _graph(
        [("a", INT), ("b", INT), ("c", INT)],
        [Edge(0, "a", "c"), Edge(1, "a", "b")],
    )
    assert route(g, "a", 1, None) == ((("c", 0), ("b", 1)), None)


def test_source_without_outgoing_edges_reason() -> None:
    g = _graph([("a", INT), ("b", INT)], [Edge(0, "b", "a")])
    assert route(g, "a", 1, None) == ((), "'a' has no outgoing edges")


def test_unknown_source_has_no_outgoing_edges() -> None:
    g = _graph([("a", INT)], [])
    assert route(g, "ghost", 1, None) == ((), "'ghost' has no outgoing edges")


# -- target_id ----------------------------------------------------------------------


def test_target_id_limits_delivery_to_that_target() -> None:
    g = _graph(
        [("a", INT), ("b", INT), ("c", INT)],
        [Edge(0, "a", "b"), FanOutGroup(1, "a", ("b", "c"))],
    )
    assert route(g, "a", 1, "c") == ((("c", 1),), None)
    assert route(g, "a", 1, "b") == ((("b", 0), ("b", 1)), None)


def test_target_id_not_connected_reason() -> None:
    g = _graph([("a", INT), ("b", INT), ("c", INT)], [Edge(0, "a", "b")])
    assert route(g, "a", 1, "c") == ((), "no edge from 'a' leads to target_id 'c'")


def test_target_id_connected_but_condition_false_reason() -> None:
    g = _graph([("a", INT), ("b", INT)], [Edge(0, "a", "b", _is_even)])
    deliveries, reason = route(g, "a", 1, "b")
    assert deliveries == ()
    assert reason == "no edge from 'a' accepted a int (conditions or handler types)"


def test_target_id_connected_but_wrong_type_reason() -> None:
    g = _graph([("a", ANY), ("b", INT)], [Edge(0, "a", "b")])
    deliveries, reason = route(g, "a", "x", "b")
    assert deliveries == ()
    assert reason is not None and "accepted a str" in reason


# -- fan-out ------------------------------------------------------------------------


def test_fan_out_without_selection_reaches_every_accepting_target_in_order() -> None:
    g = _graph(
        [("a", ANY), ("x", INT), ("y", STR), ("z", INT)],
        [FanOutGroup(0, "a", ("z", "y", "x"))],
    )
    assert route(g, "a", 1, None) == ((("z", 0), ("x", 0)), None)
    assert route(g, "a", "s", None) == ((("y", 0),), None)


def test_fan_out_selection_gets_value_and_targets_and_keeps_declared_order() -> None:
    calls: list[tuple[Any, list[str]]] = []

    def select(v: Any, targets: list[str]) -> list[str]:
        calls.append((v, targets))
        return ["z", "x", "z"]  # out of order, with a duplicate

    g = _graph(
        [("a", INT), ("x", INT), ("y", INT), ("z", INT)],
        [FanOutGroup(0, "a", ("x", "y", "z"), select)],
    )
    assert route(g, "a", 7, None) == ((("x", 0), ("z", 0)), None)
    assert calls == [(7, ["x", "y", "z"])]


def test_fan_out_selection_of_nothing_drops_with_reason() -> None:
    g = _graph(
        [("a", INT), ("x", INT)],
        [FanOutGroup(0, "a", ("x",), lambda v, ts: [])],
    )
    deliveries, reason = route(g, "a", 1, None)
    assert deliveries == ()
    assert reason is not None and reason.startswith("no edge from 'a' accepted a int")


def test_fan_out_selection_returning_an_unknown_target_raises_naming_it() -> None:
    g = _graph(
        [("a", INT), ("x", INT), ("y", INT)],
        [FanOutGroup(0, "a", ("x", "y"), lambda v, ts: ["x", "nope"])],
    )
    with pytest.raises(ValueError, match=r"unknown target\(s\) \['nope'\]; allowed: \['x', 'y'\]"):
        route(g, "a", 1, None)


def test_fan_out_selection_with_target_id_not_selected_drops() -> None:
    g = _graph(
        [("a", INT), ("x", INT), ("y", INT)],
        [FanOutGroup(0, "a", ("x", "y"), lambda v, ts: ["x"])],
    )
    deliveries, reason = route(g, "a", 1, "y")
    assert deliveries == ()
    assert reason == "no edge from 'a' accepted a int (conditions or handler types)"


# -- fan-in -------------------------------------------------------------------------


def test_fan_in_source_routes_into_the_group_when_target_takes_a_list_of_it() -> None:
    g = _graph(
        [("a", INT), ("b", INT), ("agg", (list[int],))],
        [FanInGroup(0, ("a", "b"), "agg")],
    )
    assert route(g, "a", 1, None) == ((("agg", 0),), None)
    assert route(g, "b", 2, None) == ((("agg", 0),), None)
    assert route(g, "a", 1, "agg") == ((("agg", 0),), None)


def test_fan_in_refuses_values_the_list_handler_cannot_hold() -> None:
    g = _graph(
        [("a", ANY), ("b", INT), ("agg", (list[int],))],
        [FanInGroup(0, ("a", "b"), "agg")],
    )
    deliveries, reason = route(g, "a", "s", None)
    assert deliveries == ()
    assert reason is not None and "accepted a str" in reason


def test_fan_in_target_without_a_list_handler_accepts_nothing() -> None:
    g = _graph([("a", INT), ("b", INT), ("agg", INT)], [FanInGroup(0, ("a", "b"), "agg")])
    assert route(g, "a", 1, None)[0] == ()


def test_fan_in_with_union_of_list_handlers() -> None:
    g = _graph(
        [("a", ANY), ("b", ANY), ("agg", (list[int] | list[str],))],
        [FanInGroup(0, ("a", "b"), "agg")],
    )
    assert route(g, "a", 1, None) == ((("agg", 0),), None)
    assert route(g, "a", "s", None) == ((("agg", 0),), None)
    assert route(g, "a", 1.5, None)[0] == ()


def test_plain_edge_and_fan_in_from_one_source_both_deliver() -> None:
    g = _graph(
        [("a", INT), ("b", INT), ("c", INT), ("agg", (list[int],))],
        [Edge(0, "a", "c"), FanInGroup(1, ("a", "b"), "agg")],
    )
    assert route(g, "a", 1, None) == ((("c", 0), ("agg", 1)), None)


# -- switch-case ---------------------------------------------------------------------


def _switch_graph(default_types: tuple[Any, ...] = INT) -> Graph:
    return _graph(
        [("a", ANY), ("small", INT), ("even", INT), ("other", default_types)],
        [
            SwitchCaseGroup(
                0,
                "a",
                ((lambda v: v < 10, "small"), (_is_even, "even")),
                "other",
            )
        ],
    )


def test_switch_case_first_matching_case_wins() -> None:
    g = _switch_graph()
    assert route(g, "a", 4, None) == ((("small", 0),), None)  # small and even: first wins
    assert route(g, "a", 12, None) == ((("even", 0),), None)


def test_switch_case_default_when_no_case_matches() -> None:
    g = _switch_graph()
    assert route(g, "a", 13, None) == ((("other", 0),), None)


def test_switch_case_delivers_to_exactly_one_target() -> None:
    g = _switch_graph()
    for v in range(30):
        deliveries, _ = route(g, "a", v, None)
        assert len(deliveries) == 1


def test_switch_case_chosen_target_that_cannot_handle_the_type_drops() -> None:
    g = _switch_graph(default_types=STR)
    deliveries, reason = route(g, "a", 13, None)
    assert deliveries == ()
    assert reason is not None and "accepted a int" in reason


def test_switch_case_target_id_must_match_the_chosen_branch() -> None:
    g = _switch_graph()
    assert route(g, "a", 4, "small") == ((("small", 0),), None)
    deliveries, reason = route(g, "a", 4, "other")
    assert deliveries == ()
    # an edge does lead to "other": the switch chose another branch, so the reason
    # must not claim the target is unconnected
    assert reason == "no edge from 'a' accepted a int (conditions or handler types)"


# -- multi-selection --------------------------------------------------------------------


def test_multi_selection_sends_to_every_selected_target() -> None:
    def pick(v: Any, targets: list[str]) -> list[str]:
        return [t for t in targets if (t == "x") == (v % 2 == 0)] if v >= 0 else targets

    g = _graph(
        [("a", INT), ("x", INT), ("y", INT), ("z", INT)],
        [MultiSelectionGroup(0, "a", ("x", "y", "z"), pick)],
    )
    assert route(g, "a", 2, None) == ((("x", 0),), None)
    assert route(g, "a", 1, None) == ((("y", 0), ("z", 0)), None)
    assert route(g, "a", -1, None) == ((("x", 0), ("y", 0), ("z", 0)), None)


def test_multi_selection_filters_by_handler_type() -> None:
    g = _graph(
        [("a", ANY), ("x", INT), ("y", STR)],
        [MultiSelectionGroup(0, "a", ("x", "y"), lambda v, ts: list(ts))],
    )
    assert route(g, "a", "s", None) == ((("y", 0),), None)


def test_multi_selection_of_nothing_drops_with_reason() -> None:
    g = _graph(
        [("a", INT), ("x", INT)],
        [MultiSelectionGroup(0, "a", ("x",), lambda v, ts: [])],
    )
    deliveries, reason = route(g, "a", 1, None)
    assert deliveries == ()
    assert reason == "no edge from 'a' accepted a int (conditions or handler types)"


def test_multi_selection_returning_unknown_targets_raises() -> None:
    g = _graph(
        [("a", INT), ("x", INT), ("b", INT)],
        [Edge(0, "a", "b"), MultiSelectionGroup(1, "a", ("x",), lambda v, ts: ["b"])],
    )
    # "b" is an executor of the graph but not a target of this group
    with pytest.raises(ValueError, match=r"unknown target\(s\) \['b'\]"):
        route(g, "a", 1, None)


def test_multi_selection_with_target_id() -> None:
    g = _graph(
        [("a", INT), ("x", INT), ("y", INT)],
        [MultiSelectionGroup(0, "a", ("x", "y"), lambda v, ts: list(ts))],
    )
    assert route(g, "a", 1, "y") == ((("y", 0),), None)


# -- determinism ----------------------------------------------------------------------


def test_routing_is_deterministic_across_graph_instances() -> None:
    def make() -> Graph:
        return _graph(
            [("a", ANY), ("x", INT), ("y", INT), ("agg", (list[int],))],
            [
                FanOutGroup(0, "a", ("y", "x")),
                Edge(1, "a", "x", _is_even),
                FanInGroup(2, ("a", "x"), "agg"),
            ],
        )

    results = {route(make(), "a", v, None) for v in range(6) for _ in range(3)}
    assert len(results) == 2  # one for even values, one for odd
    assert route(make(), "a", 2, None) == ((("y", 0), ("x", 0), ("x", 1), ("agg", 2)), None)


def test_literal_handler_types_are_matched_by_value_not_by_type() -> None:
    g = _graph(
        [("a", STR), ("yes", (Literal["yes"],)), ("agg", (list[Literal["y", "n"]],))],
        [Edge(0, "a", "yes"), FanInGroup(1, ("a",), "agg")],
    )
    # the first routed value must not decide for every later str
    assert route(g, "a", "yes", None) == ((("yes", 0),), None)
    assert route(g, "a", "no", None)[0] == ()
    assert route(g, "a", "yes", None) == ((("yes", 0),), None)
    assert route(g, "a", "n", None) == ((("agg", 1),), None)
    assert route(g, "a", "maybe", None)[0] == ()


def test_route_by_type_only_is_remembered_per_source_target_and_type() -> None:
    g = _graph(
        [("a", ANY), ("b", INT), ("c", ANY)],
        [Edge(0, "a", "b"), Edge(1, "a", "c")],
    )
    assert route(g, "a", 1, None) == ((("b", 0), ("c", 1)), None)
    assert route(g, "a", "s", None) == ((("c", 1),), None)
    assert route(g, "a", 2, "c") == ((("c", 1),), None)
    assert route(g, "a", 3, None) == ((("b", 0), ("c", 1)), None)
    assert set(g.routes) == {("a", None, int), ("a", None, str), ("a", "c", int)}


def test_routes_through_value_functions_or_of_containers_are_not_remembered() -> None:
    g = _graph(
        [("a", ANY), ("b", INT), ("c", (list[int], list[str]))],
        [Edge(0, "a", "b", _is_even), Edge(1, "a", "c")],
    )
    assert route(g, "a", 2, "b") == ((("b", 0),), None)
    assert route(g, "a", 3, "b")[0] == ()
    assert route(g, "a", [1], "c") == ((("c", 1),), None)
    assert route(g, "a", [1.5], "c")[0] == ()
    assert route(g, "a", ["s"], "c") == ((("c", 1),), None)
    assert ("a", "b", int) not in g.routes
    assert ("a", "c", list) not in g.routes
