"""PostgreSQL access: one asyncpg pool per process, with JSON codecs backed by orjson."""

from __future__ import annotations

import weakref
from typing import Any, cast

import asyncpg
import asyncpg.pool
import orjson
import structlog

from paystream.settings import DatabaseSettings

log = structlog.get_logger(__name__)

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
# The database is unreachable, or refused the statement: what a loop that must not die catches.
DATABASE_ERRORS: tuple[type[BaseException], ...] = (*DATABASE_UNAVAILABLE_ERRORS, asyncpg.PostgresError)


# A refusal of the data itself (SQLSTATE class 22, asyncpg's `DataError` family, which also covers a
# value asyncpg cannot encode for its parameter): retrying the same data fails the same way. Said in
# words that quote nothing, since PostgreSQL's messages (and asyncpg's) repeat the refused value.
_DATA_REFUSALS: dict[str, str] = {
    "22P05": "a string holds a character the database cannot store (NUL, \\u0000)",
    "22021": "a string holds a character the database cannot store (NUL, or bytes that are not UTF-8)",
    "22003": "a number is out of the range the database stores",
    "22008": "a date or time is out of range",
    "22007": "a date or time is malformed",
    "22P02": "a value is malformed for its type",
    "22001": "a string is longer than its column allows",
}


def data_refusal(exc: BaseException) -> str | None:
    """What the database refused in the data of a statement (None: `exc` is not such a refusal)."""
    if not isinstance(exc, asyncpg.exceptions.DataError):
        return None
    code = exc.sqlstate or "22000"
    what = _DATA_REFUSALS.get(code)
    if what is None and code == "22000":  # asyncpg could not encode a parameter
        cause = exc.__cause__
        if isinstance(cause, OverflowError) or "64-bit" in str(cause):
            what = "a number is out of the range the database stores"
        else:
            what = "a value does not fit its column's type"
    return f"{what or 'a value the database refuses'} (SQLSTATE {code})"


def _encode_json(value: Any) -> str:
    return orjson.dumps(value).decode()


# A transaction left open by a hung process would hold its row and advisory locks for ever.
IDLE_IN_TRANSACTION_TIMEOUT_MS = 60_000
# A process killed in the middle of a statement leaves its backend running that statement, holding
# every lock its transaction took (PostgreSQL notices a closed socket only when it next reads or
# writes it). A restarted replica then waits on those locks: seen as handlers timing out and /health
# failing for half a minute after a SIGKILL. With this, a backend checks its client's socket every
# second while it runs a statement, and ends its transaction once the client is gone (PostgreSQL 14+).
CLIENT_CONNECTION_CHECK_INTERVAL_MS = 1_000


# Plan every execution with its parameters (and the tables' current sizes). asyncpg prepares each
# statement once per connection, and PostgreSQL then settles on a generic plan built from the first
# executions: on a young, small table that plan scans the whole table (a hash join against an
# `unnest()` of the batch), and it is kept while the table grows, so a batch statement that took
# microseconds takes milliseconds minutes later (measured: 7.5 million rows read by 3,000 claims of
# provider events in 15 s). Custom plans cost a little planning per statement instead.
PLAN_CACHE_MODE = "force_custom_plan"


async def _init_connection(conn: asyncpg.Connection) -> None:
    await conn.execute(
        f"SET idle_in_transaction_session_timeout = {IDLE_IN_TRANSACTION_TIMEOUT_MS};"
        f" SET client_connection_check_interval = {CLIENT_CONNECTION_CHECK_INTERVAL_MS};"
        f" SET plan_cache_mode = {PLAN_CACHE_MODE}"
    )
    for type_name in ("json", "jsonb"):
        await conn.set_type_codec(type_name, encoder=_encode_json, decoder=orjson.loads, schema="pg_catalog")


# Channels to NOTIFY once a pooled connection is released, that is once its transaction is over.
_NOTIFY_ON_RELEASE: weakref.WeakKeyDictionary[asyncpg.Connection, set[str]] = weakref.WeakKeyDictionary()


def notify_after_transaction(conn: Connection, channel: str) -> None:
    """NOTIFY `channel` when this pooled connection goes back to the pool, outside its transaction.

    A NOTIFY inside a transaction holds PostgreSQL's global notification lock through that
    transaction's commit and WAL flush, so every notifying commit in the database waits for the one
    before it; sent after the transaction, in a statement of its own that writes no WAL, it costs one
    short round trip and serialises nothing. After a rollback the notification is merely spurious."""
    # A pool's proxy wraps the connection that the pool hands to `_on_release`.
    raw = cast(asyncpg.Connection, getattr(conn, "_con", None) or conn)
    _NOTIFY_ON_RELEASE.setdefault(raw, set()).add(channel)


async def _on_release(conn: asyncpg.Connection) -> None:
    """Send the notifications asked for during the connection's use, and nothing else.

    asyncpg's default session reset (RESET ALL, UNLISTEN, advisory unlock: one more round trip per
    release) is skipped: nothing keeps session state on a pooled connection (locks are
    transaction-scoped, LISTEN runs on dedicated connections), and asyncpg itself still rolls back an
    open transaction on release."""
    channels = _NOTIFY_ON_RELEASE.pop(conn, None)
    if not channels:
        return
    try:
        for channel in sorted(channels):
            await conn.execute(f"SELECT pg_notify('{channel}', '')")
    except Exception as exc:  # a lost wake-up costs latency (relays also poll), never an error
        log.warning("database.notify_failed", channels=sorted(channels), error=repr(exc))
        conn.terminate()


async def create_pool(settings: DatabaseSettings, **overrides: Any) -> asyncpg.Pool:
    options: dict[str, Any] = {
        "min_size": settings.pool_min_size,
        "max_size": settings.pool_max_size,
        "init": _init_connection,
        "reset": _on_release,
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
