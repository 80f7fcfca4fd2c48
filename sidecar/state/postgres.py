"""``state.postgresql`` v2 on a real PostgreSQL.

Table ``<tablePrefix>state(key, value bytea, etag uuid, created_at, updated_at,
expires_at)``, the layout of Dapr's v2 store. ETags are random UUIDs; an ETag turns the
write into an UPDATE guarded by the ETag (so a missing key is a mismatch);
``first-write`` without an ETag only replaces expired rows (else a non-ETag error, 500);
transactions run in one SQL transaction (atomic). A non-UUID ETag is a mismatch.
"""

from __future__ import annotations

import asyncio
import re
import uuid
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from types import MappingProxyType

import psycopg

from sidecar.errors import ETagMismatch, ResourceError, StateStoreError
from sidecar.resources.model import Component
from sidecar.state.base import FIRST_WRITE, DeleteOp, SetOp, StateStore, StoredItem

__all__ = ["PostgresStateStore"]

_Conn = psycopg.AsyncConnection[tuple[object, ...]]
_IDENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_.]*$")


def _is_uuid(value: str) -> bool:
    try:
        uuid.UUID(value)
    except ValueError:
        return False
    return True


class PostgresStateStore(StateStore):
    features = frozenset({"ETAG", "TRANSACTIONAL", "TTL"})

    def __init__(self, component: Component) -> None:
        self._component = component
        self._dsn = component.require("connectionString")
        prefix = component.get("tablePrefix")
        meta_table = component.get("metadataTableName") or "dapr_metadata"
        for field, value in (("tablePrefix", prefix), ("metadataTableName", meta_table)):
            if value and not _IDENT.match(value):
                raise ResourceError(
                    component.file, f"spec.metadata[{field}]", f"{value!r} is not a table name"
                )
        self._table = f"{prefix}state"
        self._meta_table = meta_table
        self._timeout = component.seconds("timeout", 20.0)
        self._max_conns = max(1, component.integer("maxConns", 4))
        self._idle: asyncio.Queue[_Conn] = asyncio.Queue()
        self._open = 0
        self._all: list[_Conn] = []
        self._slots = asyncio.Semaphore(self._max_conns)

    async def _connect(self) -> _Conn:
        try:
            conn = await psycopg.AsyncConnection.connect(
                self._dsn, autocommit=True, connect_timeout=max(1, int(self._timeout))
            )
        except psycopg.Error as exc:
            raise StateStoreError(f"postgresql store {self._component.name!r}: {exc}") from exc
        self._all.append(conn)
        return conn

    @asynccontextmanager
    async def _conn(self) -> AsyncIterator[_Conn]:
        async with self._slots:
            conn = self._idle.get_nowait() if not self._idle.empty() else await self._connect()
            try:
                yield conn
            finally:
                if conn.closed:
                    self._all.remove(conn)
                else:
                    self._idle.put_nowait(conn)

    async def start(self) -> None:
        async with self._conn() as conn, conn.transaction():
            await conn.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", (self._table,))
            await conn.execute(
                f"CREATE TABLE IF NOT EXISTS {self._meta_table} "
                "(key text NOT NULL PRIMARY KEY, value text NOT NULL)"
            )
            await conn.execute(
                f"CREATE TABLE IF NOT EXISTS {self._table} ("
                "key text NOT NULL PRIMARY KEY, value bytea NOT NULL, "
                "etag uuid NOT NULL DEFAULT gen_random_uuid(), "
                "created_at timestamp with time zone NOT NULL DEFAULT now(), "
                "updated_at timestamp with time zone, "
                "expires_at timestamp with time zone)"
            )
            await conn.execute(
                f"CREATE INDEX IF NOT EXISTS {self._table.replace('.', '_')}_expires_at "
                f"ON {self._table} (expires_at)"
            )

    async def close(self) -> None:
        for conn in self._all:
            await conn.close()
        self._all.clear()

    async def get(self, key: str) -> StoredItem | None:
        try:
            async with self._conn() as conn:
                cur = await conn.execute(
                    f"SELECT value, etag, expires_at FROM {self._table} "
                    "WHERE key = %s AND (expires_at IS NULL OR expires_at >= now())",
                    (key,),
                )
                row = await cur.fetchone()
        except psycopg.Error as exc:
            raise StateStoreError(str(exc)) from exc
        if row is None:
            return None
        value, etag, expires = row
        meta: dict[str, str] = {}
        if isinstance(expires, datetime):
            stamp = expires.astimezone(UTC).replace(microsecond=0)
            meta["ttlExpireTime"] = stamp.isoformat().replace("+00:00", "Z")
        data = bytes(value) if isinstance(value, bytes | memoryview) else b""
        return StoredItem(data, str(etag), MappingProxyType(meta))

    async def _set(self, conn: _Conn, op: SetOp) -> None:
        ttl = op.ttl if op.ttl is not None and op.ttl > 0 else None
        expiry = "now() + make_interval(secs => %(ttl)s)" if ttl else "NULL"
        params: dict[str, object] = {"key": op.key, "value": op.value, "ttl": ttl}
        if op.has_etag:
            if not _is_uuid(op.etag or ""):
                raise ETagMismatch(f"etag {op.etag!r} does not match")
            params["etag"] = op.etag
            query = (
                f"UPDATE {self._table} SET value = %(value)s, updated_at = now(), "
                f"etag = gen_random_uuid(), expires_at = {expiry} "
                "WHERE key = %(key)s AND etag = %(etag)s "
                "AND (expires_at IS NULL OR expires_at >= now())"
            )
        else:
            guard = ""
            if op.concurrency == FIRST_WRITE:
                t = self._table
                guard = f" WHERE {t}.expires_at IS NOT NULL AND {t}.expires_at < now()"
            query = (
                f"INSERT INTO {self._table} (key, value, etag, expires_at) "
                f"VALUES (%(key)s, %(value)s, gen_random_uuid(), {expiry}) "
                "ON CONFLICT (key) DO UPDATE SET value = %(value)s, updated_at = now(), "
                f"etag = gen_random_uuid(), expires_at = {expiry}{guard}"
            )
        cur = await conn.execute(query, params)
        if cur.rowcount != 1:
            if op.has_etag:
                raise ETagMismatch(f"etag mismatch for key {op.key}")
            raise StateStoreError(f"no item was updated for key {op.key} (first-write)")

    async def _delete(self, conn: _Conn, op: DeleteOp) -> None:
        if op.has_etag:
            if not _is_uuid(op.etag or ""):
                raise ETagMismatch(f"etag {op.etag!r} does not match")
            cur = await conn.execute(
                f"DELETE FROM {self._table} WHERE key = %s AND etag = %s", (op.key, op.etag)
            )
            if cur.rowcount != 1:
                raise ETagMismatch(f"etag mismatch for key {op.key}")
        else:
            await conn.execute(f"DELETE FROM {self._table} WHERE key = %s", (op.key,))

    async def set(self, op: SetOp) -> None:
        try:
            async with self._conn() as conn:
                await self._set(conn, op)
        except psycopg.Error as exc:
            raise StateStoreError(str(exc)) from exc

    async def delete(self, op: DeleteOp) -> None:
        try:
            async with self._conn() as conn:
                await self._delete(conn, op)
        except psycopg.Error as exc:
            raise StateStoreError(str(exc)) from exc

    async def transact(self, ops: Sequence[SetOp | DeleteOp]) -> None:
        try:
            async with self._conn() as conn, conn.transaction():
                for op in ops:
                    if isinstance(op, SetOp):
                        await self._set(conn, op)
                    else:
                        await self._delete(conn, op)
        except psycopg.Error as exc:
            raise StateStoreError(str(exc)) from exc
