"""``python -m sidecar control-plane``: Dapr's placement and scheduler for ``dapr run -f``,
started from the installed binaries and stopped on SIGTERM.

Needs Dapr's binaries (``tools/dapr/install``), so it runs on the daprd target, where
CI has built them.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys

import pytest

from sidecar.testing import free_port, wait_until
from tests.conftest import daprd_binaries
from tests.sidecar.runs import accepts


def test_control_plane_serves_placement_and_scheduler_until_stopped() -> None:
    binaries = daprd_binaries()
    if binaries is None:
        pytest.skip("needs Dapr's binaries: runs with SUPERSTEP_DAPR_TARGET=daprd")
    placement, scheduler = free_port(), free_port()
    env = {
        **os.environ,
        "SUPERSTEP_DAPR_PLACEMENT_PORT": str(placement),
        "SUPERSTEP_DAPR_SCHEDULER_PORT": str(scheduler),
    }
    proc = subprocess.Popen(
        [sys.executable, "-m", "sidecar", "control-plane", "--daprd", str(binaries)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    want = f"placement localhost:{placement}, scheduler localhost:{scheduler}"
    try:
        assert proc.stdout is not None
        # the services' own log lines (warnings) come before the banner; EOF ends it
        lines = []
        for line in proc.stdout:
            lines.append(line)
            if line.startswith("== control plane =="):
                break
        assert want in lines[-1], "".join(lines)
        assert accepts(placement) and accepts(scheduler)
    finally:
        proc.send_signal(signal.SIGTERM)
        code = proc.wait(60)
        if proc.stdout is not None:
            proc.stdout.close()
    assert code == 0
    wait_until(
        lambda: not accepts(placement) and not accepts(scheduler),
        within=10,
        what="placement and scheduler stopped",
    )
