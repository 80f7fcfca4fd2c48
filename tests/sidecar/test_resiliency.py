"""Outbound resiliency (dapr-contract §7.2): timeouts, retries and circuit breakers around
the sidecar's state store operations and publishes, driven by seeded state faults.

Tests that need a failing store use the local sidecar's fault injection (``sidecar_only``);
the ETag-conflict test needs none and runs on both targets; the policy classes are unit
tested directly."""

from __future__ import annotations

import asyncio
import textwrap
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

import grpc
import httpx
import pytest
from dapr.clients import DaprClient
from dapr.clients.exceptions import DaprGrpcError
from dapr.conf import settings

from sidecar.cluster import Cluster
from sidecar.errors import BrokerError
from sidecar.faults import FaultPlan, StateFaults
from sidecar.pubsub.base import Broker, Handler, TopicSubscription
from sidecar.resiliency import CircuitBreaker, OutboundPolicy, ResilientBroker
from sidecar.resources import load_resources
from sidecar.resources.model import CircuitBreakerPolicy, TargetPolicies
from sidecar.runtime import Sidecar, SidecarOptions
from sidecar.testing import BackgroundLoop, start_sidecar
from tests.sidecar.conftest import close_client, grpc_code, write_resources
from tests.sidecar.runs import DaprRun, RunApp
from tests.sidecar.test_faults_and_health import MEMORY

#: With app id "resilient", seed 12 and fail=0.6 the first two writes fail, the third works.
FLAKY_WRITES = FaultPlan(seed=12, state=StateFaults(fail=0.6, operations=frozenset({"set"})))


def _resiliency(policies: str, targets: str) -> str:
    return textwrap.dedent(
        """
        apiVersion: dapr.io/v1alpha1
        kind: Resiliency
        metadata: {{name: outbound}}
        spec:
          policies: {policies}
          targets: {targets}
        """
    ).format(policies=policies, targets=targets)


@contextmanager
def _sidecar(
    bg: BackgroundLoop, cluster: Cluster, tmp_path: Path, resiliency: str | None, plan: FaultPlan
) -> Iterator[Sidecar]:
    documents = {"state.yaml": MEMORY["state.yaml"]}  # in-memory store "mem"
    if resiliency is not None:
        documents["resiliency.yaml"] = resiliency
    directory = tmp_path / f"res-{len(list(tmp_path.iterdir()))}"
    resources = write_resources(directory, documents)
    options = SidecarOptions(app_id="resilient", resources_paths=(resources,), faults=plan)
    sidecar = bg.run(start_sidecar(options, cluster))
    try:
        yield sidecar
    finally:
        bg.run(sidecar.stop())


def _base(sidecar: Sidecar) -> str:
    return f"http://127.0.0.1:{sidecar.http_port}/v1.0"


def _retrying(max_retries: int, duration: str = "10ms") -> str:
    return _resiliency(
        f"{{retries: {{again: {{policy: constant, duration: {duration}, "
        f"maxRetries: {max_retries}}}}}}}",
        "{components: {mem: {outbound: {retry: again}}}}",
    )


@pytest.mark.sidecar_only("needs a failing store: the local sidecar's fault injection")
def test_retry_policy_recovers_a_failing_state_write_within_its_budget(
    bg: BackgroundLoop, cluster: Cluster, tmp_path: Path
) -> None:
    item = [{"key": "k", "value": {"n": 1}}]
    for resiliency, status in ((None, 500), (_retrying(1), 500), (_retrying(3), 204)):
        with _sidecar(bg, cluster, tmp_path, resiliency, FLAKY_WRITES) as sidecar:
            answer = httpx.post(f"{_base(sidecar)}/state/mem", json=item, timeout=10)
            assert answer.status_code == status, (resiliency, answer.text)
            if status == 500:
                assert answer.json()["errorCode"] == "ERR_STATE_SAVE"
                assert "injected fault" in answer.json()["message"]
            else:
                stored = httpx.get(f"{_base(sidecar)}/state/mem/k", timeout=5)
                assert stored.status_code == 200 and stored.json() == {"n": 1}


def test_etag_conflicts_of_single_saves_are_not_retried_but_deletes_and_transactions_are(
    bg: BackgroundLoop, tmp_path: Path
) -> None:
    # Two retries 0.5 s apart: a retried conflict takes at least 1 s to be answered.
    documents = {"state.yaml": MEMORY["state.yaml"], "resiliency.yaml": _retrying(2, "500ms")}
    resources = write_resources(tmp_path / "resources", documents)
    with DaprRun([RunApp("resilient", resources=(resources,))], tmp_path / "run", bg) as run:
        base = run.api("resilient")
        with httpx.Client(timeout=10) as client:
            assert client.post(f"{base}/state/mem", json=[{"key": "k", "value": 1}]).is_success
            stale = {"key": "k", "value": 2, "etag": "not-the-etag"}
            started = time.monotonic()
            conflict = client.post(f"{base}/state/mem", json=[stale])
            assert conflict.status_code == 409
            assert time.monotonic() - started < 1.0  # answered at once
            started = time.monotonic()
            deleted = client.delete(f"{base}/state/mem/k", headers={"If-Match": "not-the-etag"})
            assert deleted.status_code == 409
            assert time.monotonic() - started >= 1.0  # daprd 1.18 retries the delete
            started = time.monotonic()
            body = {"operations": [{"operation": "upsert", "request": stale}]}
            failed = client.post(f"{base}/state/mem/transaction", json=body)
            assert failed.status_code == 500
            assert failed.json()["errorCode"] == "ERR_STATE_TRANSACTION"
            assert time.monotonic() - started >= 1.0  # daprd retries Multi as it is


