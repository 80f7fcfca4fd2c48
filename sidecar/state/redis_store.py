"""``state.redis`` v1 (hash mode) on a real Redis, with Dapr's lenient ETag rules.

Each key is a hash ``{data, version[, first-write]}`` so the data is readable by a real
daprd pointed at the same Redis. ETags are the integer ``version``. Edge cases, as in
dapr-contract §2.5: an ETag on a missing key creates it; ``last-write`` ignores the ETag;
a non-integer ETag on save is *invalid* (400); any failed write that carried an ETag is
reported as a mismatch (every delete counts as carrying one); transactions are
MULTI/EXEC without rollback, so the operations that did not fail stay applied.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import cast

import redis.asyncio as aioredis
from redis.exceptions import RedisError, ResponseError

from sidecar.errors import ETagInvalid, ETagMismatch, StateStoreError
from sidecar.redis_conn import redis_client
from sidecar.resources.model import Component
from sidecar.state.base import FIRST_WRITE, LAST_WRITE, DeleteOp, SetOp, StateStore, StoredItem

__all__ = ["RedisStateStore"]

# KEYS[1] key; ARGV[1] expected version ("0": none); ARGV[2] data; ARGV[3] "0" = first-write.
_SET = """
local current = redis.pcall("HGET", KEYS[1], "version")
if type(current) == "table" then
  redis.call("DEL", KEYS[1])
  current = false
end
local fw = redis.pcall("HGET", KEYS[1], "first-write")
if type(fw) == "table" then fw = false end
if (not current) or current == "" or current == ARGV[1] or ((not fw) and ARGV[1] == "0") then
  redis.call("HSET", KEYS[1], "data", ARGV[2])
  if ARGV[3] == "0" then
    redis.call("HSET", KEYS[1], "first-write", 0)
  end
  return redis.call("HINCRBY", KEYS[1], "version", 1)
end
return redis.error_reply("failed to set key " .. KEYS[1])
"""

# KEYS[1] key; ARGV[1] expected version ("0": none).
_DELETE = """
local current = redis.pcall("HGET", KEYS[1], "version")
if (not current) or type(current) == "table" or current == "" or current == ARGV[1]
   or ARGV[1] == "0" then
  return redis.call("DEL", KEYS[1])
end
return redis.error_reply("failed to delete " .. KEYS[1])
"""


class RedisStateStore(StateStore):
    features = frozenset({"ETAG", "TRANSACTIONAL", "TTL", "KEYS_LIKE"})

    def __init__(self, component: Component) -> None:
        self._component = component
        self._client: aioredis.Redis = redis_client(component)
        raw_ttl = component.get("ttlInSeconds")
        self._default_ttl = component.integer("ttlInSeconds", 0) if raw_ttl else None

    async def start(self) -> None:
        try:
            await self._client.ping()
        except RedisError as exc:
            raise StateStoreError(
                f"redis store {self._component.name!r}: cannot reach "
                f"{self._component.get('redisHost')}: {exc}"
            ) from exc

    async def close(self) -> None:
        await self._client.aclose()

    async def get(self, key: str) -> StoredItem | None:
        try:
            # the client does not decode replies (sidecar.redis_conn): all of them are bytes
            fields = cast(dict[bytes, bytes], await self._client.hgetall(key))
        except ResponseError:
            # Not a hash: plain string written by an old client.
            try:
                raw = cast(bytes | None, await self._client.get(key))
            except RedisError as exc:
                raise StateStoreError(str(exc)) from exc
            return None if raw is None else StoredItem(raw, "")
        except RedisError as exc:
            raise StateStoreError(str(exc)) from exc
        if not fields:
            return None
        return StoredItem(fields.get(b"data", b""), fields.get(b"version", b"").decode())

    @staticmethod
    def _version(op: SetOp) -> str:
        if op.concurrency == LAST_WRITE or not op.etag:
            return "0"
        try:
            return str(int(op.etag))
        except ValueError:
            raise ETagInvalid(f"invalid etag {op.etag!r}: redis etags are integers") from None

    def _ttl(self, op: SetOp) -> int | None:
        return op.ttl if op.ttl is not None else self._default_ttl

    async def set(self, op: SetOp) -> None:
        version = self._version(op)
        first = "0" if op.concurrency == FIRST_WRITE else "1"
        try:
            await self._client.eval(_SET, 1, op.key, version, op.value, first)
        except RedisError as exc:
            if op.etag is not None:
                raise ETagMismatch(f"possible etag mismatch: {exc}") from exc
            raise StateStoreError(f"failed to set key {op.key}: {exc}") from exc
        ttl = self._ttl(op)
        if ttl is None:
            return
        try:
            if ttl > 0:
                await self._client.expire(op.key, ttl)
            else:
                await self._client.persist(op.key)
        except RedisError as exc:
            raise StateStoreError(f"failed to set ttl of key {op.key}: {exc}") from exc

    async def delete(self, op: DeleteOp) -> None:
        try:
            await self._client.eval(_DELETE, 1, op.key, op.etag or "0")
        except RedisError as exc:
            raise ETagMismatch(f"possible etag mismatch: {exc}") from exc

    async def transact(self, ops: Sequence[SetOp | DeleteOp]) -> None:
        # MULTI, the commands, EXEC: replies in order, a failed command's error in its
        # place (the others stay applied); a command Redis refuses to queue aborts all
        async with self._client.pipeline(transaction=True) as pipe:
            for op in ops:
                if isinstance(op, SetOp):
                    # Inside a transaction daprd passes no first-write flag.
                    pipe.eval(_SET, 1, op.key, self._version(op), op.value, "1")
                    ttl = self._ttl(op)
                    if ttl is not None and ttl > 0:
                        pipe.expire(op.key, ttl)
                    elif ttl is not None:
                        pipe.persist(op.key)
                else:
                    pipe.eval(_DELETE, 1, op.key, op.etag or "0")
            try:
                results: list[object] = await pipe.execute(raise_on_error=False)
            except RedisError as exc:
                raise StateStoreError(f"redis transaction failed: {exc}") from exc
        errors = [r for r in results if isinstance(r, ResponseError)]
        if errors:
            # daprd reports Redis's own error text here, which does not say "etag": a
            # caller can only tell a conflict by reading the key again (dapr-contract §2.4)
            raise StateStoreError(str(errors[0]))
