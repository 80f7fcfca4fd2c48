"""Redis clients built from component metadata (shared by state and pub/sub).

The components use redis-py's asyncio client, set up to behave as the components need:

* RESP2 replies, not decoded: values, stream fields and IDs are ``bytes``;
* at most :data:`MAX_CONNECTIONS` connections per client; a caller that finds them all
  busy waits for one (redis-py's default pool would fail it with "Too many
  connections"), as long as it takes, like the commands queued on a busy connection;
* a command is sent once: redis-py's default retries (a resend after a lost
  connection) are off, because a resent ``EVAL`` or ``XADD`` may apply twice. The
  commands in flight when a connection is lost fail with a ``redis.ConnectionError``;
  the pool connects again on the next command (a connection that broke while idle,
  e.g. across a Redis restart, is noticed and replaced before a command goes out).
  What to retry is for the sidecar's resiliency policies to decide;
* no read timeout: a command waits for its reply as long as Redis takes (a paused
  Redis answers when it resumes); connecting gives up after 5 s.

Each subscription's blocking ``XREADGROUP`` goes through a client of its own (see
``sidecar.pubsub.redis_bus``), so a blocked read holds up no other command.
"""

from __future__ import annotations

import redis.asyncio as aioredis
from redis.asyncio.connection import Connection, SSLConnection
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

from sidecar.errors import ResourceError
from sidecar.resources.model import Component

__all__ = ["MAX_CONNECTIONS", "redis_client"]

MAX_CONNECTIONS = 50


def redis_client(component: Component) -> aioredis.Redis:
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
    pool = aioredis.BlockingConnectionPool(
        max_connections=MAX_CONNECTIONS,
        timeout=None,
        # TLS as redis-py's ssl=True: the system's CAs, the host name checked
        connection_class=SSLConnection if component.flag("enableTLS") else Connection,
        host=hostname,
        port=port,
        db=component.integer("redisDB", 0),
        username=component.get("redisUsername") or None,
        password=component.get("redisPassword") or None,
        protocol=2,
        decode_responses=False,
        socket_connect_timeout=5.0,
        socket_timeout=None,
        retry=Retry(NoBackoff(), 0),
    )
    return aioredis.Redis.from_pool(pool)  # closing the client closes the pool
