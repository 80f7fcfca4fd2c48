"""The launcher as a user drives it from a shell: ``python -m sidecar run -f`` in one
terminal, ``python -m sidecar list`` and ``python -m sidecar stop`` in another (as
``dapr list`` and ``dapr stop -f``), each app's lines on the console with its prefix or
in its log file, and a launcher log free of gRPC's fork messages.

Every launcher here keeps its run files in a folder of the test's own
(``SUPERSTEP_LAUNCHER_DIR``), so runs of other processes on the machine do not show."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from functools import partial
from pathlib import Path
from typing import Any

import httpx
import pytest

from sidecar.launcher.runs import RunEntry, running, write_run
from sidecar.testing import free_port, wait_until
from tests.sidecar.runs import process_gone

pytestmark = pytest.mark.sidecar_only("tests the repo's launcher with the local sidecar itself")

APP = """
import http.server, os, socketserver
print("starting", os.environ["APP_ID"], flush=True)
socketserver.TCPServer.allow_reuse_address = True
http.server.test(HandlerClass=http.server.SimpleHTTPRequestHandler,
                 port=int(os.environ["APP_PORT"]), bind="127.0.0.1")
"""


class Launcher:
    """``python -m sidecar`` commands with the test's run folder."""

    def __init__(self, runs: Path) -> None:
        self.env = {**os.environ, "SUPERSTEP_LAUNCHER_DIR": str(runs)}
        self.started: list[subprocess.Popen[bytes]] = []

    def command(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "sidecar", *args],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
            env=self.env,
        )

    def run(self, template: Path, log: Path) -> subprocess.Popen[bytes]:
        with log.open("wb") as out:
            proc = subprocess.Popen(
                [sys.executable, "-m", "sidecar", "run", "-f", str(template)],
                stdout=out,
                stderr=subprocess.STDOUT,
                env=self.env,
                start_new_session=True,
            )
        self.started.append(proc)
        return proc

    def listed(self) -> list[dict[str, Any]]:
        done = self.command("list", "-o", "json")
        assert done.returncode == 0, done.stderr
        return json.loads(done.stdout)  # type: ignore[no-any-return]


@pytest.fixture
def launcher(tmp_path: Path) -> Iterator[Launcher]:
    driver = Launcher(tmp_path / "runs")
    yield driver
    for proc in driver.started:  # a failed test's launchers: stop them, whatever they do
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def _template(folder: Path, name: str, apps: dict[str, str]) -> tuple[Path, dict[str, int]]:
    """A run template of ``name`` whose apps (app id -> appLogDestination) each serve
    a port; its file and the apps' ports."""
    folder.mkdir(parents=True)
    ports = {app_id: free_port() for app_id in apps}
    entries = []
    for app_id, destination in apps.items():
        (folder / app_id).mkdir()
        (folder / app_id / "app.py").write_text(APP)
        entries.append(
            f"""
              - appID: {app_id}
                appDirPath: ./{app_id}
                appPort: {ports[app_id]}
                appLogDestination: {destination}
                command: ["{sys.executable}", "app.py"]"""
        )
    file = folder / "dapr.yaml"
    file.write_text(f"version: 1\nname: {name}\napps:" + textwrap.dedent("".join(entries)))
    return file, ports


def _serving(port: int) -> bool:
    try:
        return httpx.get(f"http://127.0.0.1:{port}/app.py", timeout=1).status_code == 200
    except httpx.HTTPError:
        return False


