"""``sidecar.testing.free_port``: ports a server binds a moment later, which no
outgoing connection can take meanwhile."""

from __future__ import annotations

import random
import socket

import pytest

from sidecar import testing


def test_ports_are_below_the_ephemeral_range_distinct_and_bindable() -> None:
    low = testing._ephemeral_low()
    ports = [testing.free_port() for _ in range(50)]
    assert len(set(ports)) == len(ports), "never the same port twice"
    if low - testing._FREE_PORTS_FROM >= 1000:
        assert all(testing._FREE_PORTS_FROM <= p < low for p in ports), (low, ports)
    for port in ports[:5]:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", port))


def test_a_port_something_listens_on_is_not_handed_out(monkeypatch: pytest.MonkeyPatch) -> None:
    with socket.socket() as spare:
        spare.bind(("127.0.0.1", 0))
        other: int = spare.getsockname()[1]
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        busy: int = taken.getsockname()[1]
        choices = iter([busy, busy, other])

        class Scripted:
            def randrange(self, start: int, stop: int) -> int:
                return next(choices)

        monkeypatch.setattr(random, "SystemRandom", Scripted)
        monkeypatch.setattr(testing, "_FREE_PORTS_FROM", min(busy, other) - 2000)
        monkeypatch.setattr(testing, "_ephemeral_low", lambda: max(busy, other) + 1)
        assert testing.free_port() == other
