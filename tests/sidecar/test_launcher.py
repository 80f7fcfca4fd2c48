"""The multi-app launcher: run template rules (§6), app environment, log prefixes, service
invocation between apps, and a non-zero exit with the app's last lines on a failed start.

The app environment and service invocation are what ``dapr run -f`` gives too, so that test
runs on both targets; the others test the repo's launcher itself (``sidecar_only``) or its
template parser (pure, target-independent)."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import httpx
import pytest

from sidecar.errors import ResourceError, StartupError
from sidecar.launcher import AppSpec, Topology, load_template, processes
from sidecar.launcher.processes import AppProcess
from sidecar.testing import BackgroundLoop, free_port
from tests.sidecar.runs import DaprRun, RunApp

REPO = Path(__file__).resolve().parents[2]

MEMORY = """
apiVersion: dapr.io/v1alpha1
kind: Component
metadata: {name: statestore}
spec: {type: state.in-memory, version: v1, metadata: []}
"""


def _tree(tmp_path: Path) -> Path:
    (tmp_path / "shared").mkdir()
    (tmp_path / "shared" / "state.yaml").write_text(MEMORY)
    for name in ("alpha", "beta"):
        (tmp_path / name).mkdir()
    (tmp_path / "beta" / ".dapr" / "resources").mkdir(parents=True)
    (tmp_path / "beta" / ".dapr" / "resources" / "state.yaml").write_text(MEMORY)
    template = tmp_path / "dapr.yaml"
    template.write_text(
        textwrap.dedent(
            """
            version: 1
            common:
              resourcesPaths: [./shared]
              env: {LEVEL: info, SHARED: common}
              appProtocol: http
            apps:
              - appDirPath: ./alpha
                appPort: 7001
                env: {LEVEL: debug}
                command: ["python", "app.py"]
                unknownKey: ignored
              - appID: custom-beta
                appDirPath: ./beta
                daprHTTPPort: 3999
            """
        )
    )
    return template


def test_template_rules(tmp_path: Path) -> None:
    template = load_template(_tree(tmp_path))
    alpha, beta = template.apps
    assert alpha.app_id == "alpha"  # default: base name of appDirPath
    assert alpha.app_dir == (tmp_path / "alpha").resolve()
    assert dict(alpha.env) == {"LEVEL": "debug", "SHARED": "common"}  # app wins per key
    assert alpha.resources_paths == ((tmp_path / "shared").resolve(),)
    assert alpha.command == ("python", "app.py") and alpha.app_port == 7001
    assert beta.app_id == "custom-beta" and beta.http_port == 3999 and beta.app_port is None
    # <appDirPath>/.dapr/resources wins over common.resourcesPaths
    assert beta.resources_paths == (tmp_path / "beta" / ".dapr" / "resources",)


@pytest.mark.parametrize(
    ("text", "field"),
    [
        ("apps: [{appDirPath: ./alpha}]", "version"),
        ("version: 1\napps: [{appID: x}]", "apps[0].appDirPath"),
        ("version: 1\napps: [{appDirPath: ./nope}]", "apps[0].appDirPath"),
        ("version: 1\napps: [{appDirPath: ./alpha, appPort: abc}]", "apps[0].appPort"),
        ("version: 1\napps: [{appDirPath: ./alpha}, {appDirPath: ./alpha}]", "apps[1].appID"),
    ],
)
def test_bad_templates_name_the_field(tmp_path: Path, text: str, field: str) -> None:
    (tmp_path / "alpha").mkdir()
    (tmp_path / "dapr.yaml").write_text(text)
    with pytest.raises(ResourceError) as info:
        load_template(tmp_path / "dapr.yaml")
    assert info.value.field == field


SERVER = """
import http.server, json, os, socketserver
print("starting", os.environ["APP_ID"], flush=True)
with open("env.json", "w") as f:
    json.dump({k: os.environ.get(k) for k in
               ("APP_ID", "APP_PORT", "DAPR_HTTP_PORT", "DAPR_GRPC_PORT", "APP_PROTOCOL", "ROLE")}, f)
