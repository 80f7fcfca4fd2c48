"""Multi-app runs for the contract tests, on whichever Dapr the session targets.

A test describes its topology as apps of a multi-app run template (``dapr.yaml``,
dapr-contract §6): app id, app port, command, env, resources, and the sidecar's
``daprHTTPPort``/``daprGRPCPort``, fixed here per app so the test knows where to send
its requests. :class:`DaprRun` writes that template to a directory and starts it:

* by default (``SUPERSTEP_DAPR_TARGET`` unset or ``sidecar``) in-process, with the local
  sidecar's launcher (:class:`sidecar.launcher.Topology` over ``load_template``); the
  run's :attr:`DaprRun.local` then gives ``sidecar_only`` tests the sidecar objects;
* with ``SUPERSTEP_DAPR_TARGET=daprd`` as an external command, ``dapr run -f <file>``
  when the Dapr CLI is installed (on the PATH, or beside daprd where
  ``tools/dapr/install`` puts it), else the repo's launcher running real daprd
  (``python -m sidecar run --daprd -f <file>``); ``SUPERSTEP_DAPR_RUN`` replaces either,
  in its own process group. The template names the session's placement and scheduler
  (:func:`control_plane_keys`). Started means: every sidecar answers ``GET /v1.0/healthz``
  with 204 on its port (``/v1.0/healthz/outbound`` for a run started with
  ``ready=False``) and every app with a command accepts connections on its app port.
  Stopped means ``dapr stop -f <file>`` when the command is the Dapr CLI, then SIGTERM
  to the process group, SIGKILL after a grace period.

Tests call the run only through Dapr-visible things (ports, app ports, killing an app
process by the pid the app reports), so one test body runs on both targets.
"""

from __future__ import annotations

import collections
import contextlib
import functools
import os
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any

import httpx
import yaml

from sidecar.errors import StartupError
from sidecar.launcher import Topology, daprd, load_template
from sidecar.testing import BackgroundLoop, free_port, wait_until

__all__ = [
    "ON_DAPRD",
    "REPO",
    "DaprRun",
    "RunApp",
    "accepts",
    "control_plane_keys",
    "external_command",
    "process_gone",
    "uvicorn_command",
    "write_template",
]

REPO = Path(__file__).resolve().parents[2]
TARGET = os.environ.get("SUPERSTEP_DAPR_TARGET", "sidecar")
ON_DAPRD = TARGET == "daprd"


def dapr_cli() -> str | None:
    """The Dapr CLI: ``dapr`` on the PATH, else the one ``tools/dapr/install`` put
    beside daprd, else ``None``."""
    found = shutil.which("dapr")
    if found:
        return found
    try:
        beside = daprd.find_binaries() / "dapr"
    except StartupError:
        return None
    return str(beside) if beside.is_file() and os.access(beside, os.X_OK) else None


def external_command() -> tuple[str, ...] | None:
    """The command that starts a run template on the daprd target, ``None`` by default:
    ``SUPERSTEP_DAPR_RUN``, else ``dapr run -f`` when the Dapr CLI is installed, else the
    repo's launcher beside real daprd (``python -m sidecar run --daprd -f``)."""
    if not ON_DAPRD:
        return None
    if os.environ.get("SUPERSTEP_DAPR_RUN"):
        return tuple(shlex.split(os.environ["SUPERSTEP_DAPR_RUN"]))
    cli = dapr_cli()
    if cli is not None:
        return (cli, "run", "-f")
    return (sys.executable, "-m", "sidecar", "run", "--daprd", "--log-level", "warning", "-f")


def control_plane_keys() -> dict[str, str]:
    """The run-template keys naming the placement and scheduler the session runs (on
    ports of its own), for ``common`` or an app."""
    return {
        "placementHostAddress": f"localhost:{daprd.PLACEMENT_PORT}",
        "schedulerHostAddress": f"localhost:{daprd.SCHEDULER_PORT}",
    }


def uvicorn_command(target: str, port: int, *, factory: bool = False) -> tuple[str, ...]:
    """An app command for a test app of this repo, runnable from any ``appDirPath``."""
    command = [sys.executable, "-m", "uvicorn", "--app-dir", str(REPO)]
    if factory:
        command.append("--factory")
    return (*command, target, "--host", "127.0.0.1", "--port", str(port), "--log-level", "warning")


def _empty() -> Mapping[str, str]:
    return {}


