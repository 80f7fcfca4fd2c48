"""``WorkflowBuilder``: a fluent API close to agent-framework's, validated at ``build()``."""

from __future__ import annotations

import itertools
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from runtime.engine import (
    Edge,
    EdgeGroup,
    ExecutorNode,
    ExecutorPolicy,
    FanInGroup,
    FanOutGroup,
    Graph,
    JsonCodec,
    MultiSelectionGroup,
    Placement,
    StateKey,
    SwitchCaseGroup,
)
from runtime.engine._graph import Condition, Reducer, Selector
from runtime.engine._types import iter_named_types
from runtime.errors import CodecError, WorkflowValidationError
from runtime.workflow._executor import Executor
from runtime.workflow._validation import validate

if TYPE_CHECKING:
    from runtime.checkpoint import CheckpointStorage
    from runtime.workflow._workflow import Workflow

__all__ = ["DEFAULT_MAX_SUPERSTEPS", "Case", "Default", "WorkflowBuilder"]

DEFAULT_MAX_SUPERSTEPS = 100

ExecutorRef = Executor | str


@dataclass(frozen=True, slots=True)
class Case:
    """A switch-case branch: the first case whose condition holds gets the message."""

    condition: Callable[[Any], bool]
    target: ExecutorRef


@dataclass(frozen=True, slots=True)
class Default:
    """The switch-case branch taken when no case matches (exactly one per group)."""

    target: ExecutorRef


@dataclass(slots=True)
class _GroupDraft:
    kind: str
    sources: list[str]
    targets: list[str]
    condition: Condition | None = None
    selector: Selector | None = None
    cases: list[tuple[Condition, str]] | None = None
    defaults: int = 0


