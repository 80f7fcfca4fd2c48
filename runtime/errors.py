"""The exception tree of superstep, in one place.

Every error says whether retrying the same call can succeed (``retryable``).

    SuperstepError
    ├── WorkflowValidationError      the graph is invalid (build time); fix the graph
    ├── CodecError                   a value cannot cross the JSON codec; register or change the type
    ├── RunError                     a run could not continue
    │   ├── StateConflictError       several writers, no reducer: the superstep committed nothing
    │   ├── ExecutorFailedError      an executor exhausted its retries and its policy is "fail"
    │   ├── ConvergenceError         max_supersteps exceeded (reports a livelock when one is seen)
    │   ├── StalledError             fan-in buffers that can never fill
    │   ├── UndeliverableMessageError  strict routing: a message no edge accepts
    │   ├── NoLiveHostError          an executor's pool had no live host for too long (Dapr)
    │   ├── StoreRefusedError        the state store refused a barrier for good (Dapr)
    │   └── RunCancelledError        the run was cancelled
    ├── RequestError                 a human response names no pending request or has the wrong type
    ├── CheckpointError              a checkpoint cannot be read, or belongs to another graph
    └── RemoteError                  a remote runtime's API refused a call or could not be reached
"""

from __future__ import annotations

__all__ = [
    "CheckpointError",
    "CodecError",
    "ConvergenceError",
    "ExecutorFailedError",
    "NoLiveHostError",
    "RemoteError",
    "RequestError",
    "RunCancelledError",
    "RunError",
    "StalledError",
    "StateConflictError",
    "StoreRefusedError",
    "SuperstepError",
    "UndeliverableMessageError",
    "WorkflowValidationError",
]


class SuperstepError(Exception):
    """Base of every error raised by superstep."""

    retryable: bool = False


class WorkflowValidationError(SuperstepError, ValueError):
    """The workflow graph is invalid. Raised by ``WorkflowBuilder.build()``.

    ``problems`` lists every problem found, each naming the executor or edge and
    saying how to fix it.
    """

    def __init__(self, problems: list[str]) -> None:
        self.problems = list(problems)
        if len(self.problems) == 1:
            text = self.problems[0]
        else:
            text = f"{len(self.problems)} problems:\n" + "\n".join(f"- {p}" for p in self.problems)
        super().__init__(text)


class CodecError(SuperstepError, TypeError):
    """A value cannot be encoded or decoded by the workflow's JSON codec."""


class RunError(SuperstepError):
    """A run could not continue. The run's status says how it ended."""


class StateConflictError(RunError):
    """Several executors wrote one shared-state key in one superstep and the key has
    no reducer. The superstep committed nothing."""

    def __init__(self, key: str, writers: list[str], superstep: int) -> None:
        self.key = key
        self.writers = list(writers)
        self.superstep = superstep
        super().__init__(
            f"state key {key!r} was written by {', '.join(repr(w) for w in writers)} in superstep "
            f"{superstep} and has no reducer; the superstep committed nothing. Declare a reducer "
            f"(WorkflowBuilder.add_state({key!r}, reducer=...)) or let one executor own the key."
        )


class ExecutorFailedError(RunError):
    """An executor's activation failed after its retries and its policy is ``fail``."""

    def __init__(self, executor_id: str, superstep: int, attempts: int, error: str) -> None:
        self.executor_id = executor_id
        self.superstep = superstep
        self.attempts = attempts
        self.error = error
        super().__init__(
            f"executor {executor_id!r} failed in superstep {superstep} after {attempts} "
            f"attempt(s): {error}"
        )


class ConvergenceError(RunError):
    """The run reached ``max_supersteps`` with work still pending."""

    def __init__(self, max_supersteps: int, livelock_period: int | None) -> None:
        self.max_supersteps = max_supersteps
        self.livelock_period = livelock_period
        text = f"the run did not finish within max_supersteps={max_supersteps}"
        if livelock_period is not None:
            text += (
                f"; livelock detected: the pending messages and shared state repeat every "
                f"{livelock_period} superstep(s), so the run would never finish"
            )
        super().__init__(text)


class StalledError(RunError):
    """Fan-in buffers hold messages that can never be delivered."""

    def __init__(self, diagnosis: str) -> None:
        self.diagnosis = diagnosis
        super().__init__(diagnosis)


class UndeliverableMessageError(RunError):
    """Strict routing: a message was sent that no edge accepts."""


class NoLiveHostError(RunError):
    """Executors of the run had no live host in their placement pool for longer than the
    runtime waits for one (the Dapr runtime's ``SUPERSTEP_NO_HOST_DEADLINE_S``)."""


class StoreRefusedError(RunError):
    """The state store refused to take a barrier of the run, or a payload of its next
    superstep, for good: the same request would be refused however often it was
    made (the Dapr runtime: a 4xx answer that is not an ETag conflict, as daprd's 400
    for a body over its limit). The run ends ``failed`` as of its last committed
    barrier; the message holds the store's answer."""

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


class RunCancelledError(RunError):
    """The run was cancelled; the current superstep committed nothing."""


class RequestError(SuperstepError, ValueError):
    """A response names no pending request, or its type is not the one requested."""


class CheckpointError(SuperstepError):
    """A checkpoint cannot be read, has an unknown schema, or belongs to another graph."""


class RemoteError(SuperstepError):
    """A remote runtime's HTTP API refused a call (``status`` 4xx/5xx, with its problem
    description) or could not be reached (``status`` None; retrying may help)."""

    def __init__(
        self,
        message: str,
        status: int | None = None,
        problem: dict[str, object] | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.problem = dict(problem or {})
        self.retryable = status is None or status >= 500
        self.retry_after = retry_after
        """Seconds the server asked the caller to wait before trying again
        (``Retry-After``), when it said."""
