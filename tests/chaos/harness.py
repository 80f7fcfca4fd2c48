"""Deployments, fault classes and the run/compare logic of the chaos suite.

A :class:`ChaosDeployment` is the tests' topology (the API/coordinator app, pool
``default`` with two host replicas, pool ``aux`` with one; ``LocalDeployment`` of
``sidecar.launcher.deployment``) on a Redis of its own, started on a free port for the
deployment, so that pausing or restarting it touches nobody else's data; the
PostgreSQL classes put its state store (and actor state) on a PostgreSQL of its own
(:class:`LocalPostgres`, a cluster made for it on a free port), pub/sub staying on the
Redis. Each run of
:func:`run_once` starts the chaos workflow with a seed, injects its fault class when the
run reaches a seeded superstep, heals it after a seeded hold, and compares the run with
the in-process run of the same input and seed. The run is classified as

* ``correct``: completed, with the in-process outputs and trace hash;
* ``clear failure``: failed or cancelled with an error message (or the client's wait
  ended with an error naming the cause, e.g. a run record lost with the store);
* ``DEFECT``: completed with other outputs or another trace hash (a lost or duplicated
  effect shows as a total that disagrees with the reducer's sum), no end within the
  run's deadline (a hang), a run not correct although its fault never struck (the
  deployment did not recover from the faults before it), or a fault class that saw
  what must not happen (a fenced coordinator copy committing).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import shutil
import signal
import statistics
import subprocess
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Literal

import httpx
import psycopg

from executor_host._bus import Bus
from executor_host._coordinator import RunDriver
from executor_host._sidecar import SidecarClient
from executor_host._store import RunStore
from executor_host.protocol import ActivationEnvelope, ResultEnvelope
from runtime import RunStatus, Workflow
from runtime.client import RemoteRuntime
from runtime.engine import Activation
from runtime.errors import RemoteError
from runtime.ports import ETagMismatch
from runtime.workflow import execute_activation
from sidecar.faults import FaultPlan, PubSubFaults
from sidecar.launcher import daprd as daprd_module
from sidecar.launcher.daprd import find_binaries
from sidecar.launcher.deployment import REPO_ROOT, LocalDeployment
from sidecar.launcher.processes import AppProcess
from sidecar.launcher.topology import Topology
from sidecar.runtime import Sidecar
from sidecar.testing import BackgroundLoop, free_port
from tests.chaos.workflow import Outcome, chaos_loop, expected_total
from tests.dapr.endpoint import ApiEndpoint

__all__ = [
    "FAULTS",
    "ChaosDeployment",
    "Fault",
    "FaultDefect",
    "KillSidecar",
    "LocalPostgres",
    "LocalRedis",
    "RunOutcome",
    "Summary",
    "Target",
    "deployed",
    "markdown_table",
    "run_class",
    "run_once",
    "summarise",
    "text_table",
]

Target = Literal["local", "daprd"]
Store = Literal["redis", "postgres"]
"""Where a deployment's state store (and actor state) lives; pub/sub is on Redis."""
Verdict = Literal["correct", "clear failure", "DEFECT", "not applicable"]

API_TOKEN = "chaos-api-token-51c3"
APP_TOKEN = "chaos-app-token-9e07"
API_APP = "superstep-api"
ROUNDS, WIDTH, WORK_MS = 4, 4, 100
"""The workflow of every run: 13 supersteps of 4 activations of 100 ms at most."""


# -- a Redis of the deployment's own ------------------------------------------------------


class LocalRedis:
    """``redis-server`` on a free port of 127.0.0.1 with an append-only file (so a
    restart keeps the data unless told to start empty)."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.port = free_port()
        self.process = AppProcess(
            f"redis-{self.port}",
            (
                shutil.which("redis-server") or "redis-server",
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "yes",
                "--appendfsync",
                "always",
                "--dir",
                str(directory),
            ),
            directory,
            dict(os.environ),
            sink=lambda _name, _line: None,
        )

    async def start(self, within: float = 20.0) -> None:
        await self.process.start()
        deadline = time.monotonic() + within
        while not await self.ping():
            if self.process.returncode is not None or time.monotonic() > deadline:
                raise RuntimeError(
                    f"redis-server on {self.port} did not start: {self.process.tail}"
                )
            await asyncio.sleep(0.05)

    async def ping(self) -> bool:
        try:
            reader, writer = await asyncio.wait_for(
                asyncio.open_connection("127.0.0.1", self.port), 1.0
            )
        except (OSError, TimeoutError):
            return False
        try:
            writer.write(b"PING\r\n")
            await writer.drain()
            return (await asyncio.wait_for(reader.readline(), 1.0)).startswith(b"+PONG")
        except (OSError, TimeoutError):
            return False
        finally:
            writer.close()

    def signal(self, sig: signal.Signals) -> None:
        pid = self.process.pid
        assert pid is not None
        os.killpg(pid, sig)

    async def kill(self, *, wipe: bool = False) -> None:
        await self.process.kill()
        if wipe:
            for entry in self.directory.iterdir():
                if entry.is_dir():
                    shutil.rmtree(entry)
                else:
                    entry.unlink()

    async def stop(self) -> None:
        with contextlib.suppress(ProcessLookupError, AssertionError):
            self.signal(signal.SIGCONT)
        await self.process.terminate()


# -- a PostgreSQL of the deployment's own -------------------------------------------------


def _postgres_binary(name: str) -> str:
    """``name`` (``postgres``, ``initdb``) of the PostgreSQL installed: on the PATH, else
    in Debian's ``/usr/lib/postgresql/<version>/bin``."""
    found = shutil.which(name)
    if found is not None:
        return found
    for folder in sorted(Path("/usr/lib/postgresql").glob("*/bin"), reverse=True):
        if (folder / name).exists():
            return str(folder / name)
    raise RuntimeError(f"PostgreSQL's {name} is not installed (tools/services/start installs it)")


