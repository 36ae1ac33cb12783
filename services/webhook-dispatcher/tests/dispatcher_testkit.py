"""Helpers for the dispatcher's tests: the merchant receiver (`paystream_devstack.testing.receiver`),
merchants' events, and delivery-log reads."""

from __future__ import annotations

from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import asyncpg
import redis.asyncio as aioredis
from aiohttp import web

from paystream.events import ConsumerGroup, Event, EventType, Stream, entry_fields
from paystream.ordering import ordering_key
from paystream_devstack.testing.receiver import (
    Behaviour,
    ReceivedRequest,
    Receiver,
    always_ok,
)

# The merchant's receiver is the one every suite uses; re-exported for the dispatcher's tests.
__all__ = ["Behaviour", "ReceivedRequest", "Receiver", "always_ok"]


@dataclass(frozen=True)
class SeededMerchant:
    id: str
    secret: str
    endpoint_id: str


def payment_event(
    event_type: EventType, merchant_id: str, payment_id: str, status: str, **extra: Any
) -> Event:
    payment = {
        "id": payment_id,
        "order_id": f"ord_{payment_id}",
        "amount": 50000,
        "currency": "INR",
        "method": "upi",
        "vpa": "user@bank",
        "status": status,
        "created_at": "2024-01-01T00:00:00Z",
        **extra,
    }
    return Event(
        type=event_type, merchant_id=merchant_id, data={"payment": payment}, invoice_id=f"ord_{payment_id}"
    )


def payment_created(merchant_id: str, payment_id: str) -> Event:
    return payment_event(EventType.PAYMENT_CREATED, merchant_id, payment_id, "created")


def payment_lifecycle(merchant_id: str, payment_id: str) -> list[Event]:
    """created, pending, success: the API's order of events for one payment."""
    return [
        payment_created(merchant_id, payment_id),
        payment_event(EventType.PAYMENT_PENDING, merchant_id, payment_id, "pending"),
        payment_event(EventType.PAYMENT_SUCCESS, merchant_id, payment_id, "success"),
    ]


NumberedEvent = tuple[Event, int]


def numbered(*events: Event) -> list[NumberedEvent]:
    """The events with the numbers the outbox would give them: 1, 2, ... per (merchant, payment),
    in the order given (which is the order they happened, whatever order they are published in)."""
    counters: Counter[tuple[str, str]] = Counter()
    result: list[NumberedEvent] = []
    for event in events:
        key = ordering_key(event)
        assert key is not None, f"{event.type} has no ordering key"
        counters[(event.merchant_id, key)] += 1
        result.append((event, counters[(event.merchant_id, key)]))
    return result


async def publish(redis: aioredis.Redis, *events: Event | NumberedEvent) -> None:
    """XADD the events to `payment:events`, in this order; a numbered one with its `seq` field."""
    async with redis.pipeline(transaction=False) as pipe:
        for item in events:
            event, sequence = item if isinstance(item, tuple) else (item, None)
            pipe.xadd(Stream.PAYMENT_EVENTS, entry_fields(event.encode(), sequence))  # type: ignore[arg-type]
        await pipe.execute()


async def stream_handled(redis: aioredis.Redis, group: str = ConsumerGroup.WEBHOOK_DISPATCHER) -> bool:
    """True once `group` has been handed every entry of `payment:events` and acknowledged each."""
    last_entry = await redis.xrevrange(Stream.PAYMENT_EVENTS, count=1)
    if not last_entry:
        return True
    groups = {info["name"].decode(): info for info in await redis.xinfo_groups(Stream.PAYMENT_EVENTS)}
    info = groups.get(group)
    return info is not None and info["last-delivered-id"] == last_entry[0][0] and int(info["pending"]) == 0


# --- the delivery log -----------------------------------------------------------------------------


async def deliveries(pool: asyncpg.Pool, merchant_id: str) -> list[asyncpg.Record]:
    return await pool.fetch(
        "SELECT * FROM webhook_deliveries WHERE merchant_id = $1 ORDER BY event_at, event_id", merchant_id
    )


async def delivery(pool: asyncpg.Pool, delivery_id: str) -> asyncpg.Record:
    row = await pool.fetchrow("SELECT * FROM webhook_deliveries WHERE id = $1", delivery_id)
    assert row is not None
    return row


async def attempts_reached(pool: asyncpg.Pool, delivery_id: str, attempts: int) -> asyncpg.Record | None:
    """The delivery once `attempts` attempts are recorded (and its lease released); None before."""
    row = await delivery(pool, delivery_id)
    return row if row["attempts"] >= attempts and row["lease_token"] is None else None


async def attempted(pool: asyncpg.Pool, merchant_id: str, attempts: int = 1) -> asyncpg.Record | None:
    """The merchant's only delivery once `attempts` attempts are recorded; None before."""
    rows = await deliveries(pool, merchant_id)
    if len(rows) != 1:
        return None
    return await attempts_reached(pool, rows[0]["id"], attempts)


async def all_final(pool: asyncpg.Pool, merchant_id: str, count: int | None = None) -> bool:
    """True once the merchant has deliveries (`count` of them, when given) and none is pending."""
    rows = await deliveries(pool, merchant_id)
    if not rows or (count is not None and len(rows) != count):
        return False
    return all(row["status"] != "pending" for row in rows)


def seconds_between(later: datetime, earlier: datetime) -> float:
    return (later - earlier).total_seconds()


def utc(ts: float) -> datetime:
    return datetime.fromtimestamp(ts, UTC)


MakeReceiver = Callable[..., Awaitable[Receiver]]
MakeMerchant = Callable[..., Awaitable[SeededMerchant]]
StartDispatcher = Callable[..., Awaitable[web.Application]]
