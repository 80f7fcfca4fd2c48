"""The result path and the activation events: a result is serialised once and refused
before sending when too large; an activation event names its executor actor, and a
host forwards the envelope's text to it as delivered."""

from __future__ import annotations

import json
from typing import Any, cast

import pytest
from dapr.actor.id import ActorId
from dapr.actor.runtime._type_information import ActorTypeInformation
from dapr.actor.runtime.context import ActorRuntimeContext

from executor_host._actors import (
    COORDINATOR_TYPE,
    ExecutorActor,
    ExecutorDeps,
    ResultReporter,
    ResultTooLarge,
    executor_actor_class,
)
from executor_host._bus import CE_JSON, Bus, forwardable
from executor_host._pool import PoolHost
from executor_host._problems import Problem
from executor_host._serializer import EnvelopeSerializer
from executor_host._settings import Settings
from executor_host._sidecar import ActorInvokeError, SidecarClient
from executor_host.protocol import ActivationEnvelope, ResultEnvelope, activation_topic
from runtime.registry import WorkflowRegistry


class Recorder(SidecarClient):
    """A sidecar client that keeps what it is asked to publish and invoke."""

    def __init__(self) -> None:
        super().__init__()
        self.published: list[tuple[str, bytes]] = []
        self.invoked: list[tuple[str, str, str, bytes]] = []

    async def publish(self, pubsub: str, topic: str, body: bytes, content_type: str) -> None:
        self.published.append((topic, body))

    async def invoke_json(self, actor_type: str, actor_id: str, method: str, data: bytes) -> Any:
        self.invoked.append((actor_type, actor_id, method, data))
        return {"accepted": True}


def _result(text: str) -> ResultEnvelope:
    return ResultEnvelope(
        run_id="r", epoch=1, superstep=1, executor_id="x", host="h", result={"text": text}
    )


def _activation(run_id: str = "run-1", index: int = 3, text: str = "hi") -> ActivationEnvelope:
    return ActivationEnvelope(
        run_id=run_id,
        workflow="w",
        signature="s",
        epoch=2,
        attempt=1,
        executor_index=index,
        activation={"executor_id": "x", "superstep": 4, "messages": [{"data": text}]},
    )


async def test_a_result_goes_to_its_runs_coordinator_actor_serialised_once() -> None:
    sidecar = Recorder()
    await ResultReporter(sidecar, max_bytes=2000)(_result("é" * 100))
    ((actor_type, actor_id, method, data),) = sidecar.invoked
    assert (actor_type, actor_id, method) == (COORDINATOR_TYPE, "r", "Result")
    assert len(data) <= 2000
    assert ResultEnvelope.model_validate_json(data) == _result("é" * 100)
    assert sidecar.published == [], "results no longer go over pub/sub"


async def test_a_result_over_the_limit_is_refused_and_nothing_is_sent() -> None:
    sidecar = Recorder()
    # 1,000 quotes: 1,000 characters, 2,000 bytes escaped in the envelope's JSON
    with pytest.raises(ResultTooLarge, match="superstep 1"):
        await ResultReporter(sidecar, max_bytes=2000)(_result('"' * 1000))
    assert sidecar.invoked == []


async def test_an_activation_event_names_its_actor_and_forwards_as_published() -> None:
    sidecar = Recorder()
    env = _activation(text='ünïcode "quoted" \u2028')
    await Bus(sidecar, "pubsub", "api", "ns").publish_activation(env, "gpu")
    ((topic, body),) = sidecar.published
    assert topic == activation_topic("gpu", "ns")
    assert json.loads(body)["subject"] == "run-1:3"
    forwarded = forwardable({"content-type": CE_JSON}, body)
    assert forwarded is not None
    actor_id, data = forwarded
    assert actor_id == "run-1:3"
    assert ActivationEnvelope.model_validate_json(data) == env


def _event(**overrides: Any) -> bytes:
    event = {
        "specversion": "1.0",
        "id": "i",
        "source": "s",
        "type": "t",
        "subject": "run-1:3",
        "datacontenttype": "application/json",
        "data": '{"kind": "activation"}',
    }
    event.update(overrides)
    return json.dumps({k: v for k, v in event.items() if v is not None}).encode()


@pytest.mark.parametrize(
    ("headers", "body"),
    [
        ({"content-type": "application/json"}, _event()),  # not structured mode
        ({"content-type": CE_JSON}, b"{not json"),
        ({"content-type": CE_JSON}, b"[1]"),
        ({"content-type": CE_JSON}, _event(specversion="0.3")),
        ({"content-type": CE_JSON}, _event(subject=None)),
        ({"content-type": CE_JSON}, _event(subject="../x:1")),  # not an actor id
        ({"content-type": CE_JSON}, _event(subject="run-1")),  # no executor index
        ({"content-type": CE_JSON}, _event(data={"kind": "activation"})),  # not text
        ({"content-type": CE_JSON}, _event(id="")),
        ({"content-type": CE_JSON}, _event(data_base64="e30=", data=None)),
        # a lone surrogate cannot be forwarded as UTF-8: read the long way
        ({"content-type": CE_JSON}, _event().replace(b"activation", b"\\ud800")),
    ],
)
def test_any_other_event_is_read_whole_instead(headers: dict[str, str], body: bytes) -> None:
    assert forwardable(headers, body) is None