@dataclass(frozen=True)
class RunApp:
    """One app of a run template and its sidecar's fixed ports."""

    app_id: str
    app_port: int | None = None
    command: tuple[str, ...] = ()
    """Empty: no app process (a test serves the app port itself, or there is no app)."""
    env: Mapping[str, str] = field(default_factory=_empty)
    resources: tuple[Path, ...] = ()
    health_check_path: str | None = None
    """Turns on app health checks (probe every second with a 500 ms timeout, unhealthy
    after ``health_threshold`` failures): daprd then takes an app whose process died out
    of actor placement. The local sidecar probes the app port by TCP whatever this says."""
    health_threshold: int = 1
    """Failed probes in a row that make the app unhealthy."""
    http_port: int = field(default_factory=free_port)
    grpc_port: int = field(default_factory=free_port)

    def entry(self, app_dir: Path) -> dict[str, Any]:
        entry: dict[str, Any] = {
            "appID": self.app_id,
            "appDirPath": str(app_dir),
            "daprHTTPPort": self.http_port,
            "daprGRPCPort": self.grpc_port,
        }
        if self.app_port is not None:
            entry["appPort"] = self.app_port
        if self.command:
            entry["command"] = list(self.command)
        if self.env:
            entry["env"] = dict(self.env)
        if self.resources:
            entry["resourcesPaths"] = [str(p) for p in self.resources]
        if ON_DAPRD:
            entry.update(control_plane_keys())
        if self.health_check_path is not None:
            entry.update(
                enableAppHealthCheck=True,
                appHealthCheckPath=self.health_check_path,
                appHealthProbeInterval=1,
                appHealthProbeTimeout=500,
                appHealthThreshold=self.health_threshold,
            )
        return entry


def write_template(apps: Sequence[RunApp], directory: Path, name: str = "contract") -> Path:
    """Write ``<directory>/dapr.yaml``; each app gets ``<directory>/<app id>`` as its
    ``appDirPath`` (the CLI writes its logs under ``<appDirPath>/.dapr/logs``)."""
    directory.mkdir(parents=True, exist_ok=True)
    entries = []
    for app in apps:
        app_dir = directory / app.app_id
        app_dir.mkdir(exist_ok=True)
        entries.append(app.entry(app_dir))
    file = directory / "dapr.yaml"
    file.write_text(
        yaml.safe_dump({"version": 1, "name": name, "apps": entries}, sort_keys=False),
        encoding="utf-8",
    )
    return file


def process_gone(pid: int) -> bool:
    """Whether no process has this pid (any more)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return False


def accepts(port: int) -> bool:
    """Whether something listens on ``127.0.0.1:port``."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1):
            return True
    except OSError:
        return False


def _answers_204(client: httpx.Client, url: str) -> bool:
    try:
        return client.get(url).status_code == 204
    except httpx.TransportError:
        return False


