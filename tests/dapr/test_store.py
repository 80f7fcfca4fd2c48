"""The run store's encoding of state values (``executor_host._store``): every value goes
through the sidecar's HTTP state API as a JSON string holding our JSON text, so what
comes back is exactly what was written — integers above 2^53, key order and all —
whatever the sidecar does to a JSON value it decodes; values stored as raw JSON bytes
(by gRPC) still read back; ETag conflicts are ``ConflictError``.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest
from dapr.aio.clients import DaprClient
from dapr.conf import settings

from executor_host._sidecar import SidecarClient
from executor_host._store import ConflictError, RunStore
from runtime.engine import compact_json
from sidecar.runtime import Sidecar

AWKWARD: dict[str, Any] = {
    "z": 2**60 + 1,  # a double would round it
    "a": [0.1, 1e21, -0.0, 1.5e-7],
    "m": 'ünïcode \u2028 and "quotes" and \\ backslashes',
    "nested": {"y": None, "b": True, "x": {}},
}


@pytest.fixture
async def store(
    store_sidecar: Sidecar, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[tuple[RunStore, SidecarClient, str]]:
    monkeypatch.setenv("DAPR_HTTP_PORT", str(store_sidecar.http_port))
    namespace = f"store-{uuid.uuid4().hex[:8]}"
    http = SidecarClient()
    yield RunStore(http, "sharedstore", namespace), http, namespace
    await http.aclose()


async def test_a_value_reads_back_exactly_as_written(
    store: tuple[RunStore, SidecarClient, str],
) -> None:
    runs, http, namespace = store
    await runs.save_result("r1", 1, 3, 0, AWKWARD)
    back = await runs.load_result("r1", 1, 3, 0)
    assert back == AWKWARD
    assert list(back or {}) == ["z", "a", "m", "nested"]  # key order kept
    assert list((back or {})["nested"]) == ["y", "b", "x"]
    # the stored bytes are a JSON string whose content is the value's compact JSON text
    raw, _ = await http.get_state("sharedstore", f"{namespace}:result:r1:1:3:0")
    assert raw is not None and raw.startswith(b'"')
    assert json.loads(raw) == compact_json(AWKWARD)


async def test_payloads_by_reference_read_back_exactly(
    store: tuple[RunStore, SidecarClient, str],
) -> None:
    runs, _, _ = store
    texts = {"p:1": compact_json(AWKWARD), "p:2": compact_json("a plain string payload")}
    await runs.save_payloads(texts, ttl_s=60)
    assert (await runs.load_payload("p:1"))[0] == AWKWARD
    assert (await runs.load_payload("p:2"))[0] == "a plain string payload"


async def test_a_value_stored_as_raw_json_bytes_still_reads(
    store: tuple[RunStore, SidecarClient, str],
    store_sidecar: Sidecar,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    runs, _, namespace = store
    monkeypatch.setattr(settings, "DAPR_HTTP_PORT", store_sidecar.http_port)  # its health wait
    client = DaprClient(address=f"127.0.0.1:{store_sidecar.grpc_port}")
    try:
        await client.save_state(
            "sharedstore", f"{namespace}:result:r2:1:1:0", compact_json({"b": 1, "a": [2]})
        )
    finally:
        await client.close()  # type: ignore[no-untyped-call]  # untyped SDK
    assert await runs.load_result("r2", 1, 1, 0) == {"b": 1, "a": [2]}


async def test_a_write_with_a_stale_etag_is_a_conflict(
    store: tuple[RunStore, SidecarClient, str],
) -> None:
    runs, _, _ = store
    await runs._save("index", ["a"])
    _, etag = await runs._get("index")
    assert etag is not None
    await runs._save("index", ["a", "b"], etag=etag)
    with pytest.raises(ConflictError):
        await runs._save("index", ["a", "c"], etag=etag)  # the first write moved the ETag on
    assert (await runs._get("index"))[0] == ["a", "b"]
