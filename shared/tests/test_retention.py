"""Batched purges (`paystream.retention`) on PostgreSQL: every row past its date goes, a batch at a
time, and two purges at once (replicas) between them delete each old row once and no young one."""

from __future__ import annotations

import asyncio

import asyncpg

from paystream.inbox import PURGE_HANDLED
from paystream.retention import delete_in_batches


async def old_and_young_inbox_rows(pool: asyncpg.Pool, old: int, young: int) -> None:
    await pool.execute(
        """INSERT INTO inbox (consumer_group, event_id, processed_at)
           SELECT 'retention-test', gen_random_uuid(),
                  now() - make_interval(days => CASE WHEN n <= $1::int THEN 30 ELSE 1 END)
           FROM generate_series(1, $1::int + $2::int) AS n""",
        old,
        young,
    )


async def test_two_purges_at_once_delete_every_old_row_once(db_pool: asyncpg.Pool, clean_db: str) -> None:
    await old_and_young_inbox_rows(db_pool, old=40, young=5)
    first, second = await asyncio.gather(
        delete_in_batches(db_pool, PURGE_HANDLED, 14, batch_size=3),
        delete_in_batches(db_pool, PURGE_HANDLED, 14, batch_size=3),
    )
    assert first + second == 40
    assert await db_pool.fetchval("SELECT count(*) FROM inbox") == 5
