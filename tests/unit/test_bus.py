"""The bus's result events: made once, and refused before sending when too large."""

from __future__ import annotations

import json

import pytest

from executor_host._bus import Bus, ResultTooLarge
from executor_host._sidecar import SidecarClient
from executor_host.protocol import ResultEnvelope, results_topic


class Recorder(SidecarClient):
    """A sidecar client that keeps what it is asked to publish."""

    def __init__(self) -> None:
        super().__init__()
        self.published: list[tuple[str, bytes]] = []

    async def publish(self, pubsub: str, topic: str, body: bytes, content_type: str) -> None:
        self.published.append((topic, body))


def _result(text: str) -> ResultEnvelope:
    return ResultEnvelope(
        run_id="r", epoch=1, superstep=1, executor_id="x", host="h", result={"text": text}
    )


async def test_a_result_event_is_published_as_made_when_it_fits() -> None:
    sidecar = Recorder()
    bus = Bus(sidecar, "pubsub", "h", "ns", max_result_bytes=2000)
    await bus.publish_result(_result("é" * 100))
    ((topic, body),) = sidecar.published
    assert topic == results_topic("ns") and len(body) <= 2000
    assert json.loads(json.loads(body)["data"])["result"] == {"text": "é" * 100}


async def test_a_result_event_over_the_limit_is_refused_and_nothing_is_sent() -> None:
    sidecar = Recorder()
    bus = Bus(sidecar, "pubsub", "h", "ns", max_result_bytes=2000)
    # 600 quotes: 600 characters, but 2,400 bytes once escaped twice (the envelope's JSON
    # text inside the event's JSON string)
    with pytest.raises(ResultTooLarge, match="superstep 1"):
        await bus.publish_result(_result('"' * 600))
    assert sidecar.published == []
