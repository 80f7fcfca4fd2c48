"""State API contract (dapr-contract §2): HTTP and the SDK's gRPC calls, per store."""

from __future__ import annotations

import json
from collections.abc import Iterator

import grpc
import httpx
import pytest
import redis
from dapr.clients import DaprClient
from dapr.clients.exceptions import DaprGrpcError
from dapr.clients.grpc._request import TransactionalStateOperation, TransactionOperationType
from dapr.clients.grpc._state import StateItem
from dapr.conf import settings

from tests.sidecar.conftest import Target, close_client, grpc_code, require_service

STORES = {"memstore": "memory", "redisstore": "redis", "pgstore": "postgres"}


@pytest.fixture(params=sorted(STORES))
def store(request: pytest.FixtureRequest, state_target: Target) -> str:
    kind = STORES[request.param]
    if kind == "redis":
        require_service("Redis", 6379)
    if kind == "postgres":
        require_service("PostgreSQL", 5432)
    return str(request.param)


@pytest.fixture
def http(state_target: Target) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=f"{state_target.http}/v1.0", timeout=10) as client:
        yield client


@pytest.fixture
def sdk(state_target: Target, monkeypatch: pytest.MonkeyPatch) -> Iterator[DaprClient]:
    # dapr 1.18 reads its settings once at import; point the health wait at the target.
    monkeypatch.setattr(settings, "DAPR_HTTP_PORT", state_target.http_port)
    client = DaprClient(address=state_target.grpc)
    yield client
    close_client(client)


def _etag(http: httpx.Client, store: str, key: str) -> str:
    response = http.get(f"/state/{store}/{key}")
    assert response.status_code == 200
    return response.headers["etag"]


def test_save_then_get_returns_reserialised_json_and_etag(
    http: httpx.Client, store: str, uid: str
) -> None:
    saved = http.post(f"/state/{store}", json=[{"key": uid, "value": "x"}])
    assert saved.status_code == 204
    got = http.get(f"/state/{store}/{uid}")
    assert got.status_code == 200
    assert got.content == b'"x"'
    assert got.headers["content-type"].startswith("application/json")
    assert got.headers["etag"]


def test_missing_key_is_204_without_etag(http: httpx.Client, store: str, uid: str) -> None:
    got = http.get(f"/state/{store}/{uid}-missing")
    assert got.status_code == 204
    assert "etag" not in got.headers


def test_single_save_etag_conflict_is_409(http: httpx.Client, store: str, uid: str) -> None:
    http.post(f"/state/{store}", json=[{"key": uid, "value": 1}])
    etag = _etag(http, store, uid)
    assert (
        http.post(f"/state/{store}", json=[{"key": uid, "value": 2, "etag": etag}]).status_code
        == 204
    )
    stale = http.post(f"/state/{store}", json=[{"key": uid, "value": 3, "etag": etag}])
    assert stale.status_code == 409
    assert stale.json()["errorCode"] == "ERR_STATE_SAVE"
    assert http.get(f"/state/{store}/{uid}").json() == 2


def test_delete_etag_conflict_is_409_and_missing_delete_is_204(
    http: httpx.Client, store: str, uid: str
) -> None:
    http.post(f"/state/{store}", json=[{"key": uid, "value": 1}])
    etag = _etag(http, store, uid)
    http.post(f"/state/{store}", json=[{"key": uid, "value": 2}])
    stale = http.delete(f"/state/{store}/{uid}", headers={"If-Match": etag})
    assert stale.status_code == 409
    assert stale.json()["errorCode"] == "ERR_STATE_DELETE"
    assert http.delete(f"/state/{store}/{uid}").status_code == 204
    assert http.delete(f"/state/{store}/{uid}").status_code == 204


def test_transaction_conflict_is_500_err_state_transaction(
    http: httpx.Client, store: str, uid: str
) -> None:
    http.post(f"/state/{store}", json=[{"key": uid, "value": 1}])
    etag = _etag(http, store, uid)
    http.post(f"/state/{store}", json=[{"key": uid, "value": 2}])
    body = {
        "operations": [
            {"operation": "upsert", "request": {"key": f"{uid}-other", "value": "o"}},
            {"operation": "upsert", "request": {"key": uid, "value": 3, "etag": etag}},
        ]
    }
    answer = http.post(f"/state/{store}/transaction", json=body)
    assert answer.status_code == 500
    assert answer.json()["errorCode"] == "ERR_STATE_TRANSACTION"
    if STORES[store] == "redis":
        # Redis's own script error: nothing in it says "etag" (dapr-contract §2.4), so a
        # caller can tell a conflict only by reading the key again
        assert "etag" not in answer.json()["message"].lower()
    other = http.get(f"/state/{store}/{uid}-other")
    if STORES[store] == "redis":
        assert other.status_code == 200  # MULTI/EXEC without rollback (§2.5)
    else:
        assert other.status_code == 204  # atomic


