"""The sidecar's Redis client (sidecar.resp) against a real Redis, and its parser alone."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator

import pytest

from sidecar.resp import (
    RedisFailure,
    RespClient,
    RespConnectionError,
    RespError,
    _parse,
    encode_command,
)

pytestmark = pytest.mark.usefixtures("redis_service")


@pytest.fixture
async def client() -> AsyncIterator[RespClient]:
    c = RespClient("127.0.0.1", 6379)
    yield c
    await c.aclose()


def _key() -> str:
    return f"resp-test:{uuid.uuid4().hex}"


# -- the wire format, without Redis -------------------------------------------------------


def test_commands_are_arrays_of_bulk_strings() -> None:
    assert encode_command(("SET", "k", b"\r\n\x00", 12)) == (
        b"*4\r\n$3\r\nSET\r\n$1\r\nk\r\n$3\r\n\r\n\x00\r\n$2\r\n12\r\n"
    )
    with pytest.raises(TypeError, match="bool"):
        encode_command(("SET", "k", True))
    with pytest.raises(TypeError, match="NoneType"):
        encode_command(("SET", "k", None))  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("wire", "value"),
    [
        (b"+OK\r\n", b"OK"),
        (b":-42\r\n", -42),
        (b"$5\r\nhe\r\nx\r\n", b"he\r\nx"),
        (b"$-1\r\n", None),
        (b"*-1\r\n", None),
        (b"*0\r\n", []),
        (b"*2\r\n*2\r\n:1\r\n$1\r\na\r\n$-1\r\n", [[1, b"a"], None]),
    ],
)
def test_replies_parse_whole_and_wait_for_every_missing_byte(wire: bytes, value: object) -> None:
    assert _parse(wire, 0) == (value, len(wire))
    for cut in range(len(wire)):  # any prefix is incomplete, never a wrong value
        assert _parse(wire[:cut], 0)[1] == -1


def test_an_error_reply_is_a_value_with_its_code() -> None:
    err, end = _parse(b"-BUSYGROUP Consumer Group name already exists\r\n", 0)
    assert isinstance(err, RespError) and err.code == "BUSYGROUP" and end == 47


# -- against Redis ------------------------------------------------------------------------


async def test_commands_replies_and_errors(client: RespClient) -> None:
    k = _key()
    assert await client.execute("PING") == b"PONG"
    assert await client.execute("SET", k, b"\x00\xffbinary", "EX", 30) == b"OK"
    assert await client.execute("GET", k) == b"\x00\xffbinary"
    assert await client.execute("GET", k + ":missing") is None
    assert await client.execute("HSET", k + ":h", "a", 1, "b", "two") == 2
    assert await client.execute("HGETALL", k + ":h") == [b"a", b"1", b"b", b"two"]
    with pytest.raises(RespError, match="WRONGTYPE") as info:
        await client.execute("HGETALL", k)
    assert info.value.code == "WRONGTYPE"
    await client.execute("DEL", k, k + ":h")


async def test_concurrent_callers_share_one_connection_and_get_their_own_replies(
    client: RespClient,
) -> None:
    keys = [_key() for _ in range(200)]
    await asyncio.gather(*(client.execute("SET", k, i) for i, k in enumerate(keys)))
    got = await asyncio.gather(*(client.execute("GET", k) for k in keys))
    assert got == [str(i).encode() for i in range(200)]
    await client.execute("DEL", *keys)


async def test_pipeline_and_transaction_return_errors_in_place(client: RespClient) -> None:
    k = _key()
    replies = await client.pipeline([("SET", k, "v"), ("INCR", k), ("GET", k)])
    assert replies[0] == b"OK" and isinstance(replies[1], RespError) and replies[2] == b"v"
    # MULTI/EXEC: no rollback, the failing command's error is in place
    replies = await client.transaction([("SET", k, "1"), ("HSET", k, "f", "x"), ("INCR", k)])
    assert replies[0] == b"OK" and isinstance(replies[1], RespError) and replies[2] == 2
    # a command Redis refuses to queue aborts the whole block
    with pytest.raises(RespError, match="EXECABORT"):
        await client.transaction([("SET", k, "3"), ("NOSUCHCOMMAND",)])
    assert await client.execute("GET", k) == b"2"
    assert await client.pipeline([]) == [] and await client.transaction([]) == []
    await client.execute("DEL", k)


async def test_a_blocked_reader_on_its_own_connection_holds_up_no_one(client: RespClient) -> None:
    stream = _key()
    reader = client.dedicated()
    try:
        await client.execute("XGROUP", "CREATE", stream, "g", "0", "MKSTREAM")
        read = asyncio.ensure_future(
            reader.execute(
                "XREADGROUP", "GROUP", "g", "c", "COUNT", 10, "BLOCK", 5000, "STREAMS", stream, ">"
            )
        )
        assert await client.execute("PING") == b"PONG"  # not behind the blocked read
        msg_id = await client.execute("XADD", stream, "MAXLEN", "~", 100, "*", "data", b"x")
        [[name, [[got_id, fields]]]] = await read
        assert (name, got_id, fields) == (stream.encode(), msg_id, [b"data", b"x"])
        assert await client.execute("XACK", stream, "g", got_id) == 1
    finally:
        await reader.aclose()
        await client.execute("DEL", stream)


async def test_a_cancelled_caller_does_not_shift_the_replies(client: RespClient) -> None:
    k = _key()
    await client.execute("SET", k, "mine")
    slow = asyncio.ensure_future(client.execute("BLPOP", k + ":list", 0.2))
    await asyncio.sleep(0)  # one loop step: the task writes the BLPOP and waits
    slow.cancel()
    assert await client.execute("GET", k) == b"mine"  # waits behind the BLPOP's reply
    await client.execute("DEL", k)


async def test_auth_and_db_are_set_up_when_connecting() -> None:
    c = RespClient("127.0.0.1", 6379, db=3)
    k = _key()
    try:
        await c.execute("SET", k, "in db 3", "EX", 30)
        assert await c.execute("CLIENT", "INFO") and b"db=3" in await c.execute("CLIENT", "INFO")
        await c.execute("DEL", k)
    finally:
        await c.aclose()
    bad = RespClient("127.0.0.1", 6379, password="wrong")
    with pytest.raises(RespConnectionError, match=r"AUTH|WRONGPASS"):
        await bad.execute("PING")


async def test_an_unreachable_redis_and_a_lost_connection_are_errors_then_reconnect(
    client: RespClient,
) -> None:
    nowhere = RespClient("127.0.0.1", 1, connect_timeout=1.0)
    with pytest.raises(RespConnectionError, match=r"cannot connect to 127\.0\.0\.1:1\b"):
        await nowhere.execute("PING")
    assert issubclass(RespConnectionError, RedisFailure)
    # the server drops us with a command in flight: that command fails, the next reconnects
    name = f"resp-kill-{uuid.uuid4().hex[:8]}"
    await client.execute("CLIENT", "SETNAME", name)
    killer = RespClient("127.0.0.1", 6379)
    try:
        blocked = asyncio.ensure_future(client.execute("BLPOP", _key(), 5))
        await asyncio.sleep(0)  # one loop step: the task writes the BLPOP and waits
        assert (
            await killer.execute(
                "CLIENT", "KILL", "SKIPME", "yes", "ID", await _client_id(killer, name)
            )
            == 1
        )
        with pytest.raises(RespConnectionError, match="connection lost"):
            await blocked
        assert await client.execute("PING") == b"PONG"
    finally:
        await killer.aclose()


async def _client_id(c: RespClient, name: str) -> int:
    listing: bytes = await c.execute("CLIENT", "LIST")
    for line in listing.decode().splitlines():
        fields = dict(f.split("=", 1) for f in line.split(" ") if "=" in f)
        if fields.get("name") == name:
            return int(fields["id"])
    raise AssertionError(f"no client named {name}")


async def test_a_closed_client_refuses_commands() -> None:
    c = RespClient("127.0.0.1", 6379)
    await c.execute("PING")
    await c.aclose()
    with pytest.raises(RespConnectionError, match="closed"):
        await c.execute("PING")


def test_runs_on_uvloop_as_the_sidecar_does() -> None:
    import uvloop

    async def go() -> None:
        c = RespClient("127.0.0.1", 6379)
        try:
            assert await c.execute("PING") == b"PONG"
            assert await c.pipeline([("ECHO", "a"), ("ECHO", b"b")]) == [b"a", b"b"]
        finally:
            await c.aclose()

    uvloop.run(go())


async def test_callers_that_arrive_together_share_one_connect() -> None:
    c = RespClient("127.0.0.1", 6379)
    try:
        first = asyncio.ensure_future(c.execute("CLIENT", "ID"))
        others = [asyncio.ensure_future(c.execute("CLIENT", "ID")) for _ in range(5)]
        await asyncio.sleep(0)  # one loop step: every caller is waiting for the connect
        first.cancel()  # the first caller leaving does not cancel the connect
        ids = await asyncio.gather(*others)
        assert len(set(ids)) == 1  # one connection served them all
        assert await c.execute("CLIENT", "ID") == ids[0]
    finally:
        await c.aclose()
