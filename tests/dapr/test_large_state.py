"""A run whose shared state is 10 MiB completes on the Dapr runtime, as in-process.

daprd takes request bodies of at most 4 MiB (``--max-body-size``; the local sidecar
enforces the same limit): the run record, its checkpoint, the shared-state version and
the activation's result each hold the 10 MiB, so each goes to the state store in parts
and crosses pub/sub by reference. Parts are cut by the bytes a value takes in a request,
where text beyond ASCII takes up to 12 bytes a character.
"""

from __future__ import annotations

from runtime.engine import RunStatus
from tests.dapr.conftest import Deployment
from tests.dapr.workflows import big_snapshot, big_state, ticks


async def test_a_run_with_10_mib_of_shared_state_completes(deployment: Deployment) -> None:
    local = await big_state().run(10)
    remote = await big_state().run(10, runtime=deployment.runtime())
    assert remote.status is RunStatus.COMPLETED, remote.error
    assert remote.outputs == local.outputs
    assert remote.outputs[0]["bytes"] == 10 * 1024 * 1024
    assert remote.trace_hash == local.trace_hash


async def test_outputs_larger_together_than_a_request_are_all_shown(
    deployment: Deployment,
) -> None:
    """Eight outputs of 512 Ki characters, 4 MiB together: each barrier writes its own
    once, and GET /runs/{id} reads them all back (a record holding them all rewrote
    them in parts at every barrier)."""
    wf = ticks(count=8, width=512 * 1024)
    remote = await wf.run(1, runtime=deployment.runtime())
    local = await ticks(count=8, width=512 * 1024).run(1)
    assert remote.status is RunStatus.COMPLETED, remote.error
    assert remote.outputs == local.outputs and len(local.outputs) == 8
    view = await deployment.runtime().run_view(remote.run_id)
    assert [wf.graph.codec.decode(o) for o in view["outputs"]] == local.outputs


async def test_a_run_with_wide_text_state_completes(deployment: Deployment) -> None:
    """2 Mi characters of CJK, Hangul, emoji and quotes: about 14 MiB escaped in the
    requests that carry them, cut into parts under daprd's 4 MiB limit."""
    local = await big_state("wide").run(2)
    remote = await big_state("wide").run(2, runtime=deployment.runtime())
    assert remote.status is RunStatus.COMPLETED, remote.error
    assert remote.outputs == local.outputs
    assert remote.trace_hash == local.trace_hash


async def test_a_run_whose_executor_state_passes_the_body_limit_completes(
    deployment: Deployment,
) -> None:
    """An executor's snapshot of nearly 3 Mi characters, most beyond ASCII (far over 4 MiB escaped)
    goes to its activation by reference, as large message payloads do."""
    local = await big_snapshot().run(1)
    remote = await big_snapshot().run(1, runtime=deployment.runtime())
    assert remote.status is RunStatus.COMPLETED, remote.error
    assert remote.outputs == local.outputs and remote.outputs[0]["chars"] > 2_900_000
    assert remote.trace_hash == local.trace_hash
