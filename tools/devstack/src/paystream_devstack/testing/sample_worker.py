"""A consumer process for the runtime's own fault tests (`python -m paystream_devstack.testing.sample_worker`).

Its handler writes one row to `sample_effects` per effect, guarded by the inbox, so a test can
count effects after killing it. Event data may ask it to pause before or after its commit
(`pause_before_commit_ms`, `pause_after_commit_ms`) on its first delivery, announcing the pause in Redis first, so a test
knows when to SIGKILL it mid-handler.
"""

from __future__ import annotations

import asyncio
import os
import signal

import asyncpg
import redis.asyncio as aioredis

from paystream.consumer import ConsumerConfig, Handler, MessageContext, StreamConsumer
from paystream.db import create_pool
from paystream.events import Event
from paystream.inbox import claim_event
from paystream.redis import create_redis
from paystream.settings import DatabaseSettings, RedisSettings, env_int, env_str

CREATE_EFFECTS = """CREATE TABLE IF NOT EXISTS sample_effects (
    id bigserial PRIMARY KEY, event_id uuid NOT NULL, consumer text NOT NULL,
    handled_at timestamptz NOT NULL DEFAULT now())"""


def make_handler(pool: asyncpg.Pool, redis: aioredis.Redis, group: str) -> Handler:
    async def handle(event: Event, ctx: MessageContext) -> None:
        async with pool.acquire() as conn, conn.transaction():
            if not await claim_event(conn, group, event.id):
                return
            first_delivery = ctx.delivery_count == 1
            pause_before = int(event.data.get("pause_before_commit_ms", 0)) if first_delivery else 0
            if pause_before:
                await redis.set(f"sample:started:{event.id}", ctx.consumer)
                await asyncio.sleep(pause_before / 1000)
            await conn.execute(
                "INSERT INTO sample_effects (event_id, consumer) VALUES ($1, $2)", event.id, ctx.consumer
            )
        pause_after = int(event.data.get("pause_after_commit_ms", 0)) if ctx.delivery_count == 1 else 0
        if pause_after:
            await redis.set(f"sample:committed:{event.id}", ctx.consumer)
            await asyncio.sleep(pause_after / 1000)

    return handle


async def main() -> None:
    environ = os.environ
    group = env_str(environ, "SAMPLE_GROUP", "sample-group")
    stream = env_str(environ, "SAMPLE_STREAM", "sample:events")
    pool = await create_pool(DatabaseSettings.from_env(environ), min_size=1, max_size=10)
    redis = create_redis(RedisSettings.from_env(environ))
    await pool.execute(CREATE_EFFECTS)
    config = ConsumerConfig(
        group=group,
        streams=(stream,),
        consumer_name=env_str(environ, "SAMPLE_CONSUMER", ""),
        handler_timeout_s=env_int(environ, "SAMPLE_HANDLER_TIMEOUT_MS", 5000) / 1000,
        reclaim_idle_ms=env_int(environ, "SAMPLE_RECLAIM_IDLE_MS", 6000),
        reclaim_interval_s=env_int(environ, "SAMPLE_RECLAIM_INTERVAL_MS", 200) / 1000,
        shutdown_grace_s=env_int(environ, "SAMPLE_SHUTDOWN_GRACE_MS", 10_000) / 1000,
        block_ms=200,
        heartbeat_interval_s=env_int(environ, "SAMPLE_HEARTBEAT_INTERVAL_MS", 5000, minimum=1) / 1000,
    )
    consumer = StreamConsumer(redis, config, make_handler(pool, redis, group))
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    print(f"sample worker {consumer.name} ready", flush=True)
    try:
        await consumer.run(stop)
    finally:
        await redis.aclose()
        await pool.close()


if __name__ == "__main__":
    asyncio.run(main())