def test_the_subject_and_data_of_a_well_formed_event() -> None:
    assert forwardable({"content-type": CE_JSON}, _event()) == (
        "run-1:3",
        b'{"kind": "activation"}',
    )


# -- a host's delivery: forwarded as it came ------------------------------------------------
class Executing(Recorder):
    """A sidecar whose executor actor answers ``answer``, or fails."""

    def __init__(self, answer: Any = None, fail: bool = False) -> None:
        super().__init__()
        self.answer = {"duplicate": False} if answer is None else answer
        self.fail = fail

    async def invoke_json(self, actor_type: str, actor_id: str, method: str, data: bytes) -> Any:
        self.invoked.append((actor_type, actor_id, method, data))
        if self.fail:
            raise ActorInvokeError("the sidecar is gone", None)
        return self.answer


def _pool(sidecar: SidecarClient, *, ack_on_receipt: bool = False) -> PoolHost:
    settings = Settings(app_id="superstep-executor-default", workflows=())
    pool = PoolHost(
        "default",
        settings,
        WorkflowRegistry({}),
        route="/events/activations",
        own_host_id=lambda s: s.app_id,
        ack_on_receipt=ack_on_receipt,
    )
    pool._sidecar = sidecar
    return pool


async def _published(env: ActivationEnvelope) -> bytes:
    publisher = Recorder()
    await Bus(publisher, "pubsub", "api", "ns").publish_activation(env, "default")
    return publisher.published[0][1]


async def test_a_host_forwards_the_envelope_text_to_the_actor_the_subject_names() -> None:
    env = _activation(text="x" * 50)
    body = await _published(env)
    sidecar = Executing()
    answer = await _pool(sidecar).take_activation({"content-type": CE_JSON}, body)
    assert answer == {"status": "SUCCESS"}
    ((actor_type, actor_id, method, data),) = sidecar.invoked
    assert (actor_type, actor_id, method) == ("superstep-executor-default", "run-1:3", "Execute")
    assert data == json.loads(body)["data"].encode(), "the delivered text, not re-encoded"


async def test_another_producers_event_is_read_whole_and_sent_to_the_right_actor() -> None:
    # binary mode (the envelope as the body, attributes in headers): nothing to forward
    env = _activation(run_id="run-2", index=7)
    headers = {
        "content-type": "application/json",
        "ce-specversion": "1.0",
        "ce-id": "i",
        "ce-source": "s",
        "ce-type": "t",
    }
    sidecar = Executing()
    answer = await _pool(sidecar).take_activation(headers, env.model_dump_json().encode())
    assert answer == {"status": "SUCCESS"}
    ((_, actor_id, _, data),) = sidecar.invoked
    assert actor_id == "run-2:7"
    assert ActivationEnvelope.model_validate_json(data) == env


async def test_an_envelope_the_actor_refuses_is_dropped_with_a_404_problem() -> None:
    sidecar = Executing(answer={"malformed": "not an ActivationEnvelope: run_id missing"})
    with pytest.raises(Problem) as caught:
        await _pool(sidecar).take_activation({"content-type": CE_JSON}, _event())
    assert caught.value.status == 404 and caught.value.title == "Malformed event"
    assert "run_id missing" in caught.value.detail


async def test_an_actor_call_that_fails_asks_for_the_delivery_again() -> None:
    sidecar = Executing(fail=True)
    answer = await _pool(sidecar).take_activation({"content-type": CE_JSON}, _event())
    assert answer == {"status": "RETRY"}


# -- the executor actor checks what it is forwarded ------------------------------------------
def _executor(actor_id: str) -> ExecutorActor:
    cls = executor_actor_class("default")
    serializer = EnvelopeSerializer()
    ctx = ActorRuntimeContext(
        ActorTypeInformation.create(cls), serializer, serializer, cast(Any, None)
    )
    deps = cast(ExecutorDeps, None)  # never reached: each call below is refused first
    return cls(ctx, ActorId(actor_id), deps)


async def test_the_executor_actor_refuses_another_actors_activation() -> None:
    answer = await _executor("run-1:4").execute(_activation(index=3).model_dump(mode="json"))
    assert answer == {"malformed": "the activation of 'run-1:3' was sent to actor 'run-1:4'"}


@pytest.mark.parametrize(
    ("body", "why"),
    [
        (b"[1", "the body is not JSON"),
        (b'{"run_id": "r"}', "not an ActivationEnvelope"),
        (b"[]", "not an ActivationEnvelope"),
    ],
)
async def test_the_executor_actor_refuses_a_body_that_is_no_envelope(body: bytes, why: str) -> None:
    payload = EnvelopeSerializer().deserialize(body, dict[str, Any])
    answer = await _executor("r:0").execute(payload)
    assert answer["malformed"].startswith(why)
