"""A :class:`~sidecar.launcher.deployment.LocalDeployment`'s topology started by the Dapr
CLI: each replica (its app and its daprd) is one ``dapr run -f`` of a one-app run
template, as a user runs an app with the CLI.

One template per replica, because a replica is the unit the tests kill, pause and
restart: the CLI gives each app's process id to its daprd (``appPID`` in daprd's
extended metadata), which is how :meth:`CliDeployment.kill` finds the process to kill,
as a user would with ``dapr list``. A killed app is left dead by the CLI (its daprd runs
on), as with the launcher; :meth:`CliDeployment.restart` stops that replica's run and
starts it again, app and daprd, on the same ports (a pod restarted).
"""

from __future__ import annotations

import asyncio
import os
import signal
from pathlib import Path

import httpx

from sidecar.launcher.deployment import LocalDeployment
from sidecar.launcher.template import AppSpec
from sidecar.testing import BackgroundLoop
from tests.sidecar.runs import DaprRun, RunApp

__all__ = ["CliDeployment"]


class CliDeployment:
    """``local``'s apps, each replica run by ``cli run -f`` in ``directory``."""

    def __init__(
        self, local: LocalDeployment, cli: str, directory: Path, bg: BackgroundLoop
    ) -> None:
        self.local = local
        self.cli = cli
        self.directory = directory
        self.bg = bg
        self.runs: dict[str, DaprRun] = {}
        """Replica name (host id, or the app id of the API app) -> its CLI run."""
        self.pids: dict[str, int] = {}
        """Replica name -> its app's process id, read from daprd once started (a kill
        is then one system call, as with the launcher)."""

    # what tests read of a LocalDeployment

    @property
    def api_url(self) -> str:
        return self.local.api_url

    @property
    def namespace(self) -> str:
        return self.local.namespace

    @property
    def host_ids(self) -> list[str]:
        return self.local.host_ids

    def app_ports(self) -> dict[str, int]:
        """Replica name -> its app port."""
        return {name: run.app_port(next(iter(run.apps))) for name, run in self.runs.items()}

    # start / stop

    def _run(self, spec: AppSpec) -> DaprRun:
        assert spec.health_check is not None
        app = RunApp(
            spec.app_id,
            app_port=spec.app_port,
            command=spec.command,
            env=spec.env,
            resources=spec.resources_paths,
            health_check_path=spec.health_check.path,
            health_threshold=spec.health_check.threshold,
        )
        env = {"NAMESPACE": self.local.namespace}
        if self.local.app_api_token is not None:
            # daprd sends it to its app, and the app (which inherits the CLI's
            # environment too) requires it
            env["APP_API_TOKEN"] = self.local.app_api_token
        return DaprRun(
            [app],
            self.directory / spec.name,
            self.bg,
            external=(self.cli, "run", "-f"),
            env=env,
        )

    async def start(self) -> None:
        specs = self.local.specs()
        self.runs = {spec.name: self._run(spec) for spec in specs}
        try:
            await asyncio.gather(*(asyncio.to_thread(run.start) for run in self.runs.values()))
            for name in self.runs:
                self.pids[name] = await self._app_pid(name)
        except BaseException:
            await self.stop()
            raise

    async def stop(self) -> None:
        runs, self.runs = list(self.runs.values()), {}
        await asyncio.gather(*(asyncio.to_thread(run.stop) for run in runs))

    # faults

    async def _app_pid(self, name: str, within: float = 30.0) -> int:
        """The app's process id, from its daprd's metadata (the CLI writes it there a
        moment after the app listens)."""
        run = self.runs[name]
        (app_id,) = run.apps
        deadline = asyncio.get_running_loop().time() + within
        async with httpx.AsyncClient(timeout=5) as client:
            while True:
                meta = (await client.get(f"{run.api(app_id)}/metadata")).json()
                if "appPID" in meta.get("extended", {}):
                    return int(meta["extended"]["appPID"])
                if asyncio.get_running_loop().time() > deadline:
                    raise AssertionError(f"{name}: no appPID in daprd's metadata: {meta}")
                await asyncio.sleep(0.1)

    async def kill(self, host_id: str) -> None:
        """SIGKILL one replica's app process (its daprd notices, as with a crash)."""
        os.kill(self.pids[host_id], signal.SIGKILL)

    def pause(self, host_id: str) -> None:
        """SIGSTOP one replica's app process (a hung host)."""
        os.kill(self.pids[host_id], signal.SIGSTOP)

    def resume(self, host_id: str) -> None:
        """SIGCONT a paused app process."""
        os.kill(self.pids[host_id], signal.SIGCONT)

    async def restart(self, host_id: str) -> None:
        """Start a killed replica again: its run stopped, then started on its ports."""
        run = self.runs[host_id]
        await asyncio.to_thread(run.stop)
        self.runs[host_id] = fresh = DaprRun(
            list(run.apps.values()),
            run.directory,
            self.bg,
            external=run.external,
            env=run.env,
        )
        await asyncio.to_thread(fresh.start)
        self.pids[host_id] = await self._app_pid(host_id)
