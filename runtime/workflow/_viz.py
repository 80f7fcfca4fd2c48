"""Graph diagrams: Mermaid and Graphviz DOT."""

from __future__ import annotations

from runtime.engine import (
    Edge,
    FanInGroup,
    FanOutGroup,
    Graph,
    MultiSelectionGroup,
    SwitchCaseGroup,
)

__all__ = ["to_dot", "to_mermaid"]


def _edges(graph: Graph) -> list[tuple[str, str, str]]:
    out: list[tuple[str, str, str]] = []
    for g in graph.groups:
        if isinstance(g, Edge):
            out.append((g.source, g.target, "if" if g.condition is not None else ""))
        elif isinstance(g, FanOutGroup):
            out.extend((g.source, t, "fan-out") for t in g.targets)
        elif isinstance(g, FanInGroup):
            out.extend((s, g.target, "fan-in") for s in g.sources)
        elif isinstance(g, SwitchCaseGroup):
            out.extend((g.source, t, f"case {i}") for i, (_, t) in enumerate(g.cases))
            out.append((g.source, g.default, "default"))
        elif isinstance(g, MultiSelectionGroup):
            out.extend((g.source, t, "select") for t in g.targets)
    return out


def _mid(eid: str) -> str:
    return "n_" + "".join(c if c.isalnum() else "_" for c in eid)


def to_mermaid(graph: Graph) -> str:
    lines = ["flowchart TD"]
    for n in graph.executors:
        shape = f'(["{n.id}"])' if n.id == graph.start else f'["{n.id}"]'
        lines.append(f"  {_mid(n.id)}{shape}")
    for s, t, label in _edges(graph):
        arrow = f" -->|{label}| " if label else " --> "
        lines.append(f"  {_mid(s)}{arrow}{_mid(t)}")
    return "\n".join(lines) + "\n"


def to_dot(graph: Graph) -> str:
    lines = [f'digraph "{graph.name}" {{', "  rankdir=TB;"]
    for n in graph.executors:
        extra = ", shape=doublecircle" if n.id == graph.start else ", shape=box"
        lines.append(f'  "{n.id}" [label="{n.id}\\npool={n.placement.pool}"{extra}];')
    for s, t, label in _edges(graph):
        attr = f' [label="{label}"]' if label else ""
        lines.append(f'  "{s}" -> "{t}"{attr};')
    lines.append("}")
    return "\n".join(lines) + "\n"
