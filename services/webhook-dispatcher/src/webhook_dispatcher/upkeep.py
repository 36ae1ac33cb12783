"""Delivery-log upkeep, by one dispatcher at a time (transaction-scoped advisory locks):

- retention: finished deliveries older than the retention period are deleted, hourly, in batches;
- a safety net for ordering: a held delivery (waiting for an earlier one of its payment) whose
  earlier deliveries have all had their first attempt is released. The recorder normally releases
  it at once; this covers a predecessor removed by hand, so that nothing waits forever.
"""

from __future__ import annotations

import asyncio

import asyncpg

from paystream.aio import wait_or_stop
from paystream.db import DATABASE_UNAVAILABLE_ERRORS
from paystream.logging import get_logger

log = get_logger(__name__)

RETENTION_LOCK_KEY = 7_304_000_001
SWEEP_INTERVAL_S = 60.0
PURGE_EVERY_SWEEPS = 60
BATCH = 5000
# A hold younger than this is left alone: its earlier delivery may still be on its way in.
HELD_GRACE_S = 60

PURGE_BATCH = """
WITH lock AS (SELECT pg_try_advisory_xact_lock($3) AS held)
DELETE FROM webhook_deliveries
WHERE id IN (
    SELECT id FROM webhook_deliveries, lock
    WHERE lock.held AND status <> 'pending' AND created_at < now() - make_interval(days => $1)
    LIMIT $2)"""

RELEASE_ORPHANED_HOLDS = """
UPDATE webhook_deliveries s SET due_at = now(), next_retry_at = now(), updated_at = now()
WHERE s.status = 'pending' AND s.due_at IS NULL
  AND s.updated_at < now() - make_interval(secs => $1)
  AND NOT EXISTS (
      SELECT 1 FROM webhook_deliveries p
      WHERE p.endpoint_id = s.endpoint_id AND p.order_key = s.order_key
        AND p.status = 'pending' AND p.attempts = 0
        AND (p.event_at, p.event_id) < (s.event_at, s.event_id))
RETURNING s.id"""


async def purge_finished(pool: asyncpg.Pool, retention_days: int) -> int:
    """Delete finished deliveries past the retention period; returns how many were deleted."""
    total = 0
    while True:
        async with pool.acquire() as conn, conn.transaction():
            status: str = await conn.execute(PURGE_BATCH, retention_days, BATCH, RETENTION_LOCK_KEY)
        deleted = int(status.split()[-1])
        total += deleted
        if deleted < BATCH:
            return total


async def release_orphaned_holds(pool: asyncpg.Pool, grace_s: float = HELD_GRACE_S) -> list[str]:
    """Release held deliveries with no earlier delivery left waiting; returns their ids."""
    rows = await pool.fetch(RELEASE_ORPHANED_HOLDS, grace_s)
    return [row["id"] for row in rows]


async def run_upkeep(pool: asyncpg.Pool, retention_days: int, stop: asyncio.Event) -> None:
    sweeps = 0
    while not await wait_or_stop(stop, SWEEP_INTERVAL_S):
        sweeps += 1
        try:
            released = await release_orphaned_holds(pool)
            if released:
                log.warning("upkeep.released_orphaned_holds", deliveries=released[:20], count=len(released))
            if sweeps % PURGE_EVERY_SWEEPS == 0:
                deleted = await purge_finished(pool, retention_days)
                if deleted:
                    log.info("upkeep.purged", deliveries=deleted, retention_days=retention_days)
        except (*DATABASE_UNAVAILABLE_ERRORS, asyncpg.PostgresError) as exc:  # type: ignore[misc]
            log.warning("upkeep.failed", error=str(exc))
