"""What the documentation says about names and formats is what the code does."""

from __future__ import annotations

import re
from pathlib import Path

from runtime.checkpoint import FileCheckpointStorage, InMemoryCheckpointStorage, checkpoint_id_for

ROOT = Path(__file__).resolve().parents[2]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
MIGRATING = ROOT / "docs" / "migrating-from-agent-framework.md"


def _section(text: str, start: str, end: str) -> str:
    return text[text.index(start) : text.index(end, text.index(start) + len(start))]


def test_checkpoint_ids_in_the_docs_are_the_ones_checkpoint_id_for_makes() -> None:
    shown = {doc.name: re.findall(r"`([A-Za-z0-9_.:-]+)@(\d+)`", doc.read_text()) for doc in DOCS}
    assert shown["README.md"], "the README shows what a checkpoint id looks like"
    for name, ids in shown.items():
        for run_id, superstep in ids:
            assert f"{run_id}@{superstep}" == checkpoint_id_for(run_id, int(superstep)), name


def test_the_migration_guide_names_the_checkpoint_storages_methods() -> None:
    section = _section(MIGRATING.read_text(), "**Checkpoints.**", "**Tracing.**")
    ours = {n for n in vars(FileCheckpointStorage) if not n.startswith("_")}
    assert ours == {"save", "load", "list", "close"}
    for name in ours:
        assert re.search(rf"\b{name}\(", section), f"the guide does not name {name}()"
    # what it says superstep's storages do not have
    for name in ("get_latest", "delete", "list_checkpoints", "list_checkpoint_ids"):
        assert f"`{name}(" in section
        assert not hasattr(FileCheckpointStorage, name)
        assert not hasattr(InMemoryCheckpointStorage, name)


def test_the_migration_guide_lists_as_missing_nothing_the_runtimes_have() -> None:
    missing = _section(MIGRATING.read_text(), "## Not carried over", "## superstep-only")
    assert "span" not in missing.lower(), "spans are carried over: docs/observability.md"
    assert "Tracing" in MIGRATING.read_text()
