"""Frozen descriptions of the Dapr resources the local sidecar loads from YAML."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

from sidecar.durations import parse_go_duration
from sidecar.errors import ResourceError

__all__ = [
    "SUPPORTED_COMPONENTS",
    "Component",
    "Resiliency",
    "Resources",
    "RetryPolicy",
    "RouteRule",
    "Subscription",
]

#: (spec.type, spec.version) -> metadata fields that must be present.
SUPPORTED_COMPONENTS: Mapping[tuple[str, str], tuple[str, ...]] = MappingProxyType(
    {
        ("state.in-memory", "v1"): (),
        ("state.redis", "v1"): ("redisHost",),
        ("state.postgresql", "v2"): ("connectionString",),
        ("pubsub.in-memory", "v1"): (),
        ("pubsub.redis", "v1"): ("redisHost",),
    }
)


def _frozen(mapping: Mapping[str, str] | None = None) -> Mapping[str, str]:
    return MappingProxyType(dict(mapping or {}))


@dataclass(frozen=True)
class Component:
    """One ``kind: Component`` document."""

    name: str
    type: str
    version: str
    metadata: Mapping[str, str] = field(default_factory=_frozen)
    scopes: tuple[str, ...] = ()
    file: str = "<memory>"

    @property
    def category(self) -> str:
        """``state`` or ``pubsub`` (the part of ``spec.type`` before the dot)."""
        return self.type.split(".", 1)[0]

    def get(self, key: str, default: str = "") -> str:
        """A metadata value; names are matched case-insensitively like Dapr does."""
        if key in self.metadata:
            return self.metadata[key]
        lowered = key.lower()
        for k, v in self.metadata.items():
            if k.lower() == lowered:
                return v
        return default

    def require(self, key: str) -> str:
        value = self.get(key)
        if not value:
            raise ResourceError(
                self.file,
                f"spec.metadata[{key}]",
                f"component {self.name!r} of type {self.type} needs metadata {key!r}",
            )
        return value

    def flag(self, key: str) -> bool:
        return self.get(key).strip().lower() in ("true", "1", "yes", "y", "on")

    def seconds(self, key: str, default: float) -> float:
        """A Go duration (or a bare number of seconds) from metadata."""
        raw = self.get(key)
        if not raw:
            return default
        try:
            return float(raw)
        except ValueError:
            pass
        try:
            return parse_go_duration(raw)
        except ValueError:
            raise ResourceError(
                self.file, f"spec.metadata[{key}]", f"{raw!r} is not a duration"
            ) from None

    def integer(self, key: str, default: int) -> int:
        raw = self.get(key)
        if not raw:
            return default
        try:
            return int(raw)
        except ValueError:
            raise ResourceError(
                self.file, f"spec.metadata[{key}]", f"{raw!r} is not an integer"
            ) from None


@dataclass(frozen=True)
class RouteRule:
    """A routing rule; an empty ``match`` always matches."""

    match: str
    path: str


@dataclass(frozen=True)
class Subscription:
    """A declarative or programmatic subscription, normalised to a list of rules.

    The default route (``routes.default`` or v1 ``route``) is the last, unconditional rule.
    """

    pubsub_name: str
    topic: str
    rules: tuple[RouteRule, ...]
    metadata: Mapping[str, str] = field(default_factory=_frozen)
    dead_letter_topic: str = ""
    bulk: bool = False
    scopes: tuple[str, ...] = ()
    kind: str = "PROGRAMMATIC"
    name: str = ""

    @property
    def raw_payload(self) -> bool:
        return self.metadata.get("rawPayload", "").lower() == "true"


@dataclass(frozen=True)
class RetryPolicy:
    """A resiliency retry policy. ``max_retries`` of -1 retries forever."""

    name: str
    policy: str = "constant"
    duration: float = 5.0
    max_interval: float = 60.0
    max_retries: int = -1

    def delay(self, attempt: int) -> float:
        """Seconds to wait before retry number ``attempt`` (1-based), without jitter."""
        if self.policy == "exponential":
            return float(min(self.max_interval, 0.5 * (1.5 ** (attempt - 1))))
        return self.duration

    def allows(self, attempt: int) -> bool:
        """True if retry number ``attempt`` (1-based) may run."""
        return self.max_retries < 0 or attempt <= self.max_retries


@dataclass(frozen=True)
class Resiliency:
    """The parts of ``kind: Resiliency`` the sidecar applies.

    ``component_inbound`` maps a pub/sub component name to a retry policy name.
    """

    retries: Mapping[str, RetryPolicy] = field(default_factory=lambda: MappingProxyType({}))
    timeouts: Mapping[str, float] = field(default_factory=lambda: MappingProxyType({}))
    component_inbound: Mapping[str, str] = field(default_factory=_frozen)
    component_outbound: Mapping[str, str] = field(default_factory=_frozen)
    file: str = "<memory>"

    def inbound_retry(self, component: str, category: str) -> RetryPolicy | None:
        """The inbound retry policy of a component, resolved like daprd resolves it."""
        named = self.component_inbound.get(component)
        if named:
            return self.retries.get(named)
        cat = category.capitalize()
        for default in (
            f"Default{cat}ComponentInboundRetryPolicy",
            "DefaultComponentInboundRetryPolicy",
            "DefaultComponentRetryPolicy",
            "DefaultRetryPolicy",
        ):
            if default in self.retries:
                return self.retries[default]
        return None


@dataclass(frozen=True)
class Resources:
    """Everything loaded from the resources paths of one app."""

    components: tuple[Component, ...] = ()
    subscriptions: tuple[Subscription, ...] = ()
    resiliencies: tuple[Resiliency, ...] = ()

    def inbound_retry(self, component: str, category: str) -> RetryPolicy | None:
        for res in self.resiliencies:
            policy = res.inbound_retry(component, category)
            if policy is not None:
                return policy
        return None
