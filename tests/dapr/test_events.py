"""The API's event stream (Server-Sent Events) on a deployment: every event has its own
id, and a client that reconnects with the last one it got (``Last-Event-ID``, as a
browser does) gets exactly the events after it."""

from __future__ import annotations

import json
from typing import Any

import httpx

from runtime import RunStatus
from tests.dapr import workflows
from tests.dapr.conftest import Deployment

Sent = list[tuple[str, dict[str, Any]]]


async def _read(
    client: httpx.AsyncClient, run_id: str, *, last_event_id: str | None = None, limit: int = -1
) -> Sent:
    """(id, event) of the events the stream sends, to its end or to ``limit`` events
    (then the client drops the connection)."""
    headers = {"Last-Event-ID": last_event_id} if last_event_id is not None else {}
    sent: Sent = []
    fields: dict[str, str] = {}
    async with client.stream("GET", f"/runs/{run_id}/events", headers=headers) as resp:
        assert resp.status_code == 200, await resp.aread()
        async for line in resp.aiter_lines():
            if line:
                name, _, value = line.partition(": ")
                fields[name] = value
                continue
            sent.append((fields["id"], json.loads(fields["data"])))
            assert fields["event"] == sent[-1][1]["type"]
            fields = {}
            if len(sent) == limit:
                break
    return sent


async def test_a_client_that_reconnects_with_the_last_event_id_gets_exactly_the_rest(
    deployment: Deployment,
) -> None:
    result = await workflows.fan().run("a b|c|d e f|g", runtime=deployment.runtime())
    assert result.status is RunStatus.COMPLETED, result.error
    async with httpx.AsyncClient(base_url=deployment.url, headers=deployment.headers) as client:
        everything = await _read(client, result.run_id)
        ids = [i for i, _ in everything]
        positions = [tuple(int(p) for p in i.split(".")) for i in ids]
        assert positions == sorted(set(positions)), "one id per event, growing"
        assert [e["type"] for _, e in everything][-1] == "status"
        assert len({chunk for chunk, _ in positions}) > 2  # several commits' chunks

        # a browser reads some events, loses the connection, reconnects with the last id
        for cut in (1, len(everything) // 2, len(everything) - 1):
            first = await _read(client, result.run_id, limit=cut)
            rest = await _read(client, result.run_id, last_event_id=first[-1][0])
            assert first + rest == everything, cut

        # at the end of a finished run's log: 204, and a browser stops reconnecting
        done = await client.get(f"/runs/{result.run_id}/events", headers={"Last-Event-ID": ids[-1]})
        assert done.status_code == 204 and done.content == b""

        bad = await client.get(f"/runs/{result.run_id}/events", headers={"Last-Event-ID": "x"})
        assert bad.status_code == 400 and bad.json()["title"] == "Invalid Last-Event-ID"