def test_list_shows_each_run_and_stop_ends_one_by_name_or_file(
    launcher: Launcher, tmp_path: Path
) -> None:
    first, first_ports = _template(
        tmp_path / "shop", "shop", {"orders": "fileAndConsole", "billing": "file"}
    )
    second, second_ports = _template(tmp_path / "blog", "blog", {"posts": "console"})
    runs = {
        "shop": launcher.run(first, tmp_path / "shop.log"),
        "blog": launcher.run(second, tmp_path / "blog.log"),
    }
    for port in [*first_ports.values(), *second_ports.values()]:
        wait_until(partial(_serving, port), within=60, what=f"an app on {port}")
    wait_until(lambda: len(launcher.listed()) == 2, within=30, what="both runs recorded")

    listed = {run["name"]: run for run in launcher.listed()}
    shop = listed["shop"]
    assert shop["template"] == str(first.resolve())
    assert shop["launcher_pid"] == runs["shop"].pid and shop["sidecar"] == "local"
    apps = {app["app_id"]: app for app in shop["apps"]}
    assert {a: app["app_port"] for a, app in apps.items()} == first_ports
    assert not any(process_gone(app["app_pid"]) for app in apps.values())
    assert all(app["http_port"] > 0 and app["grpc_port"] > 0 for app in apps.values())
    # the sidecar of each app answers on the port listed
    for app in apps.values():
        health = httpx.get(f"http://127.0.0.1:{app['http_port']}/v1.0/healthz", timeout=5)
        assert health.status_code == 204

    table = launcher.command("list")
    assert table.returncode == 0
    lines = table.stdout.splitlines()
    assert lines[0].split()[:3] == ["APP", "ID", "HTTP"]
    for app_id in ("orders", "billing", "posts"):
        row = next(line for line in lines if line.startswith(f"{app_id} "))
        assert str(first_ports.get(app_id) or second_ports[app_id]) in row.split()

    by_name = launcher.command("stop", "--name", "shop")
    assert by_name.returncode == 0, by_name.stderr
    assert "stopped run 'shop'" in by_name.stdout
    assert runs["shop"].wait(30) == 0
    assert all(process_gone(app["app_pid"]) for app in apps.values())
    assert [run["name"] for run in launcher.listed()] == ["blog"]

    by_folder = launcher.command("stop", "-f", str(second.parent))  # a folder: its dapr.yaml
    assert by_folder.returncode == 0, by_folder.stderr
    assert runs["blog"].wait(30) == 0
    assert launcher.listed() == []
    assert launcher.command("list").stdout.strip() == "No runs of the launcher are running."

    again = launcher.command("stop", "-f", str(second))
    assert again.returncode == 1 and "no run of" in again.stderr


def test_each_app_logs_where_its_template_says_and_grpc_says_nothing_of_forks(
    launcher: Launcher, tmp_path: Path
) -> None:
    template, ports = _template(
        tmp_path / "run",
        "logs",
        {"both": "fileAndConsole", "quiet": "file", "loud": "console"},
    )
    out = tmp_path / "launcher.log"
    proc = launcher.run(template, out)
    for port in ports.values():
        wait_until(partial(_serving, port), within=60, what=f"an app on {port}")
    wait_until(lambda: len(launcher.listed()) == 1, within=30, what="the run recorded")
    httpx.get(f"http://127.0.0.1:{ports['quiet']}/app.py", timeout=5)  # a request log line
    apps = {app["app_id"]: app for app in launcher.listed()[0]["apps"]}
    assert launcher.command("stop", "-f", str(template)).returncode == 0
    assert proc.wait(30) == 0

    console = out.read_text(encoding="utf-8").splitlines()
    assert "== APP - both == starting both" in console
    assert "== APP - loud == starting loud" in console
    assert not [line for line in console if "quiet" in line and line.startswith("== APP")]
    # gRPC's fork handlers (the launcher's sidecars serve gRPC) print nothing
    assert not [line for line in console if "fork" in line.lower()], console[:10]

    assert apps["loud"]["app_log"] is None
    for app_id in ("both", "quiet"):
        log = Path(apps[app_id]["app_log"])
        assert log.parent == tmp_path / "run" / app_id / ".dapr" / "logs"
        assert log.name.startswith(f"{app_id}_app_") and log.suffix == ".log"
        assert f"starting {app_id}" in log.read_text(encoding="utf-8").splitlines()
    assert '"GET /app.py HTTP/1.1" 200' in Path(apps["quiet"]["app_log"]).read_text()


def test_a_bad_log_destination_names_its_field(launcher: Launcher, tmp_path: Path) -> None:
    template, _ = _template(tmp_path / "run", "bad", {"web": "syslog"})
    done = launcher.command("run", "-f", str(template))
    assert done.returncode == 2
    assert "apps[0].appLogDestination" in done.stderr
    assert "console, file, fileAndConsole" in done.stderr


def test_a_killed_launcher_s_run_is_not_listed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A launcher killed with SIGKILL leaves its file behind: the next reader sees its
    pid is gone (or another process's now) and removes it."""
    monkeypatch.setenv("SUPERSTEP_LAUNCHER_DIR", str(tmp_path))
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    path = write_run(RunEntry("old", "/x/dapr.yaml", gone.pid, 0.0, "local"))
    assert path.exists() and running() == []
    assert not path.exists()
    mine = write_run(RunEntry("mine", "/y/dapr.yaml", os.getpid(), 1.0, "local"))
    assert [run.name for run in running()] == ["mine"]
    (tmp_path / f"{os.getpid()}.json").write_text(
        mine.read_text().replace('"launcher_started": "', '"launcher_started": "1')
    )
    assert running() == [], "the same pid, started at another time: another process"