def postgres_installed() -> bool:
    try:
        _postgres_binary("initdb")
    except RuntimeError:
        return False
    return True


class LocalPostgres:
    """A PostgreSQL cluster of its own (``initdb`` in a new temporary folder, ``root``)
    on a free port of 127.0.0.1: user ``postgres``, trust authentication, fsync on (a
    SIGKILL is a crash it recovers from its WAL). Run as the ``postgres`` account when
    this process is root, as the server refuses root. Its backends each start a session
    of their own (``setsid``): a signal to the server's process group reaches the
    postmaster alone, so ``signal`` sends it to every process of the server."""

    def __init__(self) -> None:
        self.root = Path(tempfile.mkdtemp(prefix="superstep-chaos-pg-"))
        self.root.chmod(0o711)  # the postgres account passes through to its folder
        self.directory = directory = self.root / "pg"
        self.data = directory / "data"
        self.port = free_port()
        self._as: tuple[str, ...] = ()
        if os.geteuid() == 0:
            setpriv = shutil.which("setpriv") or "setpriv"
            self._as = (setpriv, "--reuid=postgres", "--regid=postgres", "--clear-groups", "--")
        self.process = AppProcess(
            f"postgres-{self.port}",
            (
                *self._as,
                _postgres_binary("postgres"),
                "-D",
                str(self.data),
                "-p",
                str(self.port),
                "-k",
                str(directory),
                "-c",
                "listen_addresses=127.0.0.1",
                "-c",
                "max_connections=200",
            ),
            directory,
            dict(os.environ),
            sink=lambda _name, _line: None,
        )

    @property
    def dsn(self) -> str:
        return f"host=127.0.0.1 port={self.port} user=postgres dbname=postgres"

    async def init(self) -> None:
        """Make the cluster."""
        self.directory.mkdir(mode=0o700)
        if self._as:
            shutil.chown(self.directory, "postgres", "postgres")
        command = (
            *self._as,
            _postgres_binary("initdb"),
            "-D",
            str(self.data),
            "-U",
            "postgres",
            "--auth=trust",
            "-E",
            "UTF8",
            "--no-sync",
            "--no-instructions",
        )
        done = await asyncio.to_thread(
            subprocess.run, command, cwd=self.directory, capture_output=True, check=False
        )
        if done.returncode != 0:
            raise RuntimeError(f"initdb failed: {done.stderr.decode(errors='replace')[-2000:]}")

    async def start(self, within: float = 30.0) -> None:
        """Start the server and wait until it answers; after a SIGKILL its killed
        backends may still hold the old shared memory for a moment: try again."""
        deadline = time.monotonic() + within
        await self.process.start()
        while not await self.ping():
            if self.process.returncode is not None:
                if time.monotonic() > deadline:
                    raise RuntimeError(
                        f"postgres on {self.port} did not start: {list(self.process.tail)}"
                    )
                await asyncio.sleep(0.2)
                await self.process.start()
            elif time.monotonic() > deadline:
                raise RuntimeError(f"postgres on {self.port} did not answer: {self.process.tail}")
            await asyncio.sleep(0.1)

    async def ping(self) -> bool:
        try:
            conn = await psycopg.AsyncConnection.connect(self.dsn, connect_timeout=2)
        except psycopg.Error:
            return False
        try:
            await conn.execute("SELECT 1")
            return True
        except psycopg.Error:
            return False
        finally:
            await conn.close()

    def signal(self, sig: signal.Signals) -> None:
        """Send ``sig`` to the postmaster and every process it forked (backends,
        checkpointer, WAL writer…): the postmaster first, so that it forks no other
        before its children are signalled too (but SIGCONT, which wakes it last)."""
        pid = self.process.pid
        assert pid is not None
        if sig is not signal.SIGCONT:
            os.kill(pid, sig)
        for child in _children(pid):
            with contextlib.suppress(ProcessLookupError):
                os.kill(child, sig)
        if sig is signal.SIGCONT:
            os.kill(pid, sig)

    async def kill(self) -> None:
        """SIGKILL the server and every backend (a crash)."""
        pid = self.process.pid
        assert pid is not None
        os.kill(pid, signal.SIGSTOP)  # it forks no more; its children stay its own
        for child in _children(pid):
            with contextlib.suppress(ProcessLookupError):
                os.kill(child, signal.SIGKILL)
        await self.process.kill()

    async def stop(self) -> None:
        with contextlib.suppress(ProcessLookupError, AssertionError):
            self.signal(signal.SIGCONT)
        await self.process.terminate()
        shutil.rmtree(self.root, ignore_errors=True)


def _children(pid: int) -> list[int]:
    """The processes whose parent is ``pid`` (from ``/proc``)."""
    out = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError, ValueError, IndexError):
            # pid (comm) state ppid …: comm may hold spaces and parentheses
            fields = stat.read_text().rsplit(")", 1)[1].split()
            if int(fields[1]) == pid:
                out.append(int(stat.parent.name))
    return out


