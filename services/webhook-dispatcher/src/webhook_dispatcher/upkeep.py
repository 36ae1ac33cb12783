"""Delivery-log upkeep:

- retention (`purge_finished`, hourly through `paystream.retention.purging`): finished deliveries
  older than the retention period are deleted in batches, replicas sharing them;
- the safety net for ordering: a delivery held longer than the grace period for an earlier event of
  its payment that has not come (dead-lettered, or lost with Redis data) stops waiting for it. The
  key's missing numbers below the held delivery are given up on, as if taken in, and the ordering
  rule runs again for the key: the held deliveries go out in their order, each after the one
  before it has had its first attempt. The rule also runs again for every key with a hold that old,
  so that a release missed for any other reason (a predecessor removed by hand) is made up.
"""

from __future__ import annotations

import asyncio

import asyncpg

from paystream.db import DATABASE_ERRORS
from paystream.logging import get_logger
from paystream.loops import Backoff, run_until_stopped
from paystream.retention import delete_in_batches
from webhook_dispatcher.ordering import OrderKey, release_held

log = get_logger(__name__)

SWEEP_INTERVAL_S = 60.0
PURGE_EVERY_S = 3600.0
HOLDS_BATCH = 1000

PURGE_FINISHED = """
DELETE FROM webhook_deliveries WHERE ctid = ANY(ARRAY(
    SELECT ctid FROM webhook_deliveries
    WHERE status <> 'pending' AND created_at < now() - make_interval(days => $2)
    LIMIT $1 FOR UPDATE SKIP LOCKED))"""

# Keys ($1 grace seconds; $2 at most this many, after the key ($3, $4)) with a delivery held longer
# than the grace period: locked (in key order, like every other writer), their numbers below that
# delivery given up on. Returns each key with what it had taken in before and after.
GIVE_UP_MISSING = """
WITH stale AS (
    SELECT merchant_id, order_key, max(ordering_seq) AS held_seq
    FROM webhook_deliveries
    WHERE status = 'pending' AND due_at IS NULL AND ordering_seq IS NOT NULL
      AND updated_at < now() - make_interval(secs => $1)
      AND (merchant_id, order_key) > ($3, $4)
    GROUP BY merchant_id, order_key
    ORDER BY merchant_id, order_key
    LIMIT $2
), locked AS (
    SELECT k.merchant_id, k.order_key, k.taken_through, stale.held_seq
    FROM webhook_order_keys k JOIN stale USING (merchant_id, order_key)
    ORDER BY k.merchant_id, k.order_key
    FOR UPDATE OF k
)
UPDATE webhook_order_keys k
SET (taken_through, taken_ahead) = (
        SELECT f.taken_through, f.taken_ahead
        FROM webhook_order_taken(greatest(k.taken_through, locked.held_seq - 1), k.taken_ahead) f),
    updated_at = now()
FROM locked
WHERE k.merchant_id = locked.merchant_id AND k.order_key = locked.order_key
RETURNING k.merchant_id, k.order_key, locked.taken_through AS through_before, k.taken_through AS through_after"""


async def purge_finished(pool: asyncpg.Pool, retention_days: int) -> int:
    """Delete finished deliveries past the retention period; returns how many were deleted."""
    return await delete_in_batches(pool, PURGE_FINISHED, retention_days)


async def release_orphaned_holds(pool: asyncpg.Pool, grace_s: float) -> list[str]:
    """Stop holding deliveries for earlier events that have not come within `grace_s`; returns the
    ids of the deliveries released now (the others of those keys follow in their order)."""
    released: list[str] = []
    after: OrderKey = ("", "")
    while True:
        async with pool.acquire() as conn, conn.transaction():
            keys = await conn.fetch(GIVE_UP_MISSING, grace_s, HOLDS_BATCH, *after)
            # A statement of its own: its snapshot holds everything committed before the lock.
            released += await release_held(conn, [(row["merchant_id"], row["order_key"]) for row in keys])
        gave_up = [
            {
                "merchant_id": row["merchant_id"],
                "order_key": row["order_key"],
                "taken_through": [row["through_before"], row["through_after"]],
            }
            for row in keys
            if row["through_after"] > row["through_before"]
        ]
        if gave_up:
            log.warning("upkeep.gave_up_on_missing_events", keys=gave_up[:20], count=len(gave_up))
        if len(keys) < HOLDS_BATCH:
            return released
        after = max((row["merchant_id"], row["order_key"]) for row in keys)


async def run_upkeep(pool: asyncpg.Pool, ordering_grace_s: float, stop: asyncio.Event) -> None:
    async def sweep() -> None:
        released = await release_orphaned_holds(pool, ordering_grace_s)
        if released:
            log.warning("upkeep.released_orphaned_holds", deliveries=released[:20], count=len(released))

    await run_until_stopped(
        "upkeep.sweep",
        sweep,
        stop,
        interval_s=SWEEP_INTERVAL_S,
        first_wait_s=SWEEP_INTERVAL_S,
        retry_on=DATABASE_ERRORS,
        backoff=Backoff(cap_s=SWEEP_INTERVAL_S),
    )
