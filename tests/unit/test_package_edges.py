"""The edges between the packages: the Dapr runtime apps (``executor_host``) and the
local development sidecar (``sidecar``) do not import each other, and the core
(``runtime``) imports neither.

The local sidecar stands in for daprd and starts the apps only as commands
(``uvicorn --factory executor_host.<app>:create_app``); the apps talk to whichever
sidecar runs beside them over HTTP. Every ``import`` and ``from ... import`` statement
of every module is checked, those inside functions and ``TYPE_CHECKING`` blocks
included."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]

FORBIDDEN = {
    "executor_host": {"sidecar"},
    "sidecar": {"executor_host"},
    "runtime": {"executor_host", "sidecar"},
}


def _imported(source: str, module: str) -> list[tuple[int, str]]:
    """(line, absolute module name) of every import in ``source``, the text of the
    module named ``module`` (dotted; relative imports are resolved against it)."""
    dotted = module.split(".")
    found: list[tuple[int, str]] = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found.extend((node.lineno, alias.name) for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = dotted[: len(dotted) - node.level]
                name = ".".join([*base, node.module] if node.module else base)
            else:
                name = node.module or ""
            found.append((node.lineno, name))
    return sorted(found)


def _violations(package: str) -> list[str]:
    banned = FORBIDDEN[package]
    bad = []
    for path in sorted((REPO / package).rglob("*.py")):
        module = ".".join(path.relative_to(REPO).with_suffix("").parts)
        for line, name in _imported(path.read_text(encoding="utf-8"), module):
            if name.split(".")[0] in banned:
                bad.append(f"{path.relative_to(REPO)}:{line} imports {name}")
    return bad


@pytest.mark.parametrize("package", sorted(FORBIDDEN))
def test_no_import_crosses_a_forbidden_edge(package: str) -> None:
    assert any((REPO / package).rglob("*.py")), f"no modules found under {package}/"
    assert _violations(package) == []


def test_the_check_sees_every_form_of_import() -> None:
    source = (
        "import os, sidecar.http1\n"
        "from sidecar import testing\n"
        "def f():\n"
        "    from sidecar.launcher import deployment\n"
        "from . import _sidecar\n"
        "from ._sidecar import SidecarClient\n"
    )
    names = [name for _, name in _imported(source, "executor_host._probe")]
    assert names == [
        "os",
        "sidecar.http1",
        "sidecar",
        "sidecar.launcher",
        "executor_host",
        "executor_host._sidecar",
    ]
