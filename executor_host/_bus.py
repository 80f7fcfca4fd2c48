"""Publishing and receiving the protocol's CloudEvents through Dapr pub/sub.

Events are published structured (``application/cloudevents+json``) so that their
ids are ours — deterministic, see ``protocol`` — rather than fresh UUIDs. They go
out through the sidecar's HTTP publish API (``_sidecar``).
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any, TypeVar

from cloudevents.conversion import to_dict
from cloudevents.http import CloudEvent, from_dict, from_http
from pydantic import BaseModel, ValidationError

from executor_host._problems import Problem
from executor_host._sidecar import SidecarClient, SidecarError
from executor_host.protocol import (
    ActivationEnvelope,
    ResultEnvelope,
    activation_topic,
    results_topic,
)
from runtime.engine import compact_json, compact_json_bytes
from runtime.ports import PortError

__all__ = ["Bus", "MalformedEvent", "PublishError", "deliver", "parse_event"]

M = TypeVar("M", bound=BaseModel)

log = logging.getLogger(__name__)


class PublishError(PortError):
    """The sidecar refused to publish an event (or some events of a bulk publish)."""


CE_JSON = "application/cloudevents+json"


class MalformedEvent(ValueError):
    """A delivered event is not a CloudEvent carrying the expected envelope."""


MAX_RESULT_EVENT_BYTES = 1024 * 1024
"""The largest result event published as it is: daprd takes bodies of at most 4 MiB
(``--max-body-size``) on its publish API and on the delivery to the app, and the
delivery adds daprd's own attributes."""


class ResultTooLarge(PublishError):
    """A result's event would be larger than ``MAX_RESULT_EVENT_BYTES``: nothing was
    sent (the executor stores the result and publishes a reference to it instead)."""


class Bus:
    def __init__(
        self,
        sidecar: SidecarClient,
        pubsub: str,
        source: str,
        namespace: str,
        *,
        max_result_bytes: int = MAX_RESULT_EVENT_BYTES,
    ) -> None:
        self._sidecar = sidecar
        self._pubsub = pubsub
        self._source = f"superstep/{source}"
        self._prefix = namespace
        self._max_result = max_result_bytes

    async def publish_activation(self, env: ActivationEnvelope, pool: str) -> None:
        await self._publish(
            activation_topic(pool, self._prefix), env.event_id(), "io.superstep.activation.v1", env
        )

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

    async def publish_result(self, env: ResultEnvelope) -> None:
        """Publish a result; ``ResultTooLarge`` (before sending anything) when its event
        is larger than ``max_result_bytes``. Its bytes are made once, here."""
        body = self._event(env.event_id(), "io.superstep.result.v1", env)
        if len(body) > self._max_result:
            raise ResultTooLarge(
                f"the result event of {env.executor_id!r} in superstep {env.superstep} "
                f"takes {len(body)} bytes (at most {self._max_result})"
            )
        await self._send(results_topic(self._prefix), body)

    def _event(self, event_id: str, type_: str, env: BaseModel) -> bytes:
        attributes = {
            "id": event_id,
            "source": self._source,
            "type": type_,
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

    async def _publish(self, topic: str, event_id: str, type_: str, env: BaseModel) -> None:
        await self._send(topic, self._event(event_id, type_, env))

    async def _send(self, topic: str, body: bytes) -> None:
        try:
            await self._sidecar.publish(self._pubsub, topic, body, CE_JSON)
        except SidecarError as exc:
            raise PublishError(str(exc)) from exc


_REQUIRED = ("id", "source", "type")


def _structured(headers: Mapping[str, str], body: bytes) -> CloudEvent | None:
    """A structured-mode JSON CloudEvent 1.0 with JSON data (what Dapr delivers) read
    with the SDK's ``from_dict``: a fifth of ``from_http``'s CPU. None for anything else
    (binary mode, ``data_base64``, another spec version, an attribute missing), which
    ``from_http`` reads or refuses.

    Parsed by the standard library, not orjson: orjson reads an integer beyond 64 bits
    as a float, without an error, and messages may carry such integers."""
    content_type = headers.get("content-type", "")
    if not content_type.lower().startswith(CE_JSON):
        return None
    try:
        raw = json.loads(body)
    except ValueError:
        return None
    if (
        not isinstance(raw, dict)
        or raw.get("specversion") != "1.0"
        or "data_base64" in raw
        or not all(isinstance(raw.get(k), str) and raw[k] for k in _REQUIRED)
    ):
        return None
    return from_dict(raw)


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


async def deliver(
    headers: Mapping[str, str],
    body: bytes,
    model: type[M],
    take: Callable[[M], Awaitable[Any]],
    retryable: type[Exception],
) -> dict[str, str]:
    """A subscription handler's answer to Dapr: ``RETRY`` when ``take`` fails with
    ``retryable``, else ``SUCCESS``; a malformed event gets a 404 problem (``Problem``).

    404 is the one error status Dapr drops a delivery on — never redelivered, sent to
    the dead-letter topic when the subscription has one — as it drops a ``DROP``
    answer; any other 4xx or a 5xx would make it deliver the poison event again."""
    try:
        env = parse_event(headers, body, model)
    except MalformedEvent as exc:
        log.warning("dropping a malformed %s event: %s", model.__name__, exc)
        raise Problem(
            404,
            "Malformed event",
            f"{exc} (answered 404: Dapr drops the event instead of delivering it again)",
        ) from exc
    try:
        await take(env)
    except retryable as exc:
        log.warning("%s not taken, to be retried: %s", model.__name__, exc)
        return {"status": "RETRY"}
    return {"status": "SUCCESS"}
