"""Checkpoint storage: a small port with in-memory and file implementations.

A checkpoint is taken at a barrier and holds everything needed to continue the
run on any runtime (docs/concurrency.md rule 13). The file store appends each
checkpoint as one JSON line to its run's log, so a checkpoint written by one
process can be restored by another and a crash never leaves half a checkpoint.
"""

from __future__ import annotations

import asyncio
import errno
import json
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from runtime.engine import SCHEMA_VERSION, Checkpoint, compact_json_bytes
from runtime.errors import CheckpointError

__all__ = [
    "CheckpointInfo",
    "CheckpointStorage",
    "FileCheckpointStorage",
    "InMemoryCheckpointStorage",
    "checkpoint_id_for",
]

_INLINE_LIMIT = 64 * 1024
_SAFE = re.compile(r"^[A-Za-z0-9_.:@-]+$")


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

    def forget(self, run_id: str) -> int:
        """Drop every checkpoint of ``run_id`` (memory is all they take); how many."""
        gone = [cid for cid, c in self._items.items() if c.run_id == run_id]
        for cid in gone:
            del self._items[cid]
        return len(gone)


class FileCheckpointStorage:
    """Checkpoints as JSON lines, one append-only log file per run under ``directory``.

    Each checkpoint is one line written with a single ``write`` to a file opened
    in append mode, so a reader sees whole checkpoints only: a line cut short by
    a crash has no newline, fails to parse and is ignored (and cut off before
    the log is appended to again). A checkpoint written by one process is read
    by any other. ``fsync=True`` also flushes every line to the disk (survives a
    machine crash, at the cost of a disk flush per checkpoint).
    """

    def __init__(self, directory: str | os.PathLike[str], *, fsync: bool = False) -> None:
        """``directory`` is created (with its parents) when it does not exist."""
        self._fds: dict[str, int] = {}  # first: close() runs even when the rest raises
        self.directory = Path(directory)
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
        except FileExistsError:
            raise NotADirectoryError(
                errno.ENOTDIR, "a checkpoint directory cannot be a file", str(directory)
            ) from None
        self.fsync = fsync

    def _log(self, run_id: str) -> Path:
        if not _SAFE.match(run_id):
            raise CheckpointError(f"invalid run id {run_id!r}")
        return self.directory / f"{run_id}.jsonl"

    def _fd(self, run_id: str) -> int:
        fd = self._fds.get(run_id)
        if fd is None:
            path = self._log(run_id)
            fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_APPEND, 0o644)
            _cut_torn_tail(fd)
            self._fds[run_id] = fd
        return fd

    async def save(self, checkpoint: Checkpoint) -> None:
        data = compact_json_bytes(checkpoint.to_json(), newline=True)
        fd = self._fd(checkpoint.run_id)
        if len(data) > _INLINE_LIMIT or self.fsync:
            await asyncio.to_thread(self._append, fd, data)
        else:
            self._append(fd, data)

    def _append(self, fd: int, data: bytes) -> None:
        written = os.write(fd, data)
        if written != len(data):  # a short write leaves a torn line: cut it off
            _cut_torn_tail(fd)
            raise CheckpointError("short write to the checkpoint log; the checkpoint was not saved")
        if self.fsync:
            os.fsync(fd)

    def close(self) -> None:
        """Close the open log files (they are reopened on the next save)."""
        for fd in self._fds.values():
            os.close(fd)
        self._fds.clear()

    def __del__(self) -> None:
        self.close()

    async def load(self, checkpoint_id: str) -> Checkpoint:
        run_id, sep, _ = checkpoint_id.rpartition("@")
        if not sep or not _SAFE.match(checkpoint_id):
            raise CheckpointError(f"invalid checkpoint id {checkpoint_id!r}")
        prefix = f'{{"schema_version":{SCHEMA_VERSION},"checkpoint_id":{json.dumps(checkpoint_id)},'
        path = self._log(run_id)
        for line in _lines(path):
            if line.startswith(prefix):
                return Checkpoint.from_json(_parse(line, path))
        raise CheckpointError(f"no checkpoint {checkpoint_id!r} in {str(self.directory)!r}")

    async def list(
        self, *, run_id: str | None = None, workflow: str | None = None
    ) -> list[CheckpointInfo]:
        paths = (
            [self._log(run_id)] if run_id is not None else sorted(self.directory.glob("*.jsonl"))
        )
        infos = []
        for path in paths:
            for line in _lines(path):
                infos.append(CheckpointInfo.of(Checkpoint.from_json(_parse(line, path))))
        return _select(infos, run_id, workflow)


def _cut_torn_tail(fd: int) -> None:
    """Truncate a log after its last newline (drops a line cut short by a crash)."""
    size = os.lseek(fd, 0, os.SEEK_END)
    if size == 0:
        return
    if os.pread(fd, 1, size - 1) == b"\n":
        return
    pos = size
    while pos > 0:
        start = max(0, pos - 65536)
        chunk = os.pread(fd, pos - start, start)
        nl = chunk.rfind(b"\n")
        if nl >= 0:
            os.ftruncate(fd, start + nl + 1)
            return
        pos = start
    os.ftruncate(fd, 0)


def _lines(path: Path) -> list[str]:
    """The complete lines of a log (a torn last line is left out)."""
    try:
        raw = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return []
    lines = raw.split("\n")
    return [ln for ln in lines[:-1] if ln]


def _parse(line: str, path: Path) -> Any:
    try:
        return json.loads(line)
    except json.JSONDecodeError as exc:
        raise CheckpointError(f"{path}: a checkpoint line is not valid JSON ({exc})") from exc


def _select(
    infos: list[CheckpointInfo], run_id: str | None, workflow: str | None
) -> list[CheckpointInfo]:
    out = [
        i
        for i in infos
        if (run_id is None or i.run_id == run_id) and (workflow is None or i.workflow == workflow)
    ]
    return sorted(out, key=lambda i: (i.run_id, i.superstep))
