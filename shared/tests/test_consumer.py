"""The stream consumer runtime against a real Redis and PostgreSQL."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import pytest
import redis.asyncio as aioredis

from paystream.consumer import ConsumerConfig, HandlerRegistry, MessageContext, StreamConsumer
from paystream.errors import PermanentError
from paystream.events import SEQUENCE_FIELD, STREAM_FIELD, Event, EventType, dead_letter_stream
from paystream.redis import create_redis
from paystream.settings import RedisSettings
from paystream_devstack.embedded import EmbeddedRedis
from paystream_devstack.testing import eventually

STREAM = "test:events"
GROUP = "test-group"


def make_event(**data: Any) -> Event:
    return Event(type=EventType.PAYMENT_CREATED, merchant_id="mer_1", data=data)


async def publish(redis: aioredis.Redis, event: Event, stream: str = STREAM) -> str:
    entry_id = await redis.xadd(stream, {STREAM_FIELD: event.encode()})
    return entry_id.decode()


def config(**overrides: Any) -> ConsumerConfig:
    defaults: dict[str, Any] = {
        "group": GROUP,
        "streams": (STREAM,),
        "block_ms": 100,
        "handler_timeout_s": 2.0,
        "reclaim_idle_ms": 3000,
        "reclaim_interval_s": 0.1,
        "retry_base_s": 0.01,
        "retry_cap_s": 0.05,
        "max_deliveries": 3,
    }
    return ConsumerConfig(**{**defaults, **overrides})


@pytest.fixture
async def running() -> AsyncIterator[list[tuple[asyncio.Event, asyncio.Task[None]]]]:
    started: list[tuple[asyncio.Event, asyncio.Task[None]]] = []
    yield started
    for stop, _task in started:
        stop.set()
    for _, task in started:
        await asyncio.wait_for(task, 10)


def start(consumer: StreamConsumer, running: list[tuple[asyncio.Event, asyncio.Task[None]]]) -> asyncio.Event:
    stop = asyncio.Event()
    running.append((stop, asyncio.create_task(consumer.run(stop))))
    return stop


async def pending_count(redis: aioredis.Redis, stream: str = STREAM) -> int:
    summary = await redis.xpending(stream, GROUP)
    return int(summary["pending"])


async def test_acks_only_after_the_handler_returns(redis: aioredis.Redis, running: list[Any]) -> None:
    release = asyncio.Event()
    entered = asyncio.Event()
    effects: list[str] = []

    async def handler(event: Event, ctx: MessageContext) -> None:
        entered.set()
        await release.wait()
        effects.append(event.id)

    start(StreamConsumer(redis, config(), handler), running)
    event = make_event()
    await eventually(lambda: redis.exists(STREAM), message="group created")
    await publish(redis, event)
    await asyncio.wait_for(entered.wait(), 5)
    assert await pending_count(redis) == 1, "entry must stay pending while its handler runs"
    release.set()
    await eventually(lambda: effects == [event.id])
    await eventually(lambda: _is_zero(pending_count(redis)), message="entry acknowledged")


async def _is_zero(value: Any) -> bool:
    return await value == 0


async def test_failing_handler_is_retried_then_dead_lettered_with_its_reason(
    redis: aioredis.Redis, running: list[Any]
) -> None:
    calls: list[int] = []

    async def handler(event: Event, ctx: MessageContext) -> None:
        calls.append(ctx.delivery_count)
        raise RuntimeError("merchant ledger unavailable")

    start(StreamConsumer(redis, config(max_deliveries=3), handler), running)
    await eventually(lambda: redis.exists(STREAM))
    event = make_event()
    entry_id = await publish(redis, event)
    dlq = dead_letter_stream(STREAM)
    entries = await eventually(lambda: redis.xrange(dlq), message="dead letter written")
    assert calls == [1, 2, 3]
    _, fields = entries[0]
    assert fields[b"error"] == b"RuntimeError: merchant ledger unavailable"
    assert fields[b"deliveries"] == b"3"
    assert fields[b"source_id"].decode() == entry_id
    assert fields[b"group"].decode() == GROUP
    assert Event.decode(fields[STREAM_FIELD]).id == event.id
    await eventually(lambda: _is_zero(pending_count(redis)), message="dead-lettered entry acknowledged")


async def test_a_store_outage_is_retried_for_as_long_as_it_lasts_and_never_dead_lettered(
    redis: aioredis.Redis, running: list[Any]
) -> None:
    deliveries: list[int] = []

    async def handler(event: Event, ctx: MessageContext) -> None:
        deliveries.append(ctx.delivery_count)
        if len(deliveries) <= 6:  # PostgreSQL restarting: longer than max_deliveries retries
            raise ConnectionRefusedError(111, "Connection refused")

    start(StreamConsumer(redis, config(max_deliveries=3), handler), running)
    await eventually(lambda: redis.exists(STREAM))
    await publish(redis, make_event())
    await eventually(lambda: len(deliveries) == 7, message="handled once the store is back")
    assert deliveries == [1] * 7, "outage retries are not counted as deliveries"
    await eventually(lambda: _is_zero(pending_count(redis)), message="entry acknowledged")
    assert await redis.xlen(dead_letter_stream(STREAM)) == 0


async def test_permanent_error_and_malformed_entries_are_dead_lettered_at_once(
    redis: aioredis.Redis, running: list[Any]
) -> None:
    calls: list[str] = []

    async def handler(event: Event, ctx: MessageContext) -> None:
        calls.append(event.id)
        raise PermanentError("amount does not match the order")

    start(StreamConsumer(redis, config(max_deliveries=5), handler), running)
    await eventually(lambda: redis.exists(STREAM))
    await publish(redis, make_event())
    await redis.xadd(STREAM, {STREAM_FIELD: b"{not json"})
    entries = await eventually(
        lambda: _at_least(redis.xrange(dead_letter_stream(STREAM)), 2), message="two dead letters"
    )
    assert len(calls) == 1
    errors = sorted(fields[b"error"].decode() for _, fields in entries)
    assert errors[0].startswith("PermanentError: amount does not match")
    assert errors[1].startswith("malformed event envelope")


async def _at_least(entries: Any, n: int) -> Any:
    found = await entries
    return found if len(found) >= n else None


async def test_registry_skips_unhandled_types_and_acks_them(redis: aioredis.Redis) -> None:
    registry = HandlerRegistry()
    seen: list[EventType] = []

    @registry.register(EventType.PAYMENT_SUCCESS)
    async def on_success(event: Event, ctx: MessageContext) -> None:
        seen.append(event.type)

    consumer = StreamConsumer(redis, config(), registry)
    await consumer.ensure_groups()
    await publish(redis, Event(type=EventType.PAYMENT_SUCCESS, merchant_id="m", data={}))
    await publish(redis, Event(type=EventType.REFUND_CREATED, merchant_id="m", data={}))
    assert await consumer.run_once() == 2
    assert seen == [EventType.PAYMENT_SUCCESS]
    assert await pending_count(redis) == 0


async def test_ordering_key_serialises_one_payment_but_not_others(redis: aioredis.Redis) -> None:
    order: list[str] = []
    active: dict[str, int] = {}
    overlap: list[str] = []

    async def handler(event: Event, ctx: MessageContext) -> None:
        key = str(event.data["payment"])
        active[key] = active.get(key, 0) + 1
        if active[key] > 1:
            overlap.append(key)
        await asyncio.sleep(0.01 if event.data["step"] == 0 else 0)
        order.append(f"{key}:{event.data['step']}")
        active[key] -= 1

    consumer = StreamConsumer(redis, config(ordering_key=lambda event: str(event.data["payment"])), handler)
    await consumer.ensure_groups()
    for step in range(3):
        for payment in ("a", "b"):
            await publish(redis, make_event(payment=payment, step=step))
    await consumer.run_once()
    assert overlap == []
    assert [item for item in order if item.startswith("a")] == ["a:0", "a:1", "a:2"]
    assert [item for item in order if item.startswith("b")] == ["b:0", "b:1", "b:2"]


async def test_the_entrys_sequence_number_reaches_the_handler_and_its_dead_letter(
    redis: aioredis.Redis,
) -> None:
    seen: dict[str, int | None] = {}

    async def handler(event: Event, ctx: MessageContext) -> None:
        seen[event.data["label"]] = ctx.sequence
        if event.data["label"] == "poison":
            raise PermanentError("refused")

    consumer = StreamConsumer(redis, config(), handler)
    await consumer.ensure_groups()
    labelled = {
        "numbered": b"7",
        "largest": str(2**63 - 1).encode(),
        "poison": b"12",
        # Malformed numbers are ignored, not trusted and not fatal: the event is still handled.
        "superscript": "\u00b9\u00b2".encode(),
        "negative": b"-3",
        "zero": b"0",
        "huge": b"9" * 30,
        "not utf-8": b"\xff\xfe",
        "nul": b"1\x00",
        "spaced": b" 5",
        "none": None,
    }
    for label, raw in labelled.items():
        fields = {STREAM_FIELD: make_event(label=label).encode()}
        if raw is not None:
            fields[SEQUENCE_FIELD] = raw
        await redis.xadd(STREAM, fields)  # type: ignore[arg-type]
    assert await consumer.run_once() == len(labelled) - 1  # the poison one was dead-lettered

    assert seen == {
        "numbered": 7,
        "largest": 2**63 - 1,
        "poison": 12,
        **{label: None for label in list(labelled)[3:]},
    }
    [(_, letter)] = await redis.xrange(dead_letter_stream(STREAM))
    assert letter[SEQUENCE_FIELD] == b"12"  # a replay of the dead letter keeps its place in the order


async def test_consumer_recovers_from_flushall_without_a_manual_step(
    redis: aioredis.Redis, running: list[Any]
) -> None:
    handled: list[str] = []

    async def handler(event: Event, ctx: MessageContext) -> None:
        handled.append(event.id)

    start(StreamConsumer(redis, config(), handler), running)
    await eventually(lambda: redis.exists(STREAM))
    first = make_event()
    await publish(redis, first)
    await eventually(lambda: first.id in handled)
    await redis.flushdb()  # the data of this test's database, as FLUSHALL would lose it
    second = make_event()

    async def republish_until_handled() -> bool:
        # After FLUSHALL the stream is gone; the consumer recreates its group on NOGROUP.
        if second.id not in handled and not await redis.exists(STREAM):
            return False
        if second.id not in handled and await redis.xlen(STREAM) == 0:
            await publish(redis, second)
        return second.id in handled

    await eventually(republish_until_handled, timeout=15, message="handled after FLUSHALL")


async def test_consumer_recovers_from_a_redis_restart(
    redis_server: EmbeddedRedis, running: list[Any]
) -> None:
    # The private server this test restarts (the suite may run on another one: TEST_REDIS_URL).
    client = create_redis(RedisSettings(url=redis_server.url))
    try:
        await client.flushall()
        handled: list[str] = []

        async def handler(event: Event, ctx: MessageContext) -> None:
            handled.append(event.id)

        start(StreamConsumer(client, config(), handler), running)
        await eventually(lambda: client.exists(STREAM))
        before = make_event()
        await publish(client, before)
        await eventually(lambda: before.id in handled)
        await asyncio.to_thread(redis_server.restart)
        after = make_event()
        await publish(client, after)
        await eventually(lambda: after.id in handled, timeout=20, message="handled after Redis restart")
        running[-1][0].set()
        await asyncio.wait_for(running[-1][1], 10)
    finally:
        await client.aclose()


async def test_inbox_gives_one_effect_per_event_under_redelivery(
    redis: aioredis.Redis, db_pool: asyncpg.Pool, clean_db: str
) -> None:
    from paystream.inbox import claim_event

    effects: list[str] = []

    async def handler(event: Event, ctx: MessageContext) -> None:
        async with db_pool.acquire() as conn, conn.transaction():
            if await claim_event(conn, GROUP, event.id):
                effects.append(event.id)

    consumer = StreamConsumer(redis, config(), handler)
    await consumer.ensure_groups()
    event = make_event()
    await publish(redis, event)
    await publish(redis, event)  # the same event twice, as a relay re-publishing after a crash would
    assert await consumer.run_once() == 2
    assert effects == [event.id]


async def test_a_dead_letter_no_replica_holds_leaves_its_entry_pending_until_one_is_written_safely(
    redis: aioredis.Redis,
) -> None:
    """With `dead_letter_replicas`, the entry is acknowledged only once WAIT says a replica holds its
    dead letter: this Redis has none, so the letter is written but the entry stays pending, and a
    consumer that asks for no replica takes it over and settles it."""

    async def refuse(event: Event, ctx: MessageContext) -> None:
        raise PermanentError("refused")

    quick = {"handler_timeout_s": 0.05, "reclaim_idle_ms": 100}
    waiting = StreamConsumer(redis, config(dead_letter_replicas=1, **quick), refuse)
    await waiting.ensure_groups()
    await publish(redis, make_event())
    await waiting.run_once()
    dlq = dead_letter_stream(STREAM)
    assert await redis.xlen(dlq) == 1  # on the master, but no replica confirmed it
    assert await pending_count(redis) == 1

    settling = StreamConsumer(redis, config(**quick), refuse)
    await eventually(lambda: _is_zero(_settled(settling, redis)), message="reclaimed and dead-lettered")
    letters = await redis.xrange(dlq)
    assert len(letters) == 2  # the unconfirmed copy stays: replaying both is absorbed by event id
    assert {fields[b"source_id"] for _, fields in letters} == {letters[0][1][b"source_id"]}


async def _settled(consumer: StreamConsumer, redis: aioredis.Redis) -> int:
    await consumer.run_once()
    return await pending_count(redis)
