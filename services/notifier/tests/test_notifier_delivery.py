"""Live delivery through rooms: isolation between merchants and salons, subscriptions, exactly once."""

from __future__ import annotations

import asyncio

import asyncpg
import pytest
import redis.asyncio as aioredis

from paystream import outbox
from paystream.events import Event, EventType, Stream
from paystream.invoices import record_invoice_owner
from paystream.outbox import OutboxRelay
from paystream.settings import OutboxSettings
from paystream_devstack.testing.notifier_client import (
    MERCHANT_A,
    MERCHANT_B,
    Client,
    ClientFactory,
    OwnerRecorder,
    make_token,
    payment_event,
    publish,
)


async def settle(
    redis: aioredis.Redis, *clients: Client, merchant_id: str = MERCHANT_A, salon_id: str | None = None
) -> None:
    """Publish a marker every client sees, and wait for it: whatever was published before it and
    meant for them has arrived (each socket receives in stream order)."""
    marker = payment_event(
        EventType.PAYMENT_CAPTURED, merchant_id=merchant_id, salon_id=salon_id, invoice_id="marker"
    )
    await publish(redis, marker)
    await asyncio.gather(*(client.wait_for_id(marker.id) for client in clients))
    for client in clients:
        client.received = [item for item in client.received if item.data.get("eventId") != marker.id]


async def test_status_update_and_completed_arrive_once(
    notifier_url: str, connect_client: ClientFactory, owners: OwnerRecorder, redis: aioredis.Redis
) -> None:
    await owners(MERCHANT_A, "ord_test_001", "SALON1")
    # A salon socket is in its merchant room, its salon room and, once subscribed, the payment room.
    client = await connect_client(notifier_url, token=make_token(MERCHANT_A, salon_id="SALON1"))
    assert await client.subscribe("ord_test_001") == {"ok": True}

    pending = payment_event(EventType.PAYMENT_PENDING, salon_id="SALON1")
    success = payment_event(EventType.PAYMENT_SUCCESS, salon_id="SALON1")
    await publish(redis, pending, success)

    completed = await client.wait_for("payment:completed")
    marker = payment_event(EventType.PAYMENT_CAPTURED, salon_id="SALON1")
    await publish(redis, marker)
    await client.wait_for_id(marker.id)

    assert client.event_ids("payment:status-update") == [pending.id, success.id, marker.id]
    assert client.event_ids("payment:completed") == [success.id]
    assert completed[0] == {
        "invoiceId": "ord_test_001",
        "paymentId": "pay_AAAAAAAAAAAAAAAA",
        "status": "SUCCESS",
        "amount": 50000,
        "currency": "INR",
        "timestamp": success.occurred_at.isoformat(timespec="milliseconds").replace("+00:00", "Z"),
        "eventId": success.id,
    }
    assert client.events("payment:status-update")[0]["status"] == "PENDING"


async def test_merchants_never_see_each_others_events(
    notifier_url: str, connect_client: ClientFactory, owners: OwnerRecorder, redis: aioredis.Redis
) -> None:
    # The same invoice id at two merchants: ids are only unique per merchant.
    await owners(MERCHANT_A, "ord_test_001")
    await owners(MERCHANT_B, "ord_test_001")
    client_a = await connect_client(notifier_url, token=make_token(MERCHANT_A))
    client_b = await connect_client(notifier_url, token=make_token(MERCHANT_B))
    assert await client_a.subscribe("ord_test_001") == {"ok": True}
    assert await client_b.subscribe("ord_test_001") == {"ok": True}

    for_a = payment_event(EventType.PAYMENT_SUCCESS, merchant_id=MERCHANT_A)
    for_b = payment_event(EventType.PAYMENT_FAILED, merchant_id=MERCHANT_B, payment_id="pay_BBBBBBBBBBBBBBBB")
    await publish(redis, for_a, for_b)
    await settle(redis, client_a)
    await settle(redis, client_b, merchant_id=MERCHANT_B)

    assert client_a.event_ids("payment:status-update") == [for_a.id]
    assert client_a.event_ids("payment:completed") == [for_a.id]
    assert client_b.event_ids("payment:status-update") == [for_b.id]
    assert client_b.event_ids("payment:completed") == [for_b.id]
    assert client_b.events("payment:completed")[0]["status"] == "FAILED"
    assert client_b.events("payment:completed")[0]["errorCode"] == "PAYMENT_DECLINED"


