"""PostgreSQL access: one asyncpg pool per process, with JSON codecs backed by orjson."""

from __future__ import annotations

from typing import Any

import asyncpg
import asyncpg.pool
import orjson

from paystream.settings import DatabaseSettings

# A connection as handlers see it: a plain one, or one borrowed from a pool.
Connection = asyncpg.Connection | asyncpg.pool.PoolConnectionProxy

# Errors that mean "the database is not reachable right now", as opposed to a bad query.
DATABASE_UNAVAILABLE_ERRORS: tuple[type[BaseException], ...] = (
    OSError,
    asyncpg.exceptions.CannotConnectNowError,
    asyncpg.exceptions.ConnectionDoesNotExistError,
    asyncpg.exceptions.ConnectionFailureError,
    asyncpg.exceptions.AdminShutdownError,
    asyncpg.exceptions.CrashShutdownError,
    asyncpg.exceptions.TooManyConnectionsError,
    asyncpg.exceptions.InterfaceError,
    # Raised when a connection dies in the middle of an operation (for example while a failed
    # query's error is still being read and the transaction's ROLLBACK is sent), or is gone.
    asyncpg.exceptions.InternalClientError,
    ConnectionError,
    TimeoutError,
)


def _encode_json(value: Any) -> str:
    return orjson.dumps(value).decode()


async def _init_connection(conn: asyncpg.Connection) -> None:
    for type_name in ("json", "jsonb"):
        await conn.set_type_codec(type_name, encoder=_encode_json, decoder=orjson.loads, schema="pg_catalog")


async def _keep_session(_conn: asyncpg.Connection) -> None:
    """Connections go back to the pool without asyncpg's default session reset (RESET ALL, UNLISTEN,
    advisory unlock: one more round trip per release). Nothing here keeps session state on a pooled
    connection: locks are transaction-scoped and LISTEN runs on dedicated connections; an open
    transaction is still rolled back on release by asyncpg itself."""


async def create_pool(settings: DatabaseSettings, **overrides: Any) -> asyncpg.Pool:
    options: dict[str, Any] = {
        "min_size": settings.pool_min_size,
        "max_size": settings.pool_max_size,
        "init": _init_connection,
        "reset": _keep_session,
        "command_timeout": 30,
        "max_inactive_connection_lifetime": 300,
    }
    options.update(overrides)
    pool = await asyncpg.create_pool(settings.url, **options)
    assert pool is not None
    return pool


async def connect(url: str) -> asyncpg.Connection:
    conn: asyncpg.Connection = await asyncpg.connect(url)
    await _init_connection(conn)
    return conn