class WorkflowBuilder:
    """Build a workflow graph.

    ``max_supersteps`` bounds the run (``None``: unbounded, allowed only when every
    cycle has an exit). ``strict_routing`` turns a message no edge accepts into an
    error instead of a ``message_dropped`` event. ``max_iterations`` is accepted as
    agent-framework's name for ``max_supersteps``.
    """

    def __init__(
        self,
        max_supersteps: int | None = DEFAULT_MAX_SUPERSTEPS,
        name: str | None = None,
        description: str | None = None,
        *,
        start_executor: Executor | None = None,
        checkpoint_storage: CheckpointStorage | None = None,
        strict_routing: bool = False,
        max_iterations: int | None = None,
    ) -> None:
        self._max_supersteps = max_iterations if max_iterations is not None else max_supersteps
        self._name = name
        self._description = description
        self._checkpoint_storage = checkpoint_storage
        self._strict = strict_routing
        self._executors: dict[str, Executor] = {}
        self._order: list[str] = []
        self._problems: list[str] = []
        self._groups: list[_GroupDraft] = []
        self._state: dict[str, StateKey] = {}
        self._reducers: dict[str, Reducer] = {}
        self._policies: dict[str, ExecutorPolicy] = {}
        self._placements: dict[str, list[Placement]] = {}
        self._types: list[type] = []
        self._unknown_refs: set[str] = set()
        self._start: str | None = None
        if start_executor is not None:
            self._start = self._add(start_executor)

    # -- executors --------------------------------------------------------------------
    def _add(self, ref: ExecutorRef) -> str:
        if isinstance(ref, str):
            if ref not in self._executors:
                self._unknown_refs.add(ref)
            return ref
        if not isinstance(ref, Executor):
            raise TypeError(f"expected an Executor or an executor id, got {ref!r}")
        existing = self._executors.get(ref.id)
        if existing is None:
            self._executors[ref.id] = ref
            self._order.append(ref.id)
            self._unknown_refs.discard(ref.id)
            if ref.placement is not None:
                self._placements.setdefault(ref.id, []).append(ref.placement)
        elif existing is not ref:
            problem = (
                f"duplicate executor id {ref.id!r}: two different executors "
                f"({type(existing).__qualname__} and {type(ref).__qualname__}) use it; "
                "give each executor a unique id"
            )
            if problem not in self._problems:
                self._problems.append(problem)
        return ref.id

    def add_executor(self, executor: Executor) -> WorkflowBuilder:
        """Add an executor that no edge names yet (e.g. one only used as a fallback)."""
        self._add(executor)
        return self

    def set_start_executor(self, executor: Executor) -> WorkflowBuilder:
        self._start = self._add(executor)
        return self

    # -- edges ------------------------------------------------------------------------
    def add_edge(
        self, source: ExecutorRef, target: ExecutorRef, condition: Condition | None = None
    ) -> WorkflowBuilder:
        """A direct edge; with ``condition`` only messages it accepts pass."""
        s, t = self._add(source), self._add(target)
        self._groups.append(_GroupDraft("edge", [s], [t], condition=condition))
        return self

    def add_fan_out_edges(
        self,
        source: ExecutorRef,
        targets: Sequence[ExecutorRef],
        selection_func: Selector | None = None,
    ) -> WorkflowBuilder:
        """Every message goes to every target (or to those ``selection_func`` picks)."""
        s = self._add(source)
        ts = [self._add(t) for t in targets]
        self._groups.append(_GroupDraft("fan_out", [s], ts, selector=selection_func))
        return self

    def add_fan_in_edges(
        self, sources: Sequence[ExecutorRef], target: ExecutorRef
    ) -> WorkflowBuilder:
        """Buffer messages from ``sources``; once each has sent since the last delivery,
        ``target`` gets them as one list in the next superstep."""
        ss = [self._add(s) for s in sources]
        t = self._add(target)
        self._groups.append(_GroupDraft("fan_in", ss, [t]))
        return self

    def add_switch_case_edge_group(
        self, source: ExecutorRef, cases: Sequence[Case | Default]
    ) -> WorkflowBuilder:
        """The first ``Case`` whose condition holds gets the message, else the ``Default``."""
        s = self._add(source)
        branch: list[tuple[Condition, str]] = []
        defaults: list[str] = []
        for c in cases:
            if isinstance(c, Case):
                branch.append((c.condition, self._add(c.target)))
            elif isinstance(c, Default):
                defaults.append(self._add(c.target))
            else:
                raise TypeError(f"switch-case entries are Case or Default, got {c!r}")
        self._groups.append(
            _GroupDraft(
                "switch_case",
                [s],
                [t for _, t in branch] + defaults,
                cases=branch,
                defaults=len(defaults),
            )
        )
        return self

    def add_multi_selection_edge_group(
        self,
        source: ExecutorRef,
        targets: Sequence[ExecutorRef],
        selection_func: Selector,
    ) -> WorkflowBuilder:
        """``selection_func(message, target_ids)`` returns the ids that get the message."""
        s = self._add(source)
        ts = [self._add(t) for t in targets]
        self._groups.append(_GroupDraft("multi_selection", [s], ts, selector=selection_func))
        return self

    def add_chain(self, executors: Sequence[ExecutorRef]) -> WorkflowBuilder:
        """Edges ``e0 -> e1 -> ... -> en``."""
        ids = [self._add(e) for e in executors]
        for a, b in itertools.pairwise(ids):
            self._groups.append(_GroupDraft("edge", [a], [b]))
        return self

    # -- state, policies, placement, types -------------------------------------------------
    def add_state(
        self, key: str, *, initial: Any = None, reducer: Reducer | None = None
    ) -> WorkflowBuilder:
        """Declare a shared-state key, its initial value and optional reducer.

        With a reducer, each write is an update folded into the committed value
        (``reducer(current, update)``) in canonical order; without, one writer per
        superstep replaces the value and two are a ``StateConflictError``."""
        self._state[key] = StateKey(key, initial, reducer)
        return self

    def add_reducer(self, key: str, reducer: Reducer) -> WorkflowBuilder:
        """Give a declared key a reducer."""
        self._reducers[key] = reducer
        return self

    def set_policy(self, executor: ExecutorRef, policy: ExecutorPolicy) -> WorkflowBuilder:
        self._policies[self._add(executor)] = policy
        return self

    def set_placement(self, executor: ExecutorRef, placement: Placement) -> WorkflowBuilder:
        self._placements.setdefault(self._add(executor), []).append(placement)
        return self

    def register_types(self, *types: type) -> WorkflowBuilder:
        """Allow classes that no handler annotation names to cross the codec."""
        self._types.extend(types)
        return self

    # -- build ------------------------------------------------------------------------
    def build(self) -> Workflow:
        """Validate the graph and return an immutable ``Workflow``.

        Raises ``WorkflowValidationError`` listing every problem found."""
        from runtime.workflow._workflow import Workflow

        problems = list(self._problems)
        for ref in sorted(self._unknown_refs):
            problems.append(
                f"an edge names executor {ref!r}, which is not in the workflow; pass the "
                "executor object (or add it with another edge) before naming it by id"
            )
        for ex in self._executors.values():
            # handler problems are found per class: say which executor has them
            problems.extend(
                p if p.startswith(f"executor {ex.id!r}") else f"executor {ex.id!r}: {p}"
                for p in ex._problems
            )
        state = dict(self._state)
        for key, reducer in self._reducers.items():
            if key not in state:
                problems.append(
                    f"a reducer is given for state key {key!r}, which is not declared; declare it "
                    f"with add_state({key!r}, initial=..., reducer=...)"
                )
            else:
                state[key] = StateKey(key, state[key].initial, reducer)
        placements: dict[str, Placement] = {}
        for eid, ps in self._placements.items():
            distinct: list[Placement] = []
            for p in ps:  # Placement holds a dict of labels: compare, don't hash
                if p not in distinct:
                    distinct.append(p)
            if len(distinct) > 1:
                problems.append(
                    f"conflicting placement for executor {eid!r}: "
                    + " vs ".join(f"pool={p.pool!r} labels={dict(p.labels)}" for p in distinct)
                    + "; give it one placement"
                )
            placements[eid] = distinct[0]

        order = self._ordered_ids()
        nodes = tuple(self._node(eid, i, placements) for i, eid in enumerate(order))
        groups = self._groups_final(order)
        codec = JsonCodec()
        try:
            for t in self._collect_types():
                codec.register(t)
        except CodecError as exc:
            problems.append(str(exc))
        if self._start is None:
            problems.append(
                "no start executor: pass WorkflowBuilder(start_executor=...) or call "
                "set_start_executor(...)"
            )
        graph_ok = self._start is not None and not self._unknown_refs
        if graph_ok:
            problems.extend(
                validate(
                    start=self._start or "",
                    executors=self._executors,
                    order=order,
                    drafts=[
                        (d.kind, d.sources, d.targets, d.condition, d.selector, d.cases, d.defaults)
                        for d in self._groups
                    ],
                    policies=self._policies,
                    state_keys=state,
                    max_supersteps=self._max_supersteps,
                )
            )
        if self._max_supersteps is not None and self._max_supersteps < 1:
            problems.append(
                f"max_supersteps must be at least 1 (or None), got {self._max_supersteps}"
            )
        if problems:
            raise WorkflowValidationError(problems)
        assert self._start is not None
        graph = Graph(
            name=self._name or f"workflow:{self._start}",
            start=self._start,
            executors=nodes,
            groups=groups,
            state_keys=state,
            codec=codec,
            max_supersteps=self._max_supersteps,
            strict_routing=self._strict,
        )
        return Workflow(
            graph,
            {eid: self._executors[eid] for eid in order},
            description=self._description,
            checkpoint_storage=self._checkpoint_storage,
        )

    def _ordered_ids(self) -> list[str]:
        """The graph's executor order: the start executor, then first appearance."""
        ids = [eid for eid in self._order if eid in self._executors]
        if self._start in ids:
            ids.remove(self._start)
            ids.insert(0, self._start)
        return ids

    def _node(self, eid: str, index: int, placements: dict[str, Placement]) -> ExecutorNode:
        ex = self._executors[eid]
        policy = self._policies.get(eid) or ex.policy or ExecutorPolicy()
        out = ex.output_types
        yld = ex.workflow_output_types
        return ExecutorNode(
            id=eid,
            index=index,
            kind=ex.kind,
            input_types=tuple(ex.input_types),
            response_types=tuple((h.request_type, h.response_type) for h in ex._response_handlers),
            output_types=tuple(out) if out is not None else None,
            yield_types=tuple(yld) if yld is not None else None,
            policy=policy,
            placement=placements.get(eid, Placement()),
        )

    def _groups_final(self, order: list[str]) -> tuple[EdgeGroup, ...]:
        out: list[EdgeGroup] = []
        for i, d in enumerate(self._groups):
            if d.kind == "edge":
                out.append(Edge(i, d.sources[0], d.targets[0], d.condition))
            elif d.kind == "fan_out":
                out.append(FanOutGroup(i, d.sources[0], tuple(d.targets), d.selector))
            elif d.kind == "fan_in":
                out.append(FanInGroup(i, tuple(d.sources), d.targets[0]))
            elif d.kind == "switch_case":
                cases = tuple(d.cases or ())
                default = d.targets[-1] if d.defaults else (cases[-1][1] if cases else "")
                out.append(SwitchCaseGroup(i, d.sources[0], cases, default))
            else:
                assert d.selector is not None
                out.append(MultiSelectionGroup(i, d.sources[0], tuple(d.targets), d.selector))
        return tuple(out)

    def _collect_types(self) -> list[type]:
        found: list[type] = list(self._types)
        for ex in self._executors.values():
            for h in ex._handlers:
                for ann in (h.message_type, *(h.output_types or ()), *(h.yield_types or ())):
                    found.extend(iter_named_types(ann))
            for r in ex._response_handlers:
                for ann in (
                    r.request_type,
                    r.response_type,
                    *(r.output_types or ()),
                    *(r.yield_types or ()),
                ):
                    found.extend(iter_named_types(ann))
        return list(dict.fromkeys(found))
