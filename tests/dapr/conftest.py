"""Local deployments of the Dapr runtime for the tests: the API/coordinator app and
three executor hosts (pool ``default`` with two replicas, pool ``aux`` with one),
each a separate process with its sidecar — the local sidecar, or real daprd with
``SUPERSTEP_DAPR_TARGET=daprd`` (tests/conftest.py) — on the repo's Redis components.
On daprd each replica is started by the Dapr CLI (``dapr run -f``, :mod:`cli_deployment`)
when it is installed, else by the repo's launcher.

Redis is required: without it the tests skip with the reason printed, and fail
instead when ``CI`` is set.
"""

from __future__ import annotations

import os
import socket
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from sidecar.faults import FaultPlan, PubSubFaults
from sidecar.launcher.daprd import DaprdSidecar
from sidecar.launcher.deployment import REPO_ROOT, LocalDeployment
from sidecar.launcher.template import AppSpec
from sidecar.runtime import Sidecar, SidecarOptions
from sidecar.testing import BackgroundLoop, make_cluster, start_sidecar
from tests.conftest import daprd_binaries
from tests.dapr.cli_deployment import CliDeployment
from tests.dapr.endpoint import ApiEndpoint
from tests.sidecar.conftest import STATE_COMPONENTS, require_service
from tests.sidecar.runs import dapr_cli

API_TOKEN = "conftest-token-0f9c"
APP_TOKEN = "conftest-app-token-7d21"
"""What the sidecars send the apps; calls into an app without it are refused."""


def _redis_reachable() -> bool:
    try:
        with socket.create_connection(("127.0.0.1", 6379), timeout=1):
            return True
    except OSError:
        return False


@dataclass
class Deployment(ApiEndpoint):
    local: LocalDeployment | CliDeployment
    bg: BackgroundLoop
    logs: list[str] = field(default_factory=list)
    spans: Path | None = None
    """Where the apps write their finished spans (a traced deployment only)."""

    api_token: str = API_TOKEN

    def kill(self, app_id: str) -> None:
        self.bg.run(self.local.kill(app_id))

    def pause(self, app_id: str) -> None:
        self.local.pause(app_id)

    def resume(self, app_id: str) -> None:
        self.local.resume(app_id)

    def restart(self, app_id: str) -> None:
        self.bg.run(self.local.restart(app_id))


def _deploy(
    faults: FaultPlan | None = None,
    deadline_s: float = 2.0,
    pools: dict[str, int] | None = None,
    env: dict[str, str] | None = None,
) -> Iterator[Deployment]:
    if not _redis_reachable():
        message = "Redis is not reachable on 127.0.0.1:6379 (the Dapr runtime tests need it)"
        if os.environ.get("CI"):
            pytest.fail(f"{message}; CI is set: the service is required", pytrace=False)
        pytest.skip(message)
    logs: list[str] = []
    local = LocalDeployment(
        workflows=[
            "tests.dapr.workflows:all_workflows",
            "tests.dapr.workflows:*",
            "runtime.testing.conformance._workflows:*",
        ],
        pools=pools or {"default": 2, "aux": 1},
        env={
            "SUPERSTEP_DEADLINE_S": str(deadline_s),
            "SUPERSTEP_HEARTBEAT_S": "0.5",
            "SUPERSTEP_HOST_TTL_S": "2",
            "SUPERSTEP_NO_HOST_DEADLINE_S": "4",
            "SUPERSTEP_API_TOKEN": API_TOKEN,
            **(env or {}),
        },
        sink=lambda app, line: logs.append(f"{app}: {line}"),
        faults=faults,
        daprd=daprd_binaries(),
        app_api_token=APP_TOKEN,
    )
    cli = dapr_cli() if local.daprd is not None else None
    with BackgroundLoop() as bg, tempfile.TemporaryDirectory(prefix="cli-run-") as runs:
        started = local if cli is None else CliDeployment(local, cli, Path(runs), bg)
        bg.run(started.start(), timeout=120)
        try:
            yield Deployment(started, bg, logs)
        finally:
            bg.run(started.stop(), timeout=60)


@pytest.fixture(scope="session")
def deployment() -> Iterator[Deployment]:
    yield from _deploy()


@pytest.fixture(scope="session")
def faulty_deployment() -> Iterator[Deployment]:
    """The same topology, its sidecars duplicating, reordering, delaying and dropping
    pub/sub deliveries (seeded); lost activations come back by the deadline reminder."""
    plan = FaultPlan(
        seed=7,
        pubsub=PubSubFaults(duplicate=0.3, reorder=0.3, delay=0.2, drop=0.1, reorder_window=0.2),
    )
    yield from _deploy(plan, deadline_s=1.0)


@pytest.fixture(scope="session")
def traced_deployment(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Deployment]:
    """One host per pool, with the OpenTelemetry SDK in every app
    (``otel_site/sitecustomize.py``) writing their spans to ``deployment.spans``."""
    spans = tmp_path_factory.mktemp("spans")
    site = Path(__file__).resolve().parent / "otel_site"
    path = os.pathsep.join(p for p in (str(site), os.environ.get("PYTHONPATH", "")) if p)
    env = {"SUPERSTEP_TEST_SPANS": str(spans), "PYTHONPATH": f"{path}{os.pathsep}{REPO_ROOT}"}
    for deployment in _deploy(pools={"default": 1, "aux": 1}, env=env):
        deployment.spans = spans
        yield deployment


@pytest.fixture(scope="session")
def store_sidecar(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sidecar | DaprdSidecar]:
    """One sidecar (no app) on the Redis state store, for tests of the run store."""
    require_service("Redis", 6379)
    resources = tmp_path_factory.mktemp("store")
    # a Redis state store shared by every app (keyPrefix: name), named "sharedstore"
    (resources / "store.yaml").write_text(STATE_COMPONENTS["shared.yaml"])
    binaries = daprd_binaries()
    if binaries is not None:
        spec = AppSpec(app_id="store-tests", app_dir=resources, resources_paths=(resources,))
        with BackgroundLoop() as bg:
            daprd = DaprdSidecar(spec, binaries, sink=lambda _name, _line: None)
            bg.run(daprd.start())
            try:
                bg.run(daprd.wait_ready(60), timeout=70)
                yield daprd
            finally:
                bg.run(daprd.stop(), timeout=30)
        return
    with BackgroundLoop() as bg:
        running = bg.run(
            start_sidecar(
                SidecarOptions(app_id="store-tests", resources_paths=(Path(resources),)),
                bg.run(make_cluster()),
            )
        )
        yield running
        bg.run(running.stop())
