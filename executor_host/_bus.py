"""Publishing and receiving the protocol's CloudEvents through Dapr pub/sub.

Activations are published structured (``application/cloudevents+json``) so that their
ids are ours — deterministic, see ``protocol`` — rather than fresh UUIDs. They go out
through the sidecar's HTTP publish API (``_sidecar``). Each carries the executor actor
it is for as its ``subject``: a host forwards the envelope's JSON text to that actor as
delivered (``forwardable``), and the actor reads and checks it once.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Callable, Mapping, Sequence
from typing import Any, TypeVar

import orjson
from cloudevents.conversion import to_dict
from cloudevents.http import CloudEvent, from_dict, from_http
from pydantic import BaseModel, ValidationError

from executor_host._ids import is_run_id
from executor_host._problems import Problem
from executor_host._sidecar import SidecarClient, SidecarError
from executor_host.protocol import ActivationEnvelope, activation_topic, executor_actor_id
from runtime.engine import compact_json, compact_json_bytes
from runtime.ports import PortError

__all__ = [
    "Bus",
    "MalformedEvent",
    "PublishError",
    "forwardable",
    "malformed",
    "parse_event",
    "read_event",
]

M = TypeVar("M", bound=BaseModel)

log = logging.getLogger(__name__)


class PublishError(PortError):
    """The sidecar refused to publish an event (or some events of a bulk publish)."""


CE_JSON = "application/cloudevents+json"


class MalformedEvent(ValueError):
    """A delivered event is not a CloudEvent carrying the expected envelope."""


class Bus:
    def __init__(self, sidecar: SidecarClient, pubsub: str, source: str, namespace: str) -> None:
        self._sidecar = sidecar
        self._pubsub = pubsub
        self._source = f"superstep/{source}"
        self._prefix = namespace

    async def publish_activation(self, env: ActivationEnvelope, pool: str) -> None:
        body = self._event(
            env.event_id(),
            "io.superstep.activation.v1",
            env,
            subject=executor_actor_id(env.run_id, env.executor_index),
        )
        await self._send(activation_topic(pool, self._prefix), body)

    async def publish_activations(self, envs: Sequence[ActivationEnvelope], pool: str) -> None:
        """Publish a superstep's activations of one pool, each as its own event, all at
        once. (Not Dapr's bulk publish: daprd decodes a bulk entry's JSON into untyped
        values and encodes it again, so integers beyond 2^53 lose digits and ``1.0``
        becomes ``1``; a single publish carries the event's bytes as they are.)"""
        results = await asyncio.gather(
            *(self.publish_activation(env, pool) for env in envs), return_exceptions=True
        )
        failed = [r for r in results if isinstance(r, BaseException)]
        for error in failed:
            if not isinstance(error, PublishError):
                raise error
        if failed:
            raise PublishError(
                f"{len(failed)} of {len(envs)} activation(s) not published to pool {pool!r}: "
                f"{failed[0]}"
            )

    def _event(self, event_id: str, type_: str, env: BaseModel, *, subject: str) -> bytes:
        attributes = {
            "id": event_id,
            "source": self._source,
            "type": type_,
            "subject": subject,
            "datacontenttype": "application/json",
        }
        trace = getattr(env, "traceparent", None)
        if trace:
            # the superstep span's context, where Dapr keeps a publisher's: a structured
            # event that has a traceid keeps both (dapr-contract §3.2, case A)
            attributes["traceparent"] = attributes["traceid"] = trace
        # The envelope travels as its JSON text inside a JSON string: daprd parses a
        # structured CloudEvent into an untyped map and writes it out again, which puts
        # every object's keys in sorted order (Go's encoder); a string crosses as it is,
        # so messages, outputs and their key order arrive exactly as sent.
        event = CloudEvent(attributes, compact_json(env.model_dump(mode="json")))
        return compact_json_bytes(to_dict(event))

    async def _send(self, topic: str, body: bytes) -> None:
        try:
            await self._sidecar.publish(self._pubsub, topic, body, CE_JSON)
        except SidecarError as exc:
            raise PublishError(str(exc)) from exc


_REQUIRED = ("id", "source", "type")


def _attributes(
    headers: Mapping[str, str], body: bytes, loads: Callable[[bytes], Any]
) -> dict[str, Any] | None:
    """A structured-mode JSON CloudEvent 1.0 (``application/cloudevents+json``) as
    ``loads`` reads it, when it has the attributes every event has; None otherwise."""
    if not headers.get("content-type", "").lower().startswith(CE_JSON):
        return None
    try:
        raw = loads(body)
    except ValueError:  # orjson's JSONDecodeError is one too
        return None
    if (
        not isinstance(raw, dict)
        or raw.get("specversion") != "1.0"
        or not all(isinstance(raw.get(k), str) and raw[k] for k in _REQUIRED)
    ):
        return None
    return raw


def _structured(headers: Mapping[str, str], body: bytes) -> CloudEvent | None:
    """A structured-mode JSON CloudEvent 1.0 with JSON data (what Dapr delivers) read
    with the SDK's ``from_dict``: a fifth of ``from_http``'s CPU. None for anything else
    (binary mode, ``data_base64``, another spec version, an attribute missing), which
    ``from_http`` reads or refuses.

    Parsed by the standard library, not orjson: orjson reads an integer beyond 64 bits
    as a float, without an error, and messages may carry such integers."""
    raw = _attributes(headers, body, json.loads)
    if raw is None or "data_base64" in raw:
        return None
    return from_dict(raw)


def forwardable(headers: Mapping[str, str], body: bytes) -> tuple[str, bytes] | None:
    """The executor actor id and the envelope's JSON text of an activation event as
    ``Bus`` publishes it (structured, its ``subject`` the actor, its data the envelope
    as a JSON string), read without decoding the envelope: a host forwards the text to
    the actor, which decodes and checks it. None for any other event, which ``deliver``
    reads whole (and refuses when it is malformed)."""
    # the envelope is a string here, so orjson's limits on numbers do not apply;
    # anything it refuses (a lone surrogate, say) goes the long way
    raw = _attributes(headers, body, orjson.loads)
    if raw is None:
        return None
    subject, data = raw.get("subject"), raw.get("data")
    if not isinstance(subject, str) or not isinstance(data, str):
        return None
    # an executor actor id: ``<run id>:<executor index>`` (``executor_actor_id``)
    run_id, sep, index = subject.rpartition(":")
    digits = index.isascii() and index.isdigit() and len(index) <= 9
    if not sep or not digits or not is_run_id(run_id):
        return None
    return subject, data.encode()


def parse_event(headers: Mapping[str, str], body: bytes, model: type[M]) -> M:
    """The envelope inside a delivered CloudEvent; ``MalformedEvent`` if it is not one."""
    try:
        event = _structured(headers, body) or from_http(headers, body)
    except Exception as exc:  # the SDK raises several unrelated types for bad input
        raise MalformedEvent(f"not a CloudEvent: {exc}") from exc
    data: Any = event.data
    if isinstance(data, (bytes, str)):
        try:
            data = json.loads(data)
        except ValueError as exc:
            raise MalformedEvent(f"event data is not JSON: {exc}") from exc
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise MalformedEvent(f"event data is not a {model.__name__}: {exc}") from exc


def malformed(why: str) -> Problem:
    """The answer to a delivery of a malformed event: a 404 problem saying ``why``."""
    return Problem(
        404,
        "Malformed event",
        f"{why} (answered 404: Dapr drops the event instead of delivering it again)",
    )


def read_event(headers: Mapping[str, str], body: bytes, model: type[M]) -> M:
    """The envelope of a delivered event; a 404 problem (``Problem``) when it is not a
    CloudEvent carrying one.

    404 is the one error status Dapr drops a delivery on — never redelivered, sent to
    the dead-letter topic when the subscription has one — as it drops a ``DROP``
    answer; any other 4xx or a 5xx would make it deliver the poison event again."""
    try:
        return parse_event(headers, body, model)
    except MalformedEvent as exc:
        log.warning("dropping a malformed %s event: %s", model.__name__, exc)
        raise malformed(str(exc)) from exc
