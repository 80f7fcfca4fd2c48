"""Where a run's log lines go, per app, as ``dapr run -f`` sends them.

Each app of a run template says where its lines go with ``appLogDestination`` and where
its daprd's go with ``daprdLogDestination``: ``console`` (the launcher's output, each line
prefixed ``== APP - <app id> ==``), ``file``, or ``fileAndConsole``. The Dapr CLI's
defaults hold: an app's lines to both, daprd's to a file. Files are the CLI's too:
``<appDirPath>/.dapr/logs/<app id>_app_<yyyymmddhhmmss>.log`` and ``..._daprd_...``.
Lines of no app of the template (Dapr's placement and scheduler) go to the console.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path
from typing import IO

from sidecar.launcher.processes import LogSink, stdout_sink
from sidecar.launcher.template import AppSpec

__all__ = ["DAPRD_SUFFIX", "LogRouter"]

DAPRD_SUFFIX = " (dapr)"
"""What the launcher appends to an app's name for its daprd's lines."""


class LogRouter:
    """The launcher's log sink: each line to the console, a file, or both, per app."""

    def __init__(
        self,
        apps: Sequence[AppSpec],
        *,
        console: LogSink = stdout_sink,
        started: float | None = None,
    ) -> None:
        self._apps = {spec.name: spec for spec in apps}
        self._console = console
        self._stamp = time.strftime("%Y%m%d%H%M%S", time.localtime(started))
        self._files: dict[Path, IO[str]] = {}

    def path(self, name: str, kind: str) -> Path | None:
        """The file of an app's lines (``kind`` ``app`` or ``daprd``), when they go to one."""
        spec = self._apps.get(name)
        if spec is None:
            return None
        where = spec.app_log_destination if kind == "app" else spec.daprd_log_destination
        if where == "console":
            return None
        return spec.app_dir / ".dapr" / "logs" / f"{name}_{kind}_{self._stamp}.log"

    def __call__(self, name: str, line: str) -> None:
        daprd = name.endswith(DAPRD_SUFFIX)
        app = name.removesuffix(DAPRD_SUFFIX)
        spec = self._apps.get(app)
        if spec is None:
            self._console(name, line)
            return
        where = spec.daprd_log_destination if daprd else spec.app_log_destination
        if where != "file":
            self._console(name, line)
        path = self.path(app, "daprd" if daprd else "app")
        if path is not None:
            file = self._files.get(path)
            if file is None:
                path.parent.mkdir(parents=True, exist_ok=True)
                file = self._files[path] = path.open("a", encoding="utf-8")
            file.write(f"{line}\n")
            file.flush()

    def close(self) -> None:
        files, self._files = self._files, {}
        for file in files.values():
            file.close()
