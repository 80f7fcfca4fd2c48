"""Start the Dapr runtime locally without the Dapr CLI: the API/coordinator app and
executor hosts, each with a Dapr-API-compatible local sidecar (``sidecar``), or with
``daprd=`` beside real daprd processes.

Used by the tests and the benchmarks. With the Dapr CLI the same topology is
``dapr run -f dapr.yaml``. The apps are started as commands (``uvicorn --factory
executor_host.<app>:create_app``), never imported: the sidecar package and the apps'
package do not import each other.

    deployment = LocalDeployment(workflows=["runtime.demo:build_workflow"],
                                 pools={"default": 2})
    await deployment.start()
    ... RemoteRuntime(deployment.api_url) ...
    await deployment.stop()
"""

from __future__ import annotations

import os
import signal
import sys
import uuid
from collections.abc import Mapping, Sequence
from pathlib import Path

from sidecar.faults import FaultPlan
from sidecar.launcher.processes import LogSink, stdout_sink
from sidecar.launcher.template import AppSpec, HealthCheck
from sidecar.launcher.topology import Topology
from sidecar.testing import free_port

__all__ = ["KEEP_ALIVE_S", "REPO_ROOT", "LocalDeployment"]

REPO_ROOT = Path(__file__).resolve().parents[2]

KEEP_ALIVE_S = 620
"""How long the apps keep an idle connection open (uvicorn's default: 5 s), as in
``deploy/entrypoint.sh`` and ``dapr.yaml``."""


class LocalDeployment:
    """One API app plus ``pools`` (pool name -> number of host replicas), all as
    separate processes with their own sidecar, sharing the given components."""

    def __init__(
        self,
        *,
        workflows: Sequence[str],
        pools: Mapping[str, int] | None = None,
        labels: Mapping[str, str] | None = None,
        resources: Path | None = None,
        env: Mapping[str, str] | None = None,
        sink: LogSink = stdout_sink,
        namespace: str | None = None,
        faults: FaultPlan | None = None,
        daprd: Path | None = None,
        app_api_token: str | None = None,
    ) -> None:
        self.workflows = list(workflows)
        self.pools = dict(pools or {"default": 2})
        self.labels = dict(labels or {})
        self.resources = resources or REPO_ROOT / "components"
        self.extra_env = dict(env or {})
        self.sink = sink
        self.namespace = namespace or f"superstep-{uuid.uuid4().hex[:8]}"
        self.faults = faults
        self.daprd = daprd
        """The folder of Dapr's binaries: the apps run beside real daprd processes
        instead of the local sidecar (``sidecar.launcher.daprd``)."""
        self.app_api_token = app_api_token
        """The token the sidecars send the apps (``APP_API_TOKEN``): the apps refuse
        sidecar-facing calls without it."""
        self.api_port = free_port()
        self.topology: Topology | None = None
        self.host_ids: list[str] = []

    @property
    def api_url(self) -> str:
        return f"http://127.0.0.1:{self.api_port}"

    def _env(self, **extra: str) -> dict[str, str]:
        path = os.environ.get("PYTHONPATH", "")
        return {
            "SUPERSTEP_WORKFLOWS": ",".join(self.workflows),
            "SUPERSTEP_NAMESPACE": self.namespace,
            "PYTHONPATH": f"{REPO_ROOT}{os.pathsep}{path}" if path else str(REPO_ROOT),
            **self.extra_env,
            **extra,
        }

    def _app(self, app_id: str, module: str, port: int, instance: str = "", **env: str) -> AppSpec:
        return AppSpec(
            app_id=app_id,
            instance=instance,
            app_dir=REPO_ROOT,
            command=(
                sys.executable,
                "-m",
                "uvicorn",
                "--factory",
                f"executor_host.{module}:create_app",
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
                "--log-level",
                "warning",
                # longer than any idle time of the sidecar's connections to the app:
                # daprd keeps them without a limit, and an actor call it sends on one
                # the app closes at that moment fails (docs/reliability.md, "Load")
                "--timeout-keep-alive",
                str(KEEP_ALIVE_S),
            ),
            app_port=port,
            env=self._env(**env),
            resources_paths=(self.resources,),
            # without app health checks a dead app keeps its actors and its share of
            # the consumer group on daprd (dapr-contract §4.1)
            health_check=HealthCheck(path="/healthz", interval_s=1, timeout_ms=500, threshold=2),
        )

    def specs(self) -> list[AppSpec]:
        apps = [self._app("superstep-api", "api", self.api_port)]
        self.host_ids = []
        labels = ",".join(f"{k}={v}" for k, v in self.labels.items())
        for pool, replicas in self.pools.items():
            # the replicas of a pool are one app (one app id, so one consumer group on
            # the broker and competing consumers), as on Kubernetes; each has its own
            # host id
            for i in range(1, replicas + 1):
                host_id = f"superstep-{pool}-{i}"
                self.host_ids.append(host_id)
                apps.append(
                    self._app(
                        f"superstep-{pool}",
                        "host",
                        free_port(),
                        instance=host_id,
                        SUPERSTEP_POOL=pool,
                        SUPERSTEP_LABELS=labels,
                        SUPERSTEP_HOST_ID=host_id,
                    )
                )
        return apps

    def app_ports(self) -> dict[str, int]:
        """Replica name (host id, or the API app's id) -> its app port, once started."""
        assert self.topology is not None
        return {a.name: a.app_port for a in self.topology.apps if a.app_port is not None}

    async def start(self) -> None:
        self.topology = Topology(
            self.specs(),
            sink=self.sink,
            faults=self.faults,
            daprd=self.daprd,
            app_api_token=self.app_api_token,
            dapr_namespace=self.namespace,
        )
        await self.topology.start()

    async def kill(self, host_id: str) -> None:
        """SIGKILL one app process (its sidecar notices, as with a crash)."""
        assert self.topology is not None
        await self.topology.kill_app(host_id)

    def pause(self, host_id: str) -> None:
        """SIGSTOP one app process (a hung host: its port still accepts connections, it
        answers nothing)."""
        self._signal(host_id, signal.SIGSTOP)

    def resume(self, host_id: str) -> None:
        """SIGCONT a paused app process."""
        self._signal(host_id, signal.SIGCONT)

    def _signal(self, host_id: str, sig: signal.Signals) -> None:
        assert self.topology is not None
        pid = self.topology.processes[host_id].pid
        assert pid is not None, f"{host_id} is not running"
        os.killpg(pid, sig)

    async def restart(self, host_id: str) -> None:
        """Start a killed app again (its sidecar is still up)."""
        assert self.topology is not None
        await self.topology.restart_app(host_id)

    async def stop(self) -> None:
        if self.topology is not None:
            await self.topology.stop()
            self.topology = None
