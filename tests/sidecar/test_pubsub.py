"""Pub/sub contract (dapr-contract §3): envelopes, delivery outcomes, retries, DLQ, routing,
consumer groups, in-memory isolation. Publishes through HTTP and the SDK's gRPC client;
subscribers are FastAPI apps using the SDK's ``DaprApp``."""

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

from sidecar.cluster import Cluster
from sidecar.runtime import Sidecar, SidecarOptions
from sidecar.testing import AppServer, BackgroundLoop, start_sidecar, wait_until
from tests.sidecar.apps.recorder import build_app, topic
from tests.sidecar.conftest import close_client, grpc_code, require_service, write_resources


def _resources(run_id: str) -> dict[str, str]:
    return {
        "redisbus.yaml": """
apiVersion: dapr.io/v1alpha1
kind: Component
metadata: {name: redisbus}
spec:
  type: pubsub.redis
  version: v1
  metadata:
  - {name: redisHost, value: "localhost:6379"}
  - {name: processingTimeout, value: 60s}
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
scopes: [sub-a]
""",
    }


@dataclass
class PubSubTopology:
    run_id: str
    publisher: Sidecar
    apps: dict[str, int]  # recorder name -> app port

    def deliveries(self, tag: str, app: str | None = None) -> list[dict[str, Any]]:
        found: list[dict[str, Any]] = []
        with httpx.Client(timeout=5) as client:
            for name, port in self.apps.items():
                if app is None or name == app:
                    found += client.get(f"http://127.0.0.1:{port}/deliveries?tag={tag}").json()
        return found


@pytest.fixture(scope="module")
def topo(
    bg: BackgroundLoop, cluster: Cluster, run_id: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[PubSubTopology]:
    require_service("Redis", 6379)
    resources: Path = write_resources(tmp_path_factory.mktemp("pubsub"), _resources(run_id))
    paths = (resources,)
    servers: list[AppServer] = []
    sidecars: list[Sidecar] = []
    apps: dict[str, int] = {}
    for app_id, name in (("sub-a", "sub-a-1"), ("sub-a", "sub-a-2"), ("sub-b", "sub-b")):
        server = bg.run(AppServer(build_app(run_id, name)).start())
        servers.append(server)
        apps[name] = server.port
        options = SidecarOptions(app_id=app_id, resources_paths=paths, app_port=server.port)
        sidecars.append(bg.run(start_sidecar(options, cluster)))
    publisher = bg.run(start_sidecar(SidecarOptions(app_id="pub", resources_paths=paths), cluster))
    sidecars.append(publisher)
    yield PubSubTopology(run_id, publisher, apps)
    for sidecar in sidecars:
        bg.run(sidecar.stop())
    for server in servers:
        bg.run(server.stop())


@pytest.fixture
def http(topo: PubSubTopology) -> Iterator[httpx.Client]:
    base = f"http://127.0.0.1:{topo.publisher.http_port}/v1.0"
    with httpx.Client(base_url=base, timeout=10) as client:
        yield client


@pytest.fixture
def sdk(topo: PubSubTopology, monkeypatch: pytest.MonkeyPatch) -> Iterator[DaprClient]:
    monkeypatch.setattr(settings, "DAPR_HTTP_PORT", topo.publisher.http_port)
    client = DaprClient(address=f"127.0.0.1:{topo.publisher.grpc_port}")
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
    sub_b = f"http://127.0.0.1:{_sidecar_port(topo, 'sub-b')}/v1.0"
    with httpx.Client(timeout=5) as client:
        assert (
            client.post(f"{sub_b}/publish/membus/{t}", json={"tag": f"{uid}-b"}).status_code == 204
        )
    wait_until(lambda: len(topo.deliveries(f"{uid}-b", "sub-b")) == 1)
    assert topo.deliveries(uid) == []


def _sidecar_port(topo: PubSubTopology, app_id: str) -> int:

    cluster = topo.publisher.cluster
    sidecar: Sidecar = cluster.sidecars[app_id][0]
    return sidecar.http_port


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
    # one stream entry per event, in the order of the request (one pipelined round trip)
    with redis.Redis() as raw:
        stream = [json.loads(f[b"data"]) for _, f in raw.xrange(t)]
    mine = [
        e["data"]["i"]
        for e in stream
        if isinstance(e.get("data"), dict) and e["data"].get("tag") == uid
    ]
    assert mine == list(range(20))
    duplicate = http.post(f"/publish/bulk/redisbus/{t}", json=[entries[0], entries[0]])
    assert duplicate.status_code == 400
