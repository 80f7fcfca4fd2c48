"""Frozen descriptions of the Dapr resources the local sidecar loads from YAML."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

from sidecar.durations import parse_go_duration
from sidecar.errors import ResourceError

__all__ = [
    "SUPPORTED_COMPONENTS",
    "CircuitBreakerPolicy",
    "Component",
    "PolicyNames",
    "Resiliency",
    "Resources",
    "RetryPolicy",
    "RouteRule",
    "Subscription",
    "TargetPolicies",
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
class CircuitBreakerPolicy:
    """A resiliency circuit breaker; ``trip`` is a CEL expression over the counts
    ``requests``, ``totalSuccesses``, ``totalFailures``, ``consecutiveSuccesses`` and
    ``consecutiveFailures``. ``interval`` 0 never clears the counts while closed."""

    name: str
    max_requests: int = 1
    interval: float = 0.0
    timeout: float = 60.0
    trip: str = "consecutiveFailures > 5"


@dataclass(frozen=True)
class PolicyNames:
    """The policies one target (or one direction of a component target) names."""

    timeout: str = ""
    retry: str = ""
    circuit_breaker: str = ""


@dataclass(frozen=True)
class TargetPolicies:
    """The policies that apply to one target, resolved to their definitions."""

    timeout: float | None = None
    retry: RetryPolicy | None = None
    circuit_breaker: CircuitBreakerPolicy | None = None

    def __bool__(self) -> bool:
        return (self.timeout, self.retry, self.circuit_breaker) != (None, None, None)


#: The word daprd puts in default policy names for a component category.
_DEFAULT_INFIX = MappingProxyType({"state": "Statestore", "pubsub": "Pubsub"})


@dataclass(frozen=True)
class Resiliency:
    """The parts of ``kind: Resiliency`` the sidecar applies.

    ``component_inbound`` / ``component_outbound`` hold, for every component named under
    ``spec.targets.components``, the policies of that direction (empty names when the
    direction is absent). As in daprd, a component named there gets only those; any
    other component gets the most specific ``Default*`` policies.
    """

    retries: Mapping[str, RetryPolicy] = field(default_factory=lambda: MappingProxyType({}))
    timeouts: Mapping[str, float] = field(default_factory=lambda: MappingProxyType({}))
    circuit_breakers: Mapping[str, CircuitBreakerPolicy] = field(
        default_factory=lambda: MappingProxyType({})
    )
    component_inbound: Mapping[str, PolicyNames] = field(
        default_factory=lambda: MappingProxyType({})
    )
    component_outbound: Mapping[str, PolicyNames] = field(
        default_factory=lambda: MappingProxyType({})
    )
    file: str = "<memory>"

    def _default(self, kind: str, known: Mapping[str, object], infixes: tuple[str, ...]) -> str:
        for infix in (*infixes, ""):
            name = f"Default{infix}{kind}Policy"
            if name in known:
                return name
        return ""

    def component_policies(self, component: str, category: str, direction: str) -> TargetPolicies:
        """The policies of a component in ``direction`` (``Inbound`` or ``Outbound``),
        resolved like daprd: the component's target, else ``Default<Kind>Component<Dir>*``,
        ``DefaultComponent<Dir>*``, ``DefaultComponent*``, ``Default*``."""
        targets = self.component_inbound if direction == "Inbound" else self.component_outbound
        names = targets.get(component)
        if names is None:
            kind = _DEFAULT_INFIX.get(category, category.capitalize())
            infixes = (f"{kind}Component{direction}", f"Component{direction}", "Component")
            names = PolicyNames(
                timeout=self._default("Timeout", self.timeouts, infixes),
                retry=self._default("Retry", self.retries, infixes),
                circuit_breaker=self._default("CircuitBreaker", self.circuit_breakers, infixes),
            )
        return TargetPolicies(
            timeout=self.timeouts.get(names.timeout),
            retry=self.retries.get(names.retry),
            circuit_breaker=self.circuit_breakers.get(names.circuit_breaker),
        )

    def inbound_retry(self, component: str, category: str) -> RetryPolicy | None:
        """The inbound retry policy of a component, resolved like daprd resolves it."""
        return self.component_policies(component, category, "Inbound").retry


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

    def outbound(self, component: str, category: str) -> TargetPolicies:
        """The outbound policies of a component (state operations, publish); the first
        resiliency document that gives any wins."""
        for res in self.resiliencies:
            policies = res.component_policies(component, category, "Outbound")
            if policies:
                return policies
        return TargetPolicies()
