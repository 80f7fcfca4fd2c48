"""The engine's view of a workflow graph: executors, edge groups, state keys.

Built by ``WorkflowBuilder.build()`` and immutable afterwards. It carries the
live callables (edge conditions, selectors, reducers) and the codec, so the pure
functions of the engine can route and merge without knowing the authoring API.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from runtime.engine._codec import JsonCodec, canonical_json, digest
from runtime.engine._types import (
    depends_on_value,
    is_instance_of,
    list_element_types,
    type_name,
)

__all__ = [
    "Edge",
    "EdgeGroup",
    "ExecutorNode",
    "ExecutorPolicy",
    "FanInGroup",
    "FanOutGroup",
    "Graph",
    "MultiSelectionGroup",
    "OnFailure",
    "Placement",
    "StateKey",
    "SwitchCaseGroup",
    "describe_group",
]

Condition = Callable[[Any], bool]
Selector = Callable[[Any, list[str]], list[str]]
Reducer = Callable[[Any, Any], Any]


class OnFailure(enum.StrEnum):
    FAIL = "fail"
    SKIP = "skip"
    FALLBACK = "fallback"


@dataclass(frozen=True, slots=True)
class ExecutorPolicy:
    """How an executor's activations are bounded and retried.

    ``timeout_s`` bounds one attempt. ``max_attempts`` counts the first try.
    Backoff before attempt n+1 is ``min(backoff_s * multiplier**(n-1), max_backoff_s)``.
    After the last failed attempt ``on_failure`` decides: fail the run, skip the
    activation (nothing of it commits), or send its messages to ``fallback``.
    """

    timeout_s: float | None = None
    max_attempts: int = 1
    backoff_s: float = 0.0
    backoff_multiplier: float = 2.0
    max_backoff_s: float = 30.0
    on_failure: OnFailure = OnFailure.FAIL
    fallback: str | None = None

    def backoff(self, failed_attempts: int) -> float:
        if self.backoff_s <= 0:
            return 0.0
        return min(
            self.backoff_s * self.backoff_multiplier ** (failed_attempts - 1), self.max_backoff_s
        )

    def describe(self) -> dict[str, Any]:
        return {
            "timeout_s": self.timeout_s,
            "max_attempts": self.max_attempts,
            "on_failure": self.on_failure.value,
            "fallback": self.fallback,
        }


@dataclass(frozen=True, slots=True)
class Placement:
    """Where an executor may run: a pool name and labels (hosts must carry them all)."""

    pool: str = "default"
    labels: Mapping[str, str] = field(default_factory=dict)

    def describe(self) -> dict[str, Any]:
        return {"pool": self.pool, "labels": dict(sorted(self.labels.items()))}


@dataclass(frozen=True, slots=True)
class ExecutorNode:
    id: str
    index: int
    kind: str
    """Qualified class name of the executor (or function name for function executors)."""
    input_types: tuple[Any, ...]
    """Message annotations of its handlers, in declaration order."""
    response_types: tuple[tuple[Any, Any], ...] = ()
    """(request type, response type) of its response handlers."""
    output_types: tuple[Any, ...] | None = None
    """Types it declares it sends (``WorkflowContext[T]``); None when undeclared."""
    yield_types: tuple[Any, ...] | None = None
    policy: ExecutorPolicy = ExecutorPolicy()
    placement: Placement = Placement()

    _cache: dict[tuple[bool, type], bool] = field(default_factory=dict, compare=False, repr=False)
    _list_elems: tuple[Any, ...] = field(default=(), compare=False, repr=False)
    _per_type: bool = field(default=True, compare=False, repr=False)
    """Whether ``accepts`` may be cached per type (not with ``Literal`` handlers)."""

    def __post_init__(self) -> None:
        elems: list[Any] = []
        for t in self.input_types:
            found = list_element_types(t)
            if found is not None:
                elems.extend(found)
        object.__setattr__(self, "_list_elems", tuple(elems))
        per_type = not any(depends_on_value(t) for t in self.input_types)
        object.__setattr__(self, "_per_type", per_type)

    @property
    def per_type(self) -> bool:
        """Whether matching a value depends only on its type (no ``Literal`` handler)."""
        return self._per_type

    def accepts(self, value: Any) -> bool:
        """Does some handler of this executor take ``value``?"""
        t = type(value)
        simple = self._per_type and t not in _CONTAINERS
        if simple:
            hit = self._cache.get((False, t))
            if hit is not None:
                return hit
        ok = any(is_instance_of(value, a) for a in self.input_types)
        if simple:
            self._cache[(False, t)] = ok
        return ok

    def accepts_list_of(self, value: Any) -> bool:
        """Could a fan-in list containing ``value`` be handled by this executor?"""
        if not self._list_elems:
            return False
        t = type(value)
        simple = self._per_type and t not in _CONTAINERS
        if simple:
            hit = self._cache.get((True, t))
            if hit is not None:
                return hit
        ok = any(is_instance_of(value, e) for e in self._list_elems)
        if simple:
            self._cache[(True, t)] = ok
        return ok


_CONTAINERS = (list, dict, tuple, set, frozenset)


@dataclass(frozen=True, slots=True)
class Edge:
    index: int
    source: str
    target: str
    condition: Condition | None = None

    @property
    def sources(self) -> tuple[str, ...]:
        return (self.source,)

    @property
    def targets(self) -> tuple[str, ...]:
        return (self.target,)


@dataclass(frozen=True, slots=True)
class FanOutGroup:
    index: int
    source: str
    targets: tuple[str, ...]
    selection: Selector | None = None

    @property
    def sources(self) -> tuple[str, ...]:
        return (self.source,)


@dataclass(frozen=True, slots=True)
class FanInGroup:
    index: int
    sources: tuple[str, ...]
    target: str

    @property
    def targets(self) -> tuple[str, ...]:
        return (self.target,)


@dataclass(frozen=True, slots=True)
class SwitchCaseGroup:
    index: int
    source: str
    cases: tuple[tuple[Condition, str], ...]
    default: str

    @property
    def sources(self) -> tuple[str, ...]:
        return (self.source,)

    @property
    def targets(self) -> tuple[str, ...]:
        return (*(t for _, t in self.cases), self.default)


@dataclass(frozen=True, slots=True)
class MultiSelectionGroup:
    index: int
    source: str
    targets: tuple[str, ...]
    selector: Selector

    @property
    def sources(self) -> tuple[str, ...]:
        return (self.source,)


EdgeGroup = Edge | FanOutGroup | FanInGroup | SwitchCaseGroup | MultiSelectionGroup


@dataclass(frozen=True, slots=True)
class StateKey:
    key: str
    initial: Any = None
    reducer: Reducer | None = None


@dataclass(frozen=True)
class Graph:
    name: str
    start: str
    executors: tuple[ExecutorNode, ...]
    groups: tuple[EdgeGroup, ...]
    state_keys: Mapping[str, StateKey]
    codec: JsonCodec
    max_supersteps: int | None = 100
    strict_routing: bool = False
    nodes: Mapping[str, ExecutorNode] = field(init=False)
    by_source: Mapping[str, tuple[EdgeGroup, ...]] = field(init=False)
    by_pair: Mapping[tuple[str, str], tuple[EdgeGroup, ...]] = field(init=False)
    """(source, target) -> the edge groups that could carry a message between them."""
    signature: str = field(init=False)
    routes: dict[tuple[str, str | None, type], Any] = field(
        init=False, default_factory=dict, compare=False, repr=False
    )
    """Routing results that depend only on the sent value's type (``route`` fills it)."""

    def __post_init__(self) -> None:
        object.__setattr__(self, "nodes", {n.id: n for n in self.executors})
        by_source: dict[str, list[EdgeGroup]] = {n.id: [] for n in self.executors}
        for g in self.groups:
            for s in g.sources:
                by_source[s].append(g)
        object.__setattr__(self, "by_source", {k: tuple(v) for k, v in by_source.items()})
        by_pair: dict[tuple[str, str], list[EdgeGroup]] = {}
        for g in self.groups:
            for s in g.sources:
                for t in dict.fromkeys(g.targets):
                    by_pair.setdefault((s, t), []).append(g)
        object.__setattr__(self, "by_pair", {k: tuple(v) for k, v in by_pair.items()})
        object.__setattr__(self, "signature", digest(canonical_json(self.describe())))

    def index_of(self, executor_id: str) -> int:
        node = self.nodes.get(executor_id)
        return node.index if node is not None else -1

    def describe(self) -> dict[str, Any]:
        """A JSON description of the graph's shape (what its signature covers)."""
        return {
            "name": self.name,
            "start": self.start,
            "executors": [
                {
                    "id": n.id,
                    "kind": n.kind,
                    "inputs": [type_name(t) for t in n.input_types],
                    "responses": [[type_name(a), type_name(b)] for a, b in n.response_types],
                }
                for n in self.executors
            ],
            "edges": [_describe_group(g) for g in self.groups],
            "state": {
                k: {"reducer": s.reducer is not None} for k, s in sorted(self.state_keys.items())
            },
            "types": list(self.codec.registered),
        }