socketserver.TCPServer.allow_reuse_address = True
http.server.test(HandlerClass=http.server.SimpleHTTPRequestHandler,
                 port=int(os.environ["APP_PORT"]), bind="127.0.0.1")
"""


def test_apps_sharing_in_memory_components_are_refused_at_start(tmp_path: Path) -> None:
    """The repo's template with components/in-memory: three apps that could never share
    a store or a broker; one app on the same components is fine."""
    text = (
        (REPO / "dapr.yaml")
        .read_text()
        .replace('resourcesPaths: ["./components"]', 'resourcesPaths: ["./components/in-memory"]')
    )
    assert "components/in-memory" in text
    template = REPO / f".dapr-in-memory-{os.getpid()}.yaml"
    template.write_text(text)
    try:
        with pytest.raises(ResourceError, match="cannot be shared") as caught:
            load_template(template)
        assert "statestore (state.in-memory)" in str(caught.value)
    finally:
        template.unlink()
    # apps of other kinds on in-memory components, as Dapr allows (this tree's two)
    assert len(load_template(_tree(tmp_path)).apps) == 2


def test_app_env_and_service_invocation(bg: BackgroundLoop, tmp_path: Path) -> None:
    apps = [
        RunApp(
            name, app_port=free_port(), command=(sys.executable, "server.py"),
            env={"ROLE": name.upper()},
        )
        for name in ("web-a", "web-b")
    ]  # fmt: skip
    run = DaprRun(apps, tmp_path / "run", bg)
    for name in ("web-a", "web-b"):  # each app's appDirPath, its working directory
        (run.directory / name / "server.py").write_text(SERVER)
        (run.directory / name / "hello.txt").write_text(f"hello from {name}")
    with run:
        env = json.loads((run.directory / "web-a" / "env.json").read_text())
        assert env["APP_ID"] == "web-a" and env["ROLE"] == "WEB-A"
        assert env["DAPR_HTTP_PORT"] == str(run.http_port("web-a"))
        assert env["DAPR_GRPC_PORT"] == str(run.grpc_port("web-a"))
        assert env["APP_PORT"] == str(run.app_port("web-a")) and env["APP_PROTOCOL"] == "http"
        base = run.api("web-a")
        with httpx.Client(timeout=5) as client:
            assert client.get(f"{base}/healthz").status_code == 204
            answer = client.get(f"{base}/invoke/web-b/method/hello.txt")
            assert answer.status_code == 200 and answer.text == "hello from web-b"
            missing = client.get(f"{base}/invoke/nobody/method/x")
            assert missing.status_code == 500
            assert missing.json()["errorCode"] == "ERR_DIRECT_INVOKE"


@pytest.mark.sidecar_only("tests the repo's launcher with the local sidecar itself")
def test_topology_hands_app_output_to_its_sink(bg: BackgroundLoop, tmp_path: Path) -> None:
    lines: list[tuple[str, str]] = []
    (tmp_path / "server.py").write_text(SERVER)
    spec = AppSpec(
        app_id="web-a", app_dir=tmp_path, command=(sys.executable, "server.py"),
        app_port=free_port(),
    )  # fmt: skip
    topology = Topology([spec], sink=lambda app, line: lines.append((app, line)))
    bg.run(topology.start())
    try:
        assert ("web-a", "starting web-a") in lines
    finally:
        bg.run(topology.stop())


@pytest.mark.sidecar_only("tests the repo's launcher with the local sidecar itself")
def test_app_dying_during_startup_fails_with_its_last_lines(
    bg: BackgroundLoop, tmp_path: Path
) -> None:
    command = (sys.executable, "-c", "print('loading config'); raise SystemExit(3)")
    spec = AppSpec(app_id="crasher", app_dir=tmp_path, command=command, app_port=free_port())
    topology = Topology([spec], sink=lambda app, line: None)
    with pytest.raises(StartupError) as info:
        bg.run(topology.start())
    assert "exited with code 3" in str(info.value)
    assert "loading config" in info.value.log_tail
    assert str(info.value).endswith("its last log lines:\nloading config"), "shown with it"


@pytest.mark.sidecar_only("tests the repo's launcher with the local sidecar itself")
def test_cli_exits_non_zero_with_the_app_log(tmp_path: Path) -> None:
    (tmp_path / "app").mkdir()
    (tmp_path / "dapr.yaml").write_text(
        "version: 1\napps:\n  - appDirPath: ./app\n    appPort: "
        f"{free_port()}\n    command: ['{sys.executable}', '-c', "
        "\"print('cannot connect to the database'); raise SystemExit(2)\"]\n"
    )
    done = subprocess.run(
        [sys.executable, "-m", "sidecar", "run", "-f", str(tmp_path / "dapr.yaml")],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 1
    assert "cannot connect to the database" in done.stderr
    assert "== APP - app == cannot connect to the database" in done.stdout


@pytest.mark.sidecar_only("tests the repo's launcher with the local sidecar itself")
@pytest.mark.skipif(sys.platform != "linux", reason="PR_SET_PDEATHSIG is Linux-only")
@pytest.mark.parametrize("how", ["setpriv", "prctl"])
def test_apps_die_with_a_killed_launcher(tmp_path: Path, how: str) -> None:
    """A launcher killed with SIGKILL (no chance to stop its apps) leaves none behind,
    through util-linux's setpriv or, where it is missing, prctl before the app's exec."""
    if how == "setpriv" and shutil.which("setpriv") is None:
        pytest.skip("setpriv (util-linux) is not installed")
    pid_file = tmp_path / "app.pid"
    script = f"""
