"""CloudEvent envelopes built exactly as daprd builds them (dapr-contract §3.2, §3.5)."""

from __future__ import annotations

import base64
import json
import uuid
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

__all__ = [
    "CLOUDEVENTS_JSON",
    "is_cloudevent_content_type",
    "media_type",
    "new_envelope",
    "raw_envelope",
    "wrap",
]

CLOUDEVENTS_JSON = "application/cloudevents+json"
_BINARY_TYPES = ("application/octet-stream", "application/cloudevents+protobuf")


def media_type(content_type: str) -> str:
    """The media type before ``;``, lower-cased."""
    return content_type.split(";", 1)[0].strip().lower()


def is_cloudevent_content_type(content_type: str) -> bool:
    return media_type(content_type) == CLOUDEVENTS_JSON


def _now() -> str:
    """Publish time, RFC 3339 with second precision and the host's UTC offset."""
    return datetime.now().astimezone().replace(microsecond=0).isoformat()


def _place_data(envelope: dict[str, Any], body: bytes, content_type: str) -> None:
    mtype = media_type(content_type)
    if mtype == "application/json":
        try:
            envelope["data"] = json.loads(body)
        except ValueError:
            envelope["data"] = body.decode("utf-8", errors="replace")
    elif mtype in _BINARY_TYPES:
        envelope["data_base64"] = base64.b64encode(body).decode("ascii")
    else:
        envelope["data"] = body.decode("utf-8", errors="replace")


def new_envelope(
    *,
    body: bytes,
    content_type: str,
    topic: str,
    pubsub_name: str,
    source: str,
    metadata: Mapping[str, str],
    traceparent: str = "",
    tracestate: str = "",
    native_ttl: bool = False,
) -> dict[str, Any]:
    """A new envelope around a non-CloudEvent body (case B of §3.2)."""
    trace = metadata.get("cloudevent.traceparent") or traceparent
    envelope: dict[str, Any] = {
        "id": metadata.get("cloudevent.id") or str(uuid.uuid4()),
        "specversion": "1.0",
        "source": metadata.get("cloudevent.source") or source,
        "type": metadata.get("cloudevent.type") or "com.dapr.event.sent",
        "datacontenttype": content_type or "text/plain",
        "topic": topic,
        "pubsubname": pubsub_name,
        "traceid": metadata.get("cloudevent.traceid") or trace,
        "traceparent": trace,
        "tracestate": metadata.get("cloudevent.tracestate") or tracestate,
        "time": _now(),
    }
    if metadata.get("cloudevent.subject"):
        envelope["subject"] = metadata["cloudevent.subject"]
    ttl = metadata.get("ttlInSeconds")
    if ttl and not native_ttl:
        try:
            seconds = int(ttl)
        except ValueError:
            seconds = 0
        if seconds > 0:
            expiry = datetime.now(UTC) + timedelta(seconds=seconds)
            envelope["expiration"] = expiry.isoformat().replace("+00:00", "Z")
    _place_data(envelope, body, content_type)
    return envelope


def _complete_cloudevent(
    event: dict[str, Any], topic: str, pubsub_name: str, traceparent: str, tracestate: str
) -> dict[str, Any]:
    """Fill the defaults daprd adds to a body that already is a CloudEvent (case A)."""
    event.setdefault("time", _now())
    if "traceid" not in event:
        event["traceid"] = traceparent
        event["traceparent"] = traceparent
    event.setdefault("tracestate", tracestate)
    event["topic"] = topic
    event["pubsubname"] = pubsub_name
    event.setdefault("source", "Dapr")
    event.setdefault("type", "com.dapr.event.sent")
    event.setdefault("specversion", "1.0")
    return event


def wrap(
    *,
    body: bytes,
    content_type: str,
    topic: str,
    pubsub_name: str,
    source: str,
    metadata: Mapping[str, str],
    traceparent: str = "",
    tracestate: str = "",
) -> bytes:
    """The bytes a publish hands to the broker: the body itself for ``rawPayload``,
    else the completed or newly built CloudEvent.

    Raises ``ValueError`` when a CloudEvents body is not a JSON object.
    """
    if metadata.get("rawPayload", "").lower() == "true":
        return body
    if is_cloudevent_content_type(content_type):
        event = json.loads(body)
        if not isinstance(event, dict):
            raise ValueError("a CloudEvent must be a JSON object")
        envelope = _complete_cloudevent(event, topic, pubsub_name, traceparent, tracestate)
    else:
        envelope = new_envelope(
            body=body,
            content_type=content_type,
            topic=topic,
            pubsub_name=pubsub_name,
            source=source,
            metadata=metadata,
            traceparent=traceparent,
            tracestate=tracestate,
        )
    return json.dumps(envelope, separators=(",", ":")).encode()


def raw_envelope(body: bytes, topic: str, pubsub_name: str) -> dict[str, Any]:
    """The envelope daprd builds at delivery time for a ``rawPayload`` subscription."""
    return {
        "id": str(uuid.uuid4()),
        "specversion": "1.0",
        "datacontenttype": "application/octet-stream",
        "source": "Dapr",
        "type": "com.dapr.event.sent",
        "topic": topic,
        "pubsubname": pubsub_name,
        "data_base64": base64.b64encode(body).decode("ascii"),
    }