def write_components(directory: Path, redis_port: int, postgres: str | None = None) -> Path:
    """The repo's Redis components (state store, pub/sub, resiliency) pointed at
    ``redis_port``; with ``postgres`` (a connection string), the state store (the actor
    state store too) is ``state.postgresql`` there instead."""
    directory.mkdir(parents=True, exist_ok=True)
    for name in ("statestore.yaml", "pubsub.yaml", "resiliency.yaml"):
        text = (REPO_ROOT / "components" / name).read_text(encoding="utf-8")
        (directory / name).write_text(
            text.replace("localhost:6379", f"localhost:{redis_port}"), encoding="utf-8"
        )
    if postgres is not None:
        (directory / "statestore.yaml").write_text(
            _POSTGRES_STATE_STORE.replace("CONNECTION", postgres), encoding="utf-8"
        )
    return directory


_POSTGRES_STATE_STORE = """\
# The state store on PostgreSQL, shared by every app (keyPrefix: name), also the actor store.
apiVersion: dapr.io/v1alpha1
kind: Component
metadata:
  name: statestore
spec:
  type: state.postgresql
  version: v2
  metadata:
    - name: connectionString
      value: "CONNECTION"
    - name: actorStateStore
      value: "true"
    - name: keyPrefix
      value: name
"""


# -- the deployment ---------------------------------------------------------------------


class ChaosDeployment(ApiEndpoint):
    """The tests' topology on a Redis of its own, its processes and sidecars on a
    background loop (the runs' clients use the caller's loop)."""

    local: LocalDeployment

    def __init__(
        self,
        bg: BackgroundLoop,
        local: LocalDeployment,
        redis: LocalRedis,
        target: Target,
        postgres: LocalPostgres | None = None,
    ) -> None:
        self.bg = bg
        self.local = local
        self.redis = redis
        self.target = target
        self.postgres = postgres
        """The state store's PostgreSQL, for a deployment on ``store="postgres"``."""
        self.logs: list[str] = []
        self.api_token = API_TOKEN

    async def on_bg(self, coro: Awaitable[Any], within: float = 60.0) -> Any:
        """Await ``coro`` on the deployment's loop from the caller's loop."""

        async def wrapped() -> Any:
            return await coro

        future = asyncio.run_coroutine_threadsafe(wrapped(), self.bg.loop)
        return await asyncio.wait_for(asyncio.wrap_future(future), within)

    @property
    def topology(self) -> Topology:
        assert self.local.topology is not None
        return self.local.topology

    # processes
    async def kill_app(self, name: str) -> None:
        await self.on_bg(self.local.kill(name))

    async def restart_app(self, name: str) -> None:
        await self.on_bg(self.local.restart(name))

    def pause_app(self, name: str) -> None:
        self.local.pause(name)

    def resume_app(self, name: str) -> None:
        self.local.resume(name)

    # sidecars
    async def kill_sidecar(self, name: str) -> None:
        """daprd: SIGKILL its process; the local sidecar (in this process): stop it."""
        if self.target == "daprd":
            await self.on_bg(self.topology.daprds[name].process.kill())
            return
        await self.on_bg(self.topology.sidecars[name].stop())

    async def restart_sidecar(self, name: str) -> None:
        """Start it again on the same ports, and wait until it is healthy."""
        topology = self.topology
        if self.target == "daprd":
            daprd = topology.daprds[name]
            await self.on_bg(daprd.process.start())
            await self.on_bg(daprd.wait_ready(60), within=70)
            return
        old: Sidecar = topology.sidecars[name]

        async def again() -> None:
            options = replace(old.options, http_port=old.http_port, grpc_port=old.grpc_port)
            new = Sidecar(options, topology.cluster)
            await new.start()
            topology.sidecars[name] = new
            await new.wait_ready(60)

        await self.on_bg(again(), within=70)

    def sidecar_port(self, name: str) -> int:
        port: int = self.topology.ports(name)[0]
        return port

    async def until_healthy(self, within: float = 90.0) -> None:
        """Until the API answers and every host is registered alive by a heartbeat made
        since this call (after a heal, before the next run): a store restarted with its
        data holds heartbeats from before, alive for a moment and stale right after."""
        deadline = time.monotonic() + within
        since = time.time()
        want = set(self.local.host_ids)
        async with httpx.AsyncClient(base_url=self.url, headers=self.headers, timeout=5) as c:
            while True:
                with contextlib.suppress(httpx.HTTPError, ValueError):
                    answer = await c.get("/hosts")
                    if answer.status_code == 200:
                        alive = {
                            h["host_id"]
                            for h in answer.json()
                            if h["alive"] and h["heartbeat_at"] >= since
                        }
                        if want <= alive:
                            return
                if time.monotonic() > deadline:
                    raise TimeoutError(f"deployment not healthy again within {within:g} s")
                await asyncio.sleep(0.2)


