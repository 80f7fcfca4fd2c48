"""The wire protocol between the coordinator and executor hosts.

Every payload is a CloudEvent 1.0 with ``datacontenttype: application/json``
whose ``data`` is one of the versioned envelopes below. Their JSON schema is
published in ``docs/protocol.md`` (``python -m executor_host.protocol`` prints
it), so a host written in another language can join a pool.

Topics (on the pub/sub component named by ``SUPERSTEP_PUBSUB``; the ``superstep``
prefix is the deployment's namespace, ``SUPERSTEP_NAMESPACE``):

* ``superstep.activations.<pool>`` — one ``ActivationEnvelope`` per activated
  executor of that pool; competing consumers: one host of the pool takes it.
  Each event's ``subject`` is the executor actor it is for, ``<run>:<executor
  index>`` (``executor_actor_id``).

A ``ResultEnvelope`` goes from the executor actor to the run's coordinator actor
directly: the body of an actor call to ``SuperstepCoordinator/<run>`` method
``Result``.

Ids are deterministic: an activation's CloudEvent id is
``<run>/<generation>/<superstep>/<executor index>/<epoch>/<attempt>``, so duplicates
are recognisable and harmless.
"""

from __future__ import annotations

import json
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

__all__ = [
    "DEFAULT_TOPIC_PREFIX",
    "PROTOCOL_VERSION",
    "ActivationEnvelope",
    "AttemptRecord",
    "ErrorRecord",
    "HostRecord",
    "ResultEnvelope",
    "activation_topic",
    "executor_actor_id",
    "json_schema",
]

PROTOCOL_VERSION = 1
DEFAULT_TOPIC_PREFIX = "superstep"


def activation_topic(pool: str, prefix: str = DEFAULT_TOPIC_PREFIX) -> str:
    """The topic of a pool's activations: ``<prefix>.activations.<pool>``."""
    return f"{prefix}.activations.{pool}"


def executor_actor_id(run_id: str, executor_index: int) -> str:
    """The id of the executor actor of one run's executor: ``<run>:<executor index>``
    (its type is the pool's, ``superstep-executor-<pool>``)."""
    return f"{run_id}:{executor_index}"


