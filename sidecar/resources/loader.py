"""Load Dapr resource YAML (components, subscriptions, resiliency) from resources paths.

Every problem is a :class:`~sidecar.errors.ResourceError` naming the file and the field,
raised before anything starts. Documents of other kinds (``Configuration``,
``HTTPEndpoint``, ...) are skipped, as daprd skips what it does not load from a path.
"""

from __future__ import annotations

import logging
import os
import uuid
from collections.abc import Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from types import MappingProxyType
from typing import Any

import yaml

from sidecar.durations import parse_go_duration
from sidecar.errors import ResourceError
from sidecar.pubsub.cel import CelError, compile_expression
from sidecar.resources.model import (
    SUPPORTED_COMPONENTS,
    CircuitBreakerPolicy,
    Component,
    PolicyNames,
    Resiliency,
    Resources,
    RetryPolicy,
    RouteRule,
    Subscription,
)

__all__ = ["load_resources", "parse_documents", "subscription_from_json"]

log = logging.getLogger(__name__)


def load_resources(paths: Sequence[Path | str], app_id: str) -> Resources:
    """Load every ``*.yaml``/``*.yml`` file directly inside each path (or the file itself).

    Resources scoped to other app ids are left out.
    """
    components: list[Component] = []
    subscriptions: list[Subscription] = []
    resiliencies: list[Resiliency] = []
    for file in _files(paths):
        for comp, sub, res in parse_documents(file, app_id):
            if comp is not None:
                components.append(comp)
            if sub is not None:
                subscriptions.append(sub)
            if res is not None:
                resiliencies.append(res)
    seen: dict[str, Component] = {}
    for comp in components:
        if comp.name in seen:
            raise ResourceError(
                comp.file,
                "metadata.name",
                f"component {comp.name!r} is also defined in {seen[comp.name].file}",
            )
        seen[comp.name] = comp
    actor_stores = [c for c in components if c.category == "state" and c.flag("actorStateStore")]
    if len(actor_stores) > 1:
        raise ResourceError(
            actor_stores[1].file,
            "spec.metadata[actorStateStore]",
            f"only one state store may be the actor state store; {actor_stores[0].name!r} "
            f"in {actor_stores[0].file} already is",
        )
    return Resources(tuple(components), tuple(subscriptions), tuple(resiliencies))


def _files(paths: Sequence[Path | str]) -> Iterator[Path]:
    for raw in paths:
        path = Path(raw)
        if path.is_file():
            yield path
        elif path.is_dir():
            yield from sorted(
                p for p in path.iterdir() if p.is_file() and p.suffix in (".yaml", ".yml")
            )
        else:
            raise ResourceError(str(path), "resourcesPaths", "path does not exist")


ParsedDoc = tuple[Component | None, Subscription | None, Resiliency | None]


def parse_documents(file: Path, app_id: str) -> Iterator[ParsedDoc]:
    """Parse one YAML file (possibly several ``---`` documents)."""
    name = str(file)
    try:
        docs = list(yaml.safe_load_all(file.read_text(encoding="utf-8")))
    except yaml.YAMLError as exc:
        raise ResourceError(name, "<yaml>", f"not valid YAML: {exc}") from None
    for index, doc in enumerate(docs):
        if doc is None:
            continue
        where = name if len(docs) == 1 else f"{name} (document {index + 1})"
        if not isinstance(doc, dict):
            raise ResourceError(where, "<document>", "expected a mapping")
        kind = doc.get("kind")
        scopes = _scopes(doc, where)
        if scopes and app_id not in scopes:
            continue
        if kind == "Component":
            yield _component(doc, where, app_id, scopes), None, None
        elif kind == "Subscription":
            yield None, _subscription(doc, where, scopes), None
        elif kind == "Resiliency":
            yield None, None, _resiliency(doc, where)
        else:
            log.info("%s: skipping resource of kind %r", where, kind)


def _scopes(doc: Mapping[str, Any], where: str) -> tuple[str, ...]:
    raw = doc.get("scopes")
    if raw is None:
        return ()
    if not isinstance(raw, list) or not all(isinstance(s, str) for s in raw):
        raise ResourceError(where, "scopes", "must be a list of app ids")
    return tuple(raw)


