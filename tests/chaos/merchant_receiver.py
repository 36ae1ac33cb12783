"""The merchant's webhook endpoint for the fault suite: a real aiohttp server on a fixed port that
verifies both signature schemes (written from the contract, not from the dispatcher's code), records
each delivery, and can go down (nothing listens: connection refused) and come back on the same port.
`hold_answers()` makes it record each delivery as it arrives and answer none until `answer()`: the
dispatchers' attempts (and their leases) then stay in their hands for as long as a test needs.

An event is `(event type, data.payment.id)`: in these tests each payment has at most one event of a
type. Receiving one event under two different `webhook-id`s is a duplicate the merchant would act on
twice; one `webhook-id` seen twice is a redelivery, which Standard Webhooks receivers de-duplicate.
The receiver does so too: the first delivery of a `webhook-id` is accepted (what the merchant acts
on), a later one is recorded as a redelivery and answered 200 without being accepted again.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hashlib
import hmac
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from typing import Any

import orjson
from aiohttp import web

from paystream_devstack.embedded import free_port

EventKey = tuple[str, str]


@dataclass(frozen=True, slots=True)
class Delivery:
    webhook_id: str
    event: EventKey
    received_at: float  # time.time()
    signatures_valid: bool
    # The webhook-id had been accepted before: the merchant's de-duplication drops it.
    redelivery: bool = False


def _standard_key(secret: str) -> bytes:
    encoded = secret.removeprefix("whsec_")
    try:
        return base64.b64decode(encoded, validate=True)
    except (binascii.Error, ValueError):
        return encoded.encode()


@dataclass
class MerchantReceiver:
    secret: str
    port: int = field(default_factory=free_port)
    deliveries: list[Delivery] = field(default_factory=list)
    # webhook-id -> the delivery that was accepted under it (the first one that arrived).
    accepted: dict[str, Delivery] = field(default_factory=dict)
    unreadable: int = 0
    _runner: web.AppRunner | None = None
    _answering: asyncio.Event = field(default_factory=asyncio.Event)

    def __post_init__(self) -> None:
        self._answering.set()

    @staticmethod
    def url_on(port: int) -> str:
        """The URL a receiver on `port` listens at (to register it before it starts)."""
        return f"http://127.0.0.1:{port}/hooks"

    @property
    def url(self) -> str:
        return self.url_on(self.port)

    @property
    def up(self) -> bool:
        return self._runner is not None

    async def start(self) -> MerchantReceiver:
        """Listen (again) on the same port."""
        app = web.Application()
        app.router.add_post("/hooks", self._handle)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", self.port, reuse_address=True).start()
        self._runner = runner
        return self

    def hold_answers(self) -> None:
        """Record deliveries as they arrive, answer none of them until `answer()`."""
        self._answering.clear()

    def answer(self) -> None:
        """Answer the deliveries held, and every later one at once."""
        self._answering.set()

    async def stop(self) -> None:
        """Go down: close the listener and every open connection."""
        self.answer()
        if self._runner is not None:
            runner, self._runner = self._runner, None
            await runner.cleanup()

    async def _handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        try:
            document: dict[str, Any] = orjson.loads(body)
            key = (str(document["event"]), str(document["data"]["payment"]["id"]))
        except (orjson.JSONDecodeError, KeyError, TypeError):
            self.unreadable += 1
            return web.Response(text="ok")
        webhook_id = request.headers.get("webhook-id", "")
        delivery = Delivery(
            webhook_id=webhook_id,
            event=key,
            received_at=time.time(),
            signatures_valid=self._verify(request, body),
            redelivery=webhook_id in self.accepted,
        )
        self.deliveries.append(delivery)
        self.accepted.setdefault(webhook_id, delivery)
        await self._answering.wait()
        return web.Response(text="ok")

    def _verify(self, request: web.Request, body: bytes) -> bool:
        legacy = hmac.new(self.secret.encode(), body, hashlib.sha256).hexdigest()
        if not hmac.compare_digest(legacy, request.headers.get("X-Webhook-Signature", "")):
            return False
        signed = f"{request.headers.get('webhook-id')}.{request.headers.get('webhook-timestamp')}.".encode()
        digest = hmac.new(_standard_key(self.secret), signed + body, hashlib.sha256).digest()
        expected = "v1," + base64.b64encode(digest).decode()
        offered = request.headers.get("webhook-signature", "").split(" ")
        return any(hmac.compare_digest(expected, candidate) for candidate in offered)

    # -- what arrived ---------------------------------------------------------------------------

    def webhook_ids_by_event(self) -> dict[EventKey, set[str]]:
        ids: dict[EventKey, set[str]] = defaultdict(set)
        for delivery in self.deliveries:
            ids[delivery.event].add(delivery.webhook_id)
        return ids

    def received_ids(self) -> set[str]:
        return {delivery.webhook_id for delivery in self.deliveries}

    def accepted_ids_by_event(self) -> dict[EventKey, list[str]]:
        """event -> the webhook-ids it was accepted under (more than one: the merchant acted twice)."""
        ids: dict[EventKey, list[str]] = defaultdict(list)
        for webhook_id, delivery in self.accepted.items():
            ids[delivery.event].append(webhook_id)
        return ids

    def redelivered(self) -> Counter[str]:
        """webhook-id -> how many times it arrived again after it had been accepted."""
        return Counter(delivery.webhook_id for delivery in self.deliveries if delivery.redelivery)

    def first_arrival(self) -> dict[str, float]:
        """webhook-id -> when it first arrived."""
        first: dict[str, float] = {}
        for delivery in self.deliveries:
            first.setdefault(delivery.webhook_id, delivery.received_at)
        return first


@dataclass(frozen=True, slots=True)
class ReceivingEndpoint:
    """One of the merchant's webhook endpoints and the receiver behind its URL. `events` is the
    endpoint's filter as exact event names (None: every event)."""

    endpoint_id: str
    receiver: MerchantReceiver
    events: frozenset[str] | None = None

    def receives(self, event_type: str) -> bool:
        return self.events is None or event_type in self.events
