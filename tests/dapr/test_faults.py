"""Duplicated, reordered, delayed and lost pub/sub deliveries change nothing: the
outputs and the run trace equal the in-process run's."""

from __future__ import annotations

import pytest

from runtime import RunStatus
from tests.dapr import workflows
from tests.dapr.conftest import Deployment

pytestmark = pytest.mark.sidecar_only(
    "duplicated, reordered, delayed and dropped deliveries come from the local sidecar's "
    "seeded fault injection; daprd has none"
)


@pytest.mark.parametrize("round_", range(3))
async def test_fan_out_fan_in_under_faulty_delivery(
    faulty_deployment: Deployment, round_: int
) -> None:
    text = "|".join(f"w{i} " * (i % 4 + 1) for i in range(7 + round_))
    remote = await workflows.fan().run(text, runtime=faulty_deployment.runtime())
    local = await workflows.fan().run(text)
    assert remote.status is RunStatus.COMPLETED
    assert remote.outputs == local.outputs
    assert remote.trace_hash == local.trace_hash


async def test_ping_pong_under_faulty_delivery(faulty_deployment: Deployment) -> None:
    remote = await workflows.ping().run(0, runtime=faulty_deployment.runtime())
    local = await workflows.ping().run(0)
    assert remote.status is RunStatus.COMPLETED
    assert (remote.outputs, remote.trace) == (local.outputs, local.trace)
    assert remote.supersteps == 12


def test_lost_activations_came_back_by_the_deadline(faulty_deployment: Deployment) -> None:
    """Runs after the tests above: with 10% of deliveries dropped, some activation was
    lost and published again by the coordinator's deadline reminder."""
    assert any("re-publishing" in line for line in faulty_deployment.logs)