class DaprRun:
    """A started run template: in-process by default, an external command on daprd.

    ``external`` overrides the target's choice (a tuple runs that command, e.g. the repo
    launcher, in the default suite too). ``probe_interval`` is the local sidecar's app
    probe interval (in-process only).
    """

    def __init__(
        self,
        apps: Sequence[RunApp],
        directory: Path,
        bg: BackgroundLoop,
        *,
        external: Sequence[str] | None = None,
        api_token: str | None = None,
        ready: bool = True,
        probe_interval: float = 0.5,
        startup_timeout: float = 60.0,
        template: Path | None = None,
        env: Mapping[str, str] | None = None,
    ) -> None:
        self.apps = {app.app_id: app for app in apps}
        self.directory = directory
        self.bg = bg
        self.external = tuple(external) if external is not None else external_command()
        self.api_token = api_token
        self.ready = ready
        self.probe_interval = probe_interval
        self.startup_timeout = startup_timeout
        self.env = dict(env or {})
        """Added to the external command's environment (daprd's and the apps')."""
        self.given_template = template is not None
        """A template of the caller's (its sidecar ports unknown here): started means
        every app accepts connections on its app port."""
        self.file = template if template is not None else write_template(apps, directory)
        self.local: Topology | None = None
        """The in-process topology (default mode only), for ``sidecar_only`` tests."""
        self.lines: collections.deque[str] = collections.deque(maxlen=200)
        self._proc: subprocess.Popen[bytes] | None = None
        self._command: tuple[str, ...] = ()
        self._log_path = directory / "run.log"

    # -- where things are ---------------------------------------------------------------

    def http_port(self, app_id: str) -> int:
        return self.apps[app_id].http_port

    def grpc_port(self, app_id: str) -> int:
        return self.apps[app_id].grpc_port

    def app_port(self, app_id: str) -> int:
        port = self.apps[app_id].app_port
        assert port is not None, f"{app_id} has no app port"
        return port

    def api(self, app_id: str) -> str:
        """The sidecar's HTTP API base, ``http://127.0.0.1:<port>/v1.0``."""
        return f"http://127.0.0.1:{self.http_port(app_id)}/v1.0"

    # -- start / stop -------------------------------------------------------------------

    def start(self) -> DaprRun:
        if self.external is None:
            self._start_local()
        else:
            try:
                self._start_external(self.external)
            except BaseException:
                self.stop()
                raise
        return self

    def _start_local(self) -> None:
        template = load_template(self.file)
        self.local = Topology(
            template.apps,
            sink=lambda app, line: self.lines.append(f"{app}: {line}"),
            api_token=self.api_token,
            startup_timeout=self.startup_timeout,
            probe_interval=self.probe_interval,
        )
        self.bg.run(self.local.start(ready=self.ready), timeout=self.startup_timeout + 10)

    def _start_external(self, command: tuple[str, ...]) -> None:
        env = {**os.environ, **self.env}
        # a Dapr namespace of its own (daprd's NAMESPACE, self-hosted): runs of the same
        # app ids sharing placement and scheduler never get each other's actors,
        # reminders or timers (daprd 1.18 keeps timers in the scheduler too)
        env.setdefault("NAMESPACE", f"run-{uuid.uuid4().hex[:12]}")
        # `python` in a command (the run command's or an app's) is the tests' interpreter
        bin_dir = os.path.dirname(sys.executable)
        env["PATH"] = os.pathsep.join(p for p in (bin_dir, env.get("PATH", "")) if p)
        if self.api_token is not None:
            env["DAPR_API_TOKEN"] = self.api_token  # daprd reads it from its environment
        # the scheduler for a CLI that predates it (the Dapr CLI built here, 1.12, never
        # passes --scheduler-host-address): daprd 1.18 falls back to this variable
        env["DAPR_SCHEDULER_HOST_ADDRESS_DNS_A"] = f"localhost:{daprd.SCHEDULER_PORT}"
        self._command = (*command, str(self.file))
        with self._log_path.open("wb") as log:
            self._proc = subprocess.Popen(
                self._command,
                cwd=self.directory,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        path = "/healthz" if self.ready else "/healthz/outbound"
        with httpx.Client(timeout=2) as client:
            for app_id in self.apps if not self.given_template else ():
                url = f"{self.api(app_id)}{path}"
                self._wait_while_running(
                    functools.partial(_answers_204, client, url),
                    f"{app_id}: GET {path} answers 204 (run log: {self._log_path})",
                )
        for app in self.apps.values():
            if (app.command or self.given_template) and app.app_port is not None:
                self._wait_while_running(
                    functools.partial(accepts, app.app_port),
                    f"app {app.app_id} listening on {app.app_port}",
                )

    def _wait_while_running(self, condition: Callable[[], bool], what: str) -> None:
        def check() -> bool:
            assert self._proc is not None
            code = self._proc.poll()
            if code is not None:
                raise AssertionError(
                    f"{shlex.join(self._command)} exited with code {code} "
                    f"while starting; its output:\n{self.log_tail()}"
                )
            return condition()

        wait_until(check, within=self.startup_timeout, every=0.1, what=what)

    def log_tail(self, lines: int = 40) -> str:
        """The last lines of the run's output (external) or of the apps' (in-process)."""
        if self.external is None:
            return "\n".join(list(self.lines)[-lines:])
        with contextlib.suppress(OSError):
            text = self._log_path.read_text(encoding="utf-8", errors="replace")
            return "\n".join(text.splitlines()[-lines:])
        return ""

    def stop(self, grace: float = 20.0) -> None:
        if self.local is not None:
            self.bg.run(self.local.stop())
            self.local = None
        proc, self._proc = self._proc, None
        if proc is None:
            return
        if self.external is not None and Path(self.external[0]).name == "dapr":
            with contextlib.suppress(OSError, subprocess.SubprocessError):
                subprocess.run(
                    [self.external[0], "stop", "-f", str(self.file)],
                    cwd=self.directory,
                    capture_output=True,
                    timeout=grace,
                    check=False,
                )
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(grace)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()

    def kill_app(self, app_id: str, pid: int) -> None:
        """SIGKILL an app process (its sidecar stays up), by the pid the app reports."""
        if self.local is not None:
            process = self.local.processes[app_id]
            assert process.pid == pid, (process.pid, pid)
            self.bg.run(process.kill())
            return
        os.kill(pid, signal.SIGKILL)

    def __enter__(self) -> DaprRun:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