def test_bodies_over_the_4_mib_limit_fail_as_on_daprd(
    http: httpx.Client, store: str, uid: str
) -> None:
    """daprd's ``--max-body-size`` (4 MiB by default) bounds every API's request body;
    each API reports "stream too large" in its own error."""
    big = "x" * (4 << 20)
    save = http.post(f"/state/{store}", json=[{"key": uid, "value": big}])
    assert (save.status_code, save.json()["errorCode"]) == (400, "ERR_MALFORMED_REQUEST")
    assert "stream too large" in save.json()["message"]
    ops = {"operations": [{"operation": "upsert", "request": {"key": uid, "value": big}}]}
    tx = http.post(f"/state/{store}/transaction", json=ops)
    assert (tx.status_code, tx.json()["errorCode"]) == (400, "ERR_MALFORMED_REQUEST")
    assert http.get(f"/state/{store}/{uid}").status_code == 204  # nothing written
    just_under = "x" * ((4 << 20) - 200)
    ok = http.post(f"/state/{store}", json=[{"key": uid, "value": just_under}])
    assert ok.status_code == 204


def test_transaction_applies_upserts_and_deletes(http: httpx.Client, store: str, uid: str) -> None:
    http.post(f"/state/{store}", json=[{"key": f"{uid}-d", "value": 0}])
    body = {
        "operations": [
            {"operation": "upsert", "request": {"key": f"{uid}-u", "value": {"n": 1}}},
            {"operation": "delete", "request": {"key": f"{uid}-d"}},
        ]
    }
    assert http.post(f"/state/{store}/transaction", json=body).status_code == 204
    assert http.get(f"/state/{store}/{uid}-u").json() == {"n": 1}
    assert http.get(f"/state/{store}/{uid}-d").status_code == 204
    assert http.post(f"/state/{store}/transaction", json={"operations": []}).status_code == 204


def test_etag_on_missing_key_and_first_write_follow_the_store(
    http: httpx.Client, store: str, uid: str
) -> None:
    kind = STORES[store]
    fake = "1" if kind == "redis" else "5f1b7a3e-0000-4000-8000-000000000000"
    created = http.post(f"/state/{store}", json=[{"key": uid, "value": 1, "etag": fake}])
    assert created.status_code == (204 if kind == "redis" else 409)
    http.post(f"/state/{store}", json=[{"key": f"{uid}-fw", "value": 1}])
    first = http.post(
        f"/state/{store}",
        json=[{"key": f"{uid}-fw", "value": 2, "options": {"concurrency": "first-write"}}],
    )
    assert first.status_code == {"memory": 409, "redis": 204, "postgres": 500}[kind]


def test_redis_rejects_non_integer_etag_with_400(http: httpx.Client, uid: str) -> None:
    require_service("Redis", 6379)
    answer = http.post("/state/redisstore", json=[{"key": uid, "value": 1, "etag": "abc"}])
    assert answer.status_code == 400
    assert answer.json()["errorCode"] == "ERR_STATE_SAVE"


def test_illegal_key_unknown_store_and_bad_bodies(http: httpx.Client, uid: str) -> None:
    illegal = http.post("/state/memstore", json=[{"key": "a||b", "value": 1}])
    assert illegal.status_code == 400
    assert illegal.json()["errorCode"] == "ERR_MALFORMED_REQUEST"
    unknown = http.post("/state/nope", json=[{"key": uid, "value": 1}])
    assert unknown.status_code == 400
    assert unknown.json()["errorCode"] == "ERR_STATE_STORE_NOT_FOUND"
    for body in (b"{not json", b'{"key": 1}', b'[{"value": 1}]', b"[1]"):
        bad = http.post("/state/memstore", content=body)
        assert bad.status_code == 400, body
        assert bad.json()["errorCode"] == "ERR_MALFORMED_REQUEST"
    op = http.post(
        "/state/memstore/transaction",
        json={"operations": [{"operation": "merge", "request": {"key": uid}}]},
    )
    assert op.status_code == 400
    assert op.json()["errorCode"] == "ERR_NOT_SUPPORTED_STATE_OPERATION"


