"""Pub/sub contract (dapr-contract §3): envelopes, delivery outcomes, retries, DLQ, routing,
consumer groups, in-memory isolation. Publishes through HTTP and the SDK's gRPC client;
subscribers are FastAPI apps using the SDK's ``DaprApp``, served in this process; their
sidecars are a run template (:mod:`tests.sidecar.runs`), so the module runs on both
targets."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
import httpx
import pytest
import redis
from dapr.clients import DaprClient
from dapr.clients.exceptions import DaprGrpcError
from dapr.conf import settings

from sidecar.launcher import AppSpec, Topology
from sidecar.testing import AppServer, BackgroundLoop, wait_until
from tests.conftest import daprd_binaries
from tests.sidecar.apps.recorder import build_app, topic
from tests.sidecar.conftest import close_client, grpc_code, require_service, write_resources
from tests.sidecar.runs import DaprRun, RunApp


def _resources(run_id: str, consumer: str | None = None) -> dict[str, str]:
    """The components of one app; ``consumer`` names the Redis consumer group."""
    group = f"\n  - {{name: consumerID, value: {consumer}}}" if consumer else ""
    return {
        "redisbus.yaml": f"""
apiVersion: dapr.io/v1alpha1
kind: Component
metadata: {{name: redisbus}}
spec:
  type: pubsub.redis
  version: v1
  metadata:
  - {{name: redisHost, value: "localhost:6379"}}
  - {{name: processingTimeout, value: 60s}}{group}
""",
        "membus.yaml": """
apiVersion: dapr.io/v1alpha1
kind: Component
metadata: {name: membus}
spec: {type: pubsub.in-memory, version: v1, metadata: []}
""",
        "resiliency.yaml": """
apiVersion: dapr.io/v1alpha1
kind: Resiliency
metadata: {name: quick}
spec:
  policies:
    retries:
      quick: {policy: constant, duration: 10ms, maxRetries: 3}
  targets:
    components:
      redisbus: {inbound: {retry: quick}}
""",
        "routed.yaml": f"""
apiVersion: dapr.io/v2alpha1
kind: Subscription
metadata: {{name: routed}}
spec:
  pubsubname: redisbus
  topic: {topic(run_id, "routed")}
  routes:
    rules:
    - {{match: 'event.data.kind == "a"', path: /routed/a}}
    - {{match: 'event.data.kind.startsWith("b")', path: /routed/b}}
