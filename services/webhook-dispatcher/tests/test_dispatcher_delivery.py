"""End to end in one process: events on `payment:events` -> signed deliveries to a real receiver."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

import asyncpg
import orjson
import redis.asyncio as aioredis
from aiohttp import web
from dispatcher_testkit import (
    MakeMerchant,
    MakeReceiver,
    ReceivedRequest,
    StartDispatcher,
    all_final,
    attempted,
    deliveries,
    delivery,
    numbered,
    payment_created,
    payment_event,
    payment_lifecycle,
    publish,
)

from paystream import outbox
from paystream.events import Event, EventType, Stream
from paystream_devstack.testing import eventually


async def test_event_is_delivered_signed_with_exact_body(
    make_receiver: MakeReceiver,
    make_merchant: MakeMerchant,
    start_dispatcher: StartDispatcher,
    redis: aioredis.Redis,
    db_pool: asyncpg.Pool,
) -> None:
    receiver = await make_receiver(["whsec_test_abc123"])
    merchant = await make_merchant(receiver.url)
    await start_dispatcher()
    event = payment_event(EventType.PAYMENT_SUCCESS, merchant.id, "pay_AAAABBBBCCCCDDDD", "success")

    await publish(redis, event)

    [received] = await eventually(lambda: receiver.requests, timeout=10, message="no delivery")
    assert orjson.loads(received.body) == {
        "event": "payment.success",
        "timestamp": int(event.occurred_at.timestamp()),
        "data": {"payment": dict(event.data["payment"])},
    }
    assert received.headers["Content-Type"] == "application/json"
    assert received.legacy_valid_for == ["whsec_test_abc123"]
    assert received.standard_valid_for == ["whsec_test_abc123"]
    assert received.webhook_id.startswith("msg_")
    assert abs(int(received.headers["webhook-timestamp"]) - time.time()) < 10
    assert len(received.headers["webhook-signature"].split(" ")) == 1

    async def logged_success() -> asyncpg.Record | None:
        rows = await deliveries(db_pool, merchant.id)
        return rows[0] if rows and rows[0]["status"] == "success" else None

    row = await eventually(logged_success, timeout=5)
    assert row["id"] == received.webhook_id
    assert bytes(row["payload"]) == received.body
    assert row["attempts"] == 1
    assert row["response_code"] == 200
    assert row["response_body"] == "ok"
    assert row["next_retry_at"] is None
    assert row["duration_ms"] is not None and row["error"] is None


async def test_redelivered_event_is_sent_once(
    make_receiver: MakeReceiver,
    make_merchant: MakeMerchant,
    start_dispatcher: StartDispatcher,
    redis: aioredis.Redis,
    db_pool: asyncpg.Pool,
) -> None:
    receiver = await make_receiver([])
    merchant = await make_merchant(receiver.url)
    await start_dispatcher()
    event = payment_created(merchant.id, "pay_REDELIVERED00001")
    marker = payment_created(merchant.id, "pay_MARKER0000000001")

    await publish(redis, event, event, event)
    await publish(redis, marker)

    await eventually(lambda: len(receiver.requests) >= 2, timeout=10)
    await eventually(lambda: all_final(db_pool, merchant.id), timeout=5)
    assert len(await deliveries(db_pool, merchant.id)) == 2
    assert sorted(r.json()["data"]["payment"]["id"] for r in receiver.requests) == [
        "pay_MARKER0000000001",
        "pay_REDELIVERED00001",
    ]


async def test_only_subscribed_events_are_delivered(
    make_receiver: MakeReceiver,
    make_merchant: MakeMerchant,
    start_dispatcher: StartDispatcher,
    redis: aioredis.Redis,
    db_pool: asyncpg.Pool,
) -> None:
    receiver = await make_receiver([])
    merchant = await make_merchant(receiver.url, events=["payment.success", "refund.processed"])
    await start_dispatcher()

    # Numbered: `success` goes although the events before it have no delivery (they count as taken in).
    await publish(redis, *numbered(*payment_lifecycle(merchant.id, "pay_SUBSCRIBED000001")))

    await eventually(lambda: receiver.requests, timeout=10)
    await eventually(lambda: all_final(db_pool, merchant.id), timeout=5)
    assert [r.event for r in receiver.requests] == ["payment.success"]
    assert len(await deliveries(db_pool, merchant.id)) == 1


async def test_disabled_endpoint_gets_nothing(
    make_receiver: MakeReceiver,
    make_merchant: MakeMerchant,
    start_dispatcher: StartDispatcher,
    redis: aioredis.Redis,
    db_pool: asyncpg.Pool,
) -> None:
    receiver = await make_receiver([])
    disabled = await make_merchant(receiver.url, enabled=False)
    enabled = await make_merchant(receiver.url)
    await start_dispatcher()

    await publish(redis, payment_created(disabled.id, "pay_DISABLED00000001"))
    await publish(redis, payment_created(enabled.id, "pay_ENABLED000000001"))

    await eventually(lambda: receiver.requests, timeout=10)
    assert [r.json()["data"]["payment"]["id"] for r in receiver.requests] == ["pay_ENABLED000000001"]
    assert await deliveries(db_pool, disabled.id) == []


async def test_events_from_the_outbox_are_delivered(
    make_receiver: MakeReceiver,
    make_merchant: MakeMerchant,
    start_dispatcher: StartDispatcher,
    db_pool: asyncpg.Pool,
) -> None:
    """The producer side of the contract: events enqueued with their state change reach merchants."""
    receiver = await make_receiver(["whsec_test_abc123"])
    merchant = await make_merchant(receiver.url)
    await start_dispatcher()  # its outbox relay publishes what commits below
    refund = {
        "id": "rfnd_AAAABBBBCCCCDDDD",
        "payment_id": "pay_AAAABBBBCCCCDDDD",
        "amount": 100,
        "status": "processed",
    }

    async with db_pool.acquire() as conn, conn.transaction():
        await outbox.enqueue(
            conn,
            Stream.PAYMENT_EVENTS,
            [Event(type=EventType.REFUND_PROCESSED, merchant_id=merchant.id, data={"refund": refund})],
        )

    [received] = await eventually(lambda: receiver.requests, timeout=10)
    assert received.json()["event"] == "refund.processed"
    assert received.json()["data"] == {"refund": refund}
    assert received.standard_valid_for == ["whsec_test_abc123"]


async def test_failure_then_success_keeps_webhook_id_and_body(
    make_receiver: MakeReceiver,
    make_merchant: MakeMerchant,
    start_dispatcher: StartDispatcher,
    redis: aioredis.Redis,
    db_pool: asyncpg.Pool,
) -> None:
    async def fail_first(_request: ReceivedRequest, count: int) -> web.StreamResponse:
        return web.Response(status=500, text="boom") if count == 1 else web.Response(status=204)

    receiver = await make_receiver(["whsec_test_abc123"], fail_first)
    merchant = await make_merchant(receiver.url)
    await start_dispatcher()

    await publish(
        redis, payment_event(EventType.PAYMENT_FAILED, merchant.id, "pay_RETRIED000000001", "failed")
    )

    row = await eventually(lambda: attempted(db_pool, merchant.id), timeout=10)
    assert row["status"] == "pending"
    assert row["response_code"] == 500
    assert row["response_body"] == "boom"
    assert row["error"] == "HTTP 500"
    assert abs((row["next_retry_at"] - row["last_attempt_at"]).total_seconds() - 5) < 1

    await eventually(lambda: len(receiver.requests) == 2, timeout=10)
    first, second = receiver.requests
    assert first.webhook_id == second.webhook_id
    assert first.body == second.body
    assert second.received_at - first.received_at >= 4.5
    assert second.standard_valid_for == ["whsec_test_abc123"]
    final = await eventually(lambda: _final(db_pool, row["id"]), timeout=5)
    assert final["status"] == "success"
    assert final["attempts"] == 2
    assert final["response_code"] == 204
    assert final["next_retry_at"] is None
    assert final["created_at"] < datetime.now(UTC) + timedelta(seconds=1)


async def _final(pool: asyncpg.Pool, delivery_id: str) -> asyncpg.Record | None:
    row = await delivery(pool, delivery_id)
    return row if row["status"] != "pending" else None
