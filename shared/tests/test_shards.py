"""Stream shards on a plain Redis: key names, the shard of an event, the relay's choice, and a
consumer that reads (and dead-letters to) every shard."""

from __future__ import annotations

import asyncio
from binascii import crc32
from collections import defaultdict
from typing import Any

import asyncpg
import pytest
import redis.asyncio as aioredis

from paystream.consumer import ConsumerConfig, MessageContext, StreamConsumer
from paystream.errors import PermanentError, SettingsError
from paystream.events import SEQUENCE_FIELD, STREAM_FIELD, Event, EventType, Stream, dead_letter_stream
from paystream.ordering import ordering_key
from paystream.outbox import OutboxRelay, enqueue
from paystream.redis import ReplicasBehind
from paystream.settings import CommonSettings, OutboxSettings, RedisSettings, stream_layout_from_env
from paystream.shards import SINGLE_SHARD, StreamLayout, logical_stream, shard_index, shard_of_key
from paystream.streaminfo import bus_snapshot, bus_streams, summed_over_shards
from paystream_devstack.testing import eventually

THREE = StreamLayout(shards=3)
STREAM = Stream.PAYMENT_EVENTS.value


def payment_event(merchant_id: str, payment_id: str, event_type: EventType) -> Event:
    return Event(
        type=event_type,
        merchant_id=merchant_id,
        invoice_id=f"inv_{payment_id}",
        data={"payment": {"id": payment_id, "status": "pending"}},
    )


def test_one_shard_keeps_todays_names_and_more_shards_carry_hash_tags() -> None:
    assert SINGLE_SHARD.keys(STREAM) == ("payment:events",)
    assert dead_letter_stream(SINGLE_SHARD.keys(STREAM)[0]) == "payment:events:dlq"
    assert THREE.keys(STREAM) == ("payment:events:{0}", "payment:events:{1}", "payment:events:{2}")
    # A shard's stream and its dead letters share the hash tag, hence the cluster slot.
    assert dead_letter_stream(THREE.keys(STREAM)[2]) == "payment:events:{2}:dlq"
    assert [logical_stream(key) for key in THREE.keys(STREAM)] == [STREAM] * 3
    assert [shard_of_key(key) for key in THREE.keys(STREAM)] == [0, 1, 2]
    assert logical_stream(STREAM) == STREAM and shard_of_key(STREAM) == 0
    assert THREE.bus_keys() == THREE.keys(STREAM)


def test_the_shard_of_an_event_is_a_stable_hash_of_its_payment_or_its_id() -> None:
    # CRC-32 of merchant, unit separator, ordering key: the same in every process and release.
    expected = crc32(b"mer_1\x1fpay_1") % 3
    assert shard_index(3, "mer_1", "pay_1", "ignored") == expected
    assert shard_index(3, "mer_1", "pay_1", "another id") == expected
    event_id = "0193b2c4-0000-7000-8000-000000000001"
    assert shard_index(3, "mer_1", None, event_id) == crc32(event_id.encode()) % 3
    assert shard_index(1, "mer_1", "pay_1", event_id) == 0
    # Payments spread over every shard.
    assert {shard_index(3, "mer_1", f"pay_{n}", "x") for n in range(30)} == {0, 1, 2}


def test_stream_shards_and_redis_cluster_are_read_and_checked() -> None:
    base = {"REDIS_URL": "redis://127.0.0.1:6379/0", "DATABASE_URL": "postgresql://u@h/db"}
    assert CommonSettings.from_env(base).streams == SINGLE_SHARD
    assert CommonSettings.from_env({**base, "STREAM_SHARDS": "3"}).streams == THREE
    assert not RedisSettings.from_env(base).cluster
    assert RedisSettings.from_env({**base, "REDIS_CLUSTER": "true"}).cluster
    for bad in ("0", "257", "three"):
        with pytest.raises(SettingsError, match="STREAM_SHARDS"):
            stream_layout_from_env({"STREAM_SHARDS": bad})
    with pytest.raises(SettingsError, match="REDIS_CLUSTER"):
        RedisSettings.from_env({"REDIS_URL": "unix:///tmp/redis.sock", "REDIS_CLUSTER": "true"})


async def test_the_relay_publishes_each_payments_events_to_one_shard_in_order(
    db_pool: asyncpg.Pool, redis: aioredis.Redis, clean_db: str
) -> None:
    lifecycle = (EventType.PAYMENT_CREATED, EventType.PAYMENT_PENDING, EventType.PAYMENT_SUCCESS)
    payments = [(f"mer_{n % 2}", f"pay_{n}") for n in range(12)]
    for step in lifecycle:  # one transaction per step, as the services commit them
        async with db_pool.acquire() as conn, conn.transaction():
            await enqueue(conn, STREAM, [payment_event(m, p, step) for m, p in payments])
    test_send = Event(type=EventType.WEBHOOK_TEST, merchant_id="mer_0", data={})
    async with db_pool.acquire() as conn, conn.transaction():
        await enqueue(conn, STREAM, [test_send])

    relay = OutboxRelay(db_pool, redis, OutboxSettings(), listen_dsn=clean_db, layout=THREE)
    assert await relay.publish_pending() == len(payments) * 3 + 1

    assert not await redis.exists(STREAM), "with shards, nothing goes to the unsharded name"
    found: dict[tuple[str, str], list[tuple[str, EventType, int]]] = defaultdict(list)
    unordered = []
    for key in THREE.keys(STREAM):
        for _entry_id, fields in await redis.xrange(key):
            event = Event.decode(fields[STREAM_FIELD])
            payment = ordering_key(event)
            if payment is None:
                unordered.append((key, event.id))
                continue
            found[(event.merchant_id, payment)].append((key, event.type, int(fields[SEQUENCE_FIELD])))
    assert unordered == [(THREE.key_for(STREAM, "mer_0", None, test_send.id), test_send.id)]
    assert set(found) == set(payments)
    for (merchant_id, payment_id), entries in found.items():
        shards = {key for key, _, _ in entries}
        assert shards == {THREE.key_for(STREAM, merchant_id, payment_id, "")}, (payment_id, entries)
        assert [(event_type, seq) for _, event_type, seq in entries] == [
            (step, n) for n, step in enumerate(lifecycle, start=1)
        ]
    used = {entries[0][0] for entries in found.values()}
    assert len(used) == 3, f"twelve payments over three shards used only {used}"


