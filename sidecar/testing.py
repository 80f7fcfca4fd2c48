"""Run sidecars from synchronous test code: an event loop in a background thread.

The official SDK clients block (the health wait, the sync gRPC client), so tests drive
the sidecar from the main thread while the sidecars, the cluster and any in-process
test apps run on :class:`BackgroundLoop`'s loop.

    with BackgroundLoop() as bg:
        cluster = bg.run(make_cluster())
        sidecar = bg.run(start_sidecar(SidecarOptions(app_id="a"), cluster))
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import socket
import threading
from collections.abc import Callable, Coroutine, Generator
from types import TracebackType
from typing import Any, TypeVar

import uvicorn
from starlette.types import ASGIApp

from sidecar.cluster import Cluster
from sidecar.runtime import Sidecar, SidecarOptions

__all__ = [
    "AppServer",
    "BackgroundLoop",
    "free_port",
    "make_cluster",
    "start_sidecar",
    "wait_until",
]

T = TypeVar("T")


def _ephemeral_low() -> int:
    """The lowest port the kernel hands out as a connection's local port (Linux:
    ``ip_local_port_range``; 32768 elsewhere, the IANA range starting higher still)."""
    try:
        with open("/proc/sys/net/ipv4/ip_local_port_range") as f:
            return int(f.read().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768


_FREE_PORTS_FROM = 20000
_handed_out: set[int] = set()


def free_port() -> int:
    """A port on 127.0.0.1 that nothing listens on, for a server to bind a moment later.

    Chosen below the ephemeral range: a port the kernel picked with ``bind(0)`` comes
    from that range, and any outgoing connection made before the server binds may take
    it as its local port (a sidecar's gRPC server then failed with "address already in
    use"). A port is not handed out twice by this process."""
    low = _ephemeral_low()
    if low - _FREE_PORTS_FROM < 1000:  # no room below the range: the kernel's pick
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port: int = sock.getsockname()[1]
            return port
    rng = random.SystemRandom()
    for _ in range(200):
        port = rng.randrange(_FREE_PORTS_FROM, low)
        if port in _handed_out:
            continue
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
        _handed_out.add(port)
        return port
    raise OSError(f"no free port found in {_FREE_PORTS_FROM}-{low - 1}")


def wait_until(
    condition: Callable[[], bool], *, within: float = 10.0, every: float = 0.02, what: str = ""
) -> None:
    """Poll ``condition`` until it is true; ``AssertionError`` after ``within`` seconds."""
    import time

    deadline = time.monotonic() + within
    while True:
        if condition():
            return
        if time.monotonic() >= deadline:
            raise AssertionError(f"condition not met within {within:g}s: {what or condition}")
        time.sleep(every)


class BackgroundLoop:
    """An asyncio loop running in a daemon thread."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._main, name="sidecar-loop", daemon=True)
        self._thread.start()

    def _main(self) -> None:
        asyncio.set_event_loop(self.loop)
        self.loop.run_forever()

    def run(self, coro: Coroutine[Any, Any, T], timeout: float = 60.0) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def close(self) -> None:
        async def _drain() -> None:
            tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

        with contextlib.suppress(Exception):
            self.run(_drain(), timeout=10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(10)
        self.loop.close()

    def __enter__(self) -> BackgroundLoop:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


async def make_cluster() -> Cluster:
    return Cluster()


async def start_sidecar(
    options: SidecarOptions, cluster: Cluster, *, ready: bool = True
) -> Sidecar:
    sidecar = Sidecar(options, cluster)
    await sidecar.start()
    if ready:
        await sidecar.wait_ready()
    return sidecar


class _Quiet(uvicorn.Server):
    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        yield


class AppServer:
    """Serve an ASGI app (a test app) on a free port of the current loop."""

    def __init__(self, app: ASGIApp, port: int = 0) -> None:
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self._sock.bind(("127.0.0.1", port))
        self.port: int = self._sock.getsockname()[1]
        config = uvicorn.Config(app, log_level="warning", lifespan="off")
        self._server = _Quiet(config)
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> AppServer:
        self._task = asyncio.create_task(self._server.serve(sockets=[self._sock]))
        while not self._server.started:
            if self._task.done():
                self._task.result()
            await asyncio.sleep(0.005)
        return self

    async def stop(self) -> None:
        self._server.should_exit = True
        if self._task is not None:
            await asyncio.gather(self._task, return_exceptions=True)
        self._sock.close()
