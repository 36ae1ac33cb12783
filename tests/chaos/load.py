"""Steady load for the fault suite: merchant payments and signed Razorpay webhooks at a fixed rate.

Every tick (100 ms by default) the driver starts a few `POST /api/v1/payments` (each with its own
Idempotency-Key) and a few signed `payment.captured` webhooks (each with its own
`x-razorpay-event-id` and Razorpay payment id), without waiting for earlier ones: open-loop, as
real clients are. Like a real client, a request that gets no answer (connection refused or reset,
timeout) or an answer that asks to come back (409 key in use, 502/503/504) is sent again, with the
SAME key or event id and the same bytes, until it is accepted or `give_up_after_s` has passed.

With several API replicas (`other_api_urls`) the driver spreads its requests over them as a load
balancer without health checks would: a request's first attempt goes to an API drawn at random
(not in turn, which would tie each invoice to one API), each further attempt to the next API, so a
request that got no answer from a dead API is sent again (same key, same bytes) to a live one.

What the test then checks against: `accepted_payments()` (Idempotency-Key -> payment id, for every
201 received) and `accepted_webhooks()` (event id -> Razorpay payment id, for every 200); every
answer is kept in `answers` with its time and the API that gave it, so a test can look at what
clients saw during a fault.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import random
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import orjson

from paystream_devstack.testing import eventually

AUTH = {"X-Api-Key": "key_test_abc123", "X-Api-Secret": "secret_test_xyz789"}
PAYMENTS_PATH = "/api/v1/payments"
RAZORPAY_PATH = "/api/v1/providers/razorpay/webhook"
# Answers that tell a client to send the same request again later.
RETRY_STATUSES = frozenset({409, 502, 503, 504})
CONNECTION_ERROR = 0  # the status recorded when no HTTP answer came back
ATTEMPT_TIMEOUT_S = 10.0
_ALPHANUMERIC = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"


@dataclass(frozen=True, slots=True)
class Answer:
    at: float  # time.monotonic() when the answer (or the failure) came
    kind: str  # "payment" | "webhook"
    status: int  # CONNECTION_ERROR when there was no answer
    content_type: str | None = None
    error_code: str | None = None
    api_url: str = ""  # the API the attempt went to


@dataclass(slots=True)
class Request:
    kind: str
    key: str  # the Idempotency-Key or the Razorpay event id
    body: bytes
    headers: dict[str, str]
    invoice_id: str
    razorpay_payment_id: str | None = None  # webhooks only
    attempts: int = 0
    accepted_status: int | None = None
    payment_id: str | None = None  # the API's payment id (payments) or the Razorpay one (webhooks)
    final_status: int | None = None  # a non-retryable answer other than success
    first_api: int = 0  # which API (an index in `SteadyLoad.api_urls`) its first attempt goes to
    accepted_by: str | None = None  # the API that answered 2xx
    no_answer_from: list[str] = field(default_factory=list)  # the APIs of attempts that got no answer


def razorpay_payment_captured(payment_id: str, invoice_id: str, amount: int) -> dict[str, Any]:
    """A `payment.captured` event shaped as Razorpay sends it (the fields processing reads)."""
    now = int(time.time())
    return {
        "entity": "event",
        "account_id": "acc_chaos00000000",
        "event": "payment.captured",
        "contains": ["payment"],
        "payload": {
            "payment": {
                "entity": {
                    "id": payment_id,
                    "entity": "payment",
                    "amount": amount,
                    "currency": "INR",
                    "status": "captured",
                    "order_id": invoice_id,
                    "invoice_id": None,
                    "international": False,
                    "method": "upi",
                    "vpa": "chaos@okbank",
                    "amount_refunded": 0,
                    "captured": True,
                    "notes": {},
                    "error_code": None,
                    "error_description": None,
                    "created_at": now,
                }
            }
        },
        "created_at": now,
    }


def _random_id(length: int) -> str:
    return "".join(random.choices(_ALPHANUMERIC, k=length))


@dataclass
class SteadyLoad:
    api_url: str
    razorpay_secret: str
    invoices: Sequence[str]
    tag: str = "chaos"
    # Further replicas of the API, behind the same "load balancer" as `api_url` (see the docstring).
    other_api_urls: Sequence[str] = ()
    payments_per_tick: int = 2
    webhooks_per_tick: int = 1
    tick_s: float = 0.1
    give_up_after_s: float = 45.0
    max_in_flight: int = 128
    requests: list[Request] = field(default_factory=list)
    answers: list[Answer] = field(default_factory=list)
    _ticker: asyncio.Task[None] | None = None
    _tasks: set[asyncio.Task[None]] = field(default_factory=set)
    _session: aiohttp.ClientSession | None = None
    _gate: asyncio.Semaphore | None = None

    # -- running --------------------------------------------------------------------------------

    async def start(self) -> SteadyLoad:
        self._gate = asyncio.Semaphore(self.max_in_flight)
        self._session = aiohttp.ClientSession(
            timeout=aiohttp.ClientTimeout(total=ATTEMPT_TIMEOUT_S),
            connector=aiohttp.TCPConnector(limit=self.max_in_flight, force_close=False),
        )
        self._ticker = asyncio.create_task(self._tick_loop(), name="steady-load")
        return self

    async def stop(self) -> None:
        """Start no new requests (those under way keep retrying: see `settle`)."""
        if self._ticker is not None:
            self._ticker.cancel()
            await asyncio.gather(self._ticker, return_exceptions=True)
            self._ticker = None

    async def settle(self, timeout: float) -> None:
        """Wait until every request was accepted, refused for good, or given up on."""
        await self.stop()
        if self._tasks:
            await asyncio.wait(set(self._tasks), timeout=timeout)
        unfinished = [task for task in self._tasks if not task.done()]
        assert not unfinished, f"{len(unfinished)} requests still retrying after {timeout}s"

    async def close(self) -> None:
        await self.stop()
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.wait(set(self._tasks), timeout=5)
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def run_for(self, seconds: float) -> None:
        """Let the load run for `seconds`: pacing a scenario, not waiting for a result."""
        await asyncio.sleep(seconds)

    async def until_accepted(self, count: int, timeout: float = 20.0) -> None:
        """Wait until `count` more requests than now have been accepted (the load is flowing)."""
        target = self.accepted_count() + count
        await eventually(
            lambda: self.accepted_count() >= target,
            timeout=timeout,
            interval=0.05,
            message=f"{count} more requests accepted ({self.summary()})",
        )

    def accepted_count(self) -> int:
        return sum(1 for r in self.requests if r.accepted_status is not None)

    async def _tick_loop(self) -> None:
        loop = asyncio.get_running_loop()
        started = loop.time()
        tick = 0
        while True:
            for _ in range(self.payments_per_tick):
                self._launch(self._new_payment())
            for _ in range(self.webhooks_per_tick):
                self._launch(self._new_webhook())
            tick += 1
            await asyncio.sleep(max(0.0, started + tick * self.tick_s - loop.time()))

    def _launch(self, request: Request) -> None:
        self.requests.append(request)
        task = asyncio.create_task(self._send_until_answered(request))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _new_payment(self) -> Request:
        number = len(self.requests)
        invoice_id = self.invoices[number % len(self.invoices)]
        body = orjson.dumps(
            {
                "order_id": invoice_id,
                "amount": 100 + number,
                "currency": "INR",
                "method": "upi",
                "vpa": "chaos@okbank",
            }
        )
        key = f"{self.tag}-pay-{number:06d}"
        headers = {**AUTH, "Content-Type": "application/json", "Idempotency-Key": key}
        return Request("payment", key, body, headers, invoice_id, first_api=self._pick_api())

    def _new_webhook(self) -> Request:
        number = len(self.requests)
        invoice_id = self.invoices[number % len(self.invoices)]
        razorpay_payment_id = "pay_" + _random_id(14)
        body = orjson.dumps(razorpay_payment_captured(razorpay_payment_id, invoice_id, 100 + number))
        event_id = f"evt_{self.tag}_{number:06d}"
        signature = hmac.new(self.razorpay_secret.encode(), body, hashlib.sha256).hexdigest()
        headers = {
            "Content-Type": "application/json",
            "X-Razorpay-Signature": signature,
            "x-razorpay-event-id": event_id,
        }
        return Request(
            "webhook", event_id, body, headers, invoice_id, razorpay_payment_id, first_api=self._pick_api()
        )

    @property
    def api_urls(self) -> tuple[str, ...]:
        return (self.api_url, *self.other_api_urls)

    def _pick_api(self) -> int:
        return random.randrange(len(self.api_urls))

    def _api_for(self, request: Request) -> str:
        """Where the request's next attempt goes: its own API first, then the next one each time."""
        urls = self.api_urls
        return urls[(request.first_api + request.attempts) % len(urls)]

    async def _send_until_answered(self, request: Request) -> None:
        assert self._session is not None
        path = PAYMENTS_PATH if request.kind == "payment" else RAZORPAY_PATH
        deadline = time.monotonic() + self.give_up_after_s
        while True:
            api_url = self._api_for(request)
            request.attempts += 1
            status, document = await self._attempt(request, api_url, path)
            if 200 <= status < 300:
                request.accepted_status = status
                request.accepted_by = api_url
                if request.kind == "payment":
                    request.payment_id = str(document["id"])
                else:
                    request.payment_id = request.razorpay_payment_id
                return
            if status != CONNECTION_ERROR and status not in RETRY_STATUSES:
                request.final_status = status
                return
            if time.monotonic() > deadline:
                return
            await asyncio.sleep(min(1.0, 0.05 * 2 ** min(request.attempts, 5)) * random.uniform(0.5, 1.5))

    async def _attempt(self, request: Request, api_url: str, path: str) -> tuple[int, Any]:
        assert self._session is not None and self._gate is not None
        async with self._gate:
            try:
                async with self._session.post(
                    api_url + path, data=request.body, headers=request.headers
                ) as response:
                    raw = await response.read()
                    content_type = response.headers.get("Content-Type")
                    status = response.status
            except (aiohttp.ClientError, TimeoutError):
                request.no_answer_from.append(api_url)
                self.answers.append(Answer(time.monotonic(), request.kind, CONNECTION_ERROR, api_url=api_url))
                return CONNECTION_ERROR, None
        try:
            document = orjson.loads(raw)
        except orjson.JSONDecodeError:
            document = None
        error_code = None
        if status >= 400 and isinstance(document, dict) and isinstance(document.get("error"), dict):
            error_code = document["error"].get("code")
        self.answers.append(Answer(time.monotonic(), request.kind, status, content_type, error_code, api_url))
        return status, document

    # -- what was accepted ----------------------------------------------------------------------

    def accepted_payments(self) -> dict[str, str]:
        """Idempotency-Key -> payment id, for every payment the API accepted."""
        return {
            r.key: r.payment_id
            for r in self.requests
            if r.kind == "payment" and r.accepted_status is not None and r.payment_id
        }

    def accepted_webhooks(self) -> dict[str, str]:
        """Razorpay event id -> Razorpay payment id, for every webhook answered 2xx."""
        return {
            r.key: r.payment_id
            for r in self.requests
            if r.kind == "webhook" and r.accepted_status is not None and r.payment_id
        }

    def invoice_of_payment(self) -> dict[str, str]:
        """payment id (API or Razorpay) -> invoice id, for every accepted request."""
        return {r.payment_id: r.invoice_id for r in self.requests if r.payment_id}

    def api_of_payment(self) -> dict[str, str]:
        """payment id (API or Razorpay) -> the API that accepted its request."""
        return {r.payment_id: r.accepted_by for r in self.requests if r.payment_id and r.accepted_by}

    def not_accepted(self) -> list[Request]:
        return [r for r in self.requests if r.accepted_status is None]

    def status_counts(self) -> Counter[int]:
        return Counter(answer.status for answer in self.answers)

    def answers_between(self, start: float, end: float) -> list[Answer]:
        return [answer for answer in self.answers if start <= answer.at <= end]

    def summary(self) -> str:
        return (
            f"{len(self.requests)} requests, {len(self.accepted_payments())} payments and "
            f"{len(self.accepted_webhooks())} webhooks accepted, answers {dict(self.status_counts())}"
        )
