"""The Redis components (``state.redis``, ``pubsub.redis``) on a Redis of the test's own:
connection settings from the metadata, what a lost or paused Redis does to the commands
in flight, reclaiming pending messages, and the blocking stream read.

The components talk to Redis through redis-py's asyncio client (``sidecar.redis_conn``);
these tests pin down the behaviour the sidecar relies on, whatever the client does by
default (it retries a command after a lost connection, and gives up on a reply after 5 s).
"""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import signal
import socket
import subprocess
import time
import uuid
from collections.abc import Iterator, Mapping
from pathlib import Path

import httpx
import pytest
import redis

from sidecar.errors import BrokerError, StateStoreError
from sidecar.pubsub.base import BrokerMessage
from sidecar.pubsub.redis_bus import RedisStreamsBroker
from sidecar.redis_conn import MAX_CONNECTIONS
from sidecar.resources.model import Component
from sidecar.runtime import Sidecar, SidecarOptions
from sidecar.state.base import SetOp
from sidecar.state.redis_store import RedisStateStore
from sidecar.testing import free_port, make_cluster, start_sidecar

pytestmark = pytest.mark.skipif(
    shutil.which("redis-server") is None, reason="redis-server is not installed"
)


class OwnRedis:
    """``redis-server`` on a free port of 127.0.0.1, keeping nothing on disk."""

    def __init__(self, directory: Path, password: str = "") -> None:
        self.directory = directory
        self.password = password
        self.port = free_port()
        self.process: subprocess.Popen[bytes] | None = None

    def start(self, within: float = 20.0) -> None:
        # nothing saved: a restart comes back empty
        args = [shutil.which("redis-server") or "redis-server", "--port", str(self.port)]
        args += ["--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
        if self.password:
            args += ["--requirepass", self.password]
        self.process = subprocess.Popen(
            args,
            cwd=self.directory,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        deadline = time.monotonic() + within
        while not self._answers():
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"redis-server on {self.port} did not start")
            time.sleep(0.02)

    def _answers(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=1) as s:
                s.sendall(b"PING\r\n")
                return s.recv(64).startswith((b"+PONG", b"-NOAUTH"))
        except OSError:
            return False

    def signal(self, sig: signal.Signals) -> None:
        assert self.process is not None
        self.process.send_signal(sig)

    def kill(self) -> None:
        assert self.process is not None
        self.process.kill()  # also when stopped
        self.process.wait()

    def raw(self, db: int = 0) -> redis.Redis:
        return redis.Redis(port=self.port, password=self.password or None, db=db)

    def component(self, kind: str, **metadata: str) -> Component:
        return Component(
            f"own-{kind.replace('.', '-')}",
            kind,
            "v1",
            {"redisHost": f"localhost:{self.port}", **metadata},
        )


@pytest.fixture
def own_redis(tmp_path: Path) -> Iterator[OwnRedis]:
    server = OwnRedis(tmp_path)
    server.start()
    yield server
    with contextlib.suppress(ProcessLookupError):
        server.signal(signal.SIGCONT)
    server.kill()


def _key() -> str:
    return f"own-{uuid.uuid4().hex[:12]}"


# -- connection settings ------------------------------------------------------------------


async def test_password_username_and_db_come_from_the_metadata(tmp_path: Path) -> None:
    server = OwnRedis(tmp_path, password="s3cret")
    server.start()
    try:
        for metadata in (
            {"redisPassword": "s3cret", "redisDB": "3"},
            {"redisUsername": "default", "redisPassword": "s3cret", "redisDB": "3"},
        ):
            store = RedisStateStore(server.component("state.redis", **metadata))
            await store.start()
            key = _key()
            await store.set(SetOp(key, b"in db 3"))
            item = await store.get(key)
            assert item is not None and (item.value, item.etag) == (b"in db 3", "1")
            await store.close()
            with server.raw(db=3) as raw:
                assert raw.hgetall(key) == {b"data": b"in db 3", b"version": b"1"}
        with server.raw(db=0) as raw:
            assert raw.dbsize() == 0

        wrong = RedisStateStore(server.component("state.redis", redisPassword="wrong"))
        with pytest.raises(StateStoreError, match=r"cannot reach localhost:\d+"):
            await wrong.start()
        await wrong.close()
        broker = RedisStreamsBroker(server.component("pubsub.redis"), "app")  # no password
        with pytest.raises(BrokerError, match=r"cannot reach localhost:\d+"):
            await broker.start()
        await broker.close()
    finally:
        server.kill()


async def test_an_unreachable_redis_fails_start_up_naming_the_address() -> None:
    port = free_port()
    component = Component("nowhere", "state.redis", "v1", {"redisHost": f"127.0.0.1:{port}"})
    store = RedisStateStore(component)
    with pytest.raises(StateStoreError, match=rf"'nowhere': cannot reach 127\.0\.0\.1:{port}"):
        await store.start()
    await store.close()


async def test_many_calls_at_once_all_get_their_own_answers_on_a_bounded_pool(
    own_redis: OwnRedis,
) -> None:
    """More callers than connections wait for one (redis-py's default pool fails them
    with "Too many connections")."""
    store = RedisStateStore(own_redis.component("state.redis"))
    keys = [_key() for _ in range(4 * MAX_CONNECTIONS)]
    try:
        await asyncio.gather(*(store.set(SetOp(k, b"%d" % i)) for i, k in enumerate(keys)))
        items = await asyncio.gather(*(store.get(k) for k in keys))
        assert [i.value if i else None for i in items] == [b"%d" % i for i in range(len(keys))]
        with own_redis.raw() as raw:
            assert len(raw.client_list()) <= MAX_CONNECTIONS + 1  # and this one
    finally:
        await store.close()


# -- a lost, a restarted and a paused Redis -----------------------------------------------


async def test_a_write_in_flight_when_redis_dies_fails_once_and_the_next_call_reconnects(
    own_redis: OwnRedis,
) -> None:
    store = RedisStateStore(own_redis.component("state.redis"))
    broker = RedisStreamsBroker(own_redis.component("pubsub.redis"), "app")
    await store.start()
    await broker.start()
    kept, lost, topic = _key(), _key(), _key()
    try:
        await store.set(SetOp(kept, b"before"))
        await broker.publish(topic, b"before", {})

        own_redis.signal(signal.SIGSTOP)  # the writes below reach the socket, not Redis
        write = asyncio.ensure_future(store.set(SetOp(lost, b"never")))
        publish = asyncio.ensure_future(broker.publish(topic, b"never", {}))
        await asyncio.sleep(0.3)
        assert not write.done() and not publish.done()
        own_redis.kill()
        own_redis.start()  # empty, on the same port; the loop has not run meanwhile

        # the commands in flight fail: they are not sent again to the new Redis (a resent
        # EVAL or XADD could apply twice), whatever their outcome was
        with pytest.raises(StateStoreError):
            await write
        with pytest.raises(BrokerError):
            await publish
        # the next calls connect again, without a new component
        assert await store.get(kept) is None and await store.get(lost) is None
        await store.set(SetOp(kept, b"after"))
        item = await store.get(kept)
        assert item is not None and (item.value, item.etag) == (b"after", "1")
        await broker.publish(topic, b"after", {})
        with own_redis.raw() as raw:
            assert [f[b"data"] for _id, f in raw.xrange(topic)] == [b"after"]
    finally:
        await broker.close()
        await store.close()


async def test_a_paused_redis_answers_late_and_no_call_fails(own_redis: OwnRedis) -> None:
    """SIGSTOP for longer than redis-py's default read timeout (5 s): the calls wait."""
    store = RedisStateStore(own_redis.component("state.redis"))
    await store.start()
    key = _key()
    try:
        await store.set(SetOp(key, b"v"))
        own_redis.signal(signal.SIGSTOP)
        read = asyncio.ensure_future(store.get(key))
        write = asyncio.ensure_future(store.set(SetOp(key, b"w", etag="1")))
        await asyncio.sleep(5.5)
        assert not read.done() and not write.done()
        own_redis.signal(signal.SIGCONT)
        item = await asyncio.wait_for(read, 5)
        assert item is not None and item.value == b"v"
        await asyncio.wait_for(write, 5)
        item = await store.get(key)
        assert item is not None and (item.value, item.etag) == (b"w", "2")
    finally:
        own_redis.signal(signal.SIGCONT)
        await store.close()


# -- streams ------------------------------------------------------------------------------


def test_a_blocked_stream_read_holds_up_no_one_on_uvloop_as_the_sidecar_runs(
    own_redis: OwnRedis,
) -> None:
    import uvloop

    async def go() -> None:
        broker = RedisStreamsBroker(own_redis.component("pubsub.redis"), "app")
        store = RedisStateStore(own_redis.component("state.redis"))
        await broker.start()
        await store.start()
        got: asyncio.Queue[BrokerMessage] = asyncio.Queue()
        topic = _key()
        sub = await broker.subscribe(topic, got.put)
        try:
            await asyncio.sleep(0.2)  # the subscription's XREADGROUP ... BLOCK 1000 waits
            started = time.monotonic()
            for _ in range(5):
                await store.set(SetOp(topic + ":k", b"x"))
                assert await broker.client.ping()
            assert time.monotonic() - started < 0.5  # not behind the blocked read
            await broker.publish(topic, b"hello", {"k": "v"})
            message = await asyncio.wait_for(got.get(), 5)
            assert (message.topic, message.data, dict(message.metadata)) == (
                topic,
                b"hello",
                {"k": "v"},
            )
            assert message.message_id.count("-") == 1
        finally:
            await sub.close()
            await broker.close()
            await store.close()

    uvloop.run(go())


async def test_a_delivery_that_outlived_the_processing_timeout_is_reclaimed(
    own_redis: OwnRedis,
) -> None:
    """The handler fails after ``processingTimeout``: the message stays pending and the
    reclaim loop (XPENDING ... IDLE, XCLAIM) delivers it again; then it is acknowledged."""
    broker = RedisStreamsBroker(
        own_redis.component("pubsub.redis", processingTimeout="200ms", redeliverInterval="300ms"),
        "app",
    )
    await broker.start()
    attempts: list[BrokerMessage] = []
    done = asyncio.Event()

    async def handler(message: BrokerMessage) -> None:
        attempts.append(message)
        if len(attempts) == 1:
            await asyncio.sleep(0.3)
            raise RuntimeError("too slow")
        done.set()

    topic = _key()
    sub = await broker.subscribe(topic, handler)
    try:
        await broker.publish(topic, b"once", {})
        await asyncio.wait_for(done.wait(), 10)
        assert [(m.data, m.message_id) for m in attempts] == [(b"once", attempts[0].message_id)] * 2
        with own_redis.raw() as raw:
            for _ in range(100):  # the acknowledgement follows the delivery
                if not raw.xpending(topic, "app")["pending"]:
                    break
                await asyncio.sleep(0.05)
            assert raw.xpending(topic, "app")["pending"] == 0
    finally:
        await sub.close()
        await broker.close()


async def test_a_close_abandons_a_delivery_still_running_after_the_grace_unacknowledged(
    own_redis: OwnRedis,
) -> None:
    """A delivery the app keeps failing (retried by the subscription's policy) does not
    hold a closing subscription past ``shutdown_grace``: the close returns, the delivery
    is cancelled, and its message stays pending for a live consumer to reclaim."""
    broker = RedisStreamsBroker(own_redis.component("pubsub.redis"), "app")
    broker.shutdown_grace = 0.2
    await broker.start()
    started, cancelled = asyncio.Event(), asyncio.Event()

    async def handler(message: BrokerMessage) -> None:
        started.set()
        try:
            await asyncio.Event().wait()  # retried against an app that never takes it
        except asyncio.CancelledError:
            cancelled.set()
            raise

    topic = _key()
    sub = await broker.subscribe(topic, handler)
    try:
        await broker.publish(topic, b"held", {})
        await asyncio.wait_for(started.wait(), 10)
        t0 = time.monotonic()
        await asyncio.wait_for(sub.close(), 5)
        assert time.monotonic() - t0 < 2.0
        assert cancelled.is_set()
        with own_redis.raw() as raw:
            assert raw.xpending(topic, "app")["pending"] == 1
    finally:
        await broker.close()


async def test_a_bulk_publish_reports_each_message_and_errors_in_place(
    own_redis: OwnRedis,
) -> None:
    broker = RedisStreamsBroker(own_redis.component("pubsub.redis", maxLenApprox="100"), "app")
    await broker.start()
    topic, wrong = _key(), _key()
    try:
        items = [(b"a", {}), (b"b", {"m": "1"})]
        assert await broker.publish_many(topic, items) == [None, None]
        with own_redis.raw() as raw:
            entries = [f for _id, f in raw.xrange(topic)]
            assert entries == [{b"data": b"a"}, {b"data": b"b", b"metadata": b'{"m": "1"}'}]
            raw.set(wrong, "not a stream")
        errors = await broker.publish_many(wrong, items)
        assert all(isinstance(e, BrokerError) and "WRONGTYPE" in str(e) for e in errors)
        assert len(errors) == 2
    finally:
        await broker.close()


async def test_a_publish_in_flight_when_the_sidecar_stops_ends_before_its_broker_closes(
    own_redis: OwnRedis, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A stopping sidecar closes its components after its API server: a publish that
    reached the API lands, and is not sent on a closed client (which redis-py connects
    again, a connection nobody closes)."""
    (tmp_path / "bus.yaml").write_text(
        "apiVersion: dapr.io/v1alpha1\nkind: Component\nmetadata: {name: bus}\n"
        "spec: {type: pubsub.redis, version: v1, metadata: "
        f'[{{name: redisHost, value: "localhost:{own_redis.port}"}}]}}\n'
    )
    options = SidecarOptions(app_id="stopping", resources_paths=(tmp_path,))
    cluster = await make_cluster()
    sidecar = await start_sidecar(options, cluster)
    order: list[str] = []
    entered, leaving, closing = asyncio.Event(), asyncio.Event(), asyncio.Event()
    publish, close, remove = RedisStreamsBroker.publish, RedisStreamsBroker.close, cluster.remove

    def leave(member: Sidecar) -> None:  # the step before the API server stops
        leaving.set()
        remove(member)

    async def held_publish(
        self: RedisStreamsBroker, topic: str, data: bytes, metadata: Mapping[str, str]
    ) -> None:
        entered.set()
        # held until the stop is under way: the sidecar leaving the cluster, just before
        # its API server stops (or, stopped in the old order, its broker closing)
        await asyncio.wait(
            [asyncio.create_task(leaving.wait()), asyncio.create_task(closing.wait())],
            return_when=asyncio.FIRST_COMPLETED,
        )
        await publish(self, topic, data, metadata)
        order.append("published")

    async def recorded_close(self: RedisStreamsBroker) -> None:
        order.append("closed")
        closing.set()
        await close(self)

    monkeypatch.setattr(cluster, "remove", leave)
    monkeypatch.setattr(RedisStreamsBroker, "publish", held_publish)
    monkeypatch.setattr(RedisStreamsBroker, "close", recorded_close)
    topic = _key()
    url = f"http://127.0.0.1:{sidecar.http_port}/v1.0/publish/bus/{topic}"
    async with httpx.AsyncClient(timeout=30) as client:
        answer = asyncio.create_task(client.post(url, json={"n": 1}))
        await entered.wait()
        await sidecar.stop()
        assert (await answer).status_code == 204
    assert order == ["published", "closed"]
    with own_redis.raw() as raw:
        assert raw.xlen(topic) == 1
