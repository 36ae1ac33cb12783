"""Heartbeat records: what a running consumer publishes, how its age is read, what readers skip."""

from __future__ import annotations

import asyncio
import os
import socket

import orjson
import redis.asyncio as aioredis

from paystream.consumer import ConsumerConfig, MessageContext, StreamConsumer
from paystream.events import Event
from paystream.heartbeat import HEARTBEAT_PREFIX, Heartbeat, ReaderKind, read_heartbeats
from paystream.streaminfo import server_time_ms
from paystream_devstack.testing import eventually

STREAM = "test:events"
GROUP = "test-group"


async def test_a_running_consumer_beats_while_idle_and_removes_its_record_on_stop(
    redis: aioredis.Redis,
) -> None:
    async def handler(_event: Event, _ctx: MessageContext) -> None:
        return None

    config = ConsumerConfig(group=GROUP, streams=(STREAM,), block_ms=50, heartbeat_interval_s=0.05)
    consumer = StreamConsumer(redis, config, handler)
    key = f"{HEARTBEAT_PREFIX}:consumer:{GROUP}:{consumer.name}"
    stop = asyncio.Event()
    task = asyncio.create_task(consumer.run(stop))

    async def read_since_started() -> dict[str, object] | None:
        raw = await redis.get(key)
        record = orjson.loads(raw) if raw else None
        return record if record and record["last_read_at_ms"] is not None else None

    record = await eventually(read_since_started, timeout=10, message="a beat after the first read")
    assert (record["kind"], record["group"], record["name"], record["streams"]) == (
        "consumer",
        GROUP,
        consumer.name,
        [STREAM],
    )
    assert (record["host"], record["pid"]) == (socket.gethostname(), os.getpid())
    assert (record["interval_ms"], record["lapse_ms"]) == (50, 150)
    [status] = await read_heartbeats(redis, await server_time_ms(redis))
    assert (status.name, status.group, status.live) == (consumer.name, GROUP, True)
    assert await redis.xinfo_consumers(STREAM, GROUP) == []  # what XINFO says of it: nothing

    stop.set()
    await asyncio.wait_for(task, 10)
    assert await redis.exists(key) == 0


async def test_the_age_of_a_beat_is_read_from_the_keys_ttl_on_redis_clock(redis: aioredis.Redis) -> None:
    beat = Heartbeat(
        redis, kind=ReaderKind.READER, name="notifier-a", streams=("s",), interval_s=1, position=lambda: "5-0"
    )
    await beat.beat()
    fresh = (await read_heartbeats(redis, await server_time_ms(redis)))[0]
    assert fresh.live and fresh.beat_age_ms < 1000
    assert (fresh.kind, fresh.position, fresh.streams) == (ReaderKind.READER, "5-0", ("s",))

    # As if the last beat had been written 5 s ago: three missed beats (3 s) make a silent reader.
    await redis.pexpire(beat.key, beat.keep_ms - 5000)
    now_ms = await server_time_ms(redis)
    [stale] = await read_heartbeats(redis, now_ms)
    assert 5000 <= stale.beat_age_ms < 6000
    assert stale.live is False
    assert now_ms - 6000 < stale.beat_redis_ms <= now_ms - 5000


async def test_records_that_are_not_heartbeats_are_skipped(redis: aioredis.Redis) -> None:
    good = Heartbeat(redis, kind=ReaderKind.CONSUMER, name="c1", group="g", streams=("s",))
    await good.beat()
    await redis.set(f"{HEARTBEAT_PREFIX}:consumer:g:garbage", b"\xff\x00not json", px=60_000)
    await redis.set(f"{HEARTBEAT_PREFIX}:consumer:g:list", b"[1, 2]", px=60_000)
    await redis.set(f"{HEARTBEAT_PREFIX}:consumer:g:no-ttl", good.key.encode())
    wrong = {**good.record(), "pid": "a lot", "streams": "s"}
    await redis.set(f"{HEARTBEAT_PREFIX}:reader:s:wrong", orjson.dumps(wrong), px=60_000)

    found = await read_heartbeats(redis, await server_time_ms(redis))

    assert [status.name for status in found] == ["c1"]
