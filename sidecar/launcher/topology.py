"""Start and stop a whole run: one sidecar per app, then the app processes.

The sidecars are the local sidecar's (in this process), or with ``daprd`` set real
daprd processes (:mod:`sidecar.launcher.daprd`), beside Dapr's placement and scheduler
services (started when nothing answers on their ports).

Order per app (dapr-contract §4.1): the local sidecar loads its components and opens its
APIs (outbound health is 204) before its app starts; daprd is only spawned before its
app, as ``dapr run -f`` does, so an app must wait for ``/v1.0/healthz/outbound`` itself.
The app process starts with ``APP_ID``, ``APP_PORT``, ``APP_CHANNEL_ADDRESS``,
``APP_PROTOCOL``, ``DAPR_HTTP_PORT``, ``DAPR_GRPC_PORT`` and the template ``env``; the
sidecar waits for the app port, reads ``/dapr/config`` and ``/dapr/subscribe`` and
becomes healthy. An app (or a daprd) that exits before that fails the start with its
last log lines.
"""

from __future__ import annotations

import asyncio
import logging
import os
import sys
from collections.abc import Coroutine, Sequence
from pathlib import Path
from typing import Any

from sidecar.cluster import Cluster
from sidecar.errors import StartupError
from sidecar.faults import FaultPlan
from sidecar.launcher.daprd import ControlPlane, DaprdSidecar
from sidecar.launcher.processes import AppProcess, LogSink, stdout_sink
from sidecar.launcher.template import AppSpec, quantity_bytes
from sidecar.runtime import Sidecar, SidecarOptions

__all__ = ["Topology"]

log = logging.getLogger(__name__)


def daprd_sink(sink: LogSink) -> LogSink:
    """daprd's and the control plane's log lines, told apart from the apps' own."""
    return lambda name, line: sink(f"{name} (dapr)", line)


