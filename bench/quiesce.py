"""Between scenarios: wait until the platform has finished the previous one's work.

A scenario measured while the services still chew on the last one's backlog measures the backlog.
So before each scenario the harness waits (up to `--settle-timeout`) until nothing is left: no
unpublished outbox row, no undelivered or unacknowledged stream entry in any consumer group, no
pending API payment, no unprocessed provider event, no pending merchant delivery.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass

import asyncpg
import redis.asyncio as aioredis

from paystream.streaminfo import BUS_STREAMS, group_infos

POLL_S = 0.25

BACKLOG_QUERIES: dict[str, str] = {
    "outbox_unpublished": "SELECT count(*) FROM outbox_pending",
    "payments_pending": "SELECT count(*) FROM payments WHERE status = 'pending'",
    "provider_events_received": "SELECT count(*) FROM provider_events WHERE status = 'received'",
    "deliveries_pending": "SELECT count(*) FROM webhook_deliveries WHERE status = 'pending'",
}


@dataclass(frozen=True, slots=True)
class Settled:
    drained: bool
    waited_s: float
    backlog: dict[str, int]


async def backlog(pool: asyncpg.Pool, redis: aioredis.Redis) -> dict[str, int]:
    """What is still in flight: rows per backlog query, entries per stream group."""
    found: dict[str, int] = {}
    async with pool.acquire() as conn:
        for name, query in BACKLOG_QUERIES.items():
            try:
                found[name] = int(await conn.fetchval(query))
            except asyncpg.UndefinedTableError:
                found[name] = 0  # that feature's migration is not in this tree
    for stream in BUS_STREAMS:
        for group in await group_infos(redis, stream):
            found[f"{stream}/{group.group}"] = group.pending + group.lag
    return {name: count for name, count in found.items() if count}


async def settle(pool: asyncpg.Pool, redis: aioredis.Redis, timeout_s: float) -> Settled:
    """Wait until the backlog is empty, or `timeout_s` passes (then report what was left)."""
    started = time.monotonic()
    while True:
        left = await backlog(pool, redis)
        waited = time.monotonic() - started
        if not left:
            return Settled(True, waited, {})
        if waited > timeout_s:
            return Settled(False, waited, left)
        await asyncio.sleep(POLL_S)
