"""Nothing accepted is lost: the API answers 201 while Redis is down (the outbox holds the events),
is killed with SIGKILL before it could publish, and its events reach the stream after a restart."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import aiohttp
import asyncpg
import pytest
import redis.asyncio as aioredis

from paystream.events import STREAM_FIELD, Event, EventType
from paystream_devstack.embedded import EmbeddedRedis
from paystream_devstack.testing import ServiceProcess, eventually


@pytest.fixture
def redis_url(redis_server: EmbeddedRedis) -> str:
    """This module stops, restarts or cuts off Redis: its services and checks use the private server,
    even when the suite runs on another one (TEST_REDIS_URL)."""
    return redis_server.url


AUTH = {"X-Api-Key": "key_test_abc123", "X-Api-Secret": "secret_test_xyz789"}


async def stream_event_types_for(redis: aioredis.Redis, payment_id: str) -> list[EventType]:
    events = [Event.decode(fields[STREAM_FIELD]) for _, fields in await redis.xrange("payment:events")]
    return [event.type for event in events if event.data.get("payment", {}).get("id") == payment_id]


@pytest.mark.chaos
async def test_api_killed_between_commit_and_publish_still_publishes_after_restart(
    service_env: dict[str, str],
    spawn_service: Callable[..., ServiceProcess],
    redis_server: EmbeddedRedis,
    redis: aioredis.Redis,
    db_pool: asyncpg.Pool,
) -> None:
    api = spawn_service("paystream_api", service_env)
    base = f"http://127.0.0.1:{service_env['API_PORT']}"
    await asyncio.to_thread(redis_server.stop)  # Redis unreachable: commits succeed, publishing can't
    try:
        async with aiohttp.ClientSession() as http:
            payment_ids = []
            for n in range(5):
                body = {
                    "order_id": f"ord_crash_{n}",
                    "amount": 1000 + n,
                    "currency": "INR",
                    "method": "upi",
                    "vpa": "user@okbank",
                }
                async with http.post(f"{base}/api/v1/payments", json=body, headers=AUTH) as response:
                    assert response.status == 201, await response.text()
                    payment_ids.append((await response.json())["id"])
        unpublished = await db_pool.fetchval("SELECT count(*) FROM outbox_pending")
        assert unpublished >= 10, "created + pending for each payment wait in the outbox"
        api.kill()
    finally:
        await asyncio.to_thread(redis_server.start)
    await redis.ping()
    assert await stream_event_types_for(redis, payment_ids[0]) == [], "nothing was published before the kill"

    api.start()  # the restarted API's relay publishes what the killed one could not
    for payment_id in payment_ids:
        types = await eventually(
            lambda pid=payment_id: _has_created_and_pending(redis, pid),
            timeout=20,
            message=f"events of {payment_id} published after restart",
        )
        assert types == [EventType.PAYMENT_CREATED, EventType.PAYMENT_PENDING]
    # The relay marks rows published in the transaction around its XADDs: it commits just after.
    await eventually(
        lambda: _none_unpublished(db_pool), timeout=10, message="every outbox row marked published"
    )


async def _none_unpublished(pool: asyncpg.Pool) -> bool:
    return await pool.fetchval("SELECT count(*) FROM outbox_pending") == 0


async def _has_created_and_pending(redis: aioredis.Redis, payment_id: str) -> list[EventType] | None:
    types = await stream_event_types_for(redis, payment_id)
    return types if len(types) >= 2 else None