@pytest.mark.sidecar_only("needs a slow store: the local sidecar's fault injection")
def test_timeout_policy_cuts_a_slow_state_read(
    bg: BackgroundLoop, cluster: Cluster, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    slow_reads = FaultPlan(
        state=StateFaults(delay=1.0, delay_seconds=(0.6, 0.6), operations=frozenset({"get"}))
    )
    with _sidecar(bg, cluster, tmp_path, None, slow_reads) as sidecar:
        assert httpx.get(f"{_base(sidecar)}/state/mem/k", timeout=5).status_code == 204
    short = _resiliency(
        "{timeouts: {short: 100ms}}", "{components: {mem: {outbound: {timeout: short}}}}"
    )
    with _sidecar(bg, cluster, tmp_path, short, slow_reads) as sidecar:
        started = time.monotonic()
        cut = httpx.get(f"{_base(sidecar)}/state/mem/k", timeout=5)
        assert time.monotonic() - started < 0.6
        assert cut.status_code == 500
        assert cut.json()["errorCode"] == "ERR_STATE_GET"
        assert "context deadline exceeded" in cut.json()["message"]
        monkeypatch.setattr(settings, "DAPR_HTTP_PORT", sidecar.http_port)
        client = DaprClient(address=f"127.0.0.1:{sidecar.grpc_port}")
        try:
            with pytest.raises(DaprGrpcError) as info:
                client.get_state("mem", "k")
            assert grpc_code(info.value) == grpc.StatusCode.INTERNAL
        finally:
            close_client(client)


@pytest.mark.sidecar_only("needs a failing store: the local sidecar's fault injection")
def test_circuit_breaker_opens_after_the_trip_condition(
    bg: BackgroundLoop, cluster: Cluster, tmp_path: Path
) -> None:
    failing = FaultPlan(state=StateFaults(fail=1.0, operations=frozenset({"get"})))
    breaker = _resiliency(
        "{circuitBreakers: {cb: {maxRequests: 1, timeout: 60s, trip: consecutiveFailures > 1}}}",
        "{components: {mem: {outbound: {circuitBreaker: cb}}}}",
    )
    with _sidecar(bg, cluster, tmp_path, breaker, failing) as sidecar, httpx.Client() as client:
        answers = [client.get(f"{_base(sidecar)}/state/mem/k") for _ in range(3)]
    assert [a.status_code for a in answers] == [500, 500, 500]
    messages = [a.json()["message"] for a in answers]
    assert all("injected fault" in m for m in messages[:2])
    assert "circuit breaker is open" in messages[2]  # the store was not called


def test_circuit_breaker_half_opens_after_its_timeout() -> None:
    now = [0.0]
    breaker = CircuitBreaker(
        CircuitBreakerPolicy("cb", max_requests=2, timeout=10.0, trip="consecutiveFailures > 0"),
        clock=lambda: now[0],
    )
    breaker.acquire()
    breaker.record(False)
    assert breaker.state == "open"
    now[0] = 10.0
    breaker.acquire()
    breaker.acquire()
    assert breaker.state == "half-open"
    with pytest.raises(Exception, match="too many requests"):
        breaker.acquire()
    breaker.record(True)
    breaker.record(True)
    assert breaker.state == "closed"


class _FlakyBroker(Broker):
    """Fails the first ``failures`` publishes."""

    def __init__(self, failures: int) -> None:
        self.failures = failures
        self.published: list[bytes] = []

    async def publish(self, topic: str, data: bytes, metadata: Mapping[str, str]) -> None:
        if self.failures > 0:
            self.failures -= 1
            raise BrokerError("broker unavailable")
        self.published.append(data)

    async def subscribe(self, topic: str, handler: Handler) -> TopicSubscription:
        raise NotImplementedError


def test_publish_runs_under_the_pubsub_outbound_defaults(tmp_path: Path) -> None:
    (tmp_path / "r.yaml").write_text(
        _resiliency(
            "{retries: {DefaultPubsubComponentOutboundRetryPolicy: "
            "{policy: constant, duration: 1ms, maxRetries: 2}}}",
            "{}",
        )
    )
    policies = load_resources([tmp_path], "a").outbound("bus", "pubsub")
    assert policies.retry is not None and policies.retry.max_retries == 2
    recovered = _FlakyBroker(failures=2)
    asyncio.run(
        ResilientBroker(recovered, OutboundPolicy("bus", policies, BrokerError)).publish(
            "t", b"x", {}
        )
    )
    assert recovered.published == [b"x"]
    exhausted = _FlakyBroker(failures=3)
    with pytest.raises(BrokerError):
        asyncio.run(
            ResilientBroker(exhausted, OutboundPolicy("bus", policies, BrokerError)).publish(
                "t", b"x", {}
            )
        )


def test_outbound_policy_resolution(tmp_path: Path) -> None:
    (tmp_path / "r.yaml").write_text(
        _resiliency(
            "{timeouts: {DefaultTimeoutPolicy: 9s, t: 1s}, "
            "retries: {DefaultStatestoreComponentOutboundRetryPolicy: {maxRetries: 4}, "
            "DefaultComponentRetryPolicy: {maxRetries: 1}}}",
            "{components: {named: {outbound: {timeout: t}}, inonly: {inbound: {timeout: t}}}}",
        )
    )
    resources = load_resources([tmp_path], "a")
    store = resources.outbound("other", "state")
    assert store.timeout == 9 and store.retry is not None and store.retry.max_retries == 4
    bus = resources.outbound("other", "pubsub")
    assert bus.retry is not None and bus.retry.max_retries == 1  # DefaultComponent*
    # A component named under targets gets only what its target names, as in daprd.
    assert resources.outbound("named", "state") == TargetPolicies(timeout=1.0)
    assert not resources.outbound("inonly", "state")
