"""Build-time checks of a workflow graph. Each problem names the executor or edge
and says how to fix it."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from runtime.engine import ExecutorPolicy, OnFailure, StateKey
from runtime.engine._types import is_subtype, list_element_types, type_name

if TYPE_CHECKING:
    from runtime.workflow._executor import Executor

__all__ = ["validate"]

Draft = tuple[str, list[str], list[str], Any, Any, Any, int]


def _accepts_type(ex: Executor, t: Any) -> bool:
    return any(is_subtype(t, h) for h in ex.input_types)


def _accepts_list_of(ex: Executor, t: Any) -> bool:
    for h in ex.input_types:
        elems = list_element_types(h)
        if elems is not None and any(is_subtype(t, e) for e in elems):
            return True
    return False


def _names(types: Sequence[Any]) -> str:
    return ", ".join(type_name(t) for t in types) or "nothing"


def validate(
    *,
    start: str,
    executors: Mapping[str, Executor],
    order: list[str],
    drafts: list[Draft],
    policies: Mapping[str, ExecutorPolicy],
    state_keys: Mapping[str, StateKey],
    max_supersteps: int | None,
) -> list[str]:
    """Every problem of the graph, each naming what is wrong and the fix: its edge
    groups and the types along them, what executors declare they send, reachability,
    failure policies and, for an unbounded run, cycles with no way out."""
    problems: list[str] = []
    succ, conditional = _edge_groups(executors, order, drafts, problems)
    _declared_outputs(executors, order, drafts, problems)
    _reachability(start, executors, order, policies, succ, problems)
    _policies(executors, order, policies, problems)
    if max_supersteps is None:
        _unbounded_cycles(executors, order, succ, conditional, problems)
    _ = state_keys
    return problems


def _edge_groups(
    executors: Mapping[str, Executor], order: list[str], drafts: list[Draft], problems: list[str]
) -> tuple[dict[str, set[str]], set[tuple[str, str]]]:
    """Each edge group's shape and the types along its edges; the successors of each
    executor and the conditional (source, target) pairs."""
    succ: dict[str, set[str]] = {eid: set() for eid in order}
    edge_pairs: dict[tuple[str, str], int] = {}
    conditional: set[tuple[str, str]] = set()

    for gi, (kind, sources, targets, condition, selector, _cases, defaults) in enumerate(drafts):
        label = (
            f"{kind.replace('_', '-')} group #{gi} ({', '.join(sources)} -> {', '.join(targets)})"
        )
        if kind == "switch_case" and defaults != 1:
            problems.append(
                f"{label}: a switch-case group needs exactly one Default branch, found {defaults}; "
                "add Default(target=...) as the last branch"
            )
        if kind == "fan_in" and len(set(sources)) != len(sources):
            problems.append(f"{label}: a fan-in lists the same source twice; list each source once")
        if kind in ("fan_out", "multi_selection") and len(set(targets)) != len(targets):
            problems.append(f"{label}: the same target is listed twice; list each target once")
        for s in sources:
            for t in set(targets):
                key = (s, t)
                # within one group a repeated pair is its own problem (reported above) or,
                # for switch-case, several cases sharing a target
                if key in edge_pairs and edge_pairs[key] != gi:
                    problems.append(
                        f"duplicate edge {s!r} -> {t!r} (edge groups #{edge_pairs[key]} and #{gi}); a "
                        "message would be delivered twice. Keep one edge per (source, target)"
                    )
                edge_pairs.setdefault(key, gi)
                succ[s].add(t)
                if condition is not None or selector is not None or kind == "switch_case":
                    conditional.add(key)
        # types along the edges
        for s in sources:
            out = executors[s].output_types
            if out is None:
                continue
            if kind == "fan_in":
                target = executors[targets[0]]
                if not any(list_element_types(h) is not None for h in target.input_types):
                    problems.append(
                        f"{label}: fan-in target {targets[0]!r} has no handler for a list; add a "
                        f"handler taking list[{_names(out)}]"
                    )
                elif out and not any(_accepts_list_of(target, t) for t in out):
                    problems.append(
                        f"{label}: fan-in target {targets[0]!r} handles {_names(target.input_types)}, "
                        f"not a list of what {s!r} sends ({_names(out)}); add a handler taking "
                        f"list[{_names(out)}]"
                    )
                continue
            for t in dict.fromkeys(targets):
                target = executors[t]
                if out and not any(_accepts_type(target, o) for o in out):
                    problems.append(
                        f"edge {s!r} -> {t!r}: {s!r} sends {_names(out)} but {t!r} only handles "
                        f"{_names(target.input_types)}; add a handler for it or change the edge"
                    )
        if kind == "fan_in":
            target = executors[targets[0]]
            if not any(list_element_types(h) is not None for h in target.input_types) and all(
                executors[s].output_types is None for s in sources
            ):
                problems.append(
                    f"{label}: fan-in target {targets[0]!r} has no handler for a list; a fan-in "
                    "delivers list[T]"
                )

    return succ, conditional


def _declared_outputs(
    executors: Mapping[str, Executor], order: list[str], drafts: list[Draft], problems: list[str]
) -> None:
    """Every declared output type must be accepted by some outgoing edge."""
    for eid in order:
        out = executors[eid].output_types
        if not out:
            continue
        outgoing = [d for d in drafts if eid in d[1]]
        if not outgoing:
            problems.append(
                f"executor {eid!r} declares it sends {_names(out)} but has no outgoing edges; add an "
                "edge or declare WorkflowContext[Never, ...]"
            )
            continue
        for t in out:
            ok = False
            for kind, _s, targets, *_ in outgoing:
                if kind == "fan_in":
                    ok = ok or _accepts_list_of(executors[targets[0]], t)
                else:
                    ok = ok or any(_accepts_type(executors[x], t) for x in targets)
            if not ok:
                problems.append(
                    f"executor {eid!r} sends {type_name(t)} but no target of its edges handles it; "
                    "add a handler for it downstream or stop sending it"
                )


def _reachability(
    start: str,
    executors: Mapping[str, Executor],
    order: list[str],
    policies: Mapping[str, ExecutorPolicy],
    succ: Mapping[str, set[str]],
    problems: list[str],
) -> None:
    """Every executor is reachable from the start executor (a fallback through its
    executor)."""
    if start in succ:
        fallbacks: dict[str, str] = {}
        for eid in order:
            eff = policies.get(eid) or executors[eid].policy
            fb = eff.fallback if eff is not None and eff.on_failure is OnFailure.FALLBACK else None
            if fb is not None and fb in succ:
                fallbacks[eid] = fb
        seen = {start}
        stack = [start]
        while stack:
            node = stack.pop()
            nexts = set(succ[node])
            if node in fallbacks:
                nexts.add(fallbacks[node])
            for nxt in nexts:
                if nxt not in seen:
                    seen.add(nxt)
                    stack.append(nxt)
        for eid in order:
            if eid not in seen:
                problems.append(
                    f"executor {eid!r} is unreachable from the start executor {start!r}; connect it "
                    "with an edge or remove it"
                )


def _policies(
    executors: Mapping[str, Executor],
    order: list[str],
    policies: Mapping[str, ExecutorPolicy],
    problems: list[str],
) -> None:
    """Failure policies: attempts, and a fallback that exists, is another executor and
    handles what its executor receives."""
    for eid in order:
        maybe = policies.get(eid) or executors[eid].policy
        if maybe is None:
            continue
        policy = maybe
        if policy.max_attempts < 1:
            problems.append(f"executor {eid!r}: max_attempts must be at least 1")
        if policy.on_failure is OnFailure.FALLBACK:
            fb = policy.fallback
            if fb is None or fb not in executors:
                problems.append(
                    f"executor {eid!r}: on_failure='fallback' names fallback {fb!r}, which is not an "
                    "executor of this workflow; add that executor to the workflow (an edge, or "
                    "set_policy/set_placement with the executor object) or name another one"
                )
            elif fb == eid:
                problems.append(
                    f"executor {eid!r}: on_failure='fallback' names {eid!r} as its own fallback, "
                    "so its failing messages would come straight back to it; name another "
                    "executor or use on_failure='skip'"
                )
            elif not all(
                any(_accepts_type(executors[fb], t) for t in [i])
                for i in executors[eid].input_types
            ):
                problems.append(
                    f"executor {eid!r}: its fallback {fb!r} handles {_names(executors[fb].input_types)}, "
                    f"not everything {eid!r} receives ({_names(executors[eid].input_types)}); give "
                    f"{fb!r} a handler for each of them or pick another fallback"
                )
        elif policy.fallback is not None:
            problems.append(
                f"executor {eid!r}: fallback {policy.fallback!r} is given but "
                f"on_failure={policy.on_failure.value!r}, so it would never be used; set "
                "on_failure=OnFailure.FALLBACK or drop the fallback"
            )


def _unbounded_cycles(
    executors: Mapping[str, Executor],
    order: list[str],
    succ: Mapping[str, set[str]],
    conditional: set[tuple[str, str]],
    problems: list[str],
) -> None:
    """Cycles with no way out (for a run with no superstep limit)."""
    for comp in _cycles(order, succ):
        if any(t not in comp for s in comp for t in succ[s]):
            continue
        if any((s, t) in conditional for s in comp for t in succ[s] if t in comp):
            continue
        if any(executors[s].workflow_output_types for s in comp):
            continue
        path = " -> ".join([*sorted(comp, key=order.index), sorted(comp, key=order.index)[0]])
        problems.append(
            f"cycle {path} has no exit: its edges are unconditional, nothing leaves it and none "
            "of its executors yields outputs, so with max_supersteps=None it could run forever. "
            "Add a condition to an edge of the cycle or set max_supersteps"
        )


def _cycles(order: list[str], succ: Mapping[str, set[str]]) -> list[set[str]]:
    """Strongly connected components that contain a cycle (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    on_stack: set[str] = set()
    stack: list[str] = []
    out: list[set[str]] = []
    counter = 0
    for root in order:
        if root in index:
            continue
        work: list[tuple[str, list[str]]] = [(root, sorted(succ[root]))]
        index[root] = low[root] = counter
        counter += 1
        stack.append(root)
        on_stack.add(root)
        while work:
            node, pending = work[-1]
            if pending:
                nxt = pending.pop()
                if nxt not in index:
                    index[nxt] = low[nxt] = counter
                    counter += 1
                    stack.append(nxt)
                    on_stack.add(nxt)
                    work.append((nxt, sorted(succ[nxt])))
                elif nxt in on_stack:
                    low[node] = min(low[node], index[nxt])
                continue
            work.pop()
            if work:
                parent = work[-1][0]
                low[parent] = min(low[parent], low[node])
            if low[node] == index[node]:
                comp: set[str] = set()
                while True:
                    w = stack.pop()
                    on_stack.discard(w)
                    comp.add(w)
                    if w == node:
                        break
                if len(comp) > 1 or node in succ[node]:
                    out.append(comp)
    return out
