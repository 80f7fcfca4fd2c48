"""The README's Python code blocks run as written.

Blocks run in the README's order in one namespace, each continuing the ones before it,
as a reader would type them. A block that talks to a Dapr deployment
(``NEEDS_A_DAPR_DEPLOYMENT``) is compiled here and run against the apps of the repo's
``dapr.yaml`` by ``tests/dapr/test_run_template.py``.
"""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

README = Path(__file__).parents[2] / "README.md"

NEEDS_A_DAPR_DEPLOYMENT = "RemoteRuntime("
"""Blocks containing this need the Dapr runtime's API running (README "Distributed
mode"): compiled here, run in tests/dapr."""


@dataclass(frozen=True)
class Block:
    line: int
    """The README line of the opening fence."""
    code: str

    @property
    def needs_dapr(self) -> bool:
        return NEEDS_A_DAPR_DEPLOYMENT in self.code

    def compiled(self) -> Any:
        return compile(
            self.code,
            f"README.md:{self.line}",
            "exec",
            flags=ast.PyCF_ALLOW_TOP_LEVEL_AWAIT if self.needs_dapr else 0,
            dont_inherit=True,  # not this file's ``from __future__ import annotations``
        )


def _python_blocks(text: str) -> list[Block]:
    return [
        Block(text.count("\n", 0, m.start()) + 1, m.group(1))
        for m in re.finditer(r"^```python\n(.*?)^```$", text, re.M | re.S)
    ]


BLOCKS = _python_blocks(README.read_text(encoding="utf-8"))


def _run_until(index: int, capsys: pytest.CaptureFixture[str]) -> tuple[dict[str, Any], str]:
    """Run every block up to and including ``index`` that needs no deployment; the
    namespace they leave and what the last one printed."""
    namespace: dict[str, Any] = {"__name__": "readme"}
    printed = ""
    for block in BLOCKS[: index + 1]:
        if block.needs_dapr:
            continue
        capsys.readouterr()
        exec(block.compiled(), namespace)
        printed = capsys.readouterr().out
    return namespace, printed


def test_the_readme_has_the_blocks_this_file_checks() -> None:
    assert len(BLOCKS) >= 5
    assert "result = asyncio.run(workflow.run(" in BLOCKS[0].code  # "A workflow"
    assert "async for event in stream:" in BLOCKS[1].code  # following the events


@pytest.mark.parametrize("index", range(len(BLOCKS)), ids=[f"line{b.line}" for b in BLOCKS])
def test_readme_block_runs_as_written(index: int, capsys: pytest.CaptureFixture[str]) -> None:
    block = BLOCKS[index]
    if block.needs_dapr:
        block.compiled()
        pytest.skip(f"README.md:{block.line} runs in tests/dapr/test_run_template.py")
    _run_until(index, capsys)


def test_the_workflow_block_prints_what_its_run_gave(capsys: pytest.CaptureFixture[str]) -> None:
    _, printed = _run_until(0, capsys)
    status, outputs, trace_hash = printed.split()
    assert (status, outputs) == ("completed", "[6]")  # 2 + 3 + 1 words
    assert re.fullmatch(r"[0-9a-f]{32}", trace_hash)


def test_the_streaming_block_prints_the_events_then_the_result(
    capsys: pytest.CaptureFixture[str],
) -> None:
    _, printed = _run_until(1, capsys)
    lines = printed.splitlines()
    assert lines[0] == "0 started -"
    assert "3 output report" in lines  # the fan-in's list reaches the report in superstep 3
    assert lines[-2:] == ["3 status -", "completed"]
