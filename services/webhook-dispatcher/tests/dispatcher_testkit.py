"""Helpers for the dispatcher's tests: a real merchant receiver that verifies both signature schemes
independently of the dispatcher's code, merchants' events, and delivery-log reads."""

from __future__ import annotations

import asyncio
import base64
import binascii
import hashlib
import hmac
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import asyncpg
import orjson
import redis.asyncio as aioredis
from aiohttp import web
from aiohttp.test_utils import TestServer

from paystream.events import ConsumerGroup, Event, EventType, Stream, entry_fields
from paystream.ordering import ordering_key

# --- the merchant's receiver ---------------------------------------------------------------------


def standard_webhooks_key(secret: str) -> bytes:
    """Written from the spec, independently of the dispatcher's signing module."""
    encoded = secret[len("whsec_") :] if secret.startswith("whsec_") else secret
    try:
        return base64.b64decode(encoded, validate=True)
    except binascii.Error:
        return encoded.encode()


@dataclass
class ReceivedRequest:
    body: bytes
    headers: Mapping[str, str]
    received_at: float  # time.time()
    legacy_valid_for: list[str] = field(default_factory=list)
    standard_valid_for: list[str] = field(default_factory=list)

    @property
    def webhook_id(self) -> str:
        return self.headers["webhook-id"]

    @property
    def event(self) -> str:
        return str(self.json()["event"])

    def json(self) -> dict[str, Any]:
        parsed: dict[str, Any] = orjson.loads(self.body)
        return parsed


Behaviour = Callable[[ReceivedRequest, int], Awaitable[web.StreamResponse]]


async def always_ok(_request: ReceivedRequest, _count: int) -> web.StreamResponse:
    return web.Response(text="ok")


class Receiver:
    """A merchant endpoint: records every request and checks both signature schemes against the
    secrets it knows. `behaviour(request, n)` answers the n-th request (1-based)."""

    def __init__(self, secrets: list[str], behaviour: Behaviour = always_ok) -> None:
        self.secrets = secrets
        self.behaviour = behaviour
        self.requests: list[ReceivedRequest] = []
        self.release = asyncio.Event()  # set at teardown: frees handlers that hang on purpose
        self._server: TestServer | None = None

    @property
    def url(self) -> str:
        assert self._server is not None
        return str(self._server.make_url("/hooks"))

    async def start(self) -> None:
        app = web.Application()
        app.router.add_post("/hooks", self._handle)
        self._server = TestServer(app, host="127.0.0.1")
        await self._server.start_server()

    async def close(self) -> None:
        self.release.set()
        if self._server is not None:
            await self._server.close()

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        body = await request.read()
        received = ReceivedRequest(body=body, headers=dict(request.headers), received_at=time.time())
        self._verify(received)
        self.requests.append(received)
        return await self.behaviour(received, len(self.requests))

    def _verify(self, received: ReceivedRequest) -> None:
        headers = received.headers
        for secret in self.secrets:
            expected = hmac.new(secret.encode(), received.body, hashlib.sha256).hexdigest()
            if hmac.compare_digest(expected, headers.get("X-Webhook-Signature", "")):
                received.legacy_valid_for.append(secret)
            signed = (
                f"{headers.get('webhook-id')}.{headers.get('webhook-timestamp')}.".encode() + received.body
            )
            digest = hmac.new(standard_webhooks_key(secret), signed, hashlib.sha256).digest()
            candidate = "v1," + base64.b64encode(digest).decode()
            if any(
                hmac.compare_digest(candidate, s) for s in headers.get("webhook-signature", "").split(" ")
            ):
                received.standard_valid_for.append(secret)

    def for_event(self, event_type: str) -> list[ReceivedRequest]:
        return [r for r in self.requests if r.event == event_type]


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