async def test_salons_are_isolated_and_the_merchant_sees_all(
    notifier_url: str, connect_client: ClientFactory, redis: aioredis.Redis
) -> None:
    salon_1 = await connect_client(notifier_url, token=make_token(MERCHANT_A, salon_id="SALON1"))
    salon_2 = await connect_client(notifier_url, token=make_token(MERCHANT_A, salon_id="SALON2", sub="u2"))
    merchant = await connect_client(notifier_url, token=make_token(MERCHANT_A, sub="owner"))
    # The same salon id at another merchant is another salon.
    other_merchant_salon_1 = await connect_client(
        notifier_url, token=make_token(MERCHANT_B, salon_id="SALON1")
    )

    at_salon_1 = payment_event(salon_id="SALON1", invoice_id="inv_1")
    at_salon_2 = payment_event(salon_id="SALON2", invoice_id="inv_2")
    no_salon = payment_event(invoice_id="inv_3")
    at_b_salon_1 = payment_event(merchant_id=MERCHANT_B, salon_id="SALON1", invoice_id="inv_b")
    await publish(redis, at_salon_1, at_salon_2, no_salon, at_b_salon_1)
    marker_1 = payment_event(salon_id="SALON1", invoice_id="marker_1")
    marker_2 = payment_event(salon_id="SALON2", invoice_id="marker_2")
    await publish(redis, marker_1, marker_2)
    await asyncio.gather(
        salon_1.wait_for_id(marker_1.id), salon_2.wait_for_id(marker_2.id), merchant.wait_for_id(marker_2.id)
    )
    await settle(redis, other_merchant_salon_1, merchant_id=MERCHANT_B, salon_id="SALON1")

    def invoices(client: Client) -> list[str]:
        return [update["invoiceId"] for update in client.events("payment:status-update")]

    assert invoices(merchant) == ["inv_1", "inv_2", "inv_3", "marker_1", "marker_2"]
    assert invoices(salon_1) == ["inv_1", "marker_1"]
    assert invoices(salon_2) == ["inv_2", "marker_2"]
    assert invoices(other_merchant_salon_1) == ["inv_b"]


@pytest.mark.parametrize(
    ("owner_merchant", "owner_salon", "token_salon"),
    [(MERCHANT_B, None, None), (MERCHANT_A, "SALON2", "SALON1"), (None, None, None)],
    ids=["other-merchant", "other-salon", "unknown"],
)
async def test_subscribing_to_a_foreign_invoice_is_refused(
    notifier_url: str,
    connect_client: ClientFactory,
    owners: OwnerRecorder,
    redis: aioredis.Redis,
    owner_merchant: str | None,
    owner_salon: str | None,
    token_salon: str | None,
) -> None:
    if owner_merchant is not None:
        await owners(owner_merchant, "ord_foreign", owner_salon)
    client = await connect_client(notifier_url, token=make_token(MERCHANT_A, salon_id=token_salon))

    assert await client.subscribe("ord_foreign") == {"ok": False, "error": "invoice not found"}

    owner = owner_merchant or MERCHANT_A
    # The invoice settles; a later event the client does see proves the reader got past it.
    await publish(redis, payment_event(merchant_id=owner, salon_id=owner_salon, invoice_id="ord_foreign"))
    marker = payment_event(EventType.PAYMENT_PENDING, salon_id=token_salon, invoice_id="marker")
    await publish(redis, marker)
    await client.wait_for_id(marker.id)

    assert client.events("payment:completed") == []


