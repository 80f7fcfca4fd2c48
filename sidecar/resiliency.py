"""Outbound resiliency (dapr-contract §7.2): the sidecar's calls to its components.

A component's outbound policies (``spec.targets.components.<name>.outbound``, else the
``Default*`` policies) wrap every state store operation and every publish, in daprd's
order (``pkg/resiliency/policy.go``): the **timeout** bounds each attempt, the **circuit
breaker** sees each attempt, the **retry** policy repeats attempts. A timed-out attempt
fails with ``context deadline exceeded`` (the API answers the operation's 500 error); an
open breaker fails at once with ``circuit breaker is open`` and is not retried.

Single-item save and delete ETag errors are never retried (§2.4); everything else is,
transactions included (daprd runs ``Multi`` under the policy as it is, so a stale ETag
inside a transaction is retried until the budget is spent, then answered 500).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Generic, Protocol, TypeVar

from sidecar.errors import ETagInvalid, ETagMismatch, LocalSidecarError
from sidecar.pubsub.base import Broker, Handler, TopicSubscription
from sidecar.pubsub.cel import CelError, compile_expression
from sidecar.resources.model import CircuitBreakerPolicy, TargetPolicies
from sidecar.state.base import DeleteOp, SetOp, StateStore, StoredItem

__all__ = ["CircuitBreaker", "OutboundPolicy", "ResilientBroker", "ResilientStore"]

log = logging.getLogger(__name__)

T = TypeVar("T")

#: An exponential retry policy gives up after this long even with ``maxRetries: -1``
#: (the backoff library's default elapsed-time cap; the YAML cannot change it).
EXPONENTIAL_CAP = 15 * 60.0

_ETAG_ERRORS: tuple[type[Exception], ...] = (ETagMismatch, ETagInvalid)


class _Refused(Exception):
    """The circuit breaker did not let an attempt through."""


class CircuitBreaker:
    """Closed → open when ``trip`` is true after a failure; open for ``timeout`` seconds,
    then half-open: up to ``max_requests`` attempts, all successful → closed, one failure
    → open again. While closed, ``interval`` > 0 clears the counts every ``interval``."""

    def __init__(
        self, policy: CircuitBreakerPolicy, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.policy = policy
        self._trip = compile_expression(policy.trip)
        self._clock = clock
        self.state = "closed"
        self._counts: dict[str, int] = {}
        self._until = 0.0  # end of the open state, or of the closed state's interval
        self._enter("closed")

    def _enter(self, state: str) -> None:
        if state != self.state:
            log.warning("circuit breaker %s: %s -> %s", self.policy.name, self.state, state)
        self.state = state
        self._counts = dict.fromkeys(
            (
                "requests",
                "totalSuccesses",
                "totalFailures",
                "consecutiveSuccesses",
                "consecutiveFailures",
            ),
            0,
        )
        now = self._clock()
        if state == "open":
            self._until = now + self.policy.timeout
        elif state == "closed" and self.policy.interval > 0:
            self._until = now + self.policy.interval

    def _current(self) -> str:
        now = self._clock()
        if self.state == "open" and now >= self._until:
            self._enter("half-open")
        elif self.state == "closed" and self.policy.interval > 0 and now >= self._until:
            self._enter("closed")
        return self.state

    def acquire(self) -> None:
        """Count an attempt, or raise :class:`_Refused` when the breaker does not allow one."""
        state = self._current()
        if state == "open":
            raise _Refused("circuit breaker is open")
        if state == "half-open" and self._counts["requests"] >= self.policy.max_requests:
            raise _Refused("too many requests")
        self._counts["requests"] += 1

    def record(self, ok: bool) -> None:
        state = self._current()
        counts = self._counts
        if ok:
            counts["totalSuccesses"] += 1
            counts["consecutiveSuccesses"] += 1
            counts["consecutiveFailures"] = 0
            if state == "half-open" and counts["consecutiveSuccesses"] >= self.policy.max_requests:
                self._enter("closed")
            return
        counts["totalFailures"] += 1
        counts["consecutiveFailures"] += 1
        counts["consecutiveSuccesses"] = 0
        if state == "half-open" or (state == "closed" and self._tripped()):
            self._enter("open")

    def _tripped(self) -> bool:
        try:
            return self._trip(self._counts) is True
        except CelError as exc:
            log.error("circuit breaker %s: trip failed: %s", self.policy.name, exc)
            return False


class OutboundPolicy:
    """The outbound policies of one component of one sidecar; ``error`` is what a timeout
    or an open breaker raises (:class:`StateStoreError` for stores, :class:`BrokerError` for
    brokers), and the kind of failure that is retried."""

    def __init__(self, name: str, policies: TargetPolicies, error: type[LocalSidecarError]) -> None:
        self.name = name
        self.timeout = policies.timeout
        self.retry = policies.retry
        cb = policies.circuit_breaker
        self.breaker = CircuitBreaker(cb) if cb is not None else None
        self.error = error

    async def run(
        self,
        operation: Callable[[], Awaitable[T]],
        permanent: tuple[type[Exception], ...] = (),
    ) -> T:
        started = time.monotonic()
        attempt = 0
        while True:
            try:
                return await self._attempt(operation, permanent)
            except _Refused as exc:
                raise self.error(str(exc)) from None
            except self.error as exc:
                if isinstance(exc, permanent):
                    raise
                attempt += 1
                retry = self.retry
                if retry is None or not retry.allows(attempt):
                    raise
                if retry.policy == "exponential" and time.monotonic() - started > EXPONENTIAL_CAP:
                    raise
                log.info("component %s: retry %d after %s", self.name, attempt, exc)
                await asyncio.sleep(retry.delay(attempt))

    async def _attempt(
        self, operation: Callable[[], Awaitable[T]], permanent: tuple[type[Exception], ...]
    ) -> T:
        breaker = self.breaker
        if breaker is not None:
            breaker.acquire()
        ok = False
        try:
            if self.timeout is None:
                result = await operation()
            else:
                try:
                    async with asyncio.timeout(self.timeout) as scope:
                        result = await operation()
                except TimeoutError:
                    if not scope.expired():
                        raise
                    raise self.error("context deadline exceeded") from None
            ok = True
            return result
        except permanent:
            ok = True  # the component answered (an ETag conflict is not an outage)
            raise
        finally:
            if breaker is not None:
                breaker.record(ok)


class _Component(Protocol):
    async def start(self) -> None: ...

    async def close(self) -> None: ...


C = TypeVar("C", bound=_Component)


class _Wrapper(Generic[C]):
    """Start and close the wrapped component."""

    inner: C

    async def start(self) -> None:
        await self.inner.start()

    async def close(self) -> None:
        await self.inner.close()


class ResilientStore(_Wrapper[StateStore], StateStore):
    """A state store whose operations run under its component's outbound policy."""

    def __init__(self, inner: StateStore, policy: OutboundPolicy) -> None:
        self.inner = inner
        self.policy = policy
        self.features = inner.features

    async def get(self, key: str) -> StoredItem | None:
        return await self.policy.run(lambda: self.inner.get(key))

    async def bulk_get(self, keys: Sequence[str]) -> list[StoredItem | None]:
        return await self.policy.run(lambda: self.inner.bulk_get(keys))

    async def set(self, op: SetOp) -> None:
        await self.policy.run(lambda: self.inner.set(op), _ETAG_ERRORS)

    async def delete(self, op: DeleteOp) -> None:
        # daprd 1.18 retries a delete whose ETag did not match, as it retries a
        # transaction; only a single save's conflict is answered at once
        await self.policy.run(lambda: self.inner.delete(op))

    async def transact(self, ops: Sequence[SetOp | DeleteOp]) -> None:
        await self.policy.run(lambda: self.inner.transact(ops))


class ResilientBroker(_Wrapper[Broker], Broker):
    """A pub/sub component whose publishes run under its outbound policy."""

    def __init__(self, inner: Broker, policy: OutboundPolicy) -> None:
        self.inner = inner
        self.policy = policy
        self.native_ttl = inner.native_ttl

    async def publish(self, topic: str, data: bytes, metadata: Mapping[str, str]) -> None:
        await self.policy.run(lambda: self.inner.publish(topic, data, metadata))

    async def subscribe(self, topic: str, handler: Handler) -> TopicSubscription:
        return await self.inner.subscribe(topic, handler)
