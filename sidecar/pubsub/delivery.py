"""Delivering one broker message to the app, with daprd's outcome rules.

Routing (§3.4), the app-response table (§3.5), inbound resiliency retries and the
dead-letter topic (§3.6). A delivery that still fails after the retry budget and has no
dead-letter topic raises :class:`DeliveryFailed` to the component, which decides.
"""

from __future__ import annotations

import asyncio
import enum
import json
import logging
from collections.abc import Awaitable, Callable, Mapping
from datetime import UTC, datetime
from typing import Any

from sidecar.app_channel import AppChannel, AppUnreachable
from sidecar.durations import parse_rfc3339
from sidecar.errors import LocalSidecarError
from sidecar.pubsub.base import BrokerMessage
from sidecar.pubsub.cel import CelError, compile_expression
from sidecar.pubsub.envelope import CLOUDEVENTS_JSON, raw_envelope
from sidecar.resources.model import RetryPolicy, Subscription

__all__ = ["DeliveryFailed", "Outcome", "SubscriptionDelivery", "outcome_of"]

log = logging.getLogger(__name__)

DeadLetter = Callable[[str, BrokerMessage], Awaitable[None]]


class DeliveryFailed(LocalSidecarError):
    """The app did not take the message within the retry budget."""


class Outcome(enum.Enum):
    SUCCESS = "SUCCESS"
    RETRY = "RETRY"
    DROP = "DROP"


def outcome_of(status: int, body: bytes) -> Outcome:
    """The outcome of one app answer to a single-message delivery (§3.5)."""
    if status == 404:
        return Outcome.DROP
    if not 200 <= status < 300:
        return Outcome.RETRY
    try:
        parsed = json.loads(body) if body else None
    except ValueError:
        return Outcome.SUCCESS
    if not isinstance(parsed, dict):
        return Outcome.SUCCESS
    value = parsed.get("status", "")
    if value in ("", None, "SUCCESS"):
        return Outcome.SUCCESS
    if value == "DROP":
        return Outcome.DROP
    return Outcome.RETRY


class SubscriptionDelivery:
    """The broker handler of one subscription."""

    def __init__(
        self,
        subscription: Subscription,
        app: AppChannel,
        *,
        retry: RetryPolicy | None,
        dead_letter: DeadLetter | None,
    ) -> None:
        self.subscription = subscription
        self.app = app
        self.retry = retry
        self.dead_letter = dead_letter
        self.rules = [
            (compile_expression(r.match) if r.match else None, r.match, r.path)
            for r in subscription.rules
        ]

    async def __call__(self, message: BrokerMessage) -> None:
        attempt = 0
        while True:
            outcome, detail = await self.attempt(message)
            if outcome is Outcome.SUCCESS:
                return
            if outcome is Outcome.DROP:
                log.warning(
                    "dropping message %s on %s: %s", message.message_id, message.topic, detail
                )
                await self._to_dead_letter(message)
                return
            attempt += 1
            if self.retry is not None and self.retry.allows(attempt):
                await asyncio.sleep(self.retry.delay(attempt))
                continue
            if self.subscription.dead_letter_topic and self.dead_letter is not None:
                await self._to_dead_letter(message)
                return
            raise DeliveryFailed(f"delivery to {self.subscription.topic} failed: {detail}")

    async def _to_dead_letter(self, message: BrokerMessage) -> None:
        topic = self.subscription.dead_letter_topic
        if topic and self.dead_letter is not None:
            await self.dead_letter(topic, message)

    def _route(self, event: Mapping[str, Any]) -> str | None:
        for compiled, text, path in self.rules:
            if compiled is None:
                return path
            result = compiled({"event": event})
            if not isinstance(result, bool):
                raise CelError(f"rule {text!r} did not return a boolean")
            if result:
                return path
        return None

    async def attempt(self, message: BrokerMessage) -> tuple[Outcome, str]:
        """One try: build the body, route, POST to the app, classify the answer."""
        sub = self.subscription
        if sub.raw_payload:
            event: dict[str, Any] = raw_envelope(message.data, message.topic, sub.pubsub_name)
            body = json.dumps(event).encode()
        else:
            try:
                parsed = json.loads(message.data)
            except ValueError:
                return Outcome.RETRY, "message is not a JSON CloudEvent"
            if not isinstance(parsed, dict):
                return Outcome.RETRY, "message is not a JSON CloudEvent"
            event, body = parsed, message.data
            expiration = event.get("expiration")
            if isinstance(expiration, str):
                try:
                    if parse_rfc3339(expiration) < datetime.now(UTC):
                        return Outcome.DROP, "message expired"
                except ValueError:
                    pass
        try:
            path = self._route(event)
        except (CelError, TypeError) as exc:
            return Outcome.RETRY, f"routing rule failed: {exc}"
        if path is None:
            log.info("no route matched message %s on %s", message.message_id, message.topic)
            if sub.dead_letter_topic:
                await self._to_dead_letter(message)
            return Outcome.SUCCESS, "no route matched"
        headers = {"Content-Type": CLOUDEVENTS_JSON, "pubsubName": sub.pubsub_name}
        for key, value in message.metadata.items():
            if key.lower() != "content-length":
                headers[key] = value
        traceparent = event.get("traceparent")
        if isinstance(traceparent, str) and traceparent:
            headers["traceparent"] = traceparent
        try:
            answer = await self.app.request("POST", path, body=body, headers=headers)
        except AppUnreachable as exc:
            return Outcome.RETRY, f"app unreachable: {exc!r}"
        outcome = outcome_of(answer.status, answer.body)
        return outcome, f"app answered {answer.status} {answer.body[:200]!r}"