@contextlib.contextmanager
def deployed(
    target: Target,
    faults: FaultPlan | None = None,
    *,
    deadline_s: float = 2.0,
    no_host_s: float = 4.0,
    store: Store = "redis",
) -> Iterator[ChaosDeployment]:
    """A started :class:`ChaosDeployment`, its state store on ``store``; stopped, with
    its Redis (and PostgreSQL), on exit."""
    if target == "daprd":
        # unless a test session chose them already
        daprd_module.use_free_ports(unless_chosen=True)
    directory = Path(tempfile.mkdtemp(prefix="superstep-chaos-"))
    logs: list[str] = []
    postgres: LocalPostgres | None = None
    with BackgroundLoop() as bg:
        redis = LocalRedis(directory / "redis")
        redis.directory.mkdir()
        bg.run(redis.start())
        if store == "postgres":
            postgres = LocalPostgres()
            bg.run(postgres.init(), timeout=120)
            bg.run(postgres.start(), timeout=60)
        local = LocalDeployment(
            workflows=["tests.chaos.workflow:*"],
            pools={"default": 2, "aux": 1},
            resources=write_components(
                directory / "components", redis.port, postgres.dsn if postgres else None
            ),
            env={
                "SUPERSTEP_DEADLINE_S": str(deadline_s),
                "SUPERSTEP_HEARTBEAT_S": "0.5",
                "SUPERSTEP_HOST_TTL_S": "2",
                "SUPERSTEP_NO_HOST_DEADLINE_S": str(no_host_s),
                "SUPERSTEP_API_TOKEN": API_TOKEN,
            },
            sink=lambda app, line: logs.append(f"{app}: {line}"),
            faults=faults,
            daprd=find_binaries() if target == "daprd" else None,
            app_api_token=APP_TOKEN,
        )
        deployment = ChaosDeployment(bg, local, redis, target, postgres)
        deployment.logs = logs
        try:
            bg.run(local.start(), timeout=180)
            yield deployment
        finally:
            with contextlib.suppress(Exception):
                bg.run(local.stop(), timeout=90)
            with contextlib.suppress(Exception):
                bg.run(redis.stop(), timeout=30)
            if postgres is not None:
                with contextlib.suppress(Exception):
                    bg.run(postgres.stop(), timeout=30)
            shutil.rmtree(directory, ignore_errors=True)


# -- fault classes ------------------------------------------------------------------------


@dataclass
class Strike:
    """What a fault class knows when it strikes: the run, the hosts that ran work so
    far (in order), and the run's seeded generator."""

    run_id: str
    hosts: list[str]
    rng: random.Random
    workflow: Workflow
    notes: list[str] = field(default_factory=list)
    """What the fault class did, for the run's report."""


class FaultDefect(Exception):
    """Raised by a fault class that saw the system do what it must not."""


class Fault:
    """One fault class: ``inject`` when the run reaches the trigger superstep, ``heal``
    after a hold drawn from ``hold_s``. A class without ``inject`` (delivery faults)
    acts through the deployment's :meth:`plan`."""

    name = ""
    description = ""
    hold_s: tuple[float, float] = (1.0, 3.0)
    local_only = False
    """Needs the local sidecar's fault injection: not applicable on daprd."""
    store: Store = "redis"
    """Where the deployment of the class keeps its state store."""

    def plan(self, seed: int) -> FaultPlan | None:
        return None

    def applicable(self, target: Target) -> bool:
        return not (self.local_only and target == "daprd")

    async def inject(self, dep: ChaosDeployment, strike: Strike) -> None:
        return None

    async def heal(self, dep: ChaosDeployment, strike: Strike) -> None:
        return None


def _last_host(strike: Strike, pool: str) -> str:
    """The host of ``pool`` that ran work last (it holds actors of the run), else its
    first replica."""
    for host in reversed(strike.hosts):
        if host.startswith(f"superstep-{pool}-"):
            return host
    return f"superstep-{pool}-1"


class _KillApp(Fault):
    """SIGKILL an app (``victim_of`` the strike) at the strike; start it again at the heal."""

    def victim_of(self, strike: Strike) -> str:
        raise NotImplementedError

    async def inject(self, dep: ChaosDeployment, strike: Strike) -> None:
        self.victim = self.victim_of(strike)
        await dep.kill_app(self.victim)

    async def heal(self, dep: ChaosDeployment, strike: Strike) -> None:
        await dep.restart_app(self.victim)


class KillHostReplica(_KillApp):
    name = "kill-host-replica"
    description = (
        "SIGKILL the pool-`default` host that ran work last (the pool has a second "
        "replica); start it again after 0.5-4 s"
    )
    hold_s = (0.5, 4.0)

    def victim_of(self, strike: Strike) -> str:
        return _last_host(strike, "default")


class KillHostAlone(_KillApp):
    name = "kill-host-alone"
    description = (
        "SIGKILL the only host of pool `aux`; start it again after 1-8 s (the no-host "
        "deadline is 4 s: a run either goes on or fails naming the pool)"
    )
    hold_s = (1.0, 8.0)

    def victim_of(self, strike: Strike) -> str:
        return "superstep-aux-1"


class KillApi(_KillApp):
    name = "kill-api"
    description = (
        "SIGKILL the API/coordinator app (its coordinator actors are lost); start it "
        "again after 0.5-3 s; the client reads the run's end from `GET /runs/{id}`"
    )
    hold_s = (0.5, 3.0)

    def victim_of(self, strike: Strike) -> str:
        return API_APP


