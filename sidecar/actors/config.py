"""The app's actor configuration (``GET /dapr/config``, dapr-contract §4.3)."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

from sidecar.durations import parse_go_duration

__all__ = ["ActorConfig", "TypeConfig", "parse_app_config"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TypeConfig:
    idle_timeout: float = 3600.0
    drain_timeout: float = 2.0
    drain_rebalanced: bool = True
    reentrancy: bool = False
    max_stack_depth: int = 32


@dataclass(frozen=True)
class ActorConfig:
    """Hosted actor types and their settings."""

    types: Mapping[str, TypeConfig]

    @property
    def entities(self) -> frozenset[str]:
        return frozenset(self.types)


def _duration(raw: object, default: float, field: str) -> float:
    if raw in (None, ""):
        return default
    try:
        return parse_go_duration(str(raw))
    except ValueError:
        log.warning("/dapr/config: ignoring %s=%r (not a Go duration)", field, raw)
        return default


def _type_config(raw: Mapping[str, Any], base: TypeConfig) -> TypeConfig:
    reentrancy = raw.get("reentrancy")
    enabled, depth = base.reentrancy, base.max_stack_depth
    if isinstance(reentrancy, Mapping):
        enabled = bool(reentrancy.get("enabled", False))
        depth = int(reentrancy.get("maxStackDepth") or 32)
    drain = _duration(raw.get("drainOngoingCallTimeout"), base.drain_timeout, "drain")
    drain_rebalanced = raw.get("drainRebalancedActors")
    return TypeConfig(
        idle_timeout=_duration(raw.get("actorIdleTimeout"), base.idle_timeout, "actorIdleTimeout"),
        drain_timeout=min(drain, 30.0),
        drain_rebalanced=base.drain_rebalanced
        if drain_rebalanced is None
        else bool(drain_rebalanced),
        reentrancy=enabled,
        max_stack_depth=depth,
    )


def parse_app_config(body: object) -> ActorConfig:
    """Parse the JSON of ``/dapr/config``; anything unusable means "no actors"."""
    if not isinstance(body, Mapping):
        return ActorConfig(MappingProxyType({}))
    entities = body.get("entities") or []
    if not isinstance(entities, list):
        return ActorConfig(MappingProxyType({}))
    base = _type_config(body, TypeConfig())
    types: dict[str, TypeConfig] = {str(e): base for e in entities}
    for entry in body.get("entitiesConfig") or []:
        if not isinstance(entry, Mapping):
            continue
        for name in entry.get("entities") or []:
            if name not in types:
                log.warning("/dapr/config: entitiesConfig for non-hosted type %r ignored", name)
                continue
            types[name] = _type_config(entry, base)
    return ActorConfig(MappingProxyType(types))