def test_bulk_get_answers_every_key_with_a_data_field(
    http: httpx.Client, store: str, uid: str
) -> None:
    """One item per requested key; the order is the store's (daprd on PostgreSQL answers
    a bulk get in its own order, not the request's), so callers match items by key."""
    http.post(f"/state/{store}", json=[{"key": f"{uid}-a", "value": {"v": 1}}])
    answer = http.post(f"/state/{store}/bulk", json={"keys": [f"{uid}-none", f"{uid}-a"]})
    assert answer.status_code == 200
    items = {item["key"]: item for item in answer.json()}
    assert set(items) == {f"{uid}-none", f"{uid}-a"}
    missing, found = items[f"{uid}-none"], items[f"{uid}-a"]
    assert missing == {"key": f"{uid}-none"}
    assert found["key"] == f"{uid}-a" and found["data"] == {"v": 1} and found["etag"]


def test_ttl_expire_time_metadata_on_memory(http: httpx.Client, uid: str) -> None:
    http.post(
        "/state/memstore", json=[{"key": uid, "value": 1, "metadata": {"ttlInSeconds": "60"}}]
    )
    got = http.get(f"/state/memstore/{uid}")
    assert got.headers["metadata.ttlExpireTime"].endswith("Z")


def test_key_prefix_default_app_id_and_name(http: httpx.Client, uid: str) -> None:
    require_service("Redis", 6379)
    http.post("/state/redisstore", json=[{"key": uid, "value": 1}])
    http.post("/state/sharedstore", json=[{"key": uid, "value": 2}])
    with redis.Redis() as raw:
        assert raw.hget(f"contract||{uid}", "data") == b"1"
        assert raw.hget(f"sharedstore||{uid}", "data") == b"2"


# -- the official SDK over gRPC -------------------------------------------------------------


def test_sdk_roundtrip_bytes_unchanged(
    sdk: DaprClient, http: httpx.Client, store: str, uid: str
) -> None:
    sdk.save_state(store, uid, json.dumps({"a": [1, 2]}))
    got = sdk.get_state(store, uid)
    assert json.loads(got.data) == {"a": [1, 2]}
    assert got.etag
    assert http.get(f"/state/{store}/{uid}").json() == {"a": [1, 2]}
    missing = sdk.get_state(store, f"{uid}-missing")
    assert missing.data == b"" and missing.etag == ""
    bulk = sdk.get_bulk_state(store, [uid, f"{uid}-missing"]).items
    assert [i.key for i in bulk] == [uid, f"{uid}-missing"]


def test_sdk_conflict_codes(sdk: DaprClient, store: str, uid: str) -> None:
    sdk.save_state(store, uid, "1")
    etag = sdk.get_state(store, uid).etag
    sdk.save_state(store, uid, "2", etag=etag)
    with pytest.raises(DaprGrpcError) as single:
        sdk.save_state(store, uid, "3", etag=etag)
    assert grpc_code(single.value) == grpc.StatusCode.ABORTED
    with pytest.raises(DaprGrpcError) as deleted:
        sdk.delete_state(store, uid, etag=etag)
    assert grpc_code(deleted.value) == grpc.StatusCode.ABORTED
    ops = [TransactionalStateOperation(key=uid, data="4", etag=etag)]
    with pytest.raises(DaprGrpcError) as tx:
        sdk.execute_state_transaction(store, ops)
    assert grpc_code(tx.value) == grpc.StatusCode.INTERNAL
    with pytest.raises(DaprGrpcError) as illegal:
        sdk.save_state(store, "a||b", "1")
    assert grpc_code(illegal.value) == grpc.StatusCode.INVALID_ARGUMENT
    with pytest.raises(DaprGrpcError) as unknown:
        sdk.get_state("nope", uid)
    assert grpc_code(unknown.value) == grpc.StatusCode.INVALID_ARGUMENT


def test_sdk_transaction_and_bulk_save(sdk: DaprClient, store: str, uid: str) -> None:
    sdk.save_bulk_state(
        store, [StateItem(key=f"{uid}-1", value="1"), StateItem(key=f"{uid}-2", value="2")]
    )
    sdk.execute_state_transaction(
        store,
        [
            TransactionalStateOperation(key=f"{uid}-1", data="10"),
            TransactionalStateOperation(
                key=f"{uid}-2", data="", operation_type=TransactionOperationType.delete
            ),
        ],
    )
    assert sdk.get_state(store, f"{uid}-1").data == b"10"
    assert sdk.get_state(store, f"{uid}-2").data == b""