class KillSidecar(Fault):
    name = "kill-sidecar"
    description = (
        "kill the sidecar of a seeded app (a host of either pool or the API app): "
        "SIGKILL of its daprd, or the local sidecar stopped; started again on the same "
        "ports after 0.5-3 s"
    )
    hold_s = (0.5, 3.0)

    def __init__(
        self, victims: Sequence[str] = ("api", "default", "aux"), name: str = "kill-sidecar"
    ) -> None:
        self.name = name
        self.victims = tuple(victims)
        """Whose sidecar it may be: the API app's, the last pool-`default` host's, the
        pool-`aux` host's (a seeded choice among these)."""

    async def inject(self, dep: ChaosDeployment, strike: Strike) -> None:
        apps = {"api": API_APP, "default": _last_host(strike, "default"), "aux": "superstep-aux-1"}
        choice = strike.rng.choice(["api", "default", "aux"])
        self.victim = apps[choice if choice in self.victims else self.victims[0]]
        await dep.kill_sidecar(self.victim)

    async def heal(self, dep: ChaosDeployment, strike: Strike) -> None:
        await dep.restart_sidecar(self.victim)


class PauseHost(Fault):
    name = "pause-host"
    description = (
        "SIGSTOP the pool-`default` host that ran work last for 3-8 s, then SIGCONT "
        "(a hung host: its port accepts connections, it answers nothing)"
    )
    hold_s = (3.0, 8.0)

    async def inject(self, dep: ChaosDeployment, strike: Strike) -> None:
        self.victim = _last_host(strike, "default")
        dep.pause_app(self.victim)

    async def heal(self, dep: ChaosDeployment, strike: Strike) -> None:
        dep.resume_app(self.victim)


class _PauseServer(Fault):
    """SIGSTOP a server of the deployment (``server``) at the strike, SIGCONT at the heal."""

    hold_s = (1.0, 5.0)

    def server(self, dep: ChaosDeployment) -> LocalRedis | LocalPostgres:
        raise NotImplementedError

    async def inject(self, dep: ChaosDeployment, strike: Strike) -> None:
        self.server(dep).signal(signal.SIGSTOP)

    async def heal(self, dep: ChaosDeployment, strike: Strike) -> None:
        self.server(dep).signal(signal.SIGCONT)


class PauseRedis(_PauseServer):
    name = "pause-redis"
    description = "SIGSTOP the deployment's Redis (state store and pub/sub) for 1-5 s"

    def server(self, dep: ChaosDeployment) -> LocalRedis:
        return dep.redis


class RestartRedis(Fault):
    name = "restart-redis"
    description = (
        "SIGKILL the deployment's Redis and start it again after 0.5-2 s with its data "
        "(append-only file, fsync always): connections and blocked stream reads break"
    )
    hold_s = (0.5, 2.0)
    wipe = False

    async def inject(self, dep: ChaosDeployment, strike: Strike) -> None:
        await dep.on_bg(dep.redis.kill(wipe=self.wipe))

    async def heal(self, dep: ChaosDeployment, strike: Strike) -> None:
        await dep.on_bg(dep.redis.start())


class RestartRedisEmpty(RestartRedis):
    name = "restart-redis-empty"
    description = (
        "as restart-redis, but Redis comes back empty (run records, actor state, "
        "streams and consumer groups gone): the run cannot go on and must end clearly; "
        "the next run must work"
    )
    wipe = True


def _postgres(dep: ChaosDeployment) -> LocalPostgres:
    assert dep.postgres is not None, "a PostgreSQL fault needs a deployment on PostgreSQL"
    return dep.postgres


class PausePostgres(_PauseServer):
    name = "pause-postgres"
    description = (
        "SIGSTOP the deployment's PostgreSQL (state store and actor state: the server and "
        "every backend) for 1-5 s, then SIGCONT; pub/sub stays on Redis"
    )
    store: Store = "postgres"

    def server(self, dep: ChaosDeployment) -> LocalPostgres:
        return _postgres(dep)


class RestartPostgres(Fault):
    name = "restart-postgres"
    description = (
        "SIGKILL the deployment's PostgreSQL (server and backends: a crash) and start it "
        "again after 0.5-2 s; it recovers its data from its write-ahead log, and every "
        "connection to it breaks"
    )
    hold_s = (0.5, 2.0)
    store: Store = "postgres"

    async def inject(self, dep: ChaosDeployment, strike: Strike) -> None:
        await dep.on_bg(_postgres(dep).kill())

    async def heal(self, dep: ChaosDeployment, strike: Strike) -> None:
        await dep.on_bg(_postgres(dep).start())


class Delivery(Fault):
    """Seeded pub/sub faults of the local sidecar on every delivery of an activation
    (results go to the coordinator in actor calls); nothing to inject during the run."""

    local_only = True
    hold_s = (0.0, 0.0)
    faults = PubSubFaults()

    def plan(self, seed: int) -> FaultPlan | None:
        return FaultPlan(seed=seed, pubsub=self.faults)


class DeliveryDuplicate(Delivery):
    name = "delivery-duplicate"
    description = "the local sidecar delivers 50% of pub/sub messages twice"
    faults = PubSubFaults(duplicate=0.5)


class DeliveryDrop(Delivery):
    name = "delivery-drop"
    description = "the local sidecar drops 15% of pub/sub deliveries (the deadline re-publishes)"
    faults = PubSubFaults(drop=0.15)


class DeliveryReorder(Delivery):
    name = "delivery-reorder"
    description = "the local sidecar holds 50% of deliveries back behind the next (window 0.3 s)"
    faults = PubSubFaults(reorder=0.5, reorder_window=0.3)


