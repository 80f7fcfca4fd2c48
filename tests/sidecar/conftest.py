"""Fixtures for the sidecar contract tests.

Target selection: by default the tests start the local sidecar in-process. With
``SUPERSTEP_DAPR_TARGET=daprd`` every topology a test describes as a run template
(:mod:`tests.sidecar.runs`) is started with ``dapr run -f`` (or ``SUPERSTEP_DAPR_RUN``)
instead; the state tests use an already running daprd at ``SUPERSTEP_DAPR_HTTP_PORT`` /
``SUPERSTEP_DAPR_GRPC_PORT`` when those are set (``dapr run -f
tests/sidecar/daprd/dapr.yaml``), else start their own. Tests that need the local
sidecar's internals are marked ``sidecar_only`` and skipped there (docs/sidecar.md,
"Contract tests against a real daprd").

Redis and PostgreSQL: a test that needs one skips with the reason printed when the
service is not reachable, and fails loudly instead when ``CI`` is set.
"""

from __future__ import annotations

import os
import socket
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import grpc
import pytest
import redis
from dapr.clients import DaprClient
from dapr.clients.exceptions import DaprGrpcError

from sidecar.cluster import Cluster
from sidecar.runtime import Sidecar, SidecarOptions
from sidecar.testing import BackgroundLoop, make_cluster, start_sidecar
from tests.sidecar.runs import ON_DAPRD, DaprRun, RunApp

HERE = Path(__file__).parent


def grpc_code(error: DaprGrpcError) -> grpc.StatusCode:
    code: grpc.StatusCode = error.code()  # type: ignore[no-untyped-call]  # untyped SDK
    return code


def close_client(client: DaprClient) -> None:
    client.close()  # type: ignore[no-untyped-call]  # untyped SDK


def _reachable(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=1):
            return True
    except OSError:
        return False


def require_service(name: str, port: int) -> None:
    if _reachable("127.0.0.1", port):
        return
    message = f"{name} is not reachable on 127.0.0.1:{port}"
    if os.environ.get("CI"):
        pytest.fail(f"{message} (CI is set: the service is required)", pytrace=False)
    pytest.skip(message)


@pytest.fixture
def redis_service() -> None:
    require_service("Redis", 6379)


@pytest.fixture
def postgres_service() -> None:
    require_service("PostgreSQL", 5432)


@pytest.fixture(scope="session")
def run_id() -> Iterator[str]:
    """Unique per test session: prefixes keys, topics and streams so reruns never collide.

    The session's Redis streams are deleted at the end.
    """
    value = uuid.uuid4().hex[:10]
    yield value
    if not ON_DAPRD and _reachable("127.0.0.1", 6379):
        with redis.Redis() as client:
            for key in client.scan_iter(match=f"sstest-{value}-*", count=500):
                client.delete(key)


@pytest.fixture
def uid(run_id: str) -> str:
    return f"{run_id}-{uuid.uuid4().hex[:8]}"


@pytest.fixture(scope="session")
def bg() -> Iterator[BackgroundLoop]:
    loop = BackgroundLoop()
    yield loop
    loop.close()


@dataclass
class Target:
    """Where the contract tests send their requests."""

    http_port: int
    grpc_port: int
    sidecar: Sidecar | None = None

    @property
    def http(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"

    @property
    def grpc(self) -> str:
        return f"127.0.0.1:{self.grpc_port}"


def write_resources(directory: Path, documents: dict[str, str]) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    for name, text in documents.items():
        (directory / name).write_text(text, encoding="utf-8")
    return directory


STATE_COMPONENTS = {
    "memory.yaml": """
apiVersion: dapr.io/v1alpha1
kind: Component
metadata: {name: memstore}
spec: {type: state.in-memory, version: v1, metadata: []}
""",
    "redis.yaml": """
apiVersion: dapr.io/v1alpha1
kind: Component
metadata: {name: redisstore}
spec:
  type: state.redis
  version: v1
  metadata:
  - {name: redisHost, value: "localhost:6379"}
""",
    "postgres.yaml": """
apiVersion: dapr.io/v1alpha1
kind: Component
metadata: {name: pgstore}
spec:
  type: state.postgresql
  version: v2
  metadata:
  - {name: connectionString, value: "host=127.0.0.1 user=postgres dbname=test"}
  - {name: tablePrefix, value: sidecar_contract_}
""",
    "shared.yaml": """
apiVersion: dapr.io/v1alpha1
kind: Component
metadata: {name: sharedstore}
spec:
  type: state.redis
  version: v1
  metadata:
  - {name: redisHost, value: "localhost:6379"}
  - {name: keyPrefix, value: name}
""",
}


@pytest.fixture(scope="session")
def cluster(bg: BackgroundLoop) -> Cluster:
    return bg.run(make_cluster())


@pytest.fixture(scope="session")
def state_target(
    bg: BackgroundLoop, cluster: Cluster, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Target]:
    """A sidecar (app id ``contract``) with in-memory, Redis and PostgreSQL state stores."""
    if ON_DAPRD and os.environ.get("SUPERSTEP_DAPR_HTTP_PORT"):
        yield Target(
            int(os.environ["SUPERSTEP_DAPR_HTTP_PORT"]), int(os.environ["SUPERSTEP_DAPR_GRPC_PORT"])
        )
        return
    for name, port in (("Redis", 6379), ("PostgreSQL", 5432)):
        if not _reachable("127.0.0.1", port) and os.environ.get("CI"):
            pytest.fail(f"{name} is not reachable on 127.0.0.1:{port} (CI is set)")
    resources = write_resources(tmp_path_factory.mktemp("state"), dict(STATE_COMPONENTS))
    if not _reachable("127.0.0.1", 6379):
        for name in ("redis.yaml", "shared.yaml"):
            (resources / name).unlink()
    if not _reachable("127.0.0.1", 5432):
        (resources / "postgres.yaml").unlink()
    if ON_DAPRD:
        app = RunApp("contract", resources=(resources,))
        with DaprRun([app], tmp_path_factory.mktemp("state-run"), bg) as run:
            yield Target(run.http_port("contract"), run.grpc_port("contract"))
        return
    sidecar = bg.run(
        start_sidecar(SidecarOptions(app_id="contract", resources_paths=(resources,)), cluster)
    )
    yield Target(sidecar.http_port, sidecar.grpc_port, sidecar)
    bg.run(sidecar.stop())
