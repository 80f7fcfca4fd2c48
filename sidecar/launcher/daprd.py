"""Real Dapr beside the apps of a run template: a daprd process per app, and the
placement and scheduler services its actors and reminders need.

In a Dapr install the CLI starts these (``dapr run -f``, after ``dapr init``). This
module starts the same binaries with the flags the CLI gives them (dapr-contract §6),
from the folder ``tools/dapr/install`` builds them into, for machines without the CLI
and for the tests on real daprd. Nothing here imitates Dapr: the processes are Dapr's.

    plane = ControlPlane(find_binaries())
    await plane.start()                  # placement :50005, scheduler :50006
    sidecar = DaprdSidecar(spec, find_binaries(), sink=stdout_sink)
    await sidecar.start()                # daprd for one app of the template
    await sidecar.wait_ready(60)         # GET /v1.0/healthz answers 204
"""

from __future__ import annotations

import asyncio
import os
import shutil
import tempfile
from pathlib import Path

import httpx

from sidecar.errors import StartupError
from sidecar.launcher.processes import AppProcess, LogSink
from sidecar.launcher.template import AppSpec

__all__ = ["ControlPlane", "DaprdSidecar", "find_binaries"]

PLACEMENT_PORT = int(os.environ.get("SUPERSTEP_DAPR_PLACEMENT_PORT", "50005"))
SCHEDULER_PORT = int(os.environ.get("SUPERSTEP_DAPR_SCHEDULER_PORT", "50006"))
"""Where placement and scheduler are looked for (and started): Dapr's usual ports, or
``SUPERSTEP_DAPR_PLACEMENT_PORT`` / ``SUPERSTEP_DAPR_SCHEDULER_PORT`` (the tests use
ports of their own, so that a user's Dapr or another run is never in the way)."""


def use_free_ports(*, unless_chosen: bool = False) -> None:
    """Run placement and scheduler on free ports, not Dapr's defaults (where a user's
    Dapr or another test session may be): set here and in the environment, which every
    launcher reads, in this process and in the ones it starts. ``unless_chosen``: keep
    the ports already in the environment."""
    global PLACEMENT_PORT, SCHEDULER_PORT
    if unless_chosen and "SUPERSTEP_DAPR_PLACEMENT_PORT" in os.environ:
        return
    PLACEMENT_PORT, SCHEDULER_PORT = _free_port(), _free_port()
    os.environ["SUPERSTEP_DAPR_PLACEMENT_PORT"] = str(PLACEMENT_PORT)
    os.environ["SUPERSTEP_DAPR_SCHEDULER_PORT"] = str(SCHEDULER_PORT)


def find_binaries(directory: str | Path | None = None) -> Path:
    """The folder holding ``daprd``, ``placement`` and ``scheduler``: the argument,
    else ``$DAPR_INSTALL_DIR``, else ``~/.dapr/bin`` (where ``tools/dapr/install`` and
    ``dapr init --slim`` put them)."""
    folder = Path(
        directory or os.environ.get("DAPR_INSTALL_DIR") or Path.home() / ".dapr" / "bin"
    ).expanduser()
    missing = [n for n in ("daprd", "placement", "scheduler") if not (folder / n).is_file()]
    if missing:
        raise StartupError(
            f"no {', '.join(missing)} in {folder}: build them with tools/dapr/install"
        )
    return folder


def _free_port() -> int:
    from sidecar.testing import free_port  # below the ephemeral range, never twice

    return free_port()


async def _accepts(host: str, port: int) -> bool:
    try:
        _, writer = await asyncio.wait_for(asyncio.open_connection(host, port), 1.0)
    except (OSError, TimeoutError):
        return False
    writer.close()
    return True