def _describe_group(g: EdgeGroup) -> dict[str, Any]:
    if isinstance(g, Edge):
        return {
            "kind": "edge",
            "source": g.source,
            "target": g.target,
            "conditional": g.condition is not None,
        }
    if isinstance(g, FanOutGroup):
        return {
            "kind": "fan_out",
            "source": g.source,
            "targets": list(g.targets),
            "selective": g.selection is not None,
        }
    if isinstance(g, FanInGroup):
        return {"kind": "fan_in", "sources": list(g.sources), "target": g.target}
    if isinstance(g, SwitchCaseGroup):
        return {"kind": "switch_case", "source": g.source, "targets": list(g.targets)}
    return {"kind": "multi_selection", "source": g.source, "targets": list(g.targets)}


def describe_group(group: EdgeGroup) -> dict[str, Any]:
    """An edge group as the APIs list it (``GET /workflows``): its kind, sources,
    targets (a switch-case group's cases in order, then its default) and whether a
    condition or selector decides which targets a message takes."""
    if isinstance(group, Edge):
        kind, sources, targets = "edge", [group.source], [group.target]
        conditional = group.condition is not None
    elif isinstance(group, FanOutGroup):
        kind, sources, targets = "fan_out", [group.source], list(group.targets)
        conditional = group.selection is not None
    elif isinstance(group, FanInGroup):
        kind, sources, targets, conditional = "fan_in", list(group.sources), [group.target], False
    elif isinstance(group, SwitchCaseGroup):
        kind, sources = "switch_case", [group.source]
        targets, conditional = [*(t for _, t in group.cases), group.default], True
    else:
        assert isinstance(group, MultiSelectionGroup)
        kind, sources, targets, conditional = (
            "multi_selection",
            [group.source],
            list(group.targets),
            True,
        )
    return {"kind": kind, "sources": sources, "targets": targets, "conditional": conditional}
