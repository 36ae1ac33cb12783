"""The inbox: makes a handler idempotent on (consumer group, event id).

Call `claim_event` inside the handler's transaction, before its effects. It returns False when the
group has already handled the event, and the handler then does nothing; since the claim commits or
rolls back with the effects, an event has its effect exactly once however often it is delivered.
"""

from __future__ import annotations

from paystream.db import Connection


async def claim_event(conn: Connection, group: str, event_id: str) -> bool:
    """Record that `group` handles `event_id`; False when it already has (a redelivery)."""
    if not conn.is_in_transaction():
        raise RuntimeError("claim_event must run inside the handler's transaction")
    inserted = await conn.fetchval(
        "INSERT INTO inbox (consumer_group, event_id) VALUES ($1, $2) ON CONFLICT DO NOTHING RETURNING true",
        group,
        event_id,
    )
    return bool(inserted)


async def purge_inbox(conn: Connection, older_than_days: int) -> int:
    """Forget handled events older than `older_than_days` (keep them longer than the outbox keeps
    its rows, so that nothing it can still re-publish takes effect twice)."""
    status: str = await conn.execute(
        "DELETE FROM inbox WHERE processed_at < now() - make_interval(days => $1)", older_than_days
    )
    return int(status.split()[-1])