def _mapping(value: object, where: str, field: str) -> Mapping[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise ResourceError(where, field, "must be a mapping")
    return value


def _name(doc: Mapping[str, Any], where: str) -> str:
    meta = _mapping(doc.get("metadata"), where, "metadata")
    name = meta.get("name")
    if not isinstance(name, str) or not name:
        raise ResourceError(where, "metadata.name", "is required")
    return name


def _expand(value: str, app_id: str) -> str:
    if "{" not in value:
        return value
    return (
        value.replace("{appID}", app_id)
        .replace("{uuid}", str(uuid.uuid4()))
        .replace("{podName}", app_id)
        .replace("{namespace}", os.environ.get("NAMESPACE", "default"))
    )


def _component(
    doc: Mapping[str, Any], where: str, app_id: str, scopes: tuple[str, ...]
) -> Component:
    name = _name(doc, where)
    spec = _mapping(doc.get("spec"), where, "spec")
    ctype = spec.get("type")
    if not isinstance(ctype, str) or not ctype:
        raise ResourceError(where, "spec.type", f"component {name!r} has no type")
    version = spec.get("version")
    if not isinstance(version, str) or not version:
        raise ResourceError(where, "spec.version", f"component {name!r} needs a version (v1)")
    versions = sorted(v for t, v in SUPPORTED_COMPONENTS if t == ctype)
    if not versions:
        known = ", ".join(sorted({t for t, _ in SUPPORTED_COMPONENTS}))
        raise ResourceError(
            where,
            "spec.type",
            f"unknown component type {ctype!r} for {name!r} (the local sidecar supports {known})",
        )
    if version not in versions:
        raise ResourceError(
            where,
            "spec.version",
            f"{ctype} version {version!r} is not supported by the local sidecar "
            f"(supported: {', '.join(versions)})",
        )
    if "metadata" not in spec:
        raise ResourceError(where, "spec.metadata", "is required (it may be an empty list)")
    items = spec["metadata"] or []
    if not isinstance(items, list):
        raise ResourceError(where, "spec.metadata", "must be a list of {name, value}")
    metadata: dict[str, str] = {}
    for i, item in enumerate(items):
        field = f"spec.metadata[{i}]"
        if not isinstance(item, dict) or not isinstance(item.get("name"), str):
            raise ResourceError(where, field, "must be a mapping with a 'name'")
        key = item["name"]
        if "secretKeyRef" in item:
            raise ResourceError(
                where,
                f"spec.metadata[{key}].secretKeyRef",
                "secret stores are not supported by the local sidecar; use value or envRef",
            )
        if "envRef" in item:
            env = os.environ.get(str(item["envRef"]))
            if env is None:
                raise ResourceError(
                    where, f"spec.metadata[{key}].envRef", f"variable {item['envRef']!r} is unset"
                )
            metadata[key] = env
            continue
        raw = item.get("value", "")
        if isinstance(raw, bool):
            value = "true" if raw else "false"
        elif isinstance(raw, dict | list):
            raise ResourceError(where, f"spec.metadata[{key}].value", "must be a scalar")
        else:
            value = "" if raw is None else str(raw)
        metadata[key] = _expand(value, app_id)
    comp = Component(name, ctype, version, MappingProxyType(metadata), scopes, where)
    for required in SUPPORTED_COMPONENTS[(ctype, version)]:
        comp.require(required)
    return comp


def _rules(routes: Mapping[str, Any], where: str, prefix: str) -> list[RouteRule]:
    out: list[RouteRule] = []
    raw_rules = routes.get("rules") or []
    if not isinstance(raw_rules, list):
        raise ResourceError(where, f"{prefix}.rules", "must be a list")
    for i, rule in enumerate(raw_rules):
        if not isinstance(rule, dict) or not isinstance(rule.get("path"), str):
            raise ResourceError(where, f"{prefix}.rules[{i}]", "needs a 'path'")
        match = rule.get("match") or ""
        if not isinstance(match, str):
            raise ResourceError(where, f"{prefix}.rules[{i}].match", "must be a string")
        out.append(RouteRule(match, rule["path"]))
    return out


def subscription_from_json(
    entry: Mapping[str, Any], where: str, *, kind: str = "PROGRAMMATIC"
) -> Subscription:
    """One element of ``GET /dapr/subscribe`` (v1 ``route`` or v2 ``routes``)."""
    pubsub = entry.get("pubsubname") or entry.get("pubsubName")
    topic = entry.get("topic")
    if not isinstance(pubsub, str) or not pubsub:
        raise ResourceError(where, "pubsubname", "is required")
    if not isinstance(topic, str) or not topic:
        raise ResourceError(where, "topic", "is required")
    routes = _mapping(entry.get("routes"), where, "routes")
    rules = _rules(routes, where, "routes")
    default = routes.get("default") or entry.get("route") or ""
    if not isinstance(default, str):
        raise ResourceError(where, "routes.default", "must be a string")
    if default:
        rules.append(RouteRule("", default))
    if not rules:
        raise ResourceError(where, "routes", f"subscription to {topic!r} has no route")
    meta = _mapping(entry.get("metadata"), where, "metadata")
    bulk = _mapping(entry.get("bulkSubscribe"), where, "bulkSubscribe")
    dlq = entry.get("deadLetterTopic") or ""
    return Subscription(
        pubsub_name=pubsub,
        topic=topic,
        rules=tuple(rules),
        metadata=MappingProxyType({str(k): str(v) for k, v in meta.items()}),
        dead_letter_topic=str(dlq),
        bulk=bool(bulk.get("enabled", False)),
        kind=kind,
    )


def _subscription(doc: Mapping[str, Any], where: str, scopes: tuple[str, ...]) -> Subscription:
    name = _name(doc, where)
    spec = dict(_mapping(doc.get("spec"), where, "spec"))
    sub = subscription_from_json(spec, where, kind="DECLARATIVE")
    return Subscription(
        pubsub_name=sub.pubsub_name,
        topic=sub.topic,
        rules=sub.rules,
        metadata=sub.metadata,
        dead_letter_topic=sub.dead_letter_topic,
        bulk=sub.bulk,
        scopes=scopes,
        kind="DECLARATIVE",
        name=name,
    )


def _duration(value: object, where: str, field: str) -> float:
    try:
        return parse_go_duration(str(value))
    except ValueError:
        raise ResourceError(where, field, f"{value!r} is not a Go duration") from None


def _retry(name: str, raw: object, where: str) -> RetryPolicy:
    field = f"spec.policies.retries.{name}"
    spec = _mapping(raw, where, field)
    policy = str(spec.get("policy", "constant"))
    if policy not in ("constant", "exponential"):
        raise ResourceError(where, f"{field}.policy", "must be constant or exponential")
    return RetryPolicy(
        name=name,
        policy=policy,
        duration=_duration(spec.get("duration", "5s"), where, f"{field}.duration"),
        max_interval=_duration(spec.get("maxInterval", "60s"), where, f"{field}.maxInterval"),
        max_retries=_integer(spec, "maxRetries", -1, where, field),
    )


def _integer(spec: Mapping[str, Any], key: str, default: int, where: str, field: str) -> int:
    try:
        return int(spec.get(key, default))
    except (TypeError, ValueError):
        raise ResourceError(where, f"{field}.{key}", "must be an integer") from None


def _circuit_breaker(name: str, raw: object, where: str) -> CircuitBreakerPolicy:
    field = f"spec.policies.circuitBreakers.{name}"
    spec = _mapping(raw, where, field)
    trip = str(spec.get("trip", "consecutiveFailures > 5"))
    try:
        compile_expression(trip)
    except CelError as exc:
        raise ResourceError(where, f"{field}.trip", str(exc)) from None
    return CircuitBreakerPolicy(
        name=name,
        max_requests=max(1, _integer(spec, "maxRequests", 1, where, field)),
        interval=_duration(spec.get("interval", "0s"), where, f"{field}.interval"),
        timeout=_duration(spec.get("timeout", "60s"), where, f"{field}.timeout"),
        trip=trip,
    )


#: policy kind in a target -> section of spec.policies that must define the name
_TARGET_KEYS = (
    ("timeout", "timeouts"),
    ("retry", "retries"),
    ("circuitBreaker", "circuitBreakers"),
)


def _targets(
    components: Mapping[str, Any],
    direction: str,
    where: str,
    policies: Mapping[str, Iterable[str]],
) -> dict[str, PolicyNames]:
    """``{component: names}`` for every component listed; unknown policy names fail."""
    out: dict[str, PolicyNames] = {}
    for comp, raw in components.items():
        spec = _mapping(raw, where, f"spec.targets.components.{comp}")
        side = _mapping(spec.get(direction), where, f"spec.targets.components.{comp}.{direction}")
        names: dict[str, str] = {}
        for key, section in _TARGET_KEYS:
            value = side.get(key)
            if value is None:
                continue
            if value not in set(policies[section]):
                raise ResourceError(
                    where,
                    f"spec.targets.components.{comp}.{direction}.{key}",
                    f"no {key} policy named {value!r}",
                )
            names[key] = str(value)
        out[str(comp)] = PolicyNames(
            timeout=names.get("timeout", ""),
            retry=names.get("retry", ""),
            circuit_breaker=names.get("circuitBreaker", ""),
        )
    return out


def _resiliency(doc: Mapping[str, Any], where: str) -> Resiliency:
    _name(doc, where)
    spec = _mapping(doc.get("spec"), where, "spec")
    policies = _mapping(spec.get("policies"), where, "spec.policies")
    retries = {
        str(n): _retry(str(n), r, where)
        for n, r in _mapping(policies.get("retries"), where, "spec.policies.retries").items()
    }
    timeouts = {
        str(n): _duration(v, where, f"spec.policies.timeouts.{n}")
        for n, v in _mapping(policies.get("timeouts"), where, "spec.policies.timeouts").items()
    }
    breakers = {
        str(n): _circuit_breaker(str(n), b, where)
        for n, b in _mapping(
            policies.get("circuitBreakers"), where, "spec.policies.circuitBreakers"
        ).items()
    }
    targets = _mapping(spec.get("targets"), where, "spec.targets")
    comps = _mapping(targets.get("components"), where, "spec.targets.components")
    known: Mapping[str, Iterable[str]] = {
        "timeouts": timeouts,
        "retries": retries,
        "circuitBreakers": breakers,
    }
    return Resiliency(
        retries=MappingProxyType(retries),
        timeouts=MappingProxyType(timeouts),
        circuit_breakers=MappingProxyType(breakers),
        component_inbound=MappingProxyType(_targets(comps, "inbound", where, known)),
        component_outbound=MappingProxyType(_targets(comps, "outbound", where, known)),
        file=where,
    )
