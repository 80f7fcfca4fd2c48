"""Settings of the Dapr-side apps, read from the environment once at start-up."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field

__all__ = ["DEFAULT_MAX_BODY_BYTES", "DEFAULT_RUN_RETENTION_S", "Settings", "resolve_app_id"]

DEFAULT_MAX_BODY_BYTES = 4 * 1024 * 1024
"""daprd's default ``--max-body-size`` (4Mi): nothing larger reaches the app through it."""


DEFAULT_RUN_RETENTION_S = 7 * 24 * 3600
"""How long an ended run stays in the state store unless ``SUPERSTEP_RUN_RETENTION_S`` says."""


def _labels(text: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for part in filter(None, (p.strip() for p in text.split(","))):
        key, sep, value = part.partition("=")
        if not sep or not key:
            raise ValueError(f"SUPERSTEP_LABELS: expected key=value, got {part!r}")
        out[key.strip()] = value.strip()
    return out


def _pools(text: str) -> tuple[str, ...]:
    pools = tuple(dict.fromkeys(p.strip() for p in text.split(",") if p.strip()))
    for pool in pools:
        if not pool.replace("-", "").replace("_", "").isalnum() or not pool.isascii():
            raise ValueError(
                f"SUPERSTEP_POOLS: {pool!r} is not a pool name (letters, digits, '-' and '_')"
            )
    return pools


def _count(env: Mapping[str, str], name: str, default: int, *, least: int, unit: str = "") -> int:
    """A whole number from the environment, at least ``least``; ``default`` when unset."""
    text = env.get(name, "")
    if not text.strip():
        return default
    try:
        value = int(text)
    except ValueError:
        raise ValueError(f"{name}: expected a whole number{unit}, got {text!r}") from None
    if value < least:
        raise ValueError(f"{name}: expected {least} or more{unit}, got {value}")
    return value


@dataclass(frozen=True, slots=True)
class Settings:
    app_id: str
    """The Dapr app id; empty when the environment does not say (the Kubernetes
    injector does not set ``APP_ID``): ``resolve_app_id`` then asks the sidecar."""
    workflows: tuple[str, ...]
    """``module:attr`` specs of the workflows this app serves."""
    host_id: str = ""
    """This replica's own name (host records, "which host ran what"); replicas of a
    pool share the app id. ``SUPERSTEP_HOST_ID``, else Azure Container Apps'
    ``CONTAINER_APP_REPLICA_NAME``, else the app id."""
    pool: str = "default"
    labels: Mapping[str, str] = field(default_factory=dict)
    pools: tuple[str, ...] = ()
    """The executor pools the API app serves itself, beside the coordinator
    (``SUPERSTEP_POOLS``, comma-separated; none by default): one app runs every
    executor, the shape for in-memory components (``dapr.inmemory.yaml``). Each pool's
    host is named ``<host id>:<pool>``; the executor host app reads ``pool`` instead."""
    state_store: str = "statestore"
    pubsub: str = "pubsub"
    namespace: str = "superstep"
    """Prefix of every topic and state key: deployments sharing a broker or store differ here."""
    deadline_s: float = 10.0
    """How long the coordinator waits for a result before publishing the activation again."""
    heartbeat_s: float = 2.0
    host_ttl_s: float = 6.0
    """A host whose heartbeat is older than this is considered gone."""
    no_host_deadline_s: float = 60.0
    """How long a run waits for a live host of an executor's pool before it fails with
    ``NoLiveHostError`` (``SUPERSTEP_NO_HOST_DEADLINE_S``)."""
    store_failing_s: float = 600.0
    """How long the coordinator keeps trying a step of a run that the state store or
    the pub/sub keeps failing (at each deadline) before it fails the run with
    ``StoreRefusedError`` (``SUPERSTEP_STORE_FAILING_S``); the failure's own commit is
    tried until it lands."""
    inline_state_limit: int = 64 * 1024
    payload_ref_bytes: int = 16 * 1024
    """Message payloads of at least this many bytes of JSON travel by reference (written
    once to the state store, named by the activations); 0 sends every payload inline."""
    payload_ttl_s: int = 24 * 3600
    """Expiry of payloads written by reference (they are read while their superstep runs)."""
    api_token: str = ""
    """When set, the HTTP API wants ``Authorization: Bearer <token>`` (``SUPERSTEP_API_TOKEN``)."""
    app_token: str = ""
    """When set, the routes the Dapr sidecar calls want header ``dapr-api-token: <token>``
    (``APP_API_TOKEN``: the variable daprd reads to send that header on every call to
    its app)."""
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES
    """Largest request body either app takes (413 beyond; ``SUPERSTEP_MAX_BODY_BYTES``,
    0 for no limit). The default is daprd's default ``--max-body-size``, 4 MiB."""
    actor_idle_s: int = 300
    """How long an actor of these apps stays in memory without a call before the sidecar
    deactivates it (``SUPERSTEP_ACTOR_IDLE_S``; Dapr's default is an hour). A finished
    run's actors leave memory this long after its last superstep: an executor actor
    holds about 0.6 KiB till then (its run's workflow instance is in the host's bounded
    ``RunInstances``, its results in the store)."""
    max_starts: int = 32
    """Run starts the API app works on at once (``SUPERSTEP_MAX_STARTS``); more wait."""
    start_queue: int = 512
    """Run starts that may wait for one of those (``SUPERSTEP_START_QUEUE``); a start
    beyond them is answered 503 with ``Retry-After``."""
    run_retention_s: int = DEFAULT_RUN_RETENTION_S
    """How long a run that ended (completed, failed, cancelled, stalled) stays in the
    state store, from its end (``SUPERSTEP_RUN_RETENTION_S``; 7 days by default, 0
    keeps every run for ever). Then the API app removes it (``_retention``)."""

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        e = os.environ if env is None else env
        specs = tuple(s.strip() for s in e.get("SUPERSTEP_WORKFLOWS", "").split(",") if s.strip())
        if not specs:
            raise ValueError(
                "SUPERSTEP_WORKFLOWS is empty: set it to module:attr[,module:attr...] naming the "
                "workflows (or factories returning them) this app serves"
            )
        return cls(
            app_id=e.get("APP_ID", ""),
            host_id=e.get("SUPERSTEP_HOST_ID") or e.get("CONTAINER_APP_REPLICA_NAME", ""),
            workflows=specs,
            pool=e.get("SUPERSTEP_POOL", "default"),
            labels=_labels(e.get("SUPERSTEP_LABELS", "")),
            pools=_pools(e.get("SUPERSTEP_POOLS", "")),
            state_store=e.get("SUPERSTEP_STATESTORE", "statestore"),
            pubsub=e.get("SUPERSTEP_PUBSUB", "pubsub"),
            namespace=e.get("SUPERSTEP_NAMESPACE", "superstep"),
            deadline_s=float(e.get("SUPERSTEP_DEADLINE_S", "10")),
            heartbeat_s=float(e.get("SUPERSTEP_HEARTBEAT_S", "2")),
            host_ttl_s=float(e.get("SUPERSTEP_HOST_TTL_S", "6")),
            no_host_deadline_s=float(e.get("SUPERSTEP_NO_HOST_DEADLINE_S", "60")),
            store_failing_s=float(e.get("SUPERSTEP_STORE_FAILING_S", "600")),
            payload_ref_bytes=int(e.get("SUPERSTEP_PAYLOAD_REF_BYTES", str(16 * 1024))),
            payload_ttl_s=int(e.get("SUPERSTEP_PAYLOAD_TTL_S", str(24 * 3600))),
            api_token=e.get("SUPERSTEP_API_TOKEN", ""),
            app_token=e.get("APP_API_TOKEN", ""),
            max_body_bytes=_count(
                e, "SUPERSTEP_MAX_BODY_BYTES", DEFAULT_MAX_BODY_BYTES, least=0, unit=" of bytes"
            ),
            actor_idle_s=_count(e, "SUPERSTEP_ACTOR_IDLE_S", 300, least=1, unit=" of seconds"),
            max_starts=_count(e, "SUPERSTEP_MAX_STARTS", 32, least=1),
            start_queue=_count(e, "SUPERSTEP_START_QUEUE", 512, least=0),
            run_retention_s=_count(
                e,
                "SUPERSTEP_RUN_RETENTION_S",
                DEFAULT_RUN_RETENTION_S,
                least=0,
                unit=" of seconds",
            ),
        )


async def resolve_app_id(settings: Settings) -> Settings:
    """``settings`` with the app id filled in from the sidecar's metadata API when the
    environment did not give one (``GET /v1.0/metadata`` answers ``{"id": ...}``)."""
    import dataclasses

    if settings.app_id:
        if not settings.host_id:
            return dataclasses.replace(settings, host_id=settings.app_id)
        return settings

    import httpx

    port = os.environ.get("DAPR_HTTP_PORT", "3500")
    base = os.environ.get("DAPR_HTTP_ENDPOINT") or f"http://127.0.0.1:{port}"
    headers = {}
    if os.environ.get("DAPR_API_TOKEN"):
        headers["dapr-api-token"] = os.environ["DAPR_API_TOKEN"]
    async with httpx.AsyncClient(timeout=10) as client:
        resp = await client.get(f"{base.rstrip('/')}/v1.0/metadata", headers=headers)
        resp.raise_for_status()
        app_id = str(resp.json().get("id") or "")
    if not app_id:
        raise RuntimeError("APP_ID is not set and the sidecar's metadata names no app id")
    return dataclasses.replace(settings, app_id=app_id, host_id=settings.host_id or app_id)
