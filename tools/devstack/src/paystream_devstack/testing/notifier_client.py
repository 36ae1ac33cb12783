"""Test helpers for the notifier (its own suite, and end-to-end tests elsewhere): tokens, events,
publishing, and a real python-socketio client that records what it receives, in order."""

from __future__ import annotations

import time
import warnings
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import jwt
import redis.asyncio as aioredis
import socketio  # type: ignore[import-untyped]
from jwt.warnings import InsecureKeyLengthWarning

from notifier.settings import NotifierSettings
from paystream.events import STREAM_FIELD, Event, EventType, Stream
from paystream.ordering import ordering_key
from paystream.shards import SINGLE_SHARD, StreamLayout
from paystream_devstack.testing import eventually

JWT_SECRET = "test-jwt-secret"
MERCHANT_A = "mer_test0000000001"
MERCHANT_B = "mer_test0000000002"

_STATUS_OF = {
    EventType.PAYMENT_CREATED: "created",
    EventType.PAYMENT_PENDING: "pending",
    EventType.PAYMENT_SUCCESS: "success",
    EventType.PAYMENT_FAILED: "failed",
    EventType.PAYMENT_CAPTURED: "success",
}


def sign(claims: dict[str, Any], secret: str = JWT_SECRET, algorithm: str = "HS256") -> str:
    """A JWT with exactly these claims."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", InsecureKeyLengthWarning)  # the suite's secret is short
        return jwt.encode(claims, secret, algorithm=algorithm)


def make_token(
    merchant_id: str = MERCHANT_A,
    *,
    salon_id: str | None = None,
    sub: str = "user_1",
    expires_in: float = 300,
    secret: str = JWT_SECRET,
    algorithm: str = "HS256",
    **claims: Any,
) -> str:
    body: dict[str, Any] = {
        "sub": sub,
        "merchant_id": merchant_id,
        "exp": int(time.time() + expires_in),
        "aud": "notifier",
    }
    if salon_id is not None:
        body["salon_id"] = salon_id
    body.update(claims)
    return sign(body, secret, algorithm)


def payment_event(
    event_type: EventType = EventType.PAYMENT_SUCCESS,
    *,
    merchant_id: str = MERCHANT_A,
    invoice_id: str | None = "ord_test_001",
    salon_id: str | None = None,
    payment_id: str = "pay_AAAAAAAAAAAAAAAA",
    amount: int = 50000,
) -> Event:
    """A payment event as the contract describes it: `data.payment` is the REST payment object."""
    payment = {
        "id": payment_id,
        "order_id": invoice_id,
        "amount": amount,
        "currency": "INR",
        "method": "upi",
        "status": _STATUS_OF.get(event_type, "pending"),
    }
    if event_type is EventType.PAYMENT_FAILED:
        payment["error_code"] = "PAYMENT_DECLINED"
        payment["error_description"] = "declined by the bank"
    return Event(
        type=event_type,
        merchant_id=merchant_id,
        salon_id=salon_id,
        invoice_id=invoice_id,
        data={"payment": payment},
    )


async def publish(redis: aioredis.Redis, *events: Event, layout: StreamLayout = SINGLE_SHARD) -> None:
    """XADD the events to `payment:events` (to each one's shard) as the outbox relay would, in one
    round trip."""
    async with redis.pipeline(transaction=False) as pipe:
        for event in events:
            key = layout.key_for(Stream.PAYMENT_EVENTS, event.merchant_id, ordering_key(event), event.id)
            pipe.xadd(key, {STREAM_FIELD: event.encode()})
        await pipe.execute()


@dataclass
class Received:
    name: str
    data: Any


@dataclass
class Client:
    """A real python-socketio AsyncClient that records every event it receives, in order."""

    sio: socketio.AsyncClient
    received: list[Received] = field(default_factory=list)
    connect_errors: list[Any] = field(default_factory=list)
    disconnects: int = 0

    def events(self, name: str | None = None) -> list[Any]:
        return [item.data for item in self.received if name is None or item.name == name]

    def event_ids(self, name: str) -> list[str]:
        return [data["eventId"] for data in self.events(name)]

    def last_event_id(self) -> str | None:
        last = self.last_packet()
        return None if last is None else str(last.data["eventId"])

    def last_event_name(self) -> str | None:
        """The name of the last packet that carried an event id (a reconnect's `lastEventName`)."""
        last = self.last_packet()
        return None if last is None else last.name

    def last_packet(self) -> Received | None:
        for item in reversed(self.received):
            if isinstance(item.data, dict) and "eventId" in item.data:
                return item
        return None

    async def subscribe(
        self, invoice_id: Any, last_event_id: str | None = None, last_event_name: str | None = None
    ) -> dict[str, Any]:
        body: dict[str, Any] = {"invoiceId": invoice_id}
        if last_event_id is not None:
            body["lastEventId"] = last_event_id
        if last_event_name is not None:
            body["lastEventName"] = last_event_name
        ack: dict[str, Any] = await self.sio.call("subscribe:payment-events", body, timeout=10)
        return ack

    async def unsubscribe(self, invoice_id: str) -> dict[str, Any]:
        ack: dict[str, Any] = await self.sio.call(
            "unsubscribe:payment-events", {"invoiceId": invoice_id}, timeout=10
        )
        return ack

    async def wait_for(self, name: str, count: int = 1, timeout: float = 10.0) -> list[Any]:
        await eventually(
            lambda: len(self.events(name)) >= count, timeout=timeout, message=f"{count} x {name}"
        )
        return self.events(name)

    async def wait_for_id(
        self, event_id: str, name: str = "payment:status-update", timeout: float = 10.0
    ) -> None:
        """Wait for one event: as delivery is in order, everything published before it has arrived."""
        await eventually(
            lambda: event_id in self.event_ids(name), timeout=timeout, message=f"{name} {event_id}"
        )

    async def close(self) -> None:
        if not self.sio.connected:
            return
        if self.sio.transport() == "polling":
            # Engine.IO servers hold a polling client's last long-poll open until the ping
            # timeout; a client that waited for it would take 30 s to close. Drop it instead.
            await self.sio.eio.disconnect(abort=True)
            return
        await self.sio.disconnect()


ClientFactory = Callable[..., Awaitable[Client]]
ServerFactory = Callable[..., Awaitable[str]]
OwnerRecorder = Callable[..., Awaitable[None]]


async def open_client(
    url: str,
    *,
    token: str | None = None,
    last_event_id: str | None = None,
    last_event_name: str | None = None,
    transport: str = "websocket",
    headers: dict[str, str] | None = None,
    expect_refusal: bool = False,
) -> Client:
    """Connect a recording client; a refusal raises unless `expect_refusal` (then see connect_errors)."""
    sio = socketio.AsyncClient(reconnection=False)
    client = Client(sio)

    async def record(name: str, data: Any = None) -> None:
        client.received.append(Received(name, data))

    async def connect_error(data: Any) -> None:
        client.connect_errors.append(data)

    async def disconnect(reason: Any = None) -> None:
        client.disconnects += 1

    sio.on("*", record)
    sio.on("connect_error", connect_error)
    sio.on("disconnect", disconnect)
    auth: dict[str, Any] = {}
    if token is not None:
        auth["token"] = token
    if last_event_id is not None:
        auth["lastEventId"] = last_event_id
    if last_event_name is not None:
        auth["lastEventName"] = last_event_name
    try:
        await sio.connect(
            url,
            auth=auth or None,
            headers=headers or {},
            transports=[transport],
            socketio_path="socket.io",
            wait_timeout=10,
        )
    except socketio.exceptions.ConnectionError:
        if not expect_refusal:
            raise
    return client


def notifier_settings(redis_url: str, database_url: str, **overrides: str) -> NotifierSettings:
    environ = {
        "REDIS_URL": redis_url,
        "DATABASE_URL": database_url,
        "JWT_SECRET": JWT_SECRET,
        "TEST_MODE": "true",
        "LOG_FORMAT": "json",
        "LOG_LEVEL": "WARNING",
        **overrides,
    }
    return NotifierSettings.from_env(environ)