class DeliveryDelay(Delivery):
    name = "delivery-delay"
    description = "the local sidecar delays 50% of deliveries by 0.05-0.5 s"
    faults = PubSubFaults(delay=0.5, delay_seconds=(0.05, 0.5))


class TwoCoordinators(Fault):
    """A second coordinator copy (``RunDriver`` in this process, over the API app's
    sidecar) takes the run over: a new epoch fences the actor, the in-flight superstep
    goes out again under the new epoch, and the copy commits 0-2 supersteps itself with
    results it computes. Then the coordinator actor is forced to move (the API app is
    killed and started again): its new activation takes over with a newer epoch, and
    the copy's next commit meets an ETag conflict."""

    name = "two-coordinators"
    description = (
        "a second coordinator copy takes the run over (new epoch, the superstep "
        "re-published, 0-2 supersteps committed by the copy), then the coordinator "
        "actor is forced to move (API app killed, started again after 0.5-2 s) and "
        "fences the copy, whose next commit conflicts"
    )
    hold_s = (0.5, 2.0)

    copy: _SecondCoordinator | None = None

    async def inject(self, dep: ChaosDeployment, strike: Strike) -> None:
        self.copy = None
        self.copy = await _SecondCoordinator.take_over(dep, strike)
        committed = await self.copy.drive(strike.rng.randint(0, 2))
        record = self.copy.driver.record
        epoch = record.epoch if record is not None else "-"
        strike.notes.append(f"copy took over (epoch {epoch}), committed {committed}")
        self.fenced_at_commit = False
        await dep.kill_app(API_APP)

    async def heal(self, dep: ChaosDeployment, strike: Strike) -> None:
        if dep.topology.processes[API_APP].returncode is not None:
            await dep.restart_app(API_APP)
        await dep.until_healthy()
        if self.copy is None:
            return
        record = self.copy.driver.record
        try:
            if record is None or not await _newer_epoch(dep, strike.run_id, record.epoch):
                # the copy's commits are no one's business until a newer epoch exists
                strike.notes.append("the run ended (or the copy was fenced) before a newer epoch")
                return
            # the actor took over with a newer epoch: the copy's next barrier must conflict
            committed = await self.copy.drive(1)
        finally:
            await self.copy.close()
        strike.notes.append(f"newer epoch seen, copy's next barrier committed {committed}")
        if committed:
            raise FaultDefect(
                f"a coordinator copy of epoch {record.epoch} committed a barrier after a "
                "newer epoch took the run over"
            )


async def _newer_epoch(dep: ChaosDeployment, run_id: str, epoch: int, within: float = 60) -> bool:
    """Whether the run's record shows an epoch above ``epoch`` (its coordinator actor
    re-activated and took over) within ``within`` seconds; False also when the run
    ended first."""
    deadline = time.monotonic() + within
    async with httpx.AsyncClient(base_url=dep.url, headers=dep.headers, timeout=10) as client:
        while time.monotonic() < deadline:
            with contextlib.suppress(httpx.HTTPError, ValueError, KeyError):
                view = (await client.get(f"/runs/{run_id}")).json()
                if view["epoch"] > epoch:
                    return True
                if view["status"] != "running":
                    return False
            await asyncio.sleep(0.1)
    return False


class _SecondCoordinator:
    """A coordinator copy over one sidecar of the deployment, publishing for real."""

    def __init__(
        self,
        driver: RunDriver,
        published: list[ActivationEnvelope],
        client: SidecarClient,
        wf: Workflow,
    ) -> None:
        self.driver = driver
        self.published = published
        self.client = client
        self.wf = wf

    @classmethod
    async def take_over(cls, dep: ChaosDeployment, strike: Strike) -> _SecondCoordinator:
        saved = os.environ.get("DAPR_HTTP_PORT")
        os.environ["DAPR_HTTP_PORT"] = str(dep.sidecar_port(API_APP))
        try:
            client = SidecarClient(timeout_s=30)
        finally:
            if saved is None:
                del os.environ["DAPR_HTTP_PORT"]
            else:
                os.environ["DAPR_HTTP_PORT"] = saved
        namespace = dep.local.namespace
        store = RunStore(client, "statestore", namespace)
        bus = Bus(client, "pubsub", "chaos-second-coordinator", namespace)
        wf = strike.workflow
        published: list[ActivationEnvelope] = []

        async def publish(envs: Sequence[ActivationEnvelope]) -> None:
            published.extend(envs)
            by_pool: dict[str, list[ActivationEnvelope]] = {}
            for env in envs:
                by_pool.setdefault(wf.graph.nodes[env.executor_id].placement.pool, []).append(env)
            await asyncio.gather(*(bus.publish_activations(b, p) for p, b in by_pool.items()))

        driver = RunDriver(strike.run_id, store, lambda *_: wf, publish)
        for attempt in range(5):
            try:
                await driver.resume()
                break
            except ETagMismatch:
                # the actor committed between the copy's read and its write: read again
                if attempt == 4:
                    await client.aclose()
                    raise
        return cls(driver, published, client, wf)

    async def drive(self, barriers: int) -> int:
        """Answer the copy's in-flight activations for up to ``barriers`` barriers;
        how many it committed."""
        committed = 0
        for _ in range(barriers):
            record = self.driver.record
            if record is None or record.state.status is not RunStatus.RUNNING:
                return committed
            superstep = record.state.superstep
            current = [e for e in self.published if e.superstep == superstep + 1]
            for env in current:
                activation = Activation.from_json(env.activation)
                executor = self.wf.executors[activation.executor_id]
                result = await execute_activation(
                    executor, self.wf.graph, activation, env.state or {}
                )
                await self.driver.on_result(
                    ResultEnvelope(
                        run_id=env.run_id,
                        epoch=env.epoch,
                        superstep=env.superstep,
                        executor_id=env.executor_id,
                        host="chaos-second-coordinator",
                        result=result.to_json(),
                    )
                )
                if self.driver.record is None:
                    return committed
            after = self.driver.record
            if after is not None and after.state.superstep > superstep:
                committed += 1
        return committed

    async def close(self) -> None:
        await self.client.aclose()


