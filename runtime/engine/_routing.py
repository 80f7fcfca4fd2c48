"""Routing: which executors a sent message goes to. Deterministic and pure."""

from __future__ import annotations

from typing import Any

from runtime.engine._graph import (
    Edge,
    EdgeGroup,
    FanInGroup,
    FanOutGroup,
    Graph,
    MultiSelectionGroup,
    SwitchCaseGroup,
)

__all__ = ["route"]


Route = tuple[tuple[tuple[str, int], ...], str | None]

_CONTAINERS = (list, dict, tuple, set, frozenset)


def route(graph: Graph, source: str, value: Any, target_id: str | None) -> Route:
    """Route ``value`` sent by ``source`` (optionally to ``target_id``).

    Returns the (target, edge group index) deliveries in edge-group order and,
    when there are none, the reason the message goes nowhere. Edge groups are
    evaluated in the order they were added; conditions and selectors are called
    with the sent value.
    """
    t = type(value)
    key = (source, target_id, t)
    cached: Route | None = graph.routes.get(key)
    if cached is not None:
        return cached
    groups = (
        graph.by_source.get(source, ())
        if target_id is None
        else graph.by_pair.get((source, target_id), ())
    )
    result = _route(graph, source, value, target_id, groups)
    if t not in _CONTAINERS and _depends_on_type_only(graph, groups):
        graph.routes[key] = result
    return result


def _depends_on_type_only(graph: Graph, groups: tuple[EdgeGroup, ...]) -> bool:
    """Is the route through ``groups`` the same for every value of one (non-container)
    type? Yes when no group calls a function of the value (condition, switch, selector)
    and every target's handler match is cacheable per type (no ``Literal``)."""
    nodes = graph.nodes
    for g in groups:
        if isinstance(g, Edge):
            if g.condition is not None:
                return False
        elif isinstance(g, FanOutGroup):
            if g.selection is not None:
                return False
        elif not isinstance(g, FanInGroup):
            return False
        if not all(nodes[target].per_type for target in g.targets):
            return False
    return True


def _route(
    graph: Graph,
    source: str,
    value: Any,
    target_id: str | None,
    groups: tuple[EdgeGroup, ...],
) -> Route:
    nodes = graph.nodes
    out: list[tuple[str, int]] = []
    considered = False
    for g in groups:
        if isinstance(g, Edge):
            if target_id is not None and target_id != g.target:
                continue
            considered = True
            if g.condition is not None and not g.condition(value):
                continue
            if nodes[g.target].accepts(value):
                out.append((g.target, g.index))
        elif isinstance(g, FanInGroup):
            if target_id is not None and target_id != g.target:
                continue
            considered = True
            if nodes[g.target].accepts_list_of(value):
                out.append((g.target, g.index))
        elif isinstance(g, SwitchCaseGroup):
            chosen = g.default
            for condition, target in g.cases:
                if condition(value):
                    chosen = target
                    break
            if target_id is not None and target_id != chosen:
                continue
            considered = True
            if nodes[chosen].accepts(value):
                out.append((chosen, g.index))
        else:
            targets: tuple[str, ...] | list[str] = g.targets
            if isinstance(g, MultiSelectionGroup):
                targets = _checked_selection(g.selector(value, list(g.targets)), g.targets)
            elif isinstance(g, FanOutGroup) and g.selection is not None:
                targets = _checked_selection(g.selection(value, list(g.targets)), g.targets)
            for t in targets:
                if target_id is not None and target_id != t:
                    continue
                considered = True
                if nodes[t].accepts(value):
                    out.append((t, g.index))
    if out:
        return tuple(out), None
    type_ = type(value).__qualname__
    if target_id is not None and not groups:
        return (), f"no edge from {source!r} leads to target_id {target_id!r}"
    if not considered and not graph.by_source.get(source):
        return (), f"{source!r} has no outgoing edges"
    return (), f"no edge from {source!r} accepted a {type_} (conditions or handler types)"


def _checked_selection(selected: list[str], allowed: tuple[str, ...]) -> list[str]:
    bad = [t for t in selected if t not in allowed]
    if bad:
        raise ValueError(
            f"selection function returned unknown target(s) {bad}; allowed: {list(allowed)}"
        )
    # keep the group's declared order and drop duplicates: routing stays canonical
    chosen = set(selected)
    return [t for t in allowed if t in chosen]
