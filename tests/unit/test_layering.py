"""The layers of ``runtime``: drivers use the public driver interface, and no package
of ``runtime`` imports, at any time, one that imports it back.

Read from the source (every import statement, those inside functions too, but not
those under ``if TYPE_CHECKING:``), so a cycle hidden in a function-level import —
as the authoring API once reached the in-process runtime — is found.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PRODUCT = ("runtime", "executor_host", "sidecar", "bench")


def _modules(package: str) -> Iterator[tuple[str, ast.Module]]:
    for path in sorted((ROOT / package).rglob("*.py")):
        parts = path.relative_to(ROOT).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        yield name, ast.parse(path.read_text(), str(path))


def _imports(tree: ast.Module) -> Iterator[str]:
    """Every module an import statement names, outside ``if TYPE_CHECKING:`` blocks."""

    def walk(node: ast.AST) -> Iterator[str]:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.If) and "TYPE_CHECKING" in ast.unparse(child.test):
                yield from (m for c in child.orelse for m in walk(c))
                continue
            if isinstance(child, ast.Import):
                yield from (a.name for a in child.names)
            elif isinstance(child, ast.ImportFrom) and child.level == 0 and child.module:
                yield child.module
            yield from walk(child)

    return walk(tree)


def _package(module: str) -> str:
    """``runtime.workflow._run`` -> ``runtime.workflow``; ``runtime.loop`` stays."""
    return ".".join(module.split(".")[:2])


def test_drivers_import_no_private_module_of_the_workflow_package() -> None:
    found = [
        f"{name} imports {imported}"
        for package in PRODUCT
        for name, tree in _modules(package)
        if not name.startswith("runtime.workflow")
        for imported in _imports(tree)
        if imported.startswith("runtime.workflow._")
    ]
    assert found == [], "use runtime.workflow.driver instead:\n" + "\n".join(found)


def test_the_packages_of_runtime_import_each_other_without_a_cycle() -> None:
    edges: dict[str, set[str]] = {}
    for name, tree in _modules("runtime"):
        source = _package(name)
        for imported in _imports(tree):
            if imported == "runtime" or imported.startswith("runtime."):
                target = _package(imported)
                if target != source:
                    edges.setdefault(source, set()).add(target)
    # the top package is the facade that imports the others; none may import it back
    into_root = sorted(p for p, targets in edges.items() if "runtime" in targets and p != "runtime")
    cycles: list[list[str]] = []

    def visit(node: str, path: list[str]) -> None:
        for nxt in sorted(edges.get(node, ())):
            if nxt == "runtime":
                continue
            if nxt in path:
                cycles.append([*path[path.index(nxt) :], nxt])
            elif len(path) < 12:
                visit(nxt, [*path, nxt])

    for start in sorted(edges):
        if start != "runtime":
            visit(start, [start])
    allowed_into_root = {"runtime.cli"}  # the command line is above the facade
    assert [p for p in into_root if p not in allowed_into_root] == []
    assert cycles == []


def test_the_authoring_api_runs_on_the_default_runtime_without_importing_it() -> None:
    import runtime.workflow._workflow as authoring

    imported = set(_imports(ast.parse(Path(authoring.__file__).read_text())))
    assert not any(m.startswith("runtime.inprocess") for m in imported)
