"""The outbox relay leader is replaced when its process dies or hangs, so publishing never stops."""

from __future__ import annotations

import signal
from collections.abc import Callable

import asyncpg
import pytest
import redis.asyncio as aioredis

from paystream.events import STREAM_FIELD, Event, EventType, Stream
from paystream.outbox import enqueue
from paystream_devstack.testing import ServiceProcess, eventually


async def commit_event(pool: asyncpg.Pool) -> Event:
    event = Event(type=EventType.WEBHOOK_TEST, merchant_id="mer_failover", data={})
    async with pool.acquire() as conn, conn.transaction():
        await enqueue(conn, Stream.PAYMENT_EVENTS, [event])
    return event


async def published(redis: aioredis.Redis, event: Event) -> bool:
    entries = await redis.xrange(Stream.PAYMENT_EVENTS)
    return any(Event.decode(fields[STREAM_FIELD]).id == event.id for _, fields in entries)


@pytest.mark.chaos
async def test_a_hung_relay_leader_is_replaced_by_a_standby(
    service_env: dict[str, str],
    spawn_service: Callable[..., ServiceProcess],
    redis: aioredis.Redis,
    db_pool: asyncpg.Pool,
) -> None:
    env = {**service_env, "OUTBOX_LEADER_IDLE_TIMEOUT_S": "3"}
    api = spawn_service("paystream_api", env)
    first = await commit_event(db_pool)
    await eventually(lambda: published(redis, first), timeout=10, message="the API's relay leads")
    spawn_service("payment_processor", env)  # its relay stands by

    assert api.process is not None
    api.process.send_signal(signal.SIGSTOP)  # alive, connections open, doing nothing
    try:
        second = await commit_event(db_pool)
        await eventually(
            lambda: published(redis, second), timeout=20, message="a standby relay took over and published"
        )
    finally:
        api.process.send_signal(signal.SIGCONT)
    third = await commit_event(db_pool)
    await eventually(lambda: published(redis, third), timeout=10, message="publishing goes on")
