"""docs/protocol.md publishes the wire protocol's JSON schema: keep it current."""

from __future__ import annotations

import json
import re
from pathlib import Path

from executor_host import protocol

DOC = Path(__file__).resolve().parents[2] / "docs" / "protocol.md"


def test_the_published_schema_is_the_code_s() -> None:
    block = re.search(r"```json\n(.*?)```", DOC.read_text(), re.S)
    assert block is not None, "docs/protocol.md has no JSON schema block"
    assert json.loads(block.group(1)) == protocol.json_schema(), (
        "regenerate with: python -m executor_host.protocol"
    )
