"""The runs the launcher has going on this machine, for ``python -m sidecar list`` and
``python -m sidecar stop``.

Each running launcher keeps one JSON file, ``<runs dir>/<launcher pid>.json``: its run
template (path and name), when it started, and per app its id, ports and pids and its
log files. The folder is ``$SUPERSTEP_LAUNCHER_DIR``, else ``~/.superstep/launcher``.
The file goes when the launcher stops; one left by a killed launcher is ignored, and
removed, by the next reader (its pid is gone, or is another process by now).
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import sys
import time
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

__all__ = ["AppEntry", "RunEntry", "remove_run", "running", "runs_dir", "stop_run", "write_run"]


def runs_dir() -> Path:
    return Path(os.environ.get("SUPERSTEP_LAUNCHER_DIR") or Path.home() / ".superstep" / "launcher")


def _stat(pid: int) -> list[str] | None:
    """The fields of ``/proc/<pid>/stat`` after the command name (Linux), else None."""
    if sys.platform != "linux":
        return None
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return stat.rpartition(")")[2].split()


def _started_ticks(pid: int) -> str | None:
    """When the process started (its starttime), where Linux says: with it a pid the
    kernel gave to another process since is not taken for the run's."""
    fields = _stat(pid)
    return fields[19] if fields is not None else None


def _alive(pid: int, started: str | None) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # someone else's process by that pid: alive, and checked below
    fields = _stat(pid)
    if fields is None:
        return sys.platform != "linux"
    # state Z: exited, not yet reaped by its parent (a shell, a test)
    return fields[0] != "Z" and (started is None or fields[19] == started)


@dataclass(frozen=True)
class AppEntry:
    app_id: str
    app_port: int | None
    http_port: int
    grpc_port: int
    app_pid: int | None
    daprd_pid: int | None
    command: list[str]
    app_log: str | None
    daprd_log: str | None


@dataclass(frozen=True)
class RunEntry:
    name: str
    template: str
    launcher_pid: int
    started_at: float
    sidecar: str
    """``local`` (the project's sidecar, inside the launcher) or ``daprd``."""
    apps: list[AppEntry] = field(default_factory=list)
    launcher_started: str | None = None

    @property
    def alive(self) -> bool:
        return _alive(self.launcher_pid, self.launcher_started)

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data.pop("launcher_started")
        return data

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> RunEntry:
        apps = [AppEntry(**app) for app in data.get("apps", [])]
        return cls(**{**data, "apps": apps})


def write_run(entry: RunEntry) -> Path:
    """Record the run of this launcher (written whole, then renamed into place)."""
    folder = runs_dir()
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{entry.launcher_pid}.json"
    data = {**asdict(entry), "launcher_started": _started_ticks(entry.launcher_pid)}
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(data, indent=2), encoding="utf-8")
    tmp.replace(path)
    return path


def remove_run(path: Path) -> None:
    with contextlib.suppress(FileNotFoundError):
        path.unlink()


def running() -> list[RunEntry]:
    """The runs whose launcher is alive, oldest first; files of dead ones are removed."""
    found: list[RunEntry] = []
    folder = runs_dir()
    for path in sorted(folder.glob("*.json")) if folder.is_dir() else ():
        try:
            entry = RunEntry.from_json(json.loads(path.read_text(encoding="utf-8")))
        except (OSError, ValueError, TypeError):
            continue  # being written, or not ours
        if entry.alive:
            found.append(entry)
        else:
            remove_run(path)
    return sorted(found, key=lambda e: e.started_at)


def stop_run(entry: RunEntry, within: float = 30.0) -> bool:
    """SIGTERM the run's launcher (it stops its apps and sidecars, as on Ctrl-C) and
    wait until it is gone; whether it went in time."""
    with contextlib.suppress(ProcessLookupError):
        os.kill(entry.launcher_pid, signal.SIGTERM)
    deadline = time.monotonic() + within
    while entry.alive:
        if time.monotonic() > deadline:
            return False
        time.sleep(0.1)  # polling another process's exit: there is nothing to wait on
    return True
