"""What the platform really sends, against the catalogue: real API, payment processor and webhook
dispatcher processes on real Redis and PostgreSQL deliver to a merchant endpoint on loopback, and
every webhook that arrives must match its event's schema with every object closed (no field the
catalogue does not describe).

The flow makes every event type that something emits: a card payment's life through the merchant
API (created, pending, success, captured, a refund created and processed), a payment that fails
because its order was paid by another, a test send, a second endpoint that answers 410 Gone (so it
is disabled, and the default endpoint is told), every Razorpay event type (one dispute per stage,
so that each stage is emitted) and the three PAYable notifications.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import aiohttp
import asyncpg
import pytest
import redis.asyncio as aioredis
from aiohttp import web
from catalogue_check import data_errors, documented_variants, variants_matched

from paystream.catalogue import EVENT_CATALOGUE, NOT_DELIVERED
from paystream.events import EventType
from paystream_devstack.testing import ServiceProcess, eventually
from paystream_devstack.testing import provider_payloads as payloads
from paystream_devstack.testing.receiver import ReceivedRequest, Receiver

pytestmark = pytest.mark.slow

AUTH = {"X-Api-Key": "key_test_abc123", "X-Api-Secret": "secret_test_xyz789"}
WEBHOOK_SECRET = "whsec_test_abc123"
EXPECTED = frozenset(EVENT_CATALOGUE)
RAZORPAY_WEBHOOK = "/api/v1/providers/razorpay/webhook"
PAYABLE_WEBHOOK = "/api/v1/providers/payable/webhook"

Spawn = Callable[..., ServiceProcess]


def razorpay_flow() -> list[dict[str, Any]]:
    """Every Razorpay event type, in an order in which each emits what it can. A dispute's stages
    after a final one emit nothing (forward only), so each stage here is a dispute of its own; so is
    the failed refund and the cancelled link."""
    documents = [
        payloads.razorpay(name)
        for name in (
            "payment.authorized",
            "payment.captured",
            "payment.failed",
            "order.paid",
            "order.notification.delivered",
            "order.notification.failed",
            "refund.created",
            "refund.speed_changed",
            "refund.processed",
            "refund.failed",
            "payment.downtime.started",
            "payment.downtime.updated",
            "payment.downtime.resolved",
            "invoice.partially_paid",
            "invoice.expired",
            "invoice.paid",
            "payment_link.partially_paid",
            "payment_link.expired",
            "payment_link.paid",
            "payment_link.cancelled",
            "fund_account.validation.completed",
            "fund_account.validation.failed",
            "account.instantly_activated",
            "account.activated_kyc_pending",
        )
    ]
    for stage in ("created", "action_required", "under_review", "won", "lost", "closed"):
        document = payloads.razorpay(f"payment.dispute.{stage}")
        document["payload"]["dispute"]["entity"]["id"] = f"disp_{stage}"
        documents.append(document)
    renamed = {
        "refund.failed": ("refund", "rfnd_FailedRefund01"),
        "payment_link.cancelled": ("payment_link", "plink_Cancelled0001"),
    }
    for document in documents:
        if document["event"] in renamed:
            entity, new_id = renamed[document["event"]]
            document["payload"][entity]["entity"]["id"] = new_id
    return documents


async def create_payment(rest: aiohttp.ClientSession, order_id: str, method: dict[str, Any]) -> str:
    response = await rest.post("/api/v1/payments", json={"order_id": order_id, "amount": 50_000, **method})
    assert response.status == 201, await response.text()
    payment_id: str = (await response.json())["id"]
    return payment_id


async def final_payment(rest: aiohttp.ClientSession, payment_id: str) -> dict[str, Any]:
    async def settled() -> dict[str, Any] | None:
        payment: dict[str, Any] = await (await rest.get(f"/api/v1/payments/{payment_id}")).json()
        return payment if payment["status"] in ("success", "failed") else None

    return await eventually(settled, timeout=20, message=f"{payment_id} did not settle")


async def merchant_api_flow(rest: aiohttp.ClientSession, start_processor: Callable[[], None]) -> None:
    """Two payments for one order, made before the processor runs: one succeeds (then is captured
    and partly refunded), the other fails with ORDER_ALREADY_PAID."""
    order = await (
        await rest.post("/api/v1/orders", json={"amount": 50_000, "receipt": "rcpt_catalogue"})
    ).json()
    card = {
        "number": "4111111111111111",
        "expiry_month": 12,
        "expiry_year": datetime.now(UTC).year + 2,
        "cvv": "123",
        "holder_name": "Asha Rao",
    }
    first = await create_payment(rest, order["id"], {"method": "card", "card": card})
    second = await create_payment(rest, order["id"], {"method": "upi", "vpa": "asha@okbank"})
    await asyncio.to_thread(start_processor)
    outcomes = {
        payment["status"]: payment for payment in [await final_payment(rest, p) for p in (first, second)]
    }
    assert set(outcomes) == {"success", "failed"}, outcomes
    assert outcomes["failed"]["error_code"] == "ORDER_ALREADY_PAID"
    paid = outcomes["success"]["id"]
    assert (await rest.post(f"/api/v1/payments/{paid}/capture")).status == 200
    refund = await rest.post(
        f"/api/v1/payments/{paid}/refunds", json={"amount": 15_000, "reason": "Returned"}
    )
    assert refund.status == 201, await refund.text()
    assert (await rest.post("/api/v1/webhooks/test")).status == 202


async def gone(_request: ReceivedRequest, _count: int) -> web.StreamResponse:
    return web.Response(status=410, text="gone")


async def disable_an_endpoint(rest: aiohttp.ClientSession, url: str) -> None:
    """A second endpoint, sent only what is asked for, answers 410 to its test send: it is disabled,
    and `endpoint.disabled` goes to the default endpoint."""
    created = await rest.post("/api/v1/webhook-endpoints", json={"url": url, "events": ["webhook.test"]})
    assert created.status == 201, await created.text()
    endpoint_id = (await created.json())["id"]
    assert (await rest.post(f"/api/v1/webhook-endpoints/{endpoint_id}/test")).status == 202


async def provider_flow(rest: aiohttp.ClientSession, env: dict[str, str]) -> int:
    """Post every provider event, one after another (each stored before the next is sent, so the
    processor meets them in this order); how many were posted."""
    posted = 0
    for n, document in enumerate(razorpay_flow()):
        body, headers = payloads.razorpay_request(
            document, env["RAZORPAY_WEBHOOK_SECRET"], f"evt_catalogue_{n:03d}"
        )
        response = await rest.post(RAZORPAY_WEBHOOK, data=body, headers=headers)
        assert response.status == 200, (document["event"], await response.text())
        posted += 1
    for name in ("success", "failure", "tokenization"):
        note = payloads.payable_signed(payloads.payable(name), env["PAYABLE_MERCHANT_TOKEN"])
        response = await rest.post(PAYABLE_WEBHOOK, json=note)
        assert response.status == 200, (name, await response.text())
        posted += 1
    return posted


async def test_every_webhook_a_real_flow_sends_matches_the_catalogue(
    service_env: dict[str, str], spawn_service: Spawn, db_pool: asyncpg.Pool, redis: aioredis.Redis
) -> None:
    """`redis`: an empty stream (the dispatcher's new group starts at 0, so entries that earlier tests
    left for the test merchant would be delivered here too)."""
    # Small pools: the suite may share its PostgreSQL server with other runs.
    env = {**service_env, "TEST_PROCESSING_DELAY": "200", "LOG_LEVEL": "WARNING"}
    started = [
        spawn_service(module, env, wait_healthy=False) for module in ("paystream_api", "webhook_dispatcher")
    ]
    await asyncio.gather(*(asyncio.to_thread(process.wait_healthy, 60) for process in started))
    receiver = Receiver([WEBHOOK_SECRET])
    gone_endpoint = Receiver([], gone)
    await receiver.start()
    await gone_endpoint.start()
    try:
        async with aiohttp.ClientSession(f"http://127.0.0.1:{env['API_PORT']}", headers=AUTH) as rest:
            configured = await rest.put("/api/v1/webhooks/config", json={"url": receiver.url})
            assert configured.status == 200, await configured.text()

            def start_processor() -> None:
                spawn_service("payment_processor", env)

            await merchant_api_flow(rest, start_processor)
            await disable_an_endpoint(rest, gone_endpoint.url)
            posted = await provider_flow(rest, env)

        def received_types() -> set[str]:
            return {request.event for request in receiver.requests}

        expected_names = {event_type.value for event_type in EXPECTED}
        await eventually(
            lambda: received_types() >= expected_names,
            timeout=60,
            interval=0.1,
            message=f"webhooks of every emitted type (missing {sorted(expected_names - received_types())})",
        )

        # Sentinel for what must not be sent: once every provider event is handled, the events it
        # caused are in the outbox (same transaction), and none is of a type said never to be sent.
        async def all_handled() -> bool:
            statuses = await db_pool.fetch("SELECT status, count(*) AS n FROM provider_events GROUP BY 1")
            return {row["status"]: row["n"] for row in statuses} == {"processed": posted}

        await eventually(all_handled, timeout=30, message="every provider event handled")
        never_sent = [t.value for t in NOT_DELIVERED]
        assert (
            await db_pool.fetchval("SELECT count(*) FROM outbox WHERE event_type = ANY($1)", never_sent) == 0
        )

        requests = list(receiver.requests)
        problems: list[str] = []
        variants: set[tuple[str, str]] = set()
        for request in requests:
            body = request.json()
            if list(body) != ["event", "timestamp", "data"] or not isinstance(body["timestamp"], int):
                problems.append(f"{request.event}: body is {sorted(body)}")
                continue
            event_type = EventType(body["event"])
            if event_type not in EVENT_CATALOGUE:
                problems.append(f"{event_type.value}: not in the catalogue")
                continue
            problems.extend(f"{event_type.value} {error}" for error in data_errors(event_type, body["data"]))
            variants |= {(event_type.value, title) for title in variants_matched(event_type, body["data"])}
            if request.standard_valid_for != [WEBHOOK_SECRET]:
                problems.append(f"{event_type.value}: signature not valid")
        assert not problems, "webhooks that do not match the catalogue:\n" + "\n".join(problems)
        assert received_types() == expected_names
        # Each variant the catalogue documents (merchant API or provider objects) really arrived.
        documented = {(t.value, title) for t in EXPECTED for title in documented_variants(t)}
        assert documented <= variants, f"documented but never seen: {sorted(documented - variants)}"
        print(Counter(request.event for request in requests))

    finally:
        await receiver.close()
        await gone_endpoint.close()
