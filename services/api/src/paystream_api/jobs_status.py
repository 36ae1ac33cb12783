"""`GET /api/v1/test/jobs/status`: the payment processor's queue, from real stream and table state.

- pending: entries on `payment:events` (all its shards) not yet delivered to the `payment-processor` group (its lag);
- processing: entries delivered but not yet acknowledged (XPENDING), plus payments and refunds the
  processor has accepted and is settling (pending, with a `process_after` time);
- completed: successful payments and processed refunds; failed: failed payments and refunds;
- worker_status: `running` when a consumer of the group has talked to Redis within the last
  `WORKER_IDLE_LIMIT_MS` (a live consumer polls every second), else `stopped`.

It is a test endpoint: served only when TEST_MODE is on (404 otherwise, as if absent), and then
without merchant credentials, since its figures are global.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import asyncpg
import redis.asyncio as aioredis
from aiohttp import web
from redis.exceptions import ResponseError

from paystream.errors import NotFoundError, ServiceUnavailableError
from paystream.events import ConsumerGroup, Stream
from paystream.redis import REDIS_UNAVAILABLE_ERRORS
from paystream.streaminfo import consumer_infos, group_infos
from paystream.web import POOL, REDIS, json_response
from paystream_api.keys import SETTINGS

WORKER_IDLE_LIMIT_MS = 10_000


@dataclass(frozen=True, slots=True)
class GroupState:
    undelivered: int
    unacknowledged: int
    worker_running: bool


async def group_state(redis: aioredis.Redis, streams: Sequence[str] = (Stream.PAYMENT_EVENTS,)) -> GroupState:
    """The processor group's figures summed over the shard streams of `payment:events`."""
    states = [await _shard_state(redis, stream) for stream in streams]
    return GroupState(
        undelivered=sum(state.undelivered for state in states),
        unacknowledged=sum(state.unacknowledged for state in states),
        worker_running=any(state.worker_running for state in states),
    )


async def _shard_state(redis: aioredis.Redis, stream: str) -> GroupState:
    try:
        groups = await group_infos(redis, stream)
    except ResponseError:  # the key holds something other than a stream
        return GroupState(undelivered=0, unacknowledged=0, worker_running=False)
    group = next((g for g in groups if g.group == ConsumerGroup.PAYMENT_PROCESSOR), None)
    if group is None:
        return GroupState(undelivered=int(await redis.xlen(stream)), unacknowledged=0, worker_running=False)
    consumers = await consumer_infos(redis, stream, group.group)
    running = any(consumer.idle_ms < WORKER_IDLE_LIMIT_MS for consumer in consumers)
    return GroupState(undelivered=group.lag, unacknowledged=group.pending, worker_running=running)


async def table_counts(pool: asyncpg.Pool) -> asyncpg.Record:
    row: asyncpg.Record | None = await pool.fetchrow(
        """SELECT
             (SELECT count(*) FROM payments WHERE status = 'pending' AND process_after IS NOT NULL)
           + (SELECT count(*) FROM refunds WHERE status = 'pending' AND process_after IS NOT NULL)
               AS settling,
             (SELECT count(*) FROM payments WHERE status = 'success')
           + (SELECT count(*) FROM refunds WHERE status = 'processed') AS completed,
             (SELECT count(*) FROM payments WHERE status = 'failed')
           + (SELECT count(*) FROM refunds WHERE status = 'failed') AS failed"""
    )
    assert row is not None
    return row


async def jobs_status(request: web.Request) -> web.Response:
    if not request.app[SETTINGS].common.test_mode.enabled:
        raise NotFoundError("not found")
    counts = await table_counts(request.app[POOL])
    try:
        settings = request.app[SETTINGS].common
        state = await group_state(request.app[REDIS], settings.streams.keys(Stream.PAYMENT_EVENTS))
    except REDIS_UNAVAILABLE_ERRORS:
        raise ServiceUnavailableError("the event bus is unavailable; retry shortly") from None
    return json_response(
        {
            "pending": state.undelivered,
            "processing": state.unacknowledged + counts["settling"],
            "completed": counts["completed"],
            "failed": counts["failed"],
            "worker_status": "running" if state.worker_running else "stopped",
        }
    )


def setup_routes(app: web.Application) -> None:
    app.router.add_get("/api/v1/test/jobs/status", jobs_status)
