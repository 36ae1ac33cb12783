"""Signed events the database cannot store (a NUL character, a number past `bigint`) end `rejected`,
through the processor's real consumers on a real Redis and PostgreSQL: acknowledged, never retried
into the dead-letter stream, alone, inside a batch of good events, and on the priority stream; a
replay of a rejected event changes nothing. And no odd value in a field a handler reads makes it
crash instead of processing or rejecting the event.
"""

from __future__ import annotations

import copy
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import orjson
import pytest
import redis.asyncio as aioredis
from provider_testkit import MERCHANT, event_status, store_event

from payment_processor import provider_events
from paystream.consumer import ConsumerConfig, StreamConsumer
from paystream.events import STREAM_FIELD, ConsumerGroup, Event, EventType, Stream, dead_letter_stream
from paystream_devstack.testing import provider_payloads as payloads

STREAMS = (Stream.PROVIDER_EVENTS, Stream.PROVIDER_EVENTS_PRIORITY)
# In the event's payload: the reason must say what was refused, never repeat what was sent.
MARKER = "do-not-echo"


@pytest.fixture
async def consumer(pool: asyncpg.Pool, redis: aioredis.Redis) -> AsyncIterator[StreamConsumer]:
    """The processor's provider-event handler (group commit running) behind the real consumer
    runtime, retrying quickly, so that a failing event reaches the DLQ within the test."""
    handler = provider_events.ProviderEventHandler()
    handler.start(pool)
    config = ConsumerConfig(
        group=ConsumerGroup.PAYMENT_PROCESSOR,
        streams=STREAMS,
        retry_base_s=0.01,
        retry_cap_s=0.02,
        block_ms=10,
    )
    try:
        yield StreamConsumer(redis, config, handler.registry)
    finally:
        await handler.stop()


def capture(payment_id: str, **entity: Any) -> dict[str, Any]:
    document = payloads.razorpay("payment.captured")
    document["payload"]["payment"]["entity"].update(id=payment_id, **entity)
    return document


async def queue(
    pool: asyncpg.Pool,
    redis: aioredis.Redis,
    body: str,
    event_id: str,
    *,
    provider: str = "razorpay",
    stream: Stream = Stream.PROVIDER_EVENTS,
) -> Event:
    """What the API commits for a verified webhook (the row, its payload as sent) and what its
    relay publishes (the envelope on the stream)."""
    event_type = orjson.loads(body).get("event", "payment") if provider == "razorpay" else "payment"
    envelope = await store_event(
        pool,
        provider=provider,
        event_id=event_id,
        event_type=event_type,
        payload=body,
        provider_account_id="pacc_test",
    )
    await redis.xadd(stream, {STREAM_FIELD: envelope.encode()})
    return envelope


def with_nul(document: dict[str, Any]) -> str:
    """The JSON text of `document` with a NUL (`\\u0000`) in the payment's description, as a
    provider would send it (valid JSON, but neither `text` nor `jsonb` can hold it)."""
    document["payload"]["payment"]["entity"]["description"] = f"{MARKER}\x00{MARKER}"
    body = orjson.dumps(document).decode()
    assert "\\u0000" in body
    return body


async def assert_all_acknowledged_and_none_dead_lettered(redis: aioredis.Redis) -> None:
    for stream in STREAMS:
        assert await redis.xlen(dead_letter_stream(stream)) == 0, stream
        pending = await redis.xpending(stream, ConsumerGroup.PAYMENT_PROCESSOR)
        assert pending["pending"] == 0, stream


async def assert_rejected_and_kept_nothing(pool: asyncpg.Pool, event_id: str, says: str) -> None:
    status, reason = await event_status(pool, event_id)
    assert status == "rejected", (event_id, reason)
    assert reason is not None and says in reason, reason
    assert MARKER not in reason
    audit = await pool.fetch(
        "SELECT outcome, changes, emitted FROM provider_event_audit WHERE event_id = $1", event_id
    )
    assert [(row["outcome"], row["changes"], row["emitted"]) for row in audit] == [("rejected", [], [])]


BIG = "10000000000000000000000000"  # 10^25