class _Envelope(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ActivationEnvelope(_Envelope):
    """Coordinator -> executor host: run one activation."""

    kind: Literal["activation"] = "activation"
    v: Literal[1] = 1
    run_id: str = Field(min_length=1, max_length=200, pattern=r"^[A-Za-z0-9_.:-]+$")
    workflow: str = Field(min_length=1, description="registered workflow name")
    factory: str | None = Field(
        default=None, description="module:function building the workflow (with params)"
    )
    params: dict[str, Any] | None = Field(default=None, description="the factory's parameters")
    signature: str = Field(description="graph signature the coordinator planned with")
    epoch: int = Field(ge=1, description="coordinator epoch; results echo it (fencing)")
    generation: int = Field(
        default=1, ge=1, description="+1 per resume of the run from one of its checkpoints"
    )
    attempt: int = Field(ge=1, description="1 for the first publish, +1 per re-publish")
    executor_index: int = Field(ge=0, description="position in the graph's executor order")
    activation: dict[str, Any] = Field(description="runtime.engine.Activation.to_json()")
    state: dict[str, Any] | None = Field(
        default=None, description="committed shared state (codec JSON) when sent inline"
    )
    state_key: str | None = Field(
        default=None, description="state-store key of the committed shared state otherwise"
    )
    snapshot: Any = Field(default=None, description="the executor's last committed snapshot")
    has_snapshot: bool = False
    payload_keys: dict[str, str] | None = Field(
        default=None,
        description=(
            "message position -> state-store key of its payload (JSON), for payloads "
            "sent by reference; those messages carry no data field. 'snapshot' -> the "
            "key of the executor's snapshot when it is sent by reference (snapshot is "
            "then null)"
        ),
    )
    traceparent: str | None = Field(
        default=None,
        description=(
            "W3C traceparent of the superstep's span when the coordinator traces "
            "(OpenTelemetry); the host's span of this activation is its child"
        ),
    )

    @property
    def superstep(self) -> int:
        return int(self.activation["superstep"])

    @property
    def executor_id(self) -> str:
        return str(self.activation["executor_id"])

    def event_id(self) -> str:
        return (
            f"{self.run_id}/{self.generation}/{self.superstep}/{self.executor_index}/"
            f"{self.epoch}/{self.attempt}"
        )


class ResultEnvelope(_Envelope):
    """Executor host -> coordinator: what one activation produced."""

    kind: Literal["result"] = "result"
    v: Literal[1] = 1
    run_id: str = Field(min_length=1)
    epoch: int = Field(ge=1)
    superstep: int = Field(ge=1)
    executor_id: str
    host: str = Field(description="host id of the replica that executed it")
    result: dict[str, Any] = Field(
        description=(
            "runtime.engine.ActivationResult.to_json(); its error is an ErrorRecord, its "
            "optional failures a list of AttemptRecords (one per failed attempt); empty "
            "when result_stored"
        )
    )
    result_stored: bool = Field(
        default=False,
        description=(
            "the result is too large to send: read it from the run store's stored "
            "result of this activation (result:<run>:<generation>:<superstep>:<index>)"
        ),
    )


class AttemptRecord(BaseModel):
    """Why one attempt of an activation failed (``runtime.engine.AttemptError``)."""

    model_config = ConfigDict(frozen=True)

    attempt: int = Field(ge=1, description="1 for the first attempt")
    type: str = Field(description="the exception class's __qualname__")
    module: str | None = Field(default=None, description="the exception class's module")
    message: str


class ErrorRecord(BaseModel):
    """A result's ``error`` (and a run's, in its run state and ``GET /runs/{id}``):
    ``runtime.engine.ErrorInfo.to_json()``. The fields after ``superstep`` are optional:
    hosts built before them send none, and readers take an error without them."""

    model_config = ConfigDict(frozen=True)

    type: str = Field(description="the exception class's __qualname__")
    message: str
    executor_id: str | None = None
    superstep: int | None = None
    module: str | None = Field(
        default=None, description="the exception class's module (builtins for Python's own)"
    )
    traceback: str | None = Field(
        default=None,
        description=(
            "the exception's traceback as the host that ran the handler formatted it "
            "(Python's format_exception; a longer one keeps its last 16,384 characters)"
        ),
    )
    attempts: list[AttemptRecord] = Field(
        default_factory=list, description="why each failed attempt of the activation failed"
    )
    cause: ErrorRecord | None = Field(
        default=None,
        description="the error this one reports: an ExecutorFailedError's is the executor's",
    )


class HostRecord(_Envelope):
    """What an executor host registers (and refreshes with a heartbeat)."""

    kind: Literal["host"] = "host"
    v: Literal[1] = 1
    app_id: str = Field(description="Dapr app id (shared by the replicas of one app)")
    host_id: str = Field(
        default="", description="this replica's own name (the app id when it runs alone)"
    )
    pool: str
    labels: dict[str, str] = Field(default_factory=dict)
    workflows: dict[str, list[str]] = Field(
        default_factory=dict, description="workflow name -> executor ids this host can run"
    )
    modules: list[str] = Field(
        default_factory=list, description="modules whose workflow factories this host serves"
    )
    heartbeat_at: float = Field(description="unix time of the last heartbeat")


def json_schema() -> dict[str, Any]:
    """The JSON schema of every envelope (published in docs/protocol.md)."""
    return {
        "protocol_version": PROTOCOL_VERSION,
        "activation": ActivationEnvelope.model_json_schema(),
        "result": ResultEnvelope.model_json_schema(),
        "error": ErrorRecord.model_json_schema(),
        "host": HostRecord.model_json_schema(),
    }


if __name__ == "__main__":
    print(json.dumps(json_schema(), indent=2))
