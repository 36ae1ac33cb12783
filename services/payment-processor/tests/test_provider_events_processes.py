"""Provider webhooks through real processes: the API (`python -m paystream_api`) accepts, the
payment processor (`python -m payment_processor`) handles. Accepted events survive restarts in
between and are handled exactly once; dispute events overtake a backlog."""

from __future__ import annotations

import asyncio
import copy
from collections.abc import Callable
from typing import Any

import aiohttp
import asyncpg
import orjson
import pytest
import redis.asyncio as aioredis

from paystream.events import STREAM_FIELD
from paystream_devstack.testing import ServiceProcess, eventually
from paystream_devstack.testing import provider_payloads as payloads

WEBHOOK = "/api/v1/providers/razorpay/webhook"


async def post_events(
    port: str, secret: str, events: list[tuple[str, dict[str, Any]]], concurrency: int = 16
) -> None:
    gate = asyncio.Semaphore(concurrency)
    async with aiohttp.ClientSession(f"http://127.0.0.1:{port}") as session:

        async def post(event_id: str, document: dict[str, Any]) -> None:
            body, headers = payloads.razorpay_request(document, secret, event_id)
            async with gate, session.post(WEBHOOK, data=body, headers=headers) as response:
                assert response.status == 200, await response.text()

        await asyncio.gather(*(post(event_id, document) for event_id, document in events))


async def payment_events_on_stream(redis: aioredis.Redis) -> list[dict[str, Any]]:
    entries = await redis.xrange("payment:events")
    return [orjson.loads(fields[STREAM_FIELD]) for _id, fields in entries]


@pytest.mark.slow
async def test_an_event_accepted_while_the_processor_is_down_is_handled_once_after_restarts(
    service_env: dict[str, str],
    spawn_service: Callable[..., ServiceProcess],
    redis: aioredis.Redis,
    db_pool: asyncpg.Pool,
) -> None:
    api = spawn_service("paystream_api", service_env)
    secret = service_env["RAZORPAY_WEBHOOK_SECRET"]
    await post_events(
        service_env["API_PORT"], secret, [("evt_restart_1", payloads.razorpay("payment.captured"))]
    )
    api.kill()  # accepted (durable), then the API dies: its NOTIFY may or may not have been sent
    row = await db_pool.fetchrow("SELECT status FROM provider_events WHERE event_id = 'evt_restart_1'")
    assert row["status"] == "received"

    processor = spawn_service("payment_processor", service_env)  # claims what waits, at start
    api.start()

    async def handled() -> bool:
        status = await db_pool.fetchval("SELECT status FROM provider_events WHERE event_id = 'evt_restart_1'")
        return bool(status == "processed")

    await eventually(handled, timeout=20, message="the accepted event was not processed")
    # The processor restarts too; the event is redelivered nowhere and handled nowhere twice.
    processor.kill()
    processor.start()
    await post_events(
        service_env["API_PORT"], secret, [("evt_restart_1", payloads.razorpay("payment.captured"))]
    )

    async def published() -> list[dict[str, Any]]:
        return [e for e in await payment_events_on_stream(redis) if e["type"] == "payment.success"]

    successes = await eventually(published, timeout=20, message="payment.success not published")
    # The relays publish at least once (a crash between XADD and commit repeats an entry, with the
    # same event id, which consumers de-duplicate); the event itself exists exactly once.
    assert len({event["id"] for event in successes}) == 1
    assert successes[0]["data"]["payment"]["id"] == "pay_29QQoUBi66xm2f"
    assert await db_pool.fetchval("SELECT count(*) FROM provider_events WHERE status = 'processed'") == 1
    assert await db_pool.fetchval("SELECT count(*) FROM provider_event_audit") == 1
    assert await db_pool.fetchval("SELECT count(*) FROM provider_events") == 1
    assert await db_pool.fetchval("SELECT count(*) FROM outbox WHERE stream = 'payment:events'") == 1


@pytest.mark.slow
async def test_dispute_events_are_handled_ahead_of_a_backlog(
    service_env: dict[str, str],
    spawn_service: Callable[..., ServiceProcess],
    redis: aioredis.Redis,
    db_pool: asyncpg.Pool,
) -> None:
    spawn_service("paystream_api", service_env)
    secret = service_env["RAZORPAY_WEBHOOK_SECRET"]
    backlog = []
    for n in range(300):
        document = payloads.razorpay("payment.captured")
        document["payload"]["payment"]["entity"]["id"] = f"pay_backlog{n:07d}"
        backlog.append((f"evt_backlog_{n:03d}", document))
    await post_events(service_env["API_PORT"], secret, backlog)
    disputes = []
    for n in range(3):
        document = copy.deepcopy(payloads.razorpay("payment.dispute.created"))
        document["payload"]["dispute"]["entity"]["id"] = f"disp_urgent{n:05d}"
        disputes.append((f"evt_dispute_{n}", document))
    await post_events(service_env["API_PORT"], secret, disputes)

    # Every POST was answered 200: all 303 wait in provider_events.
    assert await db_pool.fetchval("SELECT count(*) FROM provider_events WHERE status = 'received'") == 303
    spawn_service("payment_processor", service_env)

    async def all_handled() -> bool:
        left = await db_pool.fetchval("SELECT count(*) FROM provider_events WHERE status <> 'processed'")
        return bool(left == 0)

    await eventually(all_handled, timeout=60, message="the backlog was not handled")
    normal = [
        row["processed_at"]
        for row in await db_pool.fetch(
            "SELECT processed_at FROM provider_events WHERE event_id LIKE 'evt_backlog_%' ORDER BY processed_at"
        )
    ]
    urgent = await db_pool.fetchval(
        "SELECT max(processed_at) FROM provider_events WHERE event_id LIKE 'evt_dispute_%'"
    )
    # All three disputes were handled no later than the first of the backlog (in the first claim).
    assert urgent <= normal[0], (urgent, normal[0], normal[-1])


