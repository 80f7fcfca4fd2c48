"""Checkpoint storage: a small port with in-memory and file implementations.

A checkpoint is taken at a barrier and holds everything needed to continue the
run on any runtime (docs/concurrency.md rule 13). The file store writes one JSON
file per checkpoint atomically (temporary file + rename), so a checkpoint written
by one process can be restored by another.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol, runtime_checkable

from runtime.engine import Checkpoint
from runtime.errors import CheckpointError

__all__ = [
    "CheckpointInfo",
    "CheckpointStorage",
    "FileCheckpointStorage",
    "InMemoryCheckpointStorage",
    "checkpoint_id_for",
]

_SAFE = re.compile(r"^[A-Za-z0-9_.:-]+$")


def checkpoint_id_for(run_id: str, superstep: int) -> str:
    """Checkpoint ids are deterministic: the run id and the superstep."""
    return f"{run_id}@{superstep:06d}"


@dataclass(frozen=True, slots=True)
class CheckpointInfo:
    checkpoint_id: str
    run_id: str
    workflow: str
    superstep: int
    status: str
    created_at: float
    pending_requests: int

    @classmethod
    def of(cls, cp: Checkpoint) -> CheckpointInfo:
        return cls(
            cp.checkpoint_id,
            cp.run_id,
            cp.workflow,
            cp.superstep,
            cp.state.status.value,
            cp.created_at,
            len(cp.state.pending),
        )


@runtime_checkable
class CheckpointStorage(Protocol):
    async def save(self, checkpoint: Checkpoint) -> None: ...

    async def load(self, checkpoint_id: str) -> Checkpoint: ...

    async def list(
        self, *, run_id: str | None = None, workflow: str | None = None
    ) -> list[CheckpointInfo]: ...


class InMemoryCheckpointStorage:
    """Keeps checkpoints in this process (they are immutable values)."""

    def __init__(self) -> None:
        self._items: dict[str, Checkpoint] = {}

    async def save(self, checkpoint: Checkpoint) -> None:
        self._items[checkpoint.checkpoint_id] = checkpoint

    async def load(self, checkpoint_id: str) -> Checkpoint:
        try:
            return self._items[checkpoint_id]
        except KeyError:
            raise CheckpointError(f"no checkpoint {checkpoint_id!r}") from None

    async def list(
        self, *, run_id: str | None = None, workflow: str | None = None
    ) -> list[CheckpointInfo]:
        return _select([CheckpointInfo.of(c) for c in self._items.values()], run_id, workflow)


class FileCheckpointStorage:
    """One JSON file per checkpoint under ``directory``, written atomically.

    ``fsync=True`` also flushes each file and the directory to disk (survives a
    machine crash, at the cost of a disk flush per checkpoint); without it a
    checkpoint survives the crash of the process that wrote it.
    """

    _INLINE_LIMIT = 64 * 1024

    def __init__(self, directory: str | os.PathLike[str], *, fsync: bool = False) -> None:
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        self.fsync = fsync

    def _path(self, checkpoint_id: str) -> Path:
        if not _SAFE.match(checkpoint_id):
            raise CheckpointError(f"invalid checkpoint id {checkpoint_id!r}")
        return self.directory / f"{checkpoint_id}.json"

    async def save(self, checkpoint: Checkpoint) -> None:
        text = json.dumps(checkpoint.to_json(), separators=(",", ":"), ensure_ascii=False)
        path = self._path(checkpoint.checkpoint_id)
        if len(text) > self._INLINE_LIMIT or self.fsync:
            await asyncio.to_thread(self._write, path, text)
        else:
            self._write(path, text)

    def _write(self, path: Path, text: str) -> None:
        fd, tmp = tempfile.mkstemp(dir=self.directory, prefix=".tmp-", suffix=".json")
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as f:
                f.write(text)
                if self.fsync:
                    f.flush()
                    os.fsync(f.fileno())
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        if self.fsync:
            dir_fd = os.open(self.directory, os.O_RDONLY)
            try:
                os.fsync(dir_fd)
            finally:
                os.close(dir_fd)

    async def load(self, checkpoint_id: str) -> Checkpoint:
        path = self._path(checkpoint_id)
        return _read(path)

    async def list(
        self, *, run_id: str | None = None, workflow: str | None = None
    ) -> list[CheckpointInfo]:
        infos = []
        for path in sorted(self.directory.glob("*.json")):
            if path.name.startswith(".tmp-"):
                continue
            infos.append(CheckpointInfo.of(_read(path)))
        return _select(infos, run_id, workflow)


def _read(path: Path) -> Checkpoint:
    try:
        raw = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise CheckpointError(f"no checkpoint file {str(path)!r}") from None
    try:
        data = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise CheckpointError(f"{path}: not valid JSON ({exc})") from exc
    return Checkpoint.from_json(data)


def _select(
    infos: list[CheckpointInfo], run_id: str | None, workflow: str | None
) -> list[CheckpointInfo]:
    out = [
        i
        for i in infos
        if (run_id is None or i.run_id == run_id) and (workflow is None or i.workflow == workflow)
    ]
    return sorted(out, key=lambda i: (i.run_id, i.superstep))
