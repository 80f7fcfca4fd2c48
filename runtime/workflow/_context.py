"""``WorkflowContext``: what a handler may do. Every effect is buffered and
committed at the superstep barrier (or discarded if the attempt fails)."""

from __future__ import annotations

import datetime
import random as _random
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Generic

from typing_extensions import TypeVar

from runtime.engine import (
    Activation,
    EventRecord,
    Graph,
    PendingRequest,
    SentMessage,
    StateWrite,
    derive_seed,
    route,
)
from runtime.errors import CodecError, RequestError
from runtime.workflow._events import RESERVED_EVENT_TYPES, WorkflowEvent

if TYPE_CHECKING:
    from runtime.workflow._executor import Executor

__all__ = ["WorkflowContext"]

OutT = TypeVar("OutT", default=Any)
W_OutT = TypeVar("W_OutT", default=Any)

_MISSING = object()
_DELETED = object()


class WorkflowContext(Generic[OutT, W_OutT]):
    """The handler's window on the workflow.

    ``WorkflowContext[T]`` declares that the handler sends ``T``;
    ``WorkflowContext[T, U]`` that it also yields workflow outputs of type ``U``.
    Declared types are checked against the graph at build time.

    Concurrency model (docs/concurrency.md): messages sent now are delivered in
    the next superstep; ``get_state`` reads the state committed at the previous
    barrier plus this executor's own writes; writes become visible to others at
    the next superstep; nothing here blocks on another executor.
    """

    __slots__ = (
        "_activation",
        "_codec",
        "_events",
        "_executor",
        "_graph",
        "_msg_index",
        "_outputs",
        "_reads",
        "_requests",
        "_rng",
        "_sent",
        "_sources",
        "_state",
        "_writes",
    )

    def __init__(
        self, executor: Executor, graph: Graph, activation: Activation, state: Mapping[str, Any]
    ) -> None:
        self._executor = executor
        self._graph = graph
        self._codec = graph.codec
        self._activation = activation
        self._state = state
        self._sent: list[SentMessage] = []
        self._outputs: list[Any] = []
        self._events: list[EventRecord] = []
        self._writes: list[StateWrite] = []
        self._reads: dict[str, Any] = {}
        self._requests: list[PendingRequest] = []
        self._rng: _random.Random | None = None
        self._msg_index = 0
        self._sources: list[str] = []

    # -- identity -----------------------------------------------------------------
    @property
    def executor_id(self) -> str:
        return self._activation.executor_id

    @property
    def run_id(self) -> str:
        return self._activation.run_id

    @property
    def superstep(self) -> int:
        return self._activation.superstep

    @property
    def idempotency_key(self) -> str:
        """Stable across retries, redeliveries and failover: (run, superstep, executor,
        message index). Use it to make external side effects idempotent."""
        a = self._activation
        return f"{a.run_id}/{a.superstep}/{a.executor_id}/{self._msg_index}"

    @property
    def source_executor_ids(self) -> list[str]:
        """Who sent the message being handled (several for a fan-in list)."""
        return list(self._sources)

    def get_source_executor_id(self) -> str:
        if len(self._sources) != 1:
            raise RuntimeError(
                "this message has several sources (a fan-in list); use source_executor_ids"
            )
        return self._sources[0]

    # -- messages and outputs -------------------------------------------------------
    async def send_message(self, message: OutT, target_id: str | None = None) -> None:
        """Send ``message`` along the outgoing edges (or only to ``target_id``).

        It is delivered in the next superstep. A message no edge accepts is
        reported as a ``message_dropped`` event (an error in strict mode).
        """
        if target_id is not None and target_id not in self._graph.nodes:
            raise ValueError(f"send_message: unknown target_id {target_id!r}")
        data = self._codec.encode(message)
        deliveries, reason = route(self._graph, self._activation.executor_id, message, target_id)
        self._sent.append(SentMessage(len(self._sent), data, deliveries, target_id, reason))

    async def yield_output(self, output: W_OutT) -> None:
        """Yield a workflow output; reported at the barrier in canonical order."""
        self._outputs.append(self._codec.encode(output))

    async def add_event(self, event: WorkflowEvent) -> None:
        """Emit a custom event (reported at the barrier in canonical order)."""
        if not isinstance(event, WorkflowEvent):
            raise TypeError("add_event takes a WorkflowEvent")
        if event.type in RESERVED_EVENT_TYPES:
            raise ValueError(
                f"event type {event.type!r} is reserved for the runtime; pick another name"
            )
        self._events.append(
            EventRecord(self.executor_id, event.type, self._codec.encode(event.data))
        )

    async def request_info(
        self, request_data: object, response_type: type, *, request_id: str | None = None
    ) -> str:
        """Ask for external input. The run pauses (``awaiting_input``) once nothing
        else is left to do; the response goes to this executor's
        ``@response_handler`` in the superstep after it arrives. Returns the id."""
        if not self._executor._has_response_handler(request_data, response_type):
            raise RequestError(
                f"executor {self.executor_id!r} has no @response_handler for request "
                f"{type(request_data).__qualname__} with response {response_type.__qualname__}"
            )
        a = self._activation
        rid = request_id or f"{a.run_id}:{a.superstep}:{a.executor_id}:{len(self._requests)}"
        self._requests.append(
            PendingRequest(
                rid,
                a.executor_id,
                a.superstep,
                self._codec.encode(request_data),
                _type_key(response_type),
            )
        )
        return rid

    # -- shared state ---------------------------------------------------------------
    def get_state(self, key: str, default: Any = None) -> Any:
        """The value committed at the previous barrier, with this executor's own
        writes of this superstep applied (read-your-writes)."""
        cached = self._reads.get(key, _MISSING)
        if cached is _DELETED:
            return default
        if cached is not _MISSING:
            return cached
        data = self._state.get(key, _MISSING)
        if data is _MISSING:
            # declared initial values are committed by start(); a key missing from the
            # committed state was never set or was deleted: it reads as absent
            return default
        value = self._codec.decode(data)
        self._reads[key] = value
        return value

    def set_state(self, key: str, value: Any) -> None:
        """Write a shared-state key; merged at the barrier (docs/concurrency.md rule 6).

        For a key with a reducer the written value is an update folded into the
        committed value by the reducer; otherwise it replaces it, and two writers
        in one superstep are a ``StateConflictError``."""
        data = self._codec.encode(value)
        self._writes.append(StateWrite(key, data))
        spec = self._graph.state_keys.get(key)
        if spec is not None and spec.reducer is not None:
            self._reads[key] = spec.reducer(self.get_state(key), self._codec.decode(data))
        else:
            self._reads[key] = self._codec.decode(data)

    def delete_state(self, key: str) -> None:
        spec = self._graph.state_keys.get(key)
        if spec is not None and spec.reducer is not None:
            raise ValueError(f"state key {key!r} has a reducer; write an update instead")
        self._writes.append(StateWrite(key, None, delete=True))
        self._reads[key] = _DELETED

    # -- determinism ----------------------------------------------------------------
    def now(self) -> datetime.datetime:
        """The superstep's logical time (UTC), the same for every attempt."""
        return datetime.datetime.fromtimestamp(self._activation.timestamp, tz=datetime.UTC)

    def random(self) -> float:
        """A float in [0, 1) from a generator seeded per (run seed, superstep, executor)."""
        return self.rng.random()

    @property
    def rng(self) -> _random.Random:
        if self._rng is None:
            a = self._activation
            self._rng = _random.Random(derive_seed(a.seed, a.superstep, a.executor_id))
        return self._rng


def _type_key(t: Any) -> str:
    from runtime.engine import type_tag

    if t in (int, str, float, bool, type(None), list, dict):
        return t.__name__ if t is not type(None) else "None"
    if isinstance(t, type):
        return type_tag(t)
    raise CodecError(f"response_type must be a class, got {t!r}")
