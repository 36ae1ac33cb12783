"""Failed webhook deliveries in a recent window, read from the dispatcher's delivery log.

The log's table is owned by the webhook dispatcher and its name and columns are not a contract
payctl can import, so they are found at run time: `PAYCTL_DELIVERIES_TABLE` when set, else the first
existing table among the usual names, else any table on the search path whose name mentions
"deliver". A status-like column (`status`, `outcome`, `state`) equal to `failed` (lower case, as
the dispatcher's CHECK constraint has it), or a false
`success`-like boolean, marks a failure; the first timestamp column among the usual names dates it.
When nothing fits, the figure is unknown (None) with a note saying why, never a guess.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import asyncpg

CANDIDATE_TABLES = (
    "webhook_deliveries",
    "webhook_delivery_logs",
    "webhook_delivery_log",
    "webhook_delivery_attempts",
    "webhook_logs",
    "delivery_logs",
    "delivery_attempts",
)
TIME_COLUMNS = ("last_attempt_at", "attempted_at", "failed_at", "updated_at", "created_at")
STATUS_COLUMNS = ("status", "outcome", "state")
SUCCESS_COLUMNS = ("success", "succeeded", "delivered", "ok")
FAILED_VALUES = ("failed", "failure", "dead", "exhausted")


@dataclass(frozen=True, slots=True)
class DeliveryFailures:
    count: int | None  # None: unknown (n/a), `note` says why
    table: str | None
    note: str


async def failed_deliveries(
    conn: asyncpg.Connection, window_s: float, table_override: str | None = None
) -> DeliveryFailures:
    table = await _find_table(conn, table_override)
    if table is None:
        missing = f"table {table_override!r} not found" if table_override else "no delivery-log table found"
        return DeliveryFailures(None, None, missing)
    columns = await _columns(conn, table)
    time_column = next((name for name in TIME_COLUMNS if columns.get(name, "").startswith("timestamp")), None)
    failed = _failure_predicate(columns)
    if time_column is None or failed is None:
        return DeliveryFailures(None, table, f"{table} has no recognisable status and time columns")
    try:
        count = await conn.fetchval(
            f"SELECT count(*) FROM {table} WHERE {failed} AND {_quote(time_column)} >= now() - make_interval(secs => $1)",
            window_s,
        )
    except asyncpg.PostgresError as exc:
        return DeliveryFailures(None, table, f"reading {table} failed: {' '.join(str(exc).split())}")
    return DeliveryFailures(int(count), table, f"{failed} in {table}")


async def _find_table(conn: asyncpg.Connection, override: str | None) -> str | None:
    if override:
        try:
            found: str | None = await conn.fetchval("SELECT to_regclass($1)::text", override)
        except asyncpg.PostgresError:  # not even a valid name
            return None
        return found
    for name in CANDIDATE_TABLES:
        found = await conn.fetchval("SELECT to_regclass($1)::text", name)
        if found:
            return found
    found = await conn.fetchval(
        """SELECT c.oid::regclass::text FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
           WHERE c.relkind IN ('r', 'p', 'v') AND c.relname ILIKE '%deliver%'
             AND n.nspname = ANY(current_schemas(false))
           ORDER BY c.relname LIMIT 1"""
    )
    return found


async def _columns(conn: asyncpg.Connection, table: str) -> Mapping[str, str]:
    rows = await conn.fetch(
        """SELECT attname, format_type(atttypid, atttypmod) AS type FROM pg_attribute
           WHERE attrelid = $1::regclass AND attnum > 0 AND NOT attisdropped""",
        table,
    )
    return {row["attname"]: row["type"] for row in rows}


def _failure_predicate(columns: Mapping[str, str]) -> str | None:
    for name in STATUS_COLUMNS:
        if name in columns:
            values = ", ".join(f"'{value}'" for value in FAILED_VALUES)
            return f"{_quote(name)}::text IN ({values})"
    for name in SUCCESS_COLUMNS:
        if columns.get(name) == "boolean":
            return f"NOT {_quote(name)}"
    return None


def _quote(identifier: str) -> str:
    return '"' + identifier.replace('"', '""') + '"'
