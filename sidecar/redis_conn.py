"""Redis connections built from component metadata (shared by state and pub/sub)."""

from __future__ import annotations

from sidecar.errors import ResourceError
from sidecar.resources.model import Component
from sidecar.resp import RespClient

__all__ = ["redis_client"]


def redis_client(component: Component) -> RespClient:
    """A client for ``redisHost``/``redisPassword``/``redisUsername``/``redisDB``/``enableTLS``."""
    host = component.require("redisHost")
    hostname, _, port_text = host.rpartition(":")
    if not hostname:
        hostname, port_text = host, "6379"
    try:
        port = int(port_text)
    except ValueError:
        raise ResourceError(
            component.file, "spec.metadata[redisHost]", f"{host!r} is not host:port"
        ) from None
    return RespClient(
        hostname,
        port,
        db=component.integer("redisDB", 0),
        username=component.get("redisUsername") or None,
        password=component.get("redisPassword") or None,
        ssl=component.flag("enableTLS"),
        connect_timeout=5.0,
    )