async def test_subscribe_validates_its_request(notifier_url: str, connect_client: ClientFactory) -> None:
    client = await connect_client(notifier_url, token=make_token(MERCHANT_A))

    assert await client.subscribe("") == {"ok": False, "error": "invoiceId is required"}
    assert await client.subscribe(42) == {"ok": False, "error": "invoiceId is required"}
    assert await client.sio.call("subscribe:payment-events", "ord_1", timeout=5) == {
        "ok": False,
        "error": "invoiceId is required",
    }
    # Never sent to PostgreSQL (which refuses NUL): a clear refusal, and the socket keeps working.
    for bad in ("ord_\x00", "ord_\x01", "ord_\udcff"):
        assert await client.subscribe(bad) == {"ok": False, "error": "invoiceId is required"}
    assert await client.subscribe("ord_unknown") == {"ok": False, "error": "invoice not found"}


async def test_unsubscribe_stops_completed_events(
    notifier_url: str, connect_client: ClientFactory, owners: OwnerRecorder, redis: aioredis.Redis
) -> None:
    await owners(MERCHANT_A, "ord_1")
    await owners(MERCHANT_A, "ord_2")
    client = await connect_client(notifier_url, token=make_token(MERCHANT_A))
    assert await client.subscribe("ord_1") == {"ok": True}
    assert await client.subscribe("ord_2") == {"ok": True}
    assert await client.unsubscribe("ord_1") == {"ok": True}

    first = payment_event(invoice_id="ord_1")
    second = payment_event(invoice_id="ord_2", payment_id="pay_2222222222222222")
    await publish(redis, first, second)
    await settle(redis, client)

    assert client.event_ids("payment:completed") == [second.id]


async def test_refunds_and_saved_cards(
    notifier_url: str, connect_client: ClientFactory, redis: aioredis.Redis
) -> None:
    salon_1 = await connect_client(notifier_url, token=make_token(MERCHANT_A, salon_id="SALON1"))
    salon_2 = await connect_client(notifier_url, token=make_token(MERCHANT_A, salon_id="SALON2"))
    refund = Event(
        type=EventType.REFUND_PROCESSED,
        merchant_id=MERCHANT_A,
        salon_id="SALON1",
        invoice_id="ord_1",
        data={
            "refund": {
                "id": "rfnd_AAAAAAAAAAAAAAAA",
                "payment_id": "pay_AAAAAAAAAAAAAAAA",
                "amount": 1000,
                "currency": "INR",
                "status": "processed",
            }
        },
    )
    token_saved = Event(
        type=EventType.TOKEN_SAVED,
        merchant_id=MERCHANT_A,
        salon_id="SALON1",
        invoice_id="INV-77",
        data={
            "token": {
                "tokenId": "tok_123",
                "maskedCardNo": "411111******1111",
                "exp": "12/30",
                "scheme": "VISA",
                "cardHolderName": "A Customer",
                "nickname": "work card",
                "defaultCard": True,
                "cardNumber": "4111111111111111",
                "reference": "4111 1111 1111 1111",
                "cvv": "123",
            }
        },
    )
    await publish(redis, refund, token_saved)
    marker_1 = payment_event(salon_id="SALON1", invoice_id="marker_1")
    marker_2 = payment_event(salon_id="SALON2", invoice_id="marker_2")
    await publish(redis, marker_1, marker_2)
    await salon_1.wait_for_id(marker_1.id)
    await salon_2.wait_for_id(marker_2.id)
    saved = salon_1.events("payment:token-saved")
    refunds = salon_1.events("refund:status-update")

    assert refunds == [
        {
            "invoiceId": "ord_1",
            "refundId": "rfnd_AAAAAAAAAAAAAAAA",
            "paymentId": "pay_AAAAAAAAAAAAAAAA",
            "status": "PROCESSED",
            "amount": 1000,
            "currency": "INR",
            "timestamp": refund.occurred_at.isoformat(timespec="milliseconds").replace("+00:00", "Z"),
            "eventId": refund.id,
        }
    ]
    assert saved[0]["token"] == {
        "tokenId": "tok_123",
        "maskedCardNo": "411111******1111",
        "expiry": "12/30",
        "scheme": "VISA",
        "holderName": "A Customer",
        "nickname": "work card",
        "defaultCard": True,
    }
    assert "4111111111111111" not in repr(saved)
    assert salon_2.events("payment:token-saved") == []
    assert salon_2.events("refund:status-update") == []


