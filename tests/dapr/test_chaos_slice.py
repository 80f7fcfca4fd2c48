"""The chaos suite's slice on real daprd (the CI's daprd pass runs ``tests/sidecar``
and ``tests/dapr`` only): a host of a replicated pool killed, and two coordinators of
one run, each once; both runs must end as the in-process run does. On the local
sidecar ``tests/chaos`` runs every fault class, so this module runs on daprd only."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.chaos.harness import FAULTS, ChaosDeployment, deployed, run_once
from tests.sidecar.runs import ON_DAPRD

pytestmark = pytest.mark.skipif(
    not ON_DAPRD, reason="daprd only: tests/chaos runs the slice on the local sidecar"
)


@pytest.fixture(scope="module")
def on_daprd() -> Iterator[ChaosDeployment]:
    with deployed("daprd") as dep:
        yield dep


@pytest.mark.parametrize("name", ["kill-host-replica", "two-coordinators"])
async def test_the_run_rides_out_the_fault_on_daprd(on_daprd: ChaosDeployment, name: str) -> None:
    outcome = await run_once(on_daprd, FAULTS[name], 3, deadline_s=100)
    assert outcome.verdict == "correct", outcome
    assert "never struck" not in outcome.detail, outcome
