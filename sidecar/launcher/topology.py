"""Start and stop a whole run: one sidecar per app, then the app processes.

Order per app (dapr-contract §4.1): the sidecar loads its components and opens its APIs
(outbound health is 204), then the app process starts with ``APP_ID``, ``APP_PORT``,
``APP_CHANNEL_ADDRESS``, ``APP_PROTOCOL``, ``DAPR_HTTP_PORT``, ``DAPR_GRPC_PORT`` and the
template ``env``; the sidecar waits for the app port, reads ``/dapr/config`` and
``/dapr/subscribe`` and becomes healthy. An app that exits before that fails the start
with its last log lines.
"""

from __future__ import annotations

import asyncio
import logging
import os
import sys
from collections.abc import Sequence

from sidecar.cluster import Cluster
from sidecar.errors import StartupError
from sidecar.faults import FaultPlan
from sidecar.launcher.processes import AppProcess, LogSink, stdout_sink
from sidecar.launcher.template import AppSpec
from sidecar.runtime import Sidecar, SidecarOptions

__all__ = ["Topology"]

log = logging.getLogger(__name__)


class Topology:
    """A set of apps with their sidecars, sharing one :class:`Cluster`."""

    def __init__(
        self,
        apps: Sequence[AppSpec],
        *,
        faults: FaultPlan | None = None,
        sink: LogSink = stdout_sink,
        api_token: str | None = None,
        startup_timeout: float = 60.0,
        probe_interval: float = 0.5,
    ) -> None:
        self.apps = tuple(apps)
        self.cluster = Cluster()
        self.faults = faults
        self.sink = sink
        self.api_token = api_token if api_token is not None else os.environ.get("DAPR_API_TOKEN")
        self.startup_timeout = startup_timeout
        self.probe_interval = probe_interval
        self.sidecars: dict[str, Sidecar] = {}
        self.processes: dict[str, AppProcess] = {}

    def sidecar(self, name: str) -> Sidecar:
        """The sidecar of an app (by app id, or by instance name for a replica)."""
        return self.sidecars[name]

    def app_env(self, spec: AppSpec, sidecar: Sidecar) -> dict[str, str]:
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
        env.update(spec.env)
        return env

    async def start(self, *, ready: bool = True) -> None:
        """Start every sidecar, then every app process; with ``ready`` (the default) wait
        until each sidecar is healthy (``/v1.0/healthz`` 204), else return once the
        sidecars' APIs are up (outbound health 204) and the apps are started."""
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
                    probe_interval=self.probe_interval,
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

    async def _wait_ready(self, spec: AppSpec) -> None:
        sidecar = self.sidecars[spec.name]
        process = self.processes.get(spec.name)
        ready = asyncio.create_task(sidecar.wait_ready(self.startup_timeout))
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
            )
        exited.cancel()
        await asyncio.gather(exited, return_exceptions=True)
        try:
            ready.result()
        except StartupError as exc:
            raise StartupError(exc.args[0], log_tail=tuple(process.tail)) from exc

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
        await self.cluster.close()