class Topology:
    """A set of apps with their sidecars: local sidecars sharing one :class:`Cluster`,
    or with ``daprd`` (the folder of Dapr's binaries) real daprd processes."""

    def __init__(
        self,
        apps: Sequence[AppSpec],
        *,
        faults: FaultPlan | None = None,
        sink: LogSink = stdout_sink,
        api_token: str | None = None,
        startup_timeout: float = 60.0,
        probe_interval: float = 0.5,
        daprd: Path | None = None,
        control_plane: ControlPlane | None = None,
        app_api_token: str | None = None,
        dapr_namespace: str | None = None,
    ) -> None:
        if daprd is not None and faults is not None:
            raise ValueError("fault injection needs the local sidecar, not daprd")
        self.apps = tuple(apps)
        self.cluster = Cluster()
        self.daprd = daprd
        self.dapr_namespace = dapr_namespace
        """daprd's ``NAMESPACE``: apps of other namespaces share placement but not actors."""
        self.control_plane = control_plane
        self._own_control_plane = False
        self.daprds: dict[str, DaprdSidecar] = {}
        self.faults = faults
        self.sink = sink
        self.api_token = api_token if api_token is not None else os.environ.get("DAPR_API_TOKEN")
        self.app_api_token = (
            app_api_token if app_api_token is not None else os.environ.get("APP_API_TOKEN")
        )
        """What each sidecar sends its app as ``dapr-api-token`` (and the app checks)."""
        self.startup_timeout = startup_timeout
        self.probe_interval = probe_interval
        self.sidecars: dict[str, Sidecar] = {}
        self.processes: dict[str, AppProcess] = {}

    def sidecar(self, name: str) -> Sidecar:
        """The sidecar of an app (by app id, or by instance name for a replica)."""
        return self.sidecars[name]

    def ports(self, name: str) -> tuple[int, int]:
        """The HTTP and gRPC API ports of an app's sidecar, whichever kind it is."""
        if name in self.daprds:
            return self.daprds[name].http_port, self.daprds[name].grpc_port
        return self.sidecars[name].http_port, self.sidecars[name].grpc_port

    def app_env(self, spec: AppSpec, sidecar: Sidecar | DaprdSidecar) -> dict[str, str]:
        env = dict(os.environ)
        # an app command's `python` is the launcher's own interpreter (its venv) first
        bin_dir = os.path.dirname(sys.executable)
        env["PATH"] = os.pathsep.join(p for p in (bin_dir, env.get("PATH", "")) if p)
        env.update(
            {
                "APP_ID": spec.app_id,
                "APP_CHANNEL_ADDRESS": spec.app_host,
                "APP_PROTOCOL": spec.app_protocol,
                "DAPR_HTTP_PORT": str(sidecar.http_port),
                "DAPR_GRPC_PORT": str(sidecar.grpc_port),
            }
        )
        if spec.app_port is not None:
            env["APP_PORT"] = str(spec.app_port)
        if self.api_token:
            env["DAPR_API_TOKEN"] = self.api_token
        if self.app_api_token:
            env["APP_API_TOKEN"] = self.app_api_token
        env.update(spec.env)
        return env

    async def start(self, *, ready: bool = True) -> None:
        """Start every sidecar, then every app process; with ``ready`` (the default) wait
        until each sidecar is healthy (``/v1.0/healthz`` 204), else return once the
        sidecars' APIs are up (outbound health 204) and the apps are started."""
        if self.daprd is not None:
            await self._start_daprd(self.daprd, ready=ready)
            return
        try:
            for spec in self.apps:
                options = SidecarOptions(
                    app_id=spec.app_id,
                    resources_paths=spec.resources_paths,
                    app_port=spec.app_port,
                    app_host=spec.app_host,
                    http_port=spec.http_port,
                    grpc_port=spec.grpc_port,
                    api_token=self.api_token,
                    faults=self.faults,
                    probe_interval=(
                        spec.health_check.interval_s if spec.health_check else self.probe_interval
                    ),
                    probe_threshold=spec.health_check.threshold if spec.health_check else 3,
                    probe_timeout=spec.health_check.timeout_ms / 1000 if spec.health_check else 0.5,
                    health_check_path=spec.health_check.path if spec.health_check else None,
                    max_body_bytes=quantity_bytes(spec.max_body_size),
                    app_api_token=self.app_api_token,
                )
                sidecar = Sidecar(options, self.cluster)
                await sidecar.start()
                self.sidecars[spec.name] = sidecar
            for spec in self.apps:
                if spec.command:
                    process = AppProcess(
                        spec.name,
                        spec.command,
                        spec.app_dir,
                        self.app_env(spec, self.sidecars[spec.name]),
                        sink=self.sink,
                    )
                    await process.start()
                    self.processes[spec.name] = process
            if ready:
                await asyncio.gather(*(self._wait_ready(spec) for spec in self.apps))
        except BaseException:
            await self.stop()
            raise

    async def _start_daprd(self, binaries: Path, *, ready: bool) -> None:
        try:
            if self.control_plane is None:
                self.control_plane = ControlPlane(binaries, sink=daprd_sink(self.sink))
                self._own_control_plane = True
            await self.control_plane.start(self.startup_timeout)
            for spec in self.apps:
                daprd = DaprdSidecar(
                    spec,
                    binaries,
                    sink=daprd_sink(self.sink),
                    placement_address=self.control_plane.placement_address,
                    scheduler_address=self.control_plane.scheduler_address,
                    api_token=self.api_token,
                    app_api_token=self.app_api_token,
                    namespace=self.dapr_namespace,
                )
                await daprd.start()
                self.daprds[spec.name] = daprd
                if spec.command:  # right after its daprd, as `dapr run -f` does
                    process = AppProcess(
                        spec.name,
                        spec.command,
                        spec.app_dir,
                        self.app_env(spec, daprd),
                        sink=self.sink,
                    )
                    await process.start()
                    self.processes[spec.name] = process
            waits = [
                self._wait_daprd(spec, self.daprds[spec.name], ready=ready) for spec in self.apps
            ]
            await asyncio.gather(*waits)
        except BaseException:
            await self.stop()
            raise

    async def _wait_daprd(self, spec: AppSpec, daprd: DaprdSidecar, *, ready: bool) -> None:
        wait = daprd.wait_ready if ready else daprd.wait_outbound
        try:
            await self._while_app_runs(spec, wait(self.startup_timeout))
        except StartupError as exc:
            lines = " | ".join(list(daprd.process.tail)[-8:])
            raise StartupError(
                f"{exc.args[0]}; daprd's last lines: {lines}", log_tail=exc.log_tail
            ) from None

    async def _wait_ready(self, spec: AppSpec) -> None:
        await self._while_app_runs(spec, self.sidecars[spec.name].wait_ready(self.startup_timeout))

    async def _while_app_runs(self, spec: AppSpec, wait: Coroutine[Any, Any, None]) -> None:
        """Await a sidecar's readiness ``wait``; fail with the app's last lines when the
        app exits first or the wait fails."""
        ready = asyncio.create_task(wait)
        process = self.processes.get(spec.name)
        if process is None:
            await ready
            return
        exited = asyncio.create_task(process.wait())
        done, _ = await asyncio.wait({ready, exited}, return_when=asyncio.FIRST_COMPLETED)
        if exited in done and not ready.done():
            ready.cancel()
            await asyncio.gather(ready, return_exceptions=True)
            raise StartupError(
                f"app {spec.name!r} exited with code {exited.result()} during start-up",
                log_tail=tuple(process.tail),
            ) from None
        exited.cancel()
        await asyncio.gather(exited, return_exceptions=True)
        try:
            ready.result()
        except StartupError as exc:
            raise StartupError(exc.args[0], log_tail=tuple(process.tail)) from None

    async def kill_app(self, name: str) -> None:
        """SIGKILL an app process (its sidecar stays up and notices, like a crash)."""
        await self.processes[name].kill()

    async def restart_app(self, name: str) -> None:
        """Start a killed or stopped app again with the same environment."""
        await self.processes[name].start()

    async def wait_any_exit(self) -> str:
        """Return the name of the first app process that exits."""
        waits = {asyncio.create_task(p.wait()): name for name, p in self.processes.items()}
        if not waits:
            await asyncio.Event().wait()
        done, pending = await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
        for task in pending:
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)
        return waits[next(iter(done))]

    async def stop(self) -> None:
        await asyncio.gather(
            *(p.terminate() for p in self.processes.values()), return_exceptions=True
        )
        for sidecar in list(self.sidecars.values()):
            # every app is gone now: its sidecar drops its actors without calling it
            # (each call would only fail and log), as after a failed health probe
            sidecar.app_healthy = False
        for sidecar in list(self.sidecars.values()):
            try:
                await sidecar.stop()
            except Exception:
                log.exception("%s: sidecar did not stop cleanly", sidecar.app_id)
        self.sidecars.clear()
        daprds, self.daprds = list(self.daprds.values()), {}
        await asyncio.gather(*(d.stop() for d in daprds), return_exceptions=True)
        if self.control_plane is not None and self._own_control_plane:
            await self.control_plane.stop()
            self.control_plane = None
        await self.cluster.close()
