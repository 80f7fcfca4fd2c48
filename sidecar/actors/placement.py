"""Placement: which host owns an actor (dapr-contract §4.7), shared by a cluster's sidecars.

One :class:`Placement` object lives in the launcher process and every sidecar of the
topology registers its actor host with it. Per actor type a consistent-hash ring
(100 virtual nodes per host, BLAKE2b-512, first 8 bytes little-endian) maps an actor id
to a host. A change of hosts is a *dissemination round*: lookups wait, every host drops
the actors it no longer owns (draining the running turn first), then lookups resume
against the new table. That keeps single activation across hosts.
"""

from __future__ import annotations

import asyncio
import bisect
import hashlib
import logging
from collections.abc import Awaitable, Callable, Iterable
from typing import Protocol

__all__ = ["HashRing", "Placement", "PlacementHost"]

log = logging.getLogger(__name__)

REPLICATION_FACTOR = 100


def _hash(text: str) -> int:
    digest = hashlib.blake2b(text.encode(), digest_size=64).digest()
    return int.from_bytes(digest[:8], "little")


class HashRing:
    """A consistent-hash ring over host names."""

    def __init__(self, hosts: Iterable[str], replication: int = REPLICATION_FACTOR) -> None:
        points: list[tuple[int, str]] = []
        for host in sorted(set(hosts)):
            for i in range(replication):
                points.append((_hash(f"{host}{i}"), host))
        points.sort()
        self._keys = [p[0] for p in points]
        self._hosts = [p[1] for p in points]

    def __bool__(self) -> bool:
        return bool(self._keys)

    def owner(self, actor_id: str) -> str | None:
        if not self._keys:
            return None
        index = bisect.bisect_left(self._keys, _hash(actor_id))
        return self._hosts[index % len(self._hosts)]


class PlacementHost(Protocol):
    """What placement needs from an actor host."""

    @property
    def name(self) -> str: ...

    async def rebalance(self, owner: Callable[[str, str], str | None]) -> None:
        """Deactivate every local actor whose owner is no longer this host."""


class Placement:
    """The placement table of one cluster (an in-process stand-in for the placement service)."""

    def __init__(self) -> None:
        self._hosts: dict[str, PlacementHost] = {}
        self._types: dict[str, frozenset[str]] = {}
        self._rings: dict[str, HashRing] = {}
        self._stable = asyncio.Event()
        self._stable.set()
        self._round = asyncio.Lock()
        self.version = 0
        self._listeners: list[Callable[[frozenset[str]], Awaitable[None]]] = []

    def on_types_added(self, listener: Callable[[frozenset[str]], Awaitable[None]]) -> None:
        """Call ``listener(types)`` after a round in which these types gained a host."""
        self._listeners.append(listener)

    def hosts_of(self, actor_type: str) -> list[str]:
        return sorted(h for h, types in self._types.items() if actor_type in types)

    def owner_name(self, actor_type: str, actor_id: str) -> str | None:
        ring = self._rings.get(actor_type)
        return ring.owner(actor_id) if ring is not None else None

    def owner(self, actor_type: str, actor_id: str) -> PlacementHost | None:
        name = self.owner_name(actor_type, actor_id)
        return self._hosts.get(name) if name is not None else None

    async def lookup(self, actor_type: str, actor_id: str) -> PlacementHost | None:
        """The owner, once no dissemination round is running."""
        await self._stable.wait()
        return self.owner(actor_type, actor_id)

    async def register(self, host: PlacementHost, types: Iterable[str]) -> None:
        new_types = frozenset(types)
        old_types = self._types.get(host.name, frozenset())
        if host.name in self._hosts and old_types == new_types:
            return
        gained = frozenset(t for t in new_types if not self.hosts_of(t))
        self._hosts[host.name] = host
        self._types[host.name] = new_types
        await self._disseminate([host])
        if gained:
            for listener in self._listeners:
                await listener(gained)

    async def unregister(self, host: PlacementHost) -> None:
        if host.name not in self._hosts:
            return
        del self._hosts[host.name]
        del self._types[host.name]
        await self._disseminate([host])

    async def _disseminate(self, extra: Iterable[PlacementHost]) -> None:
        async with self._round:
            self._stable.clear()
            try:
                types = {t for ts in self._types.values() for t in ts}
                self._rings = {t: HashRing(self.hosts_of(t)) for t in types}
                self.version += 1
                hosts = {h.name: h for h in [*self._hosts.values(), *extra]}
                results = await asyncio.gather(
                    *(h.rebalance(self.owner_name) for h in hosts.values()),
                    return_exceptions=True,
                )
                for result in results:
                    if isinstance(result, BaseException):
                        log.warning("placement: rebalance failed: %r", result)
                log.info("placement: table v%d, hosts %s", self.version, sorted(self._types))
            finally:
                self._stable.set()