async def test_one_consumer_reads_every_shard_and_dead_letters_to_the_entrys_own_shard(
    redis: aioredis.Redis,
) -> None:
    handled: list[tuple[str, str]] = []

    async def handle(event: Event, ctx: MessageContext) -> None:
        if event.data.get("poison"):
            raise PermanentError("refused on purpose")
        handled.append((ctx.stream, event.id))

    events: dict[str, Event] = {}
    for key in THREE.keys(STREAM):
        event = Event(type=EventType.PAYMENT_CREATED, merchant_id="mer_1", data={"key": key})
        await redis.xadd(key, {STREAM_FIELD: event.encode()})
        events[key] = event
    poison_key = THREE.keys(STREAM)[1]
    await redis.xadd(
        poison_key,
        {
            STREAM_FIELD: Event(
                type=EventType.PAYMENT_CREATED, merchant_id="mer_1", data={"poison": 1}
            ).encode()
        },
    )
    config = ConsumerConfig(
        group="test-group",
        streams=THREE.keys(STREAM),
        block_ms=100,
        handler_timeout_s=2,
        reclaim_idle_ms=3000,
    )
    consumer = StreamConsumer(redis, config, handle)
    stop = asyncio.Event()
    task = asyncio.create_task(consumer.run(stop))
    try:
        await eventually(lambda: len(handled) == 3, message="an event of every shard handled")
        await eventually(
            lambda: _length(redis, dead_letter_stream(poison_key)), message="a dead letter on its shard"
        )
    finally:
        stop.set()
        await asyncio.wait_for(task, 10)
    assert sorted(handled) == sorted((key, event.id) for key, event in events.items())
    for key in THREE.keys(STREAM):
        summary: Any = await redis.xpending(key, "test-group")
        assert summary["pending"] == 0, (key, summary)
        if key != poison_key:
            assert await redis.xlen(dead_letter_stream(key)) == 0
    [(_, letter)] = await redis.xrange(dead_letter_stream(poison_key))
    assert letter[b"source_stream"] == poison_key.encode()


async def _length(redis: aioredis.Redis, key: str) -> int:
    return int(await redis.xlen(key))


async def test_a_relay_that_waits_for_a_replica_publishes_nothing_where_there_is_none(
    db_pool: asyncpg.Pool, redis: aioredis.Redis, clean_db: str
) -> None:
    async with db_pool.acquire() as conn, conn.transaction():
        await enqueue(conn, STREAM, [payment_event("mer_1", "pay_1", EventType.PAYMENT_CREATED)])
    relay = OutboxRelay(db_pool, redis, OutboxSettings(wait_replicas=1), listen_dsn=clean_db, layout=THREE)
    with pytest.raises(ReplicasBehind):
        await relay.publish_pending()
    # The row stays queued (the mark rolled back): the relay publishes it again once a replica holds it.
    assert await db_pool.fetchval("SELECT count(*) FROM outbox_pending") == 1


async def test_the_bus_figures_of_a_sharded_stream_sum_over_its_shards(redis: aioredis.Redis) -> None:
    keys = THREE.keys(STREAM)
    for n, key in enumerate(keys):
        for _ in range(n + 1):  # 1, 2 and 3 entries
            await redis.xadd(
                key, {STREAM_FIELD: payment_event("mer_1", f"pay_{n}", EventType.PAYMENT_CREATED).encode()}
            )
        await redis.xgroup_create(key, "test-group", id="0")
    await redis.xreadgroup("test-group", "reader", {keys[2]: ">"}, count=2)  # 2 pending, 1 left unread there
    await redis.xadd(dead_letter_stream(keys[1]), {"error": "x"})

    snapshot = await bus_snapshot(redis, bus_streams(THREE))
    assert [info.stream for info in snapshot.streams] == list(keys)
    summed = summed_over_shards(snapshot)
    [stream] = summed.streams
    assert (stream.stream, stream.length) == (STREAM, 6)
    [group] = summed.groups
    assert (group.stream, group.group, group.pending, group.lag) == (STREAM, "test-group", 2, 4)
    assert summed.dead_letters == {STREAM: 1}
    [members] = summed.members
    assert [(member.name, member.pending) for member in members] == [("reader", 2)]