@pytest.mark.parametrize(
    ("provider", "body", "says"),
    [
        ("razorpay", with_nul(capture("pay_nul")), "NUL"),
        # 10^25 arrives as a float from the JSON parser; 2^63 as an integer just past `bigint`.
        ("razorpay", orjson.dumps(capture("pay_huge")).decode().replace("50000", BIG, 1), "out of range"),
        ("razorpay", orjson.dumps(capture("pay_2_63", amount=2**63)).decode(), "out of range"),
        ("payable", orjson.dumps(payloads.payable("success", payableAmount=BIG)).decode(), "out of range"),
        (
            "payable",
            orjson.dumps(payloads.payable("success", cardHolderName=f"{MARKER}\x00")).decode(),
            "NUL",
        ),
    ],
    ids=["razorpay-nul", "razorpay-10^25", "razorpay-2^63", "payable-10^25", "payable-nul"],
)
async def test_an_unstorable_event_alone_ends_rejected_and_is_not_dead_lettered(
    pool: asyncpg.Pool,
    redis: aioredis.Redis,
    consumer: StreamConsumer,
    provider: str,
    body: str,
    says: str,
) -> None:
    envelope = await queue(pool, redis, body, "evt_unstorable", provider=provider)
    assert await consumer.run_once() == 1
    await assert_rejected_and_kept_nothing(pool, "evt_unstorable", says)
    await assert_all_acknowledged_and_none_dead_lettered(redis)
    for table in ("provider_payments", "invoice_owners", "saved_card_tokens", "outbox"):
        assert await pool.fetchval(f"SELECT count(*) FROM {table}") == 0, table
    # Replayed (a new envelope naming the same row, as `payctl replay` would): nothing changes.
    replay = Event(type=EventType.PROVIDER_EVENT_RECEIVED, merchant_id=MERCHANT, data=dict(envelope.data))
    await redis.xadd(Stream.PROVIDER_EVENTS, {STREAM_FIELD: replay.encode()})
    assert await consumer.run_once() == 1
    await assert_rejected_and_kept_nothing(pool, "evt_unstorable", says)
    await assert_all_acknowledged_and_none_dead_lettered(redis)


async def test_unstorable_events_in_a_batch_are_rejected_and_the_good_ones_processed(
    pool: asyncpg.Pool, redis: aioredis.Redis, consumer: StreamConsumer
) -> None:
    huge = orjson.dumps(capture("pay_huge")).decode().replace("50000", BIG, 1)
    bodies = {
        "evt_good_1": orjson.dumps(capture("pay_good_1")).decode(),
        "evt_nul": with_nul(capture("pay_nul")),
        "evt_good_2": orjson.dumps(capture("pay_good_2")).decode(),
        "evt_huge": huge,
        "evt_2_63": orjson.dumps(capture("pay_2_63", amount=2**63)).decode(),
        "evt_good_3": orjson.dumps(capture("pay_good_3")).decode(),
    }
    for event_id, body in bodies.items():
        await queue(pool, redis, body, event_id)
    assert await consumer.run_once() == len(bodies)
    for event_id in ("evt_good_1", "evt_good_2", "evt_good_3"):
        assert await event_status(pool, event_id) == ("processed", None)
    await assert_rejected_and_kept_nothing(pool, "evt_nul", "NUL")
    await assert_rejected_and_kept_nothing(pool, "evt_huge", "out of range")
    await assert_rejected_and_kept_nothing(pool, "evt_2_63", "out of range")
    await assert_all_acknowledged_and_none_dead_lettered(redis)
    payments = await pool.fetch("SELECT payment_id FROM provider_payments ORDER BY payment_id")
    assert [row["payment_id"] for row in payments] == ["pay_good_1", "pay_good_2", "pay_good_3"]
    events = await pool.fetch("SELECT payload FROM outbox WHERE stream = 'payment:events'")
    assert len(events) == 3