async def _poll(
    client: httpx.AsyncClient,
    url: str,
    status: int,
    within: float,
    process: AppProcess,
    what: str,
) -> None:
    """Wait until ``GET url`` answers ``status``, while ``process`` is alive."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while True:
        if process.returncode is not None:
            raise StartupError(
                f"{what} exited with code {process.returncode} during start-up",
                log_tail=tuple(process.tail),
            )
        try:
            if (await client.get(url)).status_code == status:
                return
        except httpx.TransportError:
            pass
        if loop.time() >= deadline:
            raise StartupError(
                f"{what}: GET {url} did not answer {status} within {within:g}s",
                log_tail=tuple(process.tail),
            )
        await asyncio.sleep(0.1)


class ControlPlane:
    """Dapr's placement and scheduler services on 127.0.0.1, as ``dapr init`` runs them.

    ``start`` leaves alone a service that already answers on its port (another run's,
    or one the user started) and stops only what it started. Their health and metrics
    ports are free ports, not the defaults 8080 and 9090 that both would take; the
    scheduler's embedded etcd keeps its data in a temporary folder removed on stop.
    """

    def __init__(
        self,
        binaries: Path,
        *,
        placement_port: int | None = None,
        scheduler_port: int | None = None,
        sink: LogSink | None = None,
        log_level: str = "warn",
    ) -> None:
        self.binaries = binaries
        self.placement_port = placement_port or PLACEMENT_PORT
        self.scheduler_port = scheduler_port or SCHEDULER_PORT
        self.sink = sink or (lambda _name, _line: None)
        self.log_level = log_level
        self.processes: list[AppProcess] = []
        self._data: Path | None = None

    @property
    def placement_address(self) -> str:
        return f"localhost:{self.placement_port}"

    @property
    def scheduler_address(self) -> str:
        return f"localhost:{self.scheduler_port}"

    async def start(self, within: float = 60.0) -> None:
        try:
            async with httpx.AsyncClient(timeout=2) as client:
                for port, start in (
                    (self.placement_port, self._start_placement),
                    (self.scheduler_port, self._start_scheduler),
                ):
                    if await _accepts("127.0.0.1", port):
                        continue
                    try:
                        await start(client, within)
                    except StartupError:
                        # another run started one on that port meanwhile: use it
                        if not await _accepts("127.0.0.1", port):
                            raise
        except BaseException:
            await self.stop()
            raise

    async def _spawn(
        self, client: httpx.AsyncClient, within: float, name: str, args: list[str]
    ) -> None:
        """Start ``name`` with ``args``, its health and metrics on free ports, and wait
        until its ``/healthz`` answers 200."""
        healthz = _free_port()
        command = (
            str(self.binaries / name),
            *args,
            f"--healthz-port={healthz}",
            f"--metrics-port={_free_port()}",
            f"--log-level={self.log_level}",
        )
        cwd = Path(tempfile.gettempdir())
        process = AppProcess(name, command, cwd, dict(os.environ), sink=self.sink)
        await process.start()
        self.processes.append(process)
        await _poll(client, f"http://127.0.0.1:{healthz}/healthz", 200, within, process, name)

    async def _start_placement(self, client: httpx.AsyncClient, within: float) -> None:
        # its raft peer port too is a free one (Dapr's default, 8201, is taken by any
        # other placement on the machine)
        args = [
            f"--port={self.placement_port}",
            f"--initial-cluster=dapr-placement-0=127.0.0.1:{_free_port()}",
        ]
        await self._spawn(client, within, "placement", args)

    async def _start_scheduler(self, client: httpx.AsyncClient, within: float) -> None:
        self._data = Path(tempfile.mkdtemp(prefix="dapr-scheduler-"))
        peer = _free_port()
        args = [
            f"--port={self.scheduler_port}",
            f"--etcd-data-dir={self._data}",
            f"--etcd-client-port={_free_port()}",
            f"--etcd-initial-cluster=dapr-scheduler-server-0=http://localhost:{peer}",
            f"--override-broadcast-host-port={self.scheduler_address}",
        ]
        await self._spawn(client, within, "scheduler", args)

    async def stop(self) -> None:
        processes, self.processes = self.processes, []
        await asyncio.gather(*(p.terminate(10.0) for p in processes), return_exceptions=True)
        if self._data is not None:
            shutil.rmtree(self._data, ignore_errors=True)
            self._data = None


class DaprdSidecar:
    """One app's daprd, started with the flags ``dapr run -f`` gives it.

    Ports left 0 in the template are chosen here, as the CLI chooses free ones. daprd
    inherits the launcher's environment only (not the template's ``env``, which is the
    app's), as under the CLI; ``api_token`` becomes its ``DAPR_API_TOKEN``,
    ``app_api_token`` its ``APP_API_TOKEN`` (sent to the app on every call) and
    ``namespace`` its ``NAMESPACE``.
    """

    def __init__(
        self,
        spec: AppSpec,
        binaries: Path,
        *,
        sink: LogSink,
        placement_address: str | None = None,
        scheduler_address: str | None = None,
        api_token: str | None = None,
        app_api_token: str | None = None,
        log_level: str = "warn",
        namespace: str | None = None,
    ) -> None:
        self.spec = spec
        self.app_id = spec.app_id
        self.binaries = binaries
        self.http_port = spec.http_port or _free_port()
        self.grpc_port = spec.grpc_port or _free_port()
        self.internal_grpc_port = _free_port()
        self.metrics_port = _free_port()
        self.placement_address = (
            spec.placement_address or placement_address or f"localhost:{PLACEMENT_PORT}"
        )
        self.scheduler_address = (
            spec.scheduler_address or scheduler_address or f"localhost:{SCHEDULER_PORT}"
        )
        self.api_token = api_token
        self.app_api_token = app_api_token
        self.log_level = spec.log_level or log_level
        self.app_healthy = True  # what the launcher sets when it stops the apps; daprd probes
        env = dict(os.environ)
        if api_token:
            env["DAPR_API_TOKEN"] = api_token
        if app_api_token:
            env["APP_API_TOKEN"] = app_api_token
        if namespace:
            # daprd's namespace in self-hosted mode: placement keeps one actor table per
            # namespace, so runs sharing placement never call each other's actors
            env["NAMESPACE"] = namespace
        self.process = AppProcess(spec.name, self.command(), spec.app_dir, env, sink=sink, keep=60)

    def command(self) -> tuple[str, ...]:
        spec = self.spec
        args = [
            str(self.binaries / "daprd"),
            f"--app-id={spec.app_id}",
            f"--dapr-http-port={self.http_port}",
            f"--dapr-grpc-port={self.grpc_port}",
            f"--dapr-internal-grpc-port={self.internal_grpc_port}",
            f"--metrics-port={self.metrics_port}",
            f"--log-level={self.log_level}",
            f"--app-max-concurrency={spec.app_max_concurrency}",
            f"--app-protocol={spec.app_protocol}",
            f"--placement-host-address={self.placement_address}",
            f"--scheduler-host-address={self.scheduler_address}",
            f"--max-body-size={spec.max_body_size}",
            f"--read-buffer-size={spec.read_buffer_size}",
        ]
        for path in spec.resources_paths:
            args.append(f"--resources-path={path}")
        config = spec.config_file or _default_config()
        if config is not None:
            args.append(f"--config={config}")
        if spec.app_port is not None:
            args += [f"--app-port={spec.app_port}", f"--app-channel-address={spec.app_host}"]
        health = spec.health_check
        if health is not None:
            args += [
                "--enable-app-health-check=true",
                f"--app-health-check-path={health.path}",
                f"--app-health-probe-interval={health.interval_s}",
                f"--app-health-probe-timeout={health.timeout_ms}",
                f"--app-health-threshold={health.threshold}",
            ]
        return tuple(args)

    async def start(self) -> None:
        await self.process.start()

    async def wait_outbound(self, within: float = 60.0) -> None:
        """Wait until its APIs are up: ``/v1.0/healthz/outbound`` answers 204."""
        url = f"http://127.0.0.1:{self.http_port}/v1.0/healthz/outbound"
        async with httpx.AsyncClient(timeout=2) as client:
            await _poll(client, url, 204, within, self.process, f"daprd of {self.spec.name}")

    async def wait_ready(self, within: float = 60.0) -> None:
        """Wait until it is healthy (``/v1.0/healthz`` answers 204): components loaded,
        the app reachable and its actor types and subscriptions registered."""
        url = f"http://127.0.0.1:{self.http_port}/v1.0/healthz"
        async with httpx.AsyncClient(timeout=2) as client:
            await _poll(client, url, 204, within, self.process, f"daprd of {self.spec.name}")

    async def stop(self) -> None:
        # daprd drains actors and subscriptions on SIGTERM; give it its graceful window
        await self.process.terminate(15.0)


def _default_config() -> Path | None:
    """``~/.dapr/config.yaml``, the configuration ``dapr init`` writes, when it exists."""
    path = Path.home() / ".dapr" / "config.yaml"
    return path if path.is_file() else None
