"""Dapr resource YAML: components, subscriptions and resiliency, as frozen values."""

from sidecar.resources.loader import load_resources, parse_documents, subscription_from_json
from sidecar.resources.model import (
    SUPPORTED_COMPONENTS,
    Component,
    Resiliency,
    Resources,
    RetryPolicy,
    RouteRule,
    Subscription,
)

__all__ = [
    "SUPPORTED_COMPONENTS",
    "Component",
    "Resiliency",
    "Resources",
    "RetryPolicy",
    "RouteRule",
    "Subscription",
    "load_resources",
    "parse_documents",
    "subscription_from_json",
]
