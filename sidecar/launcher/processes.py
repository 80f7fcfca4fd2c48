"""App processes: started with the environment ``dapr run -f`` gives, logs prefixed by app id."""

from __future__ import annotations

import asyncio
import collections
import contextlib
import functools
import logging
import os
import shutil
import signal
import sys
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

__all__ = ["AppProcess", "LogSink", "stdout_sink"]

log = logging.getLogger(__name__)

LogSink = Callable[[str, str], None]  # (app id, line)

MAX_LINE_CHARS = 1 << 16
"""An app's output line longer than this reaches the sink in pieces of this length."""


@functools.cache
def _pdeathsig_setter() -> Callable[[], None] | None:
    """What makes a child get SIGTERM when the launcher dies (Linux
    ``PR_SET_PDEATHSIG``), so a killed launcher leaves no apps behind. Apps get their
    own session (for process-group signals), so they would not see a terminal's
    Ctrl-C or the launcher's death otherwise.

    The ``prctl`` function is looked up here, in the launcher, not in the child: the
    child runs it between fork and exec, where importing ``ctypes`` or loading a library
    can deadlock or abort when another thread of the launcher (a gRPC server's, say)
    held a lock at the fork."""
    if sys.platform != "linux":
        return None
    import ctypes

    prctl = ctypes.CDLL(None, use_errno=True).prctl
    pr_set_pdeathsig, sigterm = 1, int(signal.SIGTERM)

    def set_pdeathsig() -> None:
        prctl(pr_set_pdeathsig, sigterm, 0, 0, 0)

    return set_pdeathsig


_SETPRIV = shutil.which("setpriv") if sys.platform == "linux" else None
"""util-linux's ``setpriv --pdeathsig``: sets it in a process of its own, which then
execs the app, so no Python code runs in the forked child at all."""


def stdout_sink(app_id: str, line: str) -> None:
    sys.stdout.write(f"== APP - {app_id} == {line}\n")
    sys.stdout.flush()


class AppProcess:
    """One app's process; keeps its last log lines for start-up error reports."""

    def __init__(
        self,
        app_id: str,
        command: Sequence[str],
        cwd: Path,
        env: Mapping[str, str],
        *,
        sink: LogSink = stdout_sink,
        keep: int = 40,
    ) -> None:
        self.app_id = app_id
        self.command = tuple(command)
        self.cwd = cwd
        self.env = dict(env)
        self.sink = sink
        self.tail: collections.deque[str] = collections.deque(maxlen=keep)
        self._proc: asyncio.subprocess.Process | None = None
        self._reader: asyncio.Task[None] | None = None

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    @property
    def returncode(self) -> int | None:
        return self._proc.returncode if self._proc is not None else None

    async def start(self) -> None:
        self.tail.clear()
        command, preexec = self.command, None
        if _SETPRIV is not None:
            command = (_SETPRIV, "--pdeathsig", "TERM", "--", *command)
        else:
            preexec = _pdeathsig_setter()
        self._proc = await asyncio.create_subprocess_exec(
            *command,
            cwd=self.cwd,
            env=self.env,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
            start_new_session=True,
            preexec_fn=preexec,
        )
        self._reader = asyncio.create_task(self._read(self._proc))

    async def _read(self, proc: asyncio.subprocess.Process) -> None:
        """Pass the app's output on line by line, a line longer than ``MAX_LINE_CHARS``
        in pieces of that length. (``readline`` fails on a line over the stream's 64 KiB
        limit, which ended the reading: the pipe filled and the app blocked on its next
        write.)"""
        assert proc.stdout is not None
        pending = b""
        while True:
            chunk = await proc.stdout.read(1 << 16)
            if not chunk:
                break
            *lines, pending = (pending + chunk).split(b"\n")
            while len(pending) >= MAX_LINE_CHARS:
                lines.append(pending[:MAX_LINE_CHARS])
                pending = pending[MAX_LINE_CHARS:]
            for raw in lines:
                self._line(raw)
        if pending:
            self._line(pending)

    def _line(self, raw: bytes) -> None:
        line = raw.decode(errors="replace")
        self.tail.append(line)
        self.sink(self.app_id, line)

    async def wait(self) -> int:
        assert self._proc is not None
        code = await self._proc.wait()
        if self._reader is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await self._reader
        return code

    def _signal(self, sig: int) -> None:
        if self._proc is None or self._proc.returncode is not None:
            return
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self._proc.pid, sig)

    async def kill(self) -> None:
        """SIGKILL the app (and its process group): a crash, for fault injection."""
        self._signal(signal.SIGKILL)
        if self._proc is not None:
            await self.wait()

    async def terminate(self, grace: float = 5.0) -> None:
        if self._proc is None or self._proc.returncode is not None:
            if self._reader is not None:
                await asyncio.gather(self._reader, return_exceptions=True)
            return
        self._signal(signal.SIGTERM)
        try:
            await asyncio.wait_for(self.wait(), grace)
        except TimeoutError:
            log.warning("%s did not stop after SIGTERM, killing it", self.app_id)
            await self.kill()
