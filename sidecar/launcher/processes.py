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
import subprocess
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


def _exit_of(proc: subprocess.Popen[bytes]) -> asyncio.Future[int]:
    """A future of the process's exit status, set when it exits (the process reaped):
    from a pidfd the loop watches (Linux), else from a thread that waits for it."""
    loop = asyncio.get_running_loop()
    pidfd_open = getattr(os, "pidfd_open", None)
    try:
        fd = pidfd_open(proc.pid) if pidfd_open is not None else None
    except OSError:  # a kernel before 5.3
        fd = None
    if fd is None:
        return asyncio.ensure_future(loop.run_in_executor(None, proc.wait))
    exited: asyncio.Future[int] = loop.create_future()

    def reap() -> None:
        loop.remove_reader(fd)
        os.close(fd)
        if not exited.done():
            exited.set_result(proc.wait())  # it has exited: no wait

    loop.add_reader(fd, reap)
    return exited


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
        self._proc: subprocess.Popen[bytes] | None = None
        self._exit: asyncio.Future[int] | None = None
        self._reader: asyncio.Task[None] | None = None

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    @property
    def returncode(self) -> int | None:
        if self._exit is None or not self._exit.done():
            return None
        return self._exit.result()

    async def start(self) -> None:
        self.tail.clear()
        command, preexec = self.command, None
        if _SETPRIV is not None:
            command = (_SETPRIV, "--pdeathsig", "TERM", "--", *command)
        else:
            preexec = _pdeathsig_setter()
        # subprocess.Popen, not the loop's subprocess_exec: uvloop's (libuv's) spawn
        # calls fork(), which runs gRPC's fork handlers in this process (its sidecars
        # serve gRPC) and has gRPC log "skipping fork() handlers" for each app; Popen
        # spawns with vfork, which runs no handlers (a preexec_fn forces a fork: only
        # where setpriv is missing)
        proc = subprocess.Popen(  # noqa: ASYNC220  # returns once the app has exec'd
            command,
            cwd=self.cwd,
            env=self.env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            preexec_fn=preexec,
        )
        self._proc = proc
        self._exit = _exit_of(proc)
        assert proc.stdout is not None
        reader = asyncio.StreamReader(limit=1 << 20)
        loop = asyncio.get_running_loop()
        await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), proc.stdout)
        self._reader = asyncio.create_task(self._read(reader))

    async def _read(self, reader: asyncio.StreamReader) -> None:
        """Pass the app's output on line by line, a line longer than ``MAX_LINE_CHARS``
        in pieces of that length. (``readline`` fails on a line over the stream's limit,
        and drops what it buffered of it.)"""
        pending = b""
        while True:
            chunk = await reader.read(1 << 16)
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
        assert self._exit is not None
        code = await asyncio.shield(self._exit)
        if self._reader is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await self._reader
        return code

    def _signal(self, sig: int) -> None:
        if self._proc is None or self.returncode is not None:
            return
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self._proc.pid, sig)

    async def kill(self) -> None:
        """SIGKILL the app (and its process group): a crash, for fault injection."""
        self._signal(signal.SIGKILL)
        if self._proc is not None:
            await self.wait()

    async def terminate(self, grace: float = 5.0) -> None:
        if self._proc is None or self.returncode is not None:
            if self._reader is not None:
                await asyncio.gather(self._reader, return_exceptions=True)
            return
        self._signal(signal.SIGTERM)
        try:
            await asyncio.wait_for(self.wait(), grace)
        except TimeoutError:
            log.warning("%s did not stop after SIGTERM, killing it", self.app_id)
            await self.kill()
