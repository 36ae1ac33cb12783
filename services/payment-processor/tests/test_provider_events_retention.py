"""Retention of stored provider events: settled ones past the retention period go, in batches; waiting
and failed ones (dead letters) stay whatever their age, and so does every young one."""

from __future__ import annotations

import asyncpg
from aiohttp import web
from provider_testkit import MERCHANT

from payment_processor.keys import SETTINGS
from payment_processor.provider_events.retention import PURGE_SETTLED, purge_settled
from payment_processor.settings import ProcessorSettings
from paystream.retention import delete_in_batches
from paystream.web import POOL

STATUSES = ("received", "processed", "ignored", "rejected", "failed")


async def store(pool: asyncpg.Pool, event_id: str, status: str, age_days: float) -> None:
    await pool.execute(
        """INSERT INTO provider_events (provider, event_id, type, merchant_id, payload, status, received_at)
           VALUES ('razorpay', $1, 'payment.captured', $2, '{}', $3, now() - make_interval(days => $4))""",
        event_id,
        MERCHANT,
        status,
        age_days,
    )


async def remaining(pool: asyncpg.Pool) -> set[str]:
    return {row["event_id"] for row in await pool.fetch("SELECT event_id FROM provider_events")}


async def test_settled_events_past_retention_are_purged_and_nothing_else(
    pool: asyncpg.Pool, service_env: dict[str, str]
) -> None:
    for status in STATUSES:
        await store(pool, f"old_{status}", status, age_days=31)
        await store(pool, f"young_{status}", status, age_days=29)
    app = web.Application()
    app[POOL] = pool
    app[SETTINGS] = ProcessorSettings.from_env({**service_env, "PROVIDER_EVENTS_RETENTION_DAYS": "30"})

    assert await purge_settled(app) == 3
    assert await remaining(pool) == {"old_received", "old_failed"} | {f"young_{s}" for s in STATUSES}
    assert await purge_settled(app) == 0


async def test_a_purge_deletes_a_batch_at_a_time_until_none_is_left(pool: asyncpg.Pool) -> None:
    for n in range(7):
        await store(pool, f"evt_{n}", "processed", age_days=40)
    await store(pool, "evt_young", "processed", age_days=1)

    assert await delete_in_batches(pool, PURGE_SETTLED, 30, batch_size=3) == 7
    assert await remaining(pool) == {"evt_young"}
