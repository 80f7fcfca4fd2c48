"""The README's distributed demo, as a user runs it: the repo's ``dapr.yaml`` started
by ``dapr run -f`` (on the daprd target: the Dapr CLI when installed, else the repo's
launcher beside real daprd; by default the launcher with the local sidecar), then
``superstep demo --runtime dapr`` against it gives the in-process outputs and trace.

``dapr.yaml`` uses fixed ports for the apps (8300-8302), as a user's run does. The same
goes for ``dapr.inmemory.yaml``, the one-app template on the in-memory components (no
Redis): its API app serves both pools itself. On the daprd target each template is the
repo's with one change: the placement and scheduler addresses of the test session (which
runs them on ports of its own).
"""

from __future__ import annotations

import asyncio
import json
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import yaml

from runtime.demo import Job, build_workflow
from sidecar.testing import BackgroundLoop, wait_until
from tests.sidecar.conftest import require_service
from tests.sidecar.runs import (
    ON_DAPRD,
    REPO,
    DaprRun,
    RunApp,
    control_plane_keys,
    external_command,
)
from tests.unit.test_readme import BLOCKS

DEMO = ["--docs", "120", "--workers", "4", "--latency-ms", "1", "--waves", "3"]


def _demo(*extra: str) -> str:
    out = subprocess.run(
        [str(Path(sys.executable).parent / "superstep"), "demo", *DEMO, *extra],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        cwd=REPO,
    )
    assert out.returncode == 0, out.stderr[-2000:]
    return out.stdout


def _both_pools_registered() -> bool:
    try:
        hosts = httpx.get("http://127.0.0.1:8300/hosts", timeout=2).json()
    except (httpx.HTTPError, ValueError):
        return False
    return {h.get("pool") for h in hosts} >= {"default", "analysis"}


def _trace_hash(text: str) -> str:
    found = re.search(r"trace hash\s+([0-9a-f]{32})", text)
    assert found, text
    return found.group(1)


def _repo_template(name: str, directory: Path) -> Path:
    """The repo's template ``name`` as it is, or on daprd pointed at the session's
    control plane."""
    if not ON_DAPRD:
        return REPO / name
    doc = yaml.safe_load((REPO / name).read_text(encoding="utf-8"))
    common = doc.setdefault("common", {})
    common.update(control_plane_keys())
    common["resourcesPaths"] = [str(REPO / p) for p in common["resourcesPaths"]]
    for app in doc["apps"]:
        app["appDirPath"] = str(REPO / app["appDirPath"])
    file = directory / name
    file.write_text(yaml.safe_dump(doc, sort_keys=False), encoding="utf-8")
    return file


def _start(name: str, apps: list[RunApp], tmp_path: Path) -> Iterator[DaprRun]:
    command = external_command() or (sys.executable, "-m", "sidecar", "run", "-f")
    with BackgroundLoop() as bg:
        template = _repo_template(name, tmp_path)
        run = DaprRun(apps, tmp_path, bg, external=command, template=template)
        run.start()
        try:
            wait_until(_both_pools_registered, within=60, what="both pools' hosts registered")
            yield run
        finally:
            run.stop()


@pytest.fixture
def repo_run(tmp_path: Path) -> Iterator[DaprRun]:
    require_service("Redis", 6379)
    # the apps of dapr.yaml, by its fixed ports; the run is the repo's own template
    apps = [
        RunApp(app_id, app_port=port)
        for app_id, port in (
            ("superstep-api", 8300),
            ("superstep-executor-default", 8301),
            ("superstep-executor-analysis", 8302),
        )
    ]
    yield from _start("dapr.yaml", apps, tmp_path)


@pytest.fixture
def in_memory_run(tmp_path: Path) -> Iterator[DaprRun]:
    yield from _start("dapr.inmemory.yaml", [RunApp("superstep-api", app_port=8300)], tmp_path)


def test_the_readme_demo_on_the_repo_template_equals_in_process(repo_run: DaprRun) -> None:
    remote = _demo("--runtime", "dapr", "--url", "http://127.0.0.1:8300")
    local = _demo()
    assert _trace_hash(remote) == _trace_hash(local)
    assert "Where executors ran" in remote
    assert "superstep-executor-analysis" in remote and "superstep-executor-default" in remote


def test_the_one_app_in_memory_template_runs_the_demo_as_in_process(
    in_memory_run: DaprRun,
) -> None:
    """No Redis: one app on the in-memory components serves the coordinator and both
    pools (each its own host), and the demo gives the in-process trace."""
    remote = _demo("--runtime", "dapr", "--url", "http://127.0.0.1:8300")
    assert _trace_hash(remote) == _trace_hash(_demo())
    ran = remote[remote.index("Where executors ran") :]
    assert "superstep-api:analysis" in ran and "superstep-api:default" in ran
    hosts = httpx.get("http://127.0.0.1:8300/hosts", timeout=5).json()
    assert {(h["app_id"], h["pool"]) for h in hosts} == {
        ("superstep-api", "default"),
        ("superstep-api", "analysis"),
    }


def test_the_readme_remote_blocks_run_on_the_repo_template(
    repo_run: DaprRun, capsys: pytest.CaptureFixture[str]
) -> None:
    """The README's Python blocks that use ``RemoteRuntime``, run as written against the
    apps of ``dapr.yaml``: the demo's run there has the in-process outputs and trace."""
    blocks = [block for block in BLOCKS if block.needs_dapr]
    assert blocks
    for block in blocks:
        exec(block.compiled(), {"__name__": "readme"})
    lines = capsys.readouterr().out.splitlines()
    local = asyncio.run(build_workflow(workers=4, latency_ms=1).run(Job(docs=200)))
    assert lines[0].split() == ["completed", "200", local.trace_hash]
    assert lines[1] == "0 started -" and lines[-1].endswith(" status -")


def test_the_readme_curl_block_starts_a_run_on_the_repo_template(repo_run: DaprRun) -> None:
    """The README's ``curl`` block, run by bash as written: it starts the demo by its
    factory with plain JSON input and reads the run back."""
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    block = next(
        m.group(1)
        for m in re.finditer(r"^```bash\n(.*?)^```$", readme, re.M | re.S)
        if "curl -s localhost:8300/runs -H" in m.group(1)
    )
    out = subprocess.run(
        ["bash", "-euo", "pipefail", "-c", block + '\necho\necho "$RUN"'],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    ).stdout.splitlines()
    view, run_id = json.loads(out[0]), out[-1]
    assert view["run_id"] == run_id and view["workflow"] == "document-processing"

    def completed() -> bool:
        got = httpx.get(f"http://127.0.0.1:8300/runs/{run_id}", timeout=5).json()
        assert got["status"] in ("running", "completed"), got
        return bool(got["status"] == "completed")

    wait_until(completed, within=60, what="the README's run completed")
    outputs = httpx.get(f"http://127.0.0.1:8300/runs/{run_id}", timeout=5).json()["outputs"]
    assert outputs[0]["type"] == "runtime.demo.Summary" and outputs[0]["value"]["documents"] == 200