@pytest.mark.slow
async def test_another_merchants_events_about_the_same_payment_id_leave_each_merchant_its_own(
    service_env: dict[str, str],
    spawn_service: Callable[..., ServiceProcess],
    db_pool: asyncpg.Pool,
) -> None:
    """The reported probe, through the real API and processor: merchant B's account authorizes
    pay_SHARED1 (7000, its order, its salon); the test merchant, signing with its own secret,
    captures the same payment id with amount 1 (and reuses B's event id for another event); then
    B's own capture arrives. Each merchant keeps its own payment, events and invoice owners."""
    await db_pool.execute(
        """INSERT INTO merchants (id, name, email, api_key, api_secret_hash, webhook_secret)
           VALUES ('mer_other000000001', 'Other', 'other@example.com', 'key_other', 'x', 'whsec_other')"""
    )
    await db_pool.execute(
        """INSERT INTO provider_accounts (id, provider, account_id, merchant_id, webhook_secret)
           VALUES ('pacc_other', 'razorpay', 'acc_OtherAccount01', 'mer_other000000001', 'other-secret')"""
    )
    spawn_service("paystream_api", service_env)
    spawn_service("payment_processor", service_env)
    port, own_secret = service_env["API_PORT"], service_env["RAZORPAY_WEBHOOK_SECRET"]

    def payment(event_type: str, amount: int, order_id: str, salon_id: str, account: str) -> dict[str, Any]:
        document = payloads.razorpay(event_type, account_id=account)
        entity = document["payload"]["payment"]["entity"]
        entity.update(id="pay_SHARED1", amount=amount, order_id=order_id, notes={"salon_id": salon_id})
        return document

    other_account = "acc_OtherAccount01"
    own_other_payment = payloads.razorpay("payment.authorized")
    own_other_payment["payload"]["payment"]["entity"]["id"] = "pay_OWN1"
    steps = [
        ("other-secret", "evt_B_1", payment("payment.authorized", 7000, "order_B1", "7", other_account)),
        (own_secret, "evt_A_1", payment("payment.captured", 1, "order_A1", "42", "acc_BFQ7uQEaa7j2z7")),
        (own_secret, "evt_B_1", own_other_payment),  # B's event id, the test merchant's own event
        ("other-secret", "evt_B_2", payment("payment.captured", 7000, "order_B1", "7", other_account)),
    ]
    for n, (secret, event_id, document) in enumerate(steps, start=1):
        await post_events(port, secret, [(event_id, document)])

        async def handled(count: int = n) -> bool:  # in this order, as in the probe
            done = await db_pool.fetchval("SELECT count(*) FROM provider_events WHERE status = 'processed'")
            return bool(done == count)

        await eventually(handled, timeout=20, message=f"event {n} was not processed")

    rows = {
        row["merchant_id"]: tuple(row)[1:]
        for row in await db_pool.fetch(
            """SELECT merchant_id, status, amount, order_id, salon_id FROM provider_payments
               WHERE payment_id = 'pay_SHARED1'"""
        )
    }
    assert rows == {
        "mer_other000000001": ("success", 7000, "order_B1", "7"),
        "mer_test0000000001": ("success", 1, "order_A1", "42"),
    }
    events = [
        orjson.loads(row["payload"])
        for row in await db_pool.fetch(
            "SELECT payload FROM outbox WHERE stream = 'payment:events' ORDER BY id"
        )
    ]
    seen = sorted(
        (
            e["merchant_id"],
            e["type"],
            e["data"]["payment"]["id"],
            e["invoice_id"],
            e["data"]["payment"]["amount"],
        )
        for e in events
    )
    assert seen == sorted(
        [
            ("mer_other000000001", "payment.authorized", "pay_SHARED1", "order_B1", 7000),
            ("mer_other000000001", "payment.success", "pay_SHARED1", "order_B1", 7000),
            ("mer_test0000000001", "payment.success", "pay_SHARED1", "order_A1", 1),
            ("mer_test0000000001", "payment.authorized", "pay_OWN1", "order_9A33XWu170gUtm", 50000),
        ]
    )
    owners = sorted(
        tuple(row) for row in await db_pool.fetch("SELECT merchant_id, invoice_id FROM invoice_owners")
    )
    assert owners == [
        ("mer_other000000001", "order_B1"),
        ("mer_test0000000001", "order_9A33XWu170gUtm"),
        ("mer_test0000000001", "order_A1"),
    ]