async def test_an_unstorable_priority_event_ends_rejected(
    pool: asyncpg.Pool, redis: aioredis.Redis, consumer: StreamConsumer
) -> None:
    document = payloads.razorpay("payment.dispute.created")
    document["payload"]["dispute"]["entity"]["reason_description"] = f"{MARKER}\x00"
    await queue(
        pool,
        redis,
        orjson.dumps(document).decode(),
        "evt_dispute_nul",
        stream=Stream.PROVIDER_EVENTS_PRIORITY,
    )
    good = payloads.razorpay("payment.dispute.won")
    await queue(
        pool, redis, orjson.dumps(good).decode(), "evt_dispute_ok", stream=Stream.PROVIDER_EVENTS_PRIORITY
    )
    assert await consumer.run_once() == 2
    await assert_rejected_and_kept_nothing(pool, "evt_dispute_nul", "NUL")
    assert await event_status(pool, "evt_dispute_ok") == ("processed", None)
    await assert_all_acknowledged_and_none_dead_lettered(redis)


# Values a field may hold that no handler expects there.
ODD_VALUES: dict[str, Any] = {
    "list": [1, 2],  # not a string, and unhashable
    "nul": f"{MARKER}\x00",
    "past_bigint": 2**63,
    "huge": 1e25,  # a JSON integer too large for 64 bits, as the parser returns it
    "long": "x" * 3000,  # past what PostgreSQL can index
}
# One event type per handler.
HANDLED_TYPES = [
    "payment.captured",
    "payment.dispute.won",
    "payment.downtime.started",
    "order.paid",
    "order.notification.delivered",
    "invoice.paid",
    "payment_link.paid",
    "fund_account.validation.completed",
    "refund.speed_changed",
    "account.instantly_activated",
]


def _field_paths(document: dict[str, Any], provider: str) -> list[tuple[str, ...]]:
    if provider == "payable":
        return [(key,) for key in document] + [("token", key) for key in document.get("token", {})]
    paths: list[tuple[str, ...]] = [("created_at",), ("account_id",), ("payload",)]
    for name, wrapper in document["payload"].items():
        for key in wrapper["entity"]:
            # The payment other events carry is read as in `payment.captured`, but for these.
            if name == "payment" and document["event"] != "payment.captured" and key not in EMBEDDED:
                continue
            paths.append(("payload", name, "entity", key))
    return paths


EMBEDDED = {"id", "status", "amount"}


def _odd_documents() -> list[tuple[str, str, dict[str, Any]]]:
    cases = []
    documents = [("razorpay", event_type, payloads.razorpay(event_type)) for event_type in HANDLED_TYPES]
    documents.append(("payable", "tokenization", payloads.payable("tokenization")))
    for provider, name, document in documents:
        for path in _field_paths(document, provider):
            for value_name, value in ODD_VALUES.items():
                changed = copy.deepcopy(document)
                parent = changed
                for key in path[:-1]:
                    parent = parent[key]
                parent[path[-1]] = value
                cases.append((provider, f"{name}:{'.'.join(path)}={value_name}", changed))
    return cases


@pytest.mark.slow
async def test_no_odd_field_value_crashes_a_handler(pool: asyncpg.Pool) -> None:
    """Every field a payload carries, given each odd value in turn: the event ends `processed` or
    `rejected` in its own transaction; nothing raises (a raise would be retried into the DLQ)."""
    cases = _odd_documents()
    rows = []
    for n, (provider, _case, document) in enumerate(cases):
        event_type = document.get("event", "payment") if provider == "razorpay" else "payment"
        rows.append((provider, f"evt_odd_{n:05d}", event_type, MERCHANT, orjson.dumps(document).decode()))
    await pool.executemany(
        "INSERT INTO provider_events (provider, event_id, type, merchant_id, payload) VALUES ($1, $2, $3, $4, $5)",
        rows,
    )
    crashed = []
    for (provider, case, _document), (_provider, event_id, *_rest) in zip(cases, rows, strict=True):
        envelope = Event(type=EventType.PROVIDER_EVENT_RECEIVED, merchant_id=MERCHANT, data={})
        try:
            await provider_events.process(pool, envelope, provider, event_id)
        except Exception as exc:
            crashed.append(f"{case}: {type(exc).__name__}")
    assert crashed == []
    outcomes = await pool.fetch("SELECT status, count(*) FROM provider_events GROUP BY status")
    assert set(dict(outcomes)) <= {"processed", "rejected"}
    assert sum(count for _status, count in outcomes) == len(cases)
    echoed = await pool.fetchval("SELECT count(*) FROM provider_events WHERE reason LIKE $1", f"%{MARKER}%")
    assert echoed == 0