scopes: [sub-a-1, sub-a-2]
""",
    }


#: Subscriber apps (served in this process, one sidecar each): the two ``sub-a-*`` apps
#: share the consumer group ``sub-a`` (competing consumers), ``sub-b`` has its own.
SUBSCRIBERS = {"sub-a-1": "sub-a", "sub-a-2": "sub-a", "sub-b": None}


@dataclass
class PubSubTopology:
    run_id: str
    run: DaprRun | None  # None: a topology of the local launcher's own
    apps: dict[str, int]  # recorder name -> app port

    @property
    def started(self) -> DaprRun:
        assert self.run is not None
        return self.run

    def deliveries(self, tag: str, app: str | None = None) -> list[dict[str, Any]]:
        found: list[dict[str, Any]] = []
        with httpx.Client(timeout=5) as client:
            for name, port in self.apps.items():
                if app is None or name == app:
                    found += client.get(f"http://127.0.0.1:{port}/deliveries?tag={tag}").json()
        return found


@pytest.fixture(scope="module")
def topo(
    bg: BackgroundLoop, run_id: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[PubSubTopology]:
    require_service("Redis", 6379)
    base = tmp_path_factory.mktemp("pubsub")
    plain = write_resources(base / "resources", _resources(run_id))
    servers: list[AppServer] = []
    apps: list[RunApp] = []
    ports: dict[str, int] = {}
    try:
        for name, group in SUBSCRIBERS.items():
            server = bg.run(AppServer(build_app(run_id, name)).start())
            servers.append(server)
            ports[name] = server.port
            resources = write_resources(base / f"{name}-resources", _resources(run_id, group))
            apps.append(RunApp(name, app_port=server.port, resources=(resources,)))
        apps.append(RunApp("pub", resources=(plain,)))
        with DaprRun(apps, base / "run", bg) as run:
            yield PubSubTopology(run_id, run, ports)
    finally:
        for server in servers:
            bg.run(server.stop())


def test_replicas_of_one_app_id_share_its_consumer_group(
    bg: BackgroundLoop, run_id: str, tmp_path: Path, uid: str
) -> None:
    """Replicas of one app id (the launcher's instances, as on Kubernetes; a run template
    cannot express them): the default ``consumerID`` is the app id, so they compete."""
    require_service("Redis", 6379)
    replica_run = f"{run_id}-replicas"
    resources = write_resources(tmp_path / "resources", _resources(replica_run))
    names = ("sub-r-1", "sub-r-2")
    servers = {name: bg.run(AppServer(build_app(replica_run, name)).start()) for name in names}
    specs = [
        AppSpec(
            "sub-r", tmp_path, app_port=server.port, resources_paths=(resources,), instance=name
        )
        for name, server in servers.items()
    ]
    topology = Topology(specs, sink=lambda app, line: None, daprd=daprd_binaries())
    try:
        bg.run(topology.start())
        base = f"http://127.0.0.1:{topology.ports('sub-r-1')[0]}/v1.0"
        with httpx.Client(base_url=base, timeout=10) as client:
            for i in range(12):
                _publish(client, topic(replica_run, "orders"), {"tag": uid, "i": i})
        replicas = PubSubTopology(replica_run, None, {n: s.port for n, s in servers.items()})
        wait_until(lambda: len(replicas.deliveries(uid)) == 12, what="12 deliveries in all")
        seen = [d["event"]["data"]["i"] for d in replicas.deliveries(uid)]
        assert sorted(seen) == list(range(12))  # each message to one replica only
    finally:
        bg.run(topology.stop())
        for server in servers.values():
            bg.run(server.stop())


@pytest.fixture
def http(topo: PubSubTopology) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=topo.started.api("pub"), timeout=10) as client:
        yield client


@pytest.fixture
def sdk(topo: PubSubTopology, monkeypatch: pytest.MonkeyPatch) -> Iterator[DaprClient]:
    monkeypatch.setattr(settings, "DAPR_HTTP_PORT", topo.started.http_port("pub"))
    client = DaprClient(address=f"127.0.0.1:{topo.started.grpc_port('pub')}")
    yield client
    close_client(client)


def _publish(http: httpx.Client, t: str, data: dict[str, Any]) -> None:
    answer = http.post(f"/publish/redisbus/{t}", json=data)
    assert answer.status_code == 204, answer.text


def test_envelope_built_from_json_publish(sdk: DaprClient, topo: PubSubTopology, uid: str) -> None:
    t = topic(topo.run_id, "orders")
    sdk.publish_event(
        "redisbus", t, json.dumps({"tag": uid, "n": 1}), data_content_type="application/json"
    )
    wait_until(lambda: len(topo.deliveries(uid, "sub-b")) == 1, what="delivery to sub-b")
    (delivery,) = topo.deliveries(uid, "sub-b")
    event = delivery["event"]
    assert delivery["headers"]["content-type"] == "application/cloudevents+json"
    assert event["specversion"] == "1.0"
    assert event["source"] == "pub"
    assert event["type"] == "com.dapr.event.sent"
    assert event["datacontenttype"] == "application/json"
    assert event["topic"] == t and event["pubsubname"] == "redisbus"
    assert event["data"] == {"tag": uid, "n": 1}
    assert event["id"] and event["time"]
    for key in ("traceid", "traceparent", "tracestate"):
        assert key in event


def test_sdk_default_content_type_gives_text_plain_string(
    sdk: DaprClient, topo: PubSubTopology, uid: str
) -> None:
    t = topic(topo.run_id, "orders")
    sdk.publish_event("redisbus", t, json.dumps({"tag": uid}))
    wait_until(lambda: len(topo.deliveries("", "sub-b")) > 0)
    wait_until(
        lambda: any(
            d["event"].get("data") == json.dumps({"tag": uid}) for d in topo.deliveries("", "sub-b")
        ),
        what="text/plain delivery",
    )
    event = next(
        d["event"]
        for d in topo.deliveries("", "sub-b")
        if d["event"].get("data") == json.dumps({"tag": uid})
    )
    assert event["datacontenttype"] == "text/plain"


def test_cloudevent_body_keeps_id_and_overwrites_topic(
    http: httpx.Client, topo: PubSubTopology, uid: str
) -> None:
    t = topic(topo.run_id, "orders")
    body = {
        "id": f"ce-{uid}",
        "topic": "wrong",
        "data": {"tag": uid},
        "datacontenttype": "application/json",
    }
    answer = http.post(
        f"/publish/redisbus/{t}",
        content=json.dumps(body),
        headers={"Content-Type": "application/cloudevents+json"},
    )
    assert answer.status_code == 204
    wait_until(lambda: len(topo.deliveries(uid, "sub-b")) == 1)
    event = topo.deliveries(uid, "sub-b")[0]["event"]
    assert event["id"] == f"ce-{uid}" and event["topic"] == t
    assert event["source"] == "Dapr" and event["specversion"] == "1.0"


def test_competing_consumers_share_a_group_other_app_gets_copies(
    http: httpx.Client, topo: PubSubTopology, uid: str
) -> None:
    t = topic(topo.run_id, "orders")
    for i in range(12):
        _publish(http, t, {"tag": uid, "i": i})
    wait_until(lambda: len(topo.deliveries(uid, "sub-b")) == 12, what="12 copies to sub-b")
    wait_until(
        lambda: len(topo.deliveries(uid, "sub-a-1")) + len(topo.deliveries(uid, "sub-a-2")) == 12,
        what="12 deliveries across the sub-a replicas",
    )
    seen = [d["event"]["data"]["i"] for d in topo.deliveries(uid) if d["app"].startswith("sub-a")]
    assert sorted(seen) == list(range(12))


def test_subscriptions_recover_when_the_stream_and_its_groups_are_gone(
    http: httpx.Client, topo: PubSubTopology, uid: str
) -> None:
    """Redis restarted empty (or the stream deleted): every reader gets NOGROUP; the
    component creates its group again and goes on delivering, with no sidecar restart
    (daprd's Redis Streams component does; the local sidecar looped on NOGROUP)."""
    t = topic(topo.run_id, "orders")
    with redis.Redis() as raw:
        raw.delete(t)
    _publish(http, t, {"tag": uid, "i": 1})
    wait_until(
        lambda: len(topo.deliveries(uid, "sub-b")) == 1,
        within=20,
        what="a delivery to sub-b after its stream was deleted",
    )
    wait_until(
        lambda: len(topo.deliveries(uid, "sub-a-1")) + len(topo.deliveries(uid, "sub-a-2")) == 1,
        within=20,
        what="a delivery to one sub-a replica after the stream was deleted",
    )


def test_retry_status_is_redelivered_until_success(
    http: httpx.Client, topo: PubSubTopology, uid: str
) -> None:
    _publish(
        http, topic(topo.run_id, "orders"), {"tag": uid, "script": ["retry", "500", "success"]}
    )
    wait_until(lambda: len(topo.deliveries(uid, "sub-b")) == 3, what="three attempts")
    assert [d["attempt"] for d in topo.deliveries(uid, "sub-b")] == [1, 2, 3]


def test_404_is_dropped_without_retry(http: httpx.Client, topo: PubSubTopology, uid: str) -> None:
    _publish(http, topic(topo.run_id, "orders"), {"tag": uid, "script": ["404", "success"]})
    _publish(http, topic(topo.run_id, "orders"), {"tag": f"{uid}-after"})
    wait_until(lambda: len(topo.deliveries(f"{uid}-after", "sub-b")) == 1)
    assert len(topo.deliveries(uid, "sub-b")) == 1


def test_failures_after_retry_budget_go_to_dead_letter_topic(
    http: httpx.Client, topo: PubSubTopology, uid: str
) -> None:
    _publish(http, topic(topo.run_id, "poison"), {"tag": uid, "script": ["500"]})
    wait_until(
        lambda: any(d["path"] == "/dlq" for d in topo.deliveries(uid, "sub-b")), what="DLQ delivery"
    )
    tries = [d for d in topo.deliveries(uid, "sub-b") if d["path"] == "/poison"]
    assert len(tries) == 4  # first try + maxRetries 3
    dead = next(d for d in topo.deliveries(uid, "sub-b") if d["path"] == "/dlq")
    assert dead["event"]["id"] == tries[0]["event"]["id"]  # the original message


def test_drop_status_goes_to_dead_letter_without_retry(
    http: httpx.Client, topo: PubSubTopology, uid: str
) -> None:
    _publish(http, topic(topo.run_id, "poison"), {"tag": uid, "script": ["drop"]})
    wait_until(lambda: any(d["path"] == "/dlq" for d in topo.deliveries(uid, "sub-b")))
    assert len([d for d in topo.deliveries(uid, "sub-b") if d["path"] == "/poison"]) == 1


def test_unknown_status_string_is_retried(
    http: httpx.Client, topo: PubSubTopology, uid: str
) -> None:
    _publish(http, topic(topo.run_id, "orders"), {"tag": uid, "script": ["lowercase", "empty"]})
    wait_until(lambda: len(topo.deliveries(uid, "sub-b")) == 2)


def test_declarative_routing_rules(http: httpx.Client, topo: PubSubTopology, uid: str) -> None:
    t = topic(topo.run_id, "routed")
    _publish(http, t, {"tag": uid, "kind": "a"})
    _publish(http, t, {"tag": uid, "kind": "bee"})
    _publish(http, t, {"tag": uid, "kind": "zzz"})  # no rule matches: dropped as success
    _publish(http, t, {"tag": f"{uid}-end", "kind": "a"})
    wait_until(lambda: len(topo.deliveries(f"{uid}-end")) == 1)
    wait_until(lambda: len(topo.deliveries(uid)) == 2)
    paths = sorted(d["path"] for d in topo.deliveries(uid))
    assert paths == ["/routed/a", "/routed/b"]
    assert all(d["app"].startswith("sub-a") for d in topo.deliveries(uid))


def test_raw_payload_publish_and_subscription(
    http: httpx.Client, topo: PubSubTopology, uid: str
) -> None:
    answer = http.post(
        f"/publish/redisbus/{topic(topo.run_id, 'raw')}?metadata.rawPayload=true",
        content=f"raw-{uid}".encode(),
        headers={"Content-Type": "application/octet-stream"},
    )
    assert answer.status_code == 204
    expected = base64.b64encode(f"raw-{uid}".encode()).decode()
    wait_until(
        lambda: any(
            d["event"].get("data_base64") == expected for d in topo.deliveries("", "sub-b")
        ),
        what="raw delivery",
    )
    event = next(
        d["event"]
        for d in topo.deliveries("", "sub-b")
        if d["event"].get("data_base64") == expected
    )
    assert event["datacontenttype"] == "application/octet-stream" and event["source"] == "Dapr"


def test_in_memory_pubsub_is_private_to_one_sidecar(
    http: httpx.Client, topo: PubSubTopology, uid: str
) -> None:
    t = topic(topo.run_id, "mem")
    assert http.post(f"/publish/membus/{t}", json={"tag": uid}).status_code == 204
    with httpx.Client(timeout=5) as client:
        answer = client.post(
            f"{topo.started.api('sub-b')}/publish/membus/{t}", json={"tag": f"{uid}-b"}
        )
        assert answer.status_code == 204
    wait_until(lambda: len(topo.deliveries(f"{uid}-b", "sub-b")) == 1)
    assert topo.deliveries(uid) == []


def test_publish_errors(http: httpx.Client, sdk: DaprClient, topo: PubSubTopology) -> None:
    unknown = http.post("/publish/nope/t", json={})
    assert unknown.status_code == 404
    assert unknown.json()["errorCode"] == "ERR_PUBSUB_NOT_FOUND"
    bad_raw = http.post("/publish/redisbus/t?metadata.rawPayload=maybe", json={})
    assert bad_raw.status_code == 400
    with pytest.raises(DaprGrpcError) as info:
        sdk.publish_event("nope", "t", "x")
    assert grpc_code(info.value) == grpc.StatusCode.INVALID_ARGUMENT


def test_bulk_publish(http: httpx.Client, topo: PubSubTopology, uid: str) -> None:
    t = topic(topo.run_id, "orders")
    entries = [
        {"entryId": str(i), "event": {"tag": uid, "i": i}, "contentType": "application/json"}
        for i in range(20)
    ]
    assert http.post(f"/publish/bulk/redisbus/{t}", json=entries).status_code == 204
    wait_until(lambda: len(topo.deliveries(uid, "sub-b")) == 20)
    # one stream entry per event; daprd publishes a bulk request's entries concurrently,
    # so their order on the stream is not the request's
    with redis.Redis() as raw:
        stream = [json.loads(f[b"data"]) for _, f in raw.xrange(t)]
    mine = [
        e["data"]["i"]
        for e in stream
        if isinstance(e.get("data"), dict) and e["data"].get("tag") == uid
    ]
    assert sorted(mine) == list(range(20))
    duplicate = http.post(f"/publish/bulk/redisbus/{t}", json=[entries[0], entries[0]])
    assert duplicate.status_code == 400
