"""FileCheckpointStorage: what it says about the directory it is given."""

from __future__ import annotations

import gc
import sys
from pathlib import Path
from typing import Any

import pytest

from runtime.checkpoint import FileCheckpointStorage


def test_a_file_is_refused_as_the_directory_and_nothing_fails_later(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    unraisable: list[Any] = []
    monkeypatch.setattr(sys, "unraisablehook", unraisable.append)
    path = tmp_path / "cps"
    path.write_text("")
    with pytest.raises(NotADirectoryError, match="a checkpoint directory cannot be a file") as info:
        FileCheckpointStorage(path)
    assert info.value.filename == str(path)
    del info  # its traceback holds the half-made storage
    gc.collect()
    assert unraisable == []  # the storage's __del__ ran without an error


def test_a_missing_directory_is_created_with_its_parents(tmp_path: Path) -> None:
    storage = FileCheckpointStorage(tmp_path / "a" / "b")
    storage.close()
    assert (tmp_path / "a" / "b").is_dir()
