"""The daprd-mode machinery of :mod:`tests.sidecar.runs`, exercised here without daprd.

On ``SUPERSTEP_DAPR_TARGET=daprd`` a run template is written to a directory and started
as an external command (``dapr run -f <file>``). The repo's launcher speaks the same
template, so running ``python -m sidecar run -f`` through that path proves everything but
the binary: the template file, the process group, the health waits on the fixed ports,
the apps started by the command, the stop. Marked ``sidecar_only``: it runs the local
launcher whatever the target.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from sidecar.testing import BackgroundLoop, free_port, wait_until
from tests.sidecar.apps.recorder import topic
from tests.sidecar.conftest import write_resources
from tests.sidecar.runs import DaprRun, RunApp, process_gone, uvicorn_command

pytestmark = pytest.mark.sidecar_only("runs the repo's launcher with the local sidecar")

REPO_LAUNCHER = (sys.executable, "-m", "sidecar", "run", "-f")

COMPONENTS = {
    "store.yaml": """
apiVersion: dapr.io/v1alpha1
kind: Component
metadata: {name: actorstore}
spec:
  type: state.in-memory
  version: v1
  metadata:
  - {name: actorStateStore, value: "true"}
""",
    "membus.yaml": """
apiVersion: dapr.io/v1alpha1
kind: Component
metadata: {name: membus}
spec: {type: pubsub.in-memory, version: v1, metadata: []}
""",
}


@pytest.fixture
def run(bg: BackgroundLoop, tmp_path: Path, run_id: str) -> Iterator[DaprRun]:
    resources = write_resources(tmp_path / "resources", COMPONENTS)
    actor_port, recorder_port = free_port(), free_port()
    apps = [
        RunApp(
            "actors",
            app_port=actor_port,
            command=uvicorn_command("tests.sidecar.apps.actor_app:app", actor_port),
            resources=(resources,),
        ),
        RunApp(
            "recorder",
            app_port=recorder_port,
            command=uvicorn_command(
                "tests.sidecar.apps.recorder:app_from_env", recorder_port, factory=True
            ),
            env={"SIDECAR_TEST_RUN": run_id, "SIDECAR_TEST_PUBSUB": "membus"},
            resources=(resources,),
        ),
    ]
    started = DaprRun(apps, tmp_path / "run", bg, external=REPO_LAUNCHER).start()
    yield started
    started.stop()


def test_actor_call_and_delivery_through_an_external_run(run: DaprRun, uid: str) -> None:
    assert run.local is None  # nothing of the run lives in this process
    template = (run.directory / "dapr.yaml").read_text()
    assert f"daprHTTPPort: {run.http_port('actors')}" in template
    with httpx.Client(timeout=10) as client:
        for app_id in run.apps:
            assert client.get(f"{run.api(app_id)}/healthz").status_code == 204
        calls = [
            client.put(f"{run.api('recorder')}/actors/Counter/{uid}/method/Incr", json=n)
            for n in (2, 3)
        ]  # through the other app's sidecar: placement routes to the host
        assert [c.status_code for c in calls] == [200, 200]
        assert [c.json() for c in calls] == [2, 5]
        state = client.get(f"{run.api('actors')}/actors/Counter/{uid}/state/count")
        assert state.status_code == 200 and state.json() == 5

        t = topic(run.apps["recorder"].env["SIDECAR_TEST_RUN"], "mem")
        published = client.post(f"{run.api('recorder')}/publish/membus/{t}", json={"tag": uid})
        assert published.status_code == 204

        def delivered() -> list[dict[str, object]]:
            url = f"http://127.0.0.1:{run.app_port('recorder')}/deliveries?tag={uid}"
            found: list[dict[str, object]] = client.get(url).json()
            return found

        wait_until(lambda: len(delivered()) == 1, what="the delivery to the recorder")
        (delivery,) = delivered()
        assert delivery["path"] == "/mem"
        event = delivery["event"]
        assert isinstance(event, dict)
        assert event["source"] == "recorder" and event["topic"] == t
        pid = client.get(f"http://127.0.0.1:{run.app_port('actors')}/debug").json()["pid"]
    run.stop()
    with httpx.Client(timeout=2) as client, pytest.raises(httpx.TransportError):
        client.get(f"{run.api('actors')}/healthz")
    wait_until(lambda: process_gone(pid), what="the actor app stopped with the run")


def test_a_run_that_exits_fails_the_start_with_its_output(
    bg: BackgroundLoop, tmp_path: Path
) -> None:
    crasher = RunApp(
        "crasher",
        app_port=free_port(),
        command=(sys.executable, "-c", "print('cannot reach the database'); raise SystemExit(3)"),
    )
    run = DaprRun([crasher], tmp_path / "run", bg, external=REPO_LAUNCHER)
    with pytest.raises(AssertionError) as info:
        run.start()
    assert "exited with code 1" in str(info.value)
    assert "cannot reach the database" in str(info.value)
