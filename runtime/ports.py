"""The two ports a distributed driver runs over: a state store and a message bus.

The Dapr coordinator commits barriers through a ``StatePort`` (Dapr's state API:
get, save, an ETag-guarded transaction) and hands activations out through a bus (an
async callable taking a superstep's activations; results come back as calls to the
driver). Production binds
them to the Dapr sidecar (``executor_host``); ``runtime.testing.ports`` has in-memory
versions, so a coordinator's failure cases (a stale coordinator, a lost answer, a
late or duplicated result) are tested in milliseconds, without a sidecar or Redis.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Protocol

__all__ = [
    "ETagMismatch",
    "PortError",
    "Refused",
    "StateDelete",
    "StatePort",
    "StateWrite",
    "refuses",
    "request_bytes",
    "wire_bytes",
]


class PortError(Exception):
    """A call through a port failed. Unless a subclass says more, whether it took
    effect is unknown (the answer may be what was lost): the caller finds out by
    reading again, or retries an idempotent call."""


class ETagMismatch(PortError):
    """An ETag-guarded write found another ETag: somebody else wrote first. Nothing of
    the write took effect."""


class Refused(PortError):
    """The store refused the call for good: the same call fails the same way however
    often it is made (a malformed request, a body over the sidecar's limit, a value or
    a request the store does not take), and nothing of it took effect. Not an ETag
    conflict (``ETagMismatch``), nor an outage, which may pass (a plain ``PortError``).

    ``status`` is the answer's status (Dapr's state API is HTTP; see ``refuses``); the
    text names it, with what the store said."""

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


_COME_BACK = frozenset({408, 409, 425, 429})
"""4xx statuses that ask the caller to come back (or, 409, that someone wrote first)."""


def refuses(status: int | None) -> bool:
    """Whether an answer of the state API with ``status`` refuses the call for good
    (``Refused``): a 4xx but 408 (a timeout), 409 (an ETag conflict, ``ETagMismatch``),
    425 and 429 (come back later). daprd answers its own refusals so (400
    ``ERR_MALFORMED_REQUEST`` for a bad body or one over ``--max-body-size``,
    ``ERR_STATE_STORE_NOT_FOUND``, an invalid ETag, too many operations; 401 for a wrong
    API token, 403 for an API not allowed). No status (the sidecar was not reached)
    and every 5xx are outages; so is, unavoidably, a store's own refusal inside a
    transaction, which daprd answers 500 ``ERR_STATE_TRANSACTION`` as it answers a
    store that is down."""
    return status is not None and 400 <= status < 500 and status not in _COME_BACK


StateWrite = tuple[str, str, "str | None"]
"""(key, value, ETag or None) of one write; the value is a JSON text."""


StateDelete = tuple[str, "str | None"]
"""(key, ETag or None) of one delete."""


def wire_bytes(text: str) -> int:
    """The bytes ``text`` takes in a request body as a JSON string with every character
    beyond ASCII escaped, as the Dapr port writes it (6 bytes for a character of the
    basic plane, 12 beyond it, 2 for a quote or a backslash): what counts against the
    sidecar's body limit."""
    return len(json.dumps(text))


def request_bytes(items: Sequence[StateWrite]) -> int:
    """The body bytes of a save or transaction of ``items``, but for their framing (a
    few dozen bytes each)."""
    return sum(wire_bytes(key) + wire_bytes(value) for key, value, _ in items)


class StatePort(Protocol):
    """A key-value state store with ETags, as Dapr's state API offers it."""

    async def get_state(self, store: str, key: str) -> tuple[bytes | None, str | None]:
        """The value of ``key`` and its ETag; ``(None, None)`` when absent."""
        ...

    async def save_state(
        self, store: str, items: Sequence[StateWrite], metadata: dict[str, str] | None = None
    ) -> None:
        """Write items, each guarded by its ETag when it has one (``ETagMismatch``)."""
        ...

    async def transact_state(self, store: str, upserts: Sequence[StateWrite]) -> None:
        """Write items in one transaction: all or nothing. A failed ETag check fails the
        transaction like any other failure (``PortError``, as daprd answers it): only a
        read of the guarded key tells a conflict from an outage."""
        ...

    async def get_bulk_state(
        self, store: str, keys: Sequence[str]
    ) -> list[tuple[bytes | None, str | None]]:
        """The values and ETags of ``keys`` in one call, in their order; ``(None, None)``
        for an absent key."""
        ...

    async def delete_state(self, store: str, deletes: Sequence[StateDelete]) -> None:
        """Delete keys, each guarded by its ETag when it has one; an absent key without
        an ETag is no error. One key: a failed ETag check is ``ETagMismatch`` (daprd's
        409). Several: one transaction, all or nothing, whose failed ETag check fails it
        like any other failure (``PortError``), as in ``transact_state``."""
        ...