async def test_polling_transport_delivers(
    notifier_url: str, connect_client: ClientFactory, owners: OwnerRecorder, redis: aioredis.Redis
) -> None:
    await owners(MERCHANT_A, "ord_poll")
    client = await connect_client(notifier_url, token=make_token(MERCHANT_A), transport="polling")
    assert await client.subscribe("ord_poll") == {"ok": True}

    event = payment_event(invoice_id="ord_poll")
    await publish(redis, event)

    assert (await client.wait_for("payment:completed"))[0]["eventId"] == event.id


async def test_republished_event_is_delivered_once(
    notifier_url: str, connect_client: ClientFactory, redis: aioredis.Redis
) -> None:
    client = await connect_client(notifier_url, token=make_token(MERCHANT_A))
    event = payment_event()
    # An outbox relay that crashed between XADD and its commit publishes the same event again.
    await publish(redis, event, event)
    await settle(redis, client)

    assert client.event_ids("payment:status-update") == [event.id]


async def test_events_committed_through_the_outbox_reach_the_client(
    notifier_url: str,
    connect_client: ClientFactory,
    db_pool: asyncpg.Pool,
    redis: aioredis.Redis,
    clean_db: str,
) -> None:
    client = await connect_client(notifier_url, token=make_token(MERCHANT_A, salon_id="SALON7"))
    event = payment_event(EventType.PAYMENT_SUCCESS, salon_id="SALON7", invoice_id="ord_outbox")
    async with db_pool.acquire() as conn, conn.transaction():
        await record_invoice_owner(conn, MERCHANT_A, "ord_outbox", "SALON7")
        await outbox.enqueue(conn, Stream.PAYMENT_EVENTS, [event])
    assert await client.subscribe("ord_outbox") == {"ok": True}

    relay = OutboxRelay(db_pool, redis, OutboxSettings(), listen_dsn=clean_db)
    assert await relay.publish_pending() == 1

    completed = await client.wait_for("payment:completed")
    assert completed[0]["eventId"] == event.id
    assert client.event_ids("payment:status-update") == [event.id]


async def test_a_checkout_token_sees_only_its_own_invoice(
    notifier_url: str, connect_client: ClientFactory, owners: OwnerRecorder, redis: aioredis.Redis
) -> None:
    await owners(MERCHANT_A, "ord_checkout")
    await owners(MERCHANT_A, "ord_other")
    checkout = await connect_client(notifier_url, token=make_token(MERCHANT_A, invoice_id="ord_checkout"))
    merchant = await connect_client(notifier_url, token=make_token(MERCHANT_A))
    # Another invoice of the same merchant, even one that exists, is refused.
    assert await checkout.subscribe("ord_other") == {"ok": False, "error": "invoice not found"}
    assert await checkout.subscribe("ord_checkout") == {"ok": True}

    other = payment_event(invoice_id="ord_other", payment_id="pay_OTHER00000000000")
    own = payment_event(invoice_id="ord_checkout", payment_id="pay_OWN0000000000000")
    await publish(redis, other, own)
    # Delivery is in order: once its own invoice's completion is here, anything else would be too.
    await checkout.wait_for_id(own.id, name="payment:completed")
    await merchant.wait_for_id(own.id)

    # The merchant-wide stream (the merchant room) never reaches the payer's browser.
    seen = {item.data.get("eventId") for item in checkout.received}
    assert other.id not in seen
    assert checkout.event_ids("payment:completed") == [own.id]
    assert {other.id, own.id} <= set(merchant.event_ids("payment:status-update"))