import asyncio, sys
from pathlib import Path
from sidecar.launcher import processes
from sidecar.launcher.processes import AppProcess
if {how!r} == "prctl":
    processes._SETPRIV = None

async def main():
    app = AppProcess("sleeper", (sys.executable, "-c",
        "import os, time; open({str(pid_file)!r}, 'w').write(str(os.getpid())); time.sleep(120)"),
        Path.cwd(), dict(__import__('os').environ), sink=lambda a, l: None)
    await app.start()
    await asyncio.sleep(120)

asyncio.run(main())
"""
    launcher = subprocess.Popen([sys.executable, "-c", script], cwd=REPO)
    try:
        deadline = time.monotonic() + 30
        while not (pid_file.exists() and pid_file.read_text()):
            assert time.monotonic() < deadline, "the app did not start"
            time.sleep(0.05)
        app_pid = int(pid_file.read_text())
        os.kill(app_pid, 0)  # alive
    finally:
        launcher.kill()
        launcher.wait()
    deadline = time.monotonic() + 30
    while True:
        try:
            os.kill(app_pid, 0)
        except ProcessLookupError:
            break
        assert time.monotonic() < deadline, "the app outlived its launcher"
        time.sleep(0.05)


async def test_an_app_line_longer_than_the_stream_limit_neither_stops_its_log_nor_its_app(
    tmp_path: Path,
) -> None:
    """A line of 200 KiB (a long repr in a log message) used to end the launcher's
    reader of the app's output (``readline`` over its 64 KiB limit): the pipe then
    filled, and the app blocked on its next write of a log line."""
    lines: list[str] = []
    script = "import sys; print('x' * 200_000); print('after'); sys.stdout.write('y' * 300_000)"
    app = AppProcess(
        "long-lines",
        (sys.executable, "-c", script),
        tmp_path,
        dict(os.environ),
        sink=lambda _app, line: lines.append(line),
    )
    await app.start()
    assert await asyncio.wait_for(app.wait(), 30) == 0
    assert "after" in lines
    assert "".join(lines) == "x" * 200_000 + "after" + "y" * 300_000
    assert max(map(len, lines)) <= processes.MAX_LINE_CHARS
