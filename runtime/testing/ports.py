"""In-memory versions of the ports (``runtime.ports``), with the faults that matter.

``InMemoryStateStore`` behaves as the Dapr state API over a transactional store:
ETags change at every write, an ETag-guarded save that finds another ETag raises
``ETagMismatch``, a transaction is all or nothing and fails as a whole (a plain
``PortError``) when one of its ETag checks fails. ``fail_next`` makes the next calls
fail, before or after taking effect (an outage, or an answer lost on the way back);
``refuse_next`` refuses them for good (``Refused``, as daprd's 400), as it refuses a
request over ``max_request_bytes``.

``InMemoryBus`` keeps what was published until a test delivers it, drops it, delivers
it twice or out of order.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Generic, TypeVar

from runtime.ports import (
    ETagMismatch,
    PortError,
    Refused,
    StateDelete,
    StateWrite,
    request_bytes,
)

__all__ = ["InMemoryBus", "InMemoryStateStore"]

T = TypeVar("T")


@dataclass(slots=True)
class _Fault:
    calls: int
    applied: bool
    refusal: Refused | None = None


class InMemoryStateStore:
    """A ``StatePort`` in a dict: (store, key) -> (value, ETag)."""

    def __init__(self, *, max_request_bytes: int | None = None, redis_etags: bool = False) -> None:
        self.redis_etags = redis_etags
        """As Redis's state store: each key's ETag is its version (1 at a create, one
        more at each write), and a write under an ETag to a missing key creates it."""
        self.max_request_bytes = max_request_bytes
        """Refuse a save or transaction whose body would be larger (``Refused``, 400, as
        daprd refuses a body over ``--max-body-size``); ``None``: no limit."""
        self.items: dict[tuple[str, str], tuple[bytes, str]] = {}
        self.metadata: dict[tuple[str, str], dict[str, str]] = {}
        self.calls = 0
        """Calls made through the port (each read, bulk read, save, delete and
        transaction counts one)."""
        self._version = 0
        self._fault: _Fault | None = None

    def fail_next(self, calls: int = 1, *, applied: bool = False) -> None:
        """The next ``calls`` writes fail with ``PortError``; with ``applied``, after
        taking effect (only the answer is lost)."""
        self._fault = _Fault(calls, applied)

    def refuse_next(
        self, calls: int = 1, *, status: int = 400, message: str = "refused (injected)"
    ) -> None:
        """The next ``calls`` writes are refused for good (``Refused`` with ``status``),
        taking no effect."""
        self._fault = _Fault(calls, False, Refused(f"answered {status}: {message}", status))

    def wipe(self) -> None:
        """Lose every key, as a Redis restarted without its data."""
        self.items.clear()
        self.metadata.clear()

    def value(self, store: str, key: str) -> bytes | None:
        item = self.items.get((store, key))
        return item[0] if item is not None else None

    def _faulty(self) -> _Fault | None:
        fault = self._fault
        if fault is None:
            return None
        fault.calls -= 1
        if fault.calls <= 0:
            self._fault = None
        return fault

    @staticmethod
    def _fail_before(fault: _Fault | None) -> None:
        """Fail a write before it takes effect, as ``fault`` says (if it says so)."""
        if fault is None or fault.applied:
            return
        if fault.refusal is not None:
            raise Refused(str(fault.refusal), fault.refusal.status)
        raise PortError("the store is unavailable (injected)")

    def _refuse_large(self, items: Sequence[StateWrite]) -> None:
        size = request_bytes(items)
        if self.max_request_bytes is not None and size > self.max_request_bytes:
            raise Refused(
                f"answered 400: request body too large: {size} bytes (at most "
                f"{self.max_request_bytes})",
                400,
            )

    def _etag(self) -> str:
        self._version += 1
        return str(self._version)

    def _check(self, store: str, write: StateWrite | StateDelete) -> bool:
        key, etag = write[0], write[-1]
        if etag is None:
            return True
        current = self.items.get((store, key))
        if current is None:
            return self.redis_etags
        return current[1] == etag

    def _apply(self, store: str, writes: Sequence[StateWrite]) -> None:
        for key, value, _ in writes:
            if self.redis_etags:
                current = self.items.get((store, key))
                etag = str(int(current[1]) + 1) if current is not None else "1"
            else:
                etag = self._etag()
            # as Dapr stores a value given as a JSON string: that string, in JSON
            self.items[(store, key)] = (json.dumps(value).encode(), etag)

    async def get_state(self, store: str, key: str) -> tuple[bytes | None, str | None]:
        self.calls += 1
        item = self.items.get((store, key))
        return (item[0], item[1]) if item is not None else (None, None)

    async def save_state(
        self, store: str, items: Sequence[StateWrite], metadata: dict[str, str] | None = None
    ) -> None:
        self.calls += 1
        fault = self._faulty()
        self._fail_before(fault)
        self._refuse_large(items)
        for write in items:
            if not self._check(store, write):
                raise ETagMismatch(f"ETag mismatch on {write[0]!r}")
            self._apply(store, [write])
            if metadata:
                self.metadata[(store, write[0])] = dict(metadata)
        if fault is not None:
            raise PortError("the answer was lost (injected)")

    async def transact_state(self, store: str, upserts: Sequence[StateWrite]) -> None:
        self.calls += 1
        fault = self._faulty()
        self._fail_before(fault)
        self._refuse_large(upserts)
        if not all(self._check(store, w) for w in upserts):
            raise PortError("transaction failed")  # as daprd: no word of the ETag
        self._apply(store, upserts)
        if fault is not None:
            raise PortError("the answer was lost (injected)")

    async def get_bulk_state(
        self, store: str, keys: Sequence[str]
    ) -> list[tuple[bytes | None, str | None]]:
        self.calls += 1
        items = [self.items.get((store, key)) for key in keys]
        return [(item[0], item[1]) if item is not None else (None, None) for item in items]

    async def delete_state(self, store: str, deletes: Sequence[StateDelete]) -> None:
        self.calls += 1
        fault = self._faulty()
        self._fail_before(fault)
        if not all(self._check(store, d) for d in deletes):
            if len(deletes) == 1:
                raise ETagMismatch(f"ETag mismatch on {deletes[0][0]!r}")
            raise PortError("transaction failed")
        for key, _ in deletes:
            self.items.pop((store, key), None)
            self.metadata.pop((store, key), None)
        if fault is not None:
            raise PortError("the answer was lost (injected)")


@dataclass
class InMemoryBus(Generic[T]):
    """A bus that keeps what was published until the test takes it."""

    published: list[T] = field(default_factory=list)
    batches: int = 0

    async def publish(self, items: Sequence[T]) -> None:
        self.batches += 1
        self.published.extend(items)

    def take(self) -> list[T]:
        """Everything published since the last ``take``, in order."""
        out, self.published = self.published, []
        return out