FAULTS: dict[str, Fault] = {
    f.name: f
    for f in (
        KillHostReplica(),
        KillHostAlone(),
        KillApi(),
        KillSidecar(),
        KillSidecar(victims=("default", "aux"), name="kill-host-sidecar"),
        PauseHost(),
        PauseRedis(),
        RestartRedis(),
        RestartRedisEmpty(),
        PausePostgres(),
        RestartPostgres(),
        DeliveryDuplicate(),
        DeliveryDrop(),
        DeliveryReorder(),
        DeliveryDelay(),
        TwoCoordinators(),
    )
}


# -- one run ----------------------------------------------------------------------------


@dataclass
class RunOutcome:
    fault: str
    seed: int
    verdict: Verdict
    seconds: float
    run_id: str
    detail: str = ""
    """What happened: the error of a clear failure, what differed for a defect."""


def run_rng(fault: str, seed: int) -> random.Random:
    return random.Random(f"chaos:{fault}:{seed}")


async def run_once(
    dep: ChaosDeployment, fault: Fault, seed: int, *, deadline_s: float = 120.0
) -> RunOutcome:
    """One seeded run under ``fault``, classified against the in-process run."""
    rng = run_rng(fault.name, seed)
    wf = chaos_loop(rounds=ROUNDS, width=WIDTH, work_ms=WORK_MS)
    base = rng.randrange(1000)
    expected = await wf.run(base, seed=seed)
    assert expected.status is RunStatus.COMPLETED
    run_id = f"chaos-{fault.name}-{seed}-{uuid.uuid4().hex[:6]}"
    trigger = rng.randint(2, 3 * ROUNDS - 1)
    hold = rng.uniform(*fault.hold_s)
    strike = Strike(run_id, [], rng, wf)
    remote = RemoteRuntime(dep.url, token=API_TOKEN)
    started = time.monotonic()
    fault_task: asyncio.Task[None] | None = None
    fault_error: list[str] = []
    fault_defects: list[str] = []

    async def strike_and_heal() -> None:
        injected = False
        try:
            await fault.inject(dep, strike)
            injected = True
            await asyncio.sleep(hold)  # the fault's duration, drawn from the run's seed
        except FaultDefect as exc:
            fault_defects.append(str(exc))
        except Exception as exc:
            fault_error.append(f"inject: {type(exc).__name__}: {exc}")
        finally:
            if injected or fault_error:
                try:
                    await fault.heal(dep, strike)
                except FaultDefect as exc:
                    fault_defects.append(str(exc))
                except Exception as exc:
                    fault_error.append(f"heal: {type(exc).__name__}: {exc}")

    seen: list[str] = []

    async def follow() -> Any:
        nonlocal fault_task
        stream = wf.run(base, runtime=remote, stream=True, run_id=run_id, seed=seed)
        async for ev in stream:
            seen.append(ev.type)
            if ev.type == "executor_completed" and "host" in (ev.details or {}):
                strike.hosts.append(ev.details["host"])
            if ev.type == "superstep_started" and ev.superstep == trigger and fault_task is None:
                fault_task = asyncio.create_task(strike_and_heal())
        return await stream

    verdict: Verdict
    detail = ""
    view: dict[str, Any] | None = None
    outputs: list[Any] | None = None
    try:
        try:
            result = await asyncio.wait_for(follow(), deadline_s)
            view = {
                "status": result.status.value,
                "trace_hash": result.trace_hash,
                "error": str(result.error) if result.error else None,
            }
            outputs = list(result.outputs)
        except RemoteError as exc:
            if exc.status == 404 or not seen:
                raise  # the run is gone, or it never started (POST /runs refused)
            # the client lost its connection (the API app or its sidecar down): read
            # the run's end from the API
            left = deadline_s - (time.monotonic() - started)
            view, outputs = await _final_view(dep, wf, run_id, left)
    except TimeoutError:
        verdict, detail = "DEFECT", f"hang: no end within {deadline_s:g} s"
    except RemoteError as exc:
        verdict, detail = "clear failure", f"client: {exc}"
    else:
        if view is None:
            verdict, detail = "DEFECT", f"hang: no end within {deadline_s:g} s"
        else:
            verdict, detail = _classify(
                view, outputs or [], expected.outputs, expected.trace_hash, base
            )
    seconds = time.monotonic() - started
    if fault_task is not None:
        await fault_task
    if fault.plan(0) is None and fault_task is None:
        detail = f"{detail}; the fault never struck (superstep {trigger} not reached)".strip("; ")
        if verdict != "correct":
            # nothing was done to this run: the deployment did not recover from the
            # faults of the runs before it
            verdict = "DEFECT"
            detail = f"no recovery from earlier faults: {detail}"
    if strike.notes:
        detail = f"{detail}; {'; '.join(strike.notes)}".strip("; ")
    if fault_defects:
        verdict = "DEFECT"
        detail = f"{detail}; {'; '.join(fault_defects)}".strip("; ")
    if fault_error:
        detail = f"{detail}; fault: {'; '.join(fault_error)}".strip("; ")
    if verdict == "DEFECT" and "hang" in detail:
        with contextlib.suppress(Exception):
            async with httpx.AsyncClient(base_url=dep.url, headers=dep.headers, timeout=10) as c:
                detail += f"; view: {(await c.get(f'/runs/{run_id}')).text[:300]}"
                await c.post(f"/runs/{run_id}/cancel")
    await dep.until_healthy()
    return RunOutcome(fault.name, seed, verdict, seconds, run_id, detail)


