"""The message serializer of our actor types.

The actor SDK's ``DefaultJSONSerializer`` decodes with a pure-Python JSON scanner that
turns every string looking like a date (``"2024-01-01 ..."``) into a ``datetime`` —
or fails on it — and every string looking like a Dapr duration (``"10s"``) into a
``timedelta``. Our actor methods take the protocol's JSON envelopes, whose payloads
are user data: those are decoded as plain JSON (C decoder, nothing converted).
Reminder and timer bodies, which do carry Dapr durations, and everything we send
(reminder registrations hold ``timedelta`` values) keep the SDK's handling.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from dapr.serializers import DefaultJSONSerializer

__all__ = ["EnvelopeSerializer", "Undecodable"]


class Undecodable(str):
    """What an envelope method receives for a body that is not JSON (why, as text):
    the method refuses it as it refuses any other malformed envelope, where an error
    in the serializer would be a 500 and the call retried."""


class EnvelopeSerializer(DefaultJSONSerializer):
    def deserialize(
        self,
        data: bytes,
        data_type: Any = object,
        custom_hook: Callable[[Any], object] | None = None,
    ) -> Any:
        # the SDK passes the method's parameter annotation as ``data_type`` (ours are
        # dict[str, Any] / list[dict[str, Any]]), and ``object`` for reminder and timer
        # bodies
        if data_type is object:
            return super().deserialize(data, data_type, custom_hook)
        if not isinstance(data, (str, bytes)):
            raise ValueError("data must be str or bytes types")
        try:
            obj = json.loads(data)
        except ValueError as exc:
            return Undecodable(f"the body is not JSON: {exc}")
        return custom_hook(obj) if callable(custom_hook) else obj
