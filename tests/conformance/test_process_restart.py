"""Human in the loop across a real process restart (in-process runtime, file checkpoints).

One process runs the workflow until it awaits input and exits; a second process,
which shares nothing with the first but the checkpoint directory, answers the
request and finishes the run with the trace of a run that was never interrupted.
"""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path
from typing import Any

from runtime import FileCheckpointStorage, RunStatus
from runtime.testing.conformance._workflows import hitl_workflow

PHASE = """
import asyncio, json, os, sys
from runtime import FileCheckpointStorage
from runtime.testing.conformance._workflows import hitl_workflow

async def main(directory: str, phase: str) -> None:
    storage = FileCheckpointStorage(directory)
    wf = hitl_workflow()
    if phase == "ask":
        r = await wf.run(250, run_id="hitl-proc", checkpoint_storage=storage)
        extra = {"checkpoint": r.last_checkpoint_id, "request": r.pending_requests[0].request_id}
    else:
        cp, rid = sys.argv[3], sys.argv[4]
        r = await wf.run(checkpoint_id=cp, checkpoint_storage=storage, responses={rid: 1})
        extra = {}
    print(json.dumps({"pid": os.getpid(), "status": r.status.value, "outputs": r.outputs,
                      "trace_hash": r.trace_hash, **extra}))

asyncio.run(main(*sys.argv[1:3]))
"""


async def _phase(*args: str) -> dict[str, Any]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        PHASE,
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    async with asyncio.timeout(60):
        out, err = await proc.communicate()
    assert proc.returncode == 0, err.decode()
    result: dict[str, Any] = json.loads(out.decode().strip().splitlines()[-1])
    return result


async def test_a_pending_request_is_answered_in_another_process(tmp_path: Path) -> None:
    directory = str(tmp_path / "checkpoints")
    asked = await _phase(directory, "ask")
    assert asked["status"] == "awaiting_input"
    assert asked["outputs"] == [["s", 1]]

    answered = await _phase(directory, "answer", asked["checkpoint"], asked["request"])
    assert answered["pid"] != asked["pid"]
    assert answered["status"] == "completed"
    assert answered["outputs"] == [["approver", 3, 250, 1, 250]]

    # the same run in this process, paused and answered without a restart
    storage = FileCheckpointStorage(tmp_path / "here")
    paused = await hitl_workflow().run(250, run_id="hitl-proc", checkpoint_storage=storage)
    assert paused.status is RunStatus.AWAITING_INPUT
    rid = paused.pending_requests[0].request_id
    assert rid == asked["request"]
    done = await hitl_workflow().run(
        checkpoint_id=paused.last_checkpoint_id, checkpoint_storage=storage, responses={rid: 1}
    )
    assert done.trace_hash == answered["trace_hash"]
