"""The inbox: makes a handler idempotent on (consumer group, event id).

Call `claim_event` inside the handler's transaction, before its effects. It returns False when the
group has already handled the event, and the handler then does nothing; since the claim commits or
rolls back with the effects, an event has its effect exactly once however often it is delivered.

A handler that claims inside a larger statement composes `claim_sql` into it (as a CTE), so that
the inbox's columns and conflict target are written here only.
"""

from __future__ import annotations

from collections.abc import Iterable

import asyncpg

from paystream.db import Connection
from paystream.retention import delete_in_batches


def claim_sql(claims: str) -> str:
    """The inbox claim of the `(consumer_group, event_id)` pairs that `claims` (a SELECT or VALUES)
    yields: a pair already there is a redelivery and is skipped; returns the `event_id`s claimed now."""
    return (
        f"INSERT INTO inbox (consumer_group, event_id) {claims} "
        "ON CONFLICT (consumer_group, event_id) DO NOTHING RETURNING event_id"
    )


CLAIM_EVENT = claim_sql("VALUES ($1, $2)")
CLAIM_EVENTS = claim_sql("SELECT $1, event_id FROM unnest($2::uuid[]) AS e(event_id)")


def _require_transaction(conn: Connection) -> None:
    if not conn.is_in_transaction():
        raise RuntimeError("an inbox claim must run inside the handler's transaction")


async def claim_event(conn: Connection, group: str, event_id: str) -> bool:
    """Record that `group` handles `event_id`; False when it already has (a redelivery)."""
    _require_transaction(conn)
    return await conn.fetchval(CLAIM_EVENT, group, event_id) is not None


async def claim_events(conn: Connection, group: str, event_ids: Iterable[str]) -> set[str]:
    """`claim_event` for many events in one statement: the ids claimed now (as canonical UUID text),
    without the redeliveries. Pass the ids sorted, so that two writers lock them in one order."""
    _require_transaction(conn)
    rows = await conn.fetch(CLAIM_EVENTS, group, list(event_ids))
    return {str(row["event_id"]) for row in rows}


PURGE_HANDLED = """
DELETE FROM inbox WHERE ctid = ANY(ARRAY(
    SELECT ctid FROM inbox WHERE processed_at < now() - make_interval(days => $2)
    LIMIT $1 FOR UPDATE SKIP LOCKED))"""


async def purge_inbox(pool: asyncpg.Pool, older_than_days: int) -> int:
    """Forget handled events older than `older_than_days` (keep them longer than the outbox keeps
    its rows, so that nothing it can still re-publish takes effect twice), a batch at a time."""
    return await delete_in_batches(pool, PURGE_HANDLED, older_than_days)