async def _final_view(
    dep: ChaosDeployment, wf: Workflow, run_id: str, within: float
) -> tuple[dict[str, Any] | None, list[Any]]:
    """Poll ``GET /runs/{id}`` (through restarts of the API app) until the run ends;
    ``None`` when it does not within ``within`` seconds."""
    deadline = time.monotonic() + within
    async with httpx.AsyncClient(base_url=dep.url, headers=dep.headers, timeout=10) as client:
        while time.monotonic() < deadline:
            try:
                answer = await client.get(f"/runs/{run_id}", params={"encoding": "codec"})
            except httpx.HTTPError:
                await asyncio.sleep(0.2)
                continue
            if answer.status_code == 404:
                raise RemoteError(f"GET /runs/{run_id}: 404 {answer.text}", 404)
            if answer.status_code == 200:
                view = answer.json()
                if view["status"] != "running":
                    error = view.get("error")
                    view["error"] = (
                        f"{error.get('type')}: {error.get('message')}" if error else None
                    )
                    codec = wf.graph.codec
                    return view, [codec.decode(o) for o in view["outputs"]]
            await asyncio.sleep(0.2)
    return None, []


def _classify(
    view: dict[str, Any], outputs: list[Any], expected: list[Any], trace_hash: str, base: int
) -> tuple[Verdict, str]:
    status = view["status"]
    if status == "completed":
        if outputs == expected and view["trace_hash"] == trace_hash:
            return "correct", ""
        broken = [o for o in outputs if isinstance(o, Outcome) and not expected_total(o, base)]
        what = "lost or duplicated effect" if broken else "wrong output reported as completed"
        return (
            "DEFECT",
            f"{what}: {outputs} (trace {view['trace_hash']}) != {expected} ({trace_hash})",
        )
    if status in ("failed", "cancelled") and view.get("error"):
        return "clear failure", f"{status}: {view['error']}"
    return "DEFECT", f"ended {status} without an error: {view}"


# -- a fault class's runs, and the table ------------------------------------------------


@dataclass
class Summary:
    fault: str
    target: Target
    outcomes: list[RunOutcome] = field(default_factory=list)
    not_applicable: str = ""

    def count(self, verdict: Verdict) -> int:
        return sum(o.verdict == verdict for o in self.outcomes)

    def percentile(self, q: float) -> float | None:
        times = sorted(o.seconds for o in self.outcomes)
        if not times:
            return None
        if len(times) == 1:
            return times[0]
        return statistics.quantiles(times, n=100, method="inclusive")[round(q * 100) - 1]


async def run_class(
    target: Target,
    fault: Fault,
    runs: int,
    seed: int,
    *,
    report: Callable[[RunOutcome], None] = lambda _o: None,
    deadline_s: float = 120.0,
) -> Summary:
    """``runs`` seeded runs (seeds ``seed`` .. ``seed + runs - 1``) of one fault class
    on one deployment of its own."""
    summary = Summary(fault.name, target)
    if not fault.applicable(target):
        summary.not_applicable = "needs the local sidecar's fault injection"
        return summary
    plan = fault.plan(seed)
    # deliveries lost by the plan come back at the coordinator's deadline: 1 s there
    coordinator_deadline = 1.0 if plan is not None else 2.0
    with deployed(target, plan, deadline_s=coordinator_deadline, store=fault.store) as dep:
        for i in range(runs):
            outcome = await run_once(dep, fault, seed + i, deadline_s=deadline_s)
            summary.outcomes.append(outcome)
            report(outcome)
    return summary


def summarise(summaries: Sequence[Summary]) -> list[list[str]]:
    rows = [
        ["sidecar", "fault class", "runs", "correct", "clear failures", "defects", "p50 s", "p95 s"]
    ]
    for s in summaries:
        if s.not_applicable:
            rows.append([s.target, s.fault, "-", "-", "-", "-", "-", f"n/a: {s.not_applicable}"])
            continue
        p50, p95 = s.percentile(0.5), s.percentile(0.95)
        rows.append(
            [
                s.target,
                s.fault,
                str(len(s.outcomes)),
                str(s.count("correct")),
                str(s.count("clear failure")),
                str(s.count("DEFECT")),
                f"{p50:.1f}" if p50 is not None else "-",
                f"{p95:.1f}" if p95 is not None else "-",
            ]
        )
    return rows


def text_table(rows: list[list[str]]) -> str:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) for r in rows)


def markdown_table(rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(rows[0]) + " |", "|" + "---|" * len(rows[0])]
    lines += ["| " + " | ".join(r) + " |" for r in rows[1:]]
    return "\n".join(lines)
