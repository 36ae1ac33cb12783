"""Razorpay event handlers against a real PostgreSQL: typed tables, forward-only state, audit rows,
domain events on `payment:events`, exactly once per stored event.

Each test stores events as the API does (a `provider_events` row, payload as sent) and runs the
processor's handling of that row: one event (`handle_one`) or a claim of the waiting ones
(`handle_waiting`).
"""

from __future__ import annotations

import asyncio
from typing import Any

import asyncpg
import orjson
import pytest
from provider_testkit import MERCHANT, domain_events, event_status, store_event

from payment_processor import provider_events
from payment_processor.provider_events.store import EventKey
from payment_processor.provider_events.work import Work
from paystream_devstack.testing import provider_payloads as payloads

PAYMENT = "pay_29QQoUBi66xm2f"
ORDER = "order_9A33XWu170gUtm"


async def store(pool: asyncpg.Pool, document: Any, event_id: str, provider: str = "razorpay") -> EventKey:
    """What the API commits for a verified webhook: the row; returns its key."""
    event_type = document.get("event", "unknown") if isinstance(document, dict) else "unknown"
    return await store_event(
        pool,
        provider=provider,
        event_id=event_id,
        event_type=event_type,
        payload=orjson.dumps(document).decode(),
        provider_account_id="pacc_test_razorpay",
        account_id=document.get("account_id") if isinstance(document, dict) else None,
    )


async def deliver(pool: asyncpg.Pool, event_type: str, event_id: str, **top_level: Any) -> EventKey:
    envelope = await store(pool, payloads.razorpay(event_type, **top_level), event_id)
    await provider_events.handle_one(pool, envelope)
    return envelope


async def test_every_event_type_has_a_handler_and_is_processed_with_an_audit_row(pool: asyncpg.Pool) -> None:
    for n, event_type in enumerate(payloads.RAZORPAY_EVENT_TYPES):
        await deliver(pool, event_type, f"evt_all_{n:03d}")
        status, reason = await event_status(pool, f"evt_all_{n:03d}")
        assert (status, reason) == ("processed", None), event_type
    audit = await pool.fetch("SELECT event_type, outcome FROM provider_event_audit")
    assert sorted(row["event_type"] for row in audit) == payloads.RAZORPAY_EVENT_TYPES
    assert {row["outcome"] for row in audit} == {"processed"}
    counts = {
        table: await pool.fetchval(f"SELECT count(*) FROM {table}")
        for table in (
            "provider_payments",
            "provider_orders",
            "provider_refunds",
            "disputes",
            "downtime_events",
            "invoices",
            "payment_links",
            "fund_account_validations",
            "account_events",
        )
    }
    assert all(counts.values()), counts
    # Bank account numbers are not copied out of the validation payload.
    entity = await pool.fetchval("SELECT entity::text FROM fund_account_validations")
    assert "765432123456789" not in entity


async def test_a_payment_authorized_then_captured_emits_authorized_then_success(pool: asyncpg.Pool) -> None:
    await deliver(pool, "payment.authorized", "evt_auth")
    await deliver(pool, "payment.captured", "evt_capt")
    events = await domain_events(pool)
    assert [e["type"] for e in events] == ["payment.authorized", "payment.success"]
    success = events[1]
    assert success["merchant_id"] == MERCHANT
    assert success["invoice_id"] == ORDER
    assert success["salon_id"] == "42"
    payment = success["data"]["payment"]
    assert payment["id"] == PAYMENT
    assert payment["status"] == "success"
    assert payment["provider_status"] == "captured"
    assert payment["amount"] == 50000
    assert payment["currency"] == "INR"
    assert payment["captured"] is True
    assert payment["order_id"] == ORDER
    assert payment["card_network"] == "visa"
    assert payment["card_last4"] == "1111"
    assert events[0]["data"]["payment"]["status"] == "pending"
    owner = await pool.fetchrow("SELECT * FROM invoice_owners WHERE invoice_id = $1", ORDER)
    assert (owner["merchant_id"], owner["salon_id"]) == (MERCHANT, "42")
    row = await pool.fetchrow("SELECT status, provider_status, status_rank FROM provider_payments")
    assert tuple(row) == ("success", "captured", 30)


async def test_captured_before_authorized_stays_captured(pool: asyncpg.Pool) -> None:
    await deliver(pool, "payment.captured", "evt_capt")
    await deliver(pool, "payment.authorized", "evt_auth_late")
    row = await pool.fetchrow(
        "SELECT status, provider_status FROM provider_payments WHERE payment_id = $1", PAYMENT
    )
    assert tuple(row) == ("success", "captured")
    assert [e["type"] for e in await domain_events(pool)] == ["payment.success"]
    assert await event_status(pool, "evt_auth_late") == ("processed", None)
    audit = await pool.fetchrow(
        "SELECT changes, emitted FROM provider_event_audit WHERE event_id = 'evt_auth_late'"
    )
    assert audit["changes"] == [] and audit["emitted"] == []


async def test_a_failed_payment_emits_payment_failed_with_the_error(pool: asyncpg.Pool) -> None:
    await deliver(pool, "payment.failed", "evt_fail")
    [event] = await domain_events(pool)
    assert event["type"] == "payment.failed"
    assert event["invoice_id"] == "order_9A33XWu170gUtn"
    payment = event["data"]["payment"]
    assert payment["status"] == "failed"
    assert payment["error_code"] == "BAD_REQUEST_ERROR"
    assert payment["error_description"] == "Payment failed due to incorrect card details"


async def test_the_same_state_reported_twice_emits_once(pool: asyncpg.Pool) -> None:
    await deliver(pool, "payment.captured", "evt_capt_1")
    await deliver(pool, "payment.captured", "evt_capt_2")  # another event id, same news
    await deliver(pool, "order.paid", "evt_order_paid")  # carries the captured payment too
    assert [e["type"] for e in await domain_events(pool)] == ["payment.success", "order.paid"]


async def test_an_event_handled_again_changes_nothing(pool: asyncpg.Pool) -> None:
    key = await deliver(pool, "payment.captured", "evt_once")
    await provider_events.handle_one(pool, key)
    await provider_events.handle_one(pool, key)
    assert await provider_events.handle_waiting(pool) == 0
    assert len(await domain_events(pool)) == 1
    assert await pool.fetchval("SELECT count(*) FROM provider_event_audit") == 1
    assert await event_status(pool, "evt_once") == ("processed", None)
    assert await pool.fetchval("SELECT count(*) FROM inbox") == 0  # the row's status is its inbox


async def test_a_won_dispute_is_not_reopened_by_a_late_created(pool: asyncpg.Pool) -> None:
    await deliver(pool, "payment.dispute.won", "evt_won")
    await deliver(pool, "payment.dispute.created", "evt_created_late")
    await deliver(pool, "payment.dispute.under_review", "evt_review_late")
    row = await pool.fetchrow("SELECT status, status_rank, payment_id FROM disputes")
    assert tuple(row) == ("won", 30, PAYMENT)
    events = await domain_events(pool)
    assert [e["type"] for e in events] == ["payment.success", "payment.dispute.won"]
    dispute = events[1]
    assert dispute["data"]["dispute"]["id"] == "disp_AHfqOvkldwsbqt"
    assert dispute["data"]["dispute"]["status"] == "won"
    assert dispute["invoice_id"] == ORDER and dispute["salon_id"] == "42"


async def test_a_dispute_moves_through_its_stages_in_time_order(pool: asyncpg.Pool) -> None:
    await deliver(pool, "payment.dispute.created", "evt_d1")
    await deliver(pool, "payment.dispute.under_review", "evt_d3")  # created_at T+7200
    await deliver(pool, "payment.dispute.action_required", "evt_d2")  # older (T+5400): no change
    assert await pool.fetchval("SELECT status FROM disputes") == "under_review"
    await deliver(pool, "payment.dispute.lost", "evt_d4")
    await deliver(pool, "payment.dispute.won", "evt_d5")  # final stays final
    assert await pool.fetchval("SELECT status FROM disputes") == "lost"
    types = [e["type"] for e in await domain_events(pool) if e["type"].startswith("payment.dispute")]
    assert types == ["payment.dispute.created", "payment.dispute.under_review", "payment.dispute.lost"]


async def test_refunds_move_forward_and_emit_refund_events(pool: asyncpg.Pool) -> None:
    await deliver(pool, "payment.captured", "evt_capt")
    await deliver(pool, "refund.created", "evt_r1")
    await deliver(pool, "refund.speed_changed", "evt_r2")
    await deliver(pool, "refund.processed", "evt_r3")
    assert await pool.fetchval("SELECT amount_refunded FROM provider_payments") == 20000
    await deliver(pool, "refund.failed", "evt_r4")  # processed is final
    refund = await pool.fetchrow("SELECT * FROM provider_refunds")
    assert (refund["status"], refund["speed_processed"]) == ("processed", "normal")
    events = [e for e in await domain_events(pool) if e["type"].startswith("refund.")]
    assert [e["type"] for e in events] == ["refund.created", "refund.speed_changed", "refund.processed"]
    assert events[1]["data"]["refund"]["speed_processed"] == "instant"
    processed = events[2]
    assert processed["invoice_id"] == ORDER and processed["salon_id"] == "42"
    assert processed["data"]["refund"]["amount"] == 20000
    assert processed["data"]["refund"]["payment_id"] == PAYMENT
    assert processed["data"]["refund"]["status"] == "processed"


async def test_order_invoice_and_link_events(pool: asyncpg.Pool) -> None:
    await deliver(pool, "order.paid", "evt_o1")
    await deliver(pool, "order.notification.delivered", "evt_o2")
    assert tuple(await pool.fetchrow("SELECT status, notification_status FROM provider_orders")) == (
        "paid",
        "delivered",
    )
    await deliver(pool, "invoice.partially_paid", "evt_i1")
    await deliver(pool, "invoice.paid", "evt_i2")
    await deliver(pool, "invoice.expired", "evt_i3")  # paid stands
    assert await pool.fetchval("SELECT status FROM invoices") == "paid"
    await deliver(pool, "payment_link.partially_paid", "evt_l1")
    await deliver(pool, "payment_link.cancelled", "evt_l2")
    await deliver(pool, "payment_link.paid", "evt_l3")  # money that arrived counts over a cancel
    assert await pool.fetchval("SELECT status FROM payment_links") == "paid"
    events = await domain_events(pool)
    types = [e["type"] for e in events]
    assert types == [
        "payment.success",
        "order.paid",
        "payment.success",
        "invoice.partially_paid",
        "invoice.paid",
        "payment.success",
        "payment_link.partially_paid",
        "payment_link.cancelled",
        "payment_link.paid",
    ]
    invoice_paid = events[4]
    assert invoice_paid["invoice_id"] == "inv_DAweOiQ7amIUVd"
    assert invoice_paid["data"]["invoice"]["status"] == "paid"
    assert invoice_paid["data"]["payment"]["id"] == "pay_DAwmpIvMJyXRrr"
    assert events[2]["invoice_id"] == "inv_DAweOiQ7amIUVd"  # the invoice's payment names the invoice
    assert events[8]["invoice_id"] == "order_ERgiiUlAxvJSaL"
    common = {
        "id",
        "entity",
        "provider",
        "order_id",
        "amount",
        "amount_paid",
        "currency",
        "status",
        "short_url",
        "updated_at",
    }
    assert set(invoice_paid["data"]["invoice"]) == common | {"payment_id", "amount_due"}
    link = events[8]["data"]["payment_link"]
    assert set(link) == common | {"reference_id"}
    assert (link["entity"], link["status"], link["provider"]) == ("payment_link", "paid", "razorpay")


async def test_downtime_moves_to_resolved_and_emits_nothing(pool: asyncpg.Pool) -> None:
    await deliver(pool, "payment.downtime.resolved", "evt_dt3")
    await deliver(pool, "payment.downtime.started", "evt_dt1")
    await deliver(pool, "payment.downtime.updated", "evt_dt2")
    row = await pool.fetchrow("SELECT status, method, severity, end_at FROM downtime_events")
    assert (row["status"], row["method"], row["severity"]) == ("resolved", "upi", "high")
    assert row["end_at"] is not None
    assert await domain_events(pool) == []


async def test_an_unknown_type_is_stored_and_ignored(pool: asyncpg.Pool) -> None:
    await deliver(pool, "payment.captured", "evt_unknown", event="settlement.processed")
    status, reason = await event_status(pool, "evt_unknown")
    assert status == "ignored"
    assert "settlement.processed" in (reason or "")
    assert await pool.fetchval("SELECT count(*) FROM provider_payments") == 0
    assert await pool.fetchval("SELECT outcome FROM provider_event_audit") == "ignored"


async def test_an_event_without_its_entity_is_rejected_and_writes_nothing(pool: asyncpg.Pool) -> None:
    document = payloads.razorpay("refund.processed")
    del document["payload"]["refund"]
    envelope = await store(pool, document, "evt_no_refund")
    await provider_events.handle_one(pool, envelope)
    assert await event_status(pool, "evt_no_refund") == ("rejected", "payload.refund.entity.id is missing")
    # The embedded payment was not kept either: a rejected event has no effect at all.
    assert await pool.fetchval("SELECT count(*) FROM provider_payments") == 0
    assert await domain_events(pool) == []
    assert await pool.fetchval("SELECT outcome FROM provider_event_audit") == "rejected"


async def test_a_payment_without_an_amount_is_rejected(pool: asyncpg.Pool) -> None:
    document = payloads.razorpay("payment.captured")
    document["payload"]["payment"]["entity"]["amount"] = "500.00"
    envelope = await store(pool, document, "evt_bad_amount")
    await provider_events.handle_one(pool, envelope)
    status, reason = await event_status(pool, "evt_bad_amount")
    assert status == "rejected" and "amount" in (reason or "")


# Claims: the waiting rows, many per transaction, most urgent first.


async def stored_capture(pool: asyncpg.Pool, event_id: str, payment_id: str, **entity: Any) -> EventKey:
    document = payloads.razorpay("payment.captured")
    document["payload"]["payment"]["entity"].update(id=payment_id, **entity)
    return await store(pool, document, event_id)


async def test_a_claim_handles_every_waiting_event_once_in_one_transaction(pool: asyncpg.Pool) -> None:
    for n in range(3):
        await stored_capture(pool, f"evt_batch_{n}", f"pay_batch_{n}")
    assert await provider_events.handle_waiting(pool) == 3
    assert sorted(e["data"]["payment"]["id"] for e in await domain_events(pool)) == [
        "pay_batch_0",
        "pay_batch_1",
        "pay_batch_2",
    ]
    audit = await pool.fetch("SELECT event_id, outcome, emitted, created_at FROM provider_event_audit")
    assert sorted(row["event_id"] for row in audit) == ["evt_batch_0", "evt_batch_1", "evt_batch_2"]
    assert {row["outcome"] for row in audit} == {"processed"}
    assert {tuple(row["emitted"]) for row in audit} == {("payment.success",)}
    assert len({row["created_at"] for row in audit}) == 1  # now(): one transaction
    # Nothing waits any more: the next claim takes nothing and changes nothing.
    assert await provider_events.handle_waiting(pool) == 0
    assert len(await domain_events(pool)) == 3
    assert await pool.fetchval("SELECT count(*) FROM provider_event_audit") == 3


async def test_a_rejected_event_in_a_batch_is_rejected_alone_and_the_others_are_processed(
    pool: asyncpg.Pool,
) -> None:
    await stored_capture(pool, "evt_good_0", "pay_good_0")
    await stored_capture(pool, "evt_bad", "pay_bad", amount="500.00")
    await stored_capture(pool, "evt_good_1", "pay_good_1")
    await provider_events.handle_waiting(pool)
    assert await event_status(pool, "evt_good_0") == ("processed", None)
    assert await event_status(pool, "evt_good_1") == ("processed", None)
    status, reason = await event_status(pool, "evt_bad")
    assert status == "rejected" and "amount" in (reason or "")
    payments = await pool.fetch("SELECT payment_id FROM provider_payments ORDER BY payment_id")
    assert [row["payment_id"] for row in payments] == ["pay_good_0", "pay_good_1"]
    assert len(await domain_events(pool)) == 2


async def test_an_event_whose_handling_keeps_failing_ends_failed_and_holds_back_nothing(
    pool: asyncpg.Pool, monkeypatch: pytest.MonkeyPatch
) -> None:
    real_handler_for = provider_events.handler_for

    def handler_for(provider: str, event_type: str) -> Any:
        handler = real_handler_for(provider, event_type)

        async def failing(work: Work) -> None:
            if work.event.event_id == "evt_poison":
                raise RuntimeError("a bug in the handler")
            assert handler is not None
            await handler(work)

        return failing

    monkeypatch.setattr(provider_events, "handler_for", handler_for)
    await stored_capture(pool, "evt_poison", "pay_poison")
    await stored_capture(pool, "evt_fine", "pay_fine")
    await provider_events.handle_waiting(pool, max_attempts=3)
    assert await event_status(pool, "evt_fine") == ("processed", None)
    for attempts in (1, 2):
        row = await pool.fetchrow(
            "SELECT status, attempts, last_error FROM provider_events WHERE event_id = 'evt_poison'"
        )
        assert (row["status"], row["attempts"]) == ("received", attempts)
        assert "a bug in the handler" in row["last_error"]
        await provider_events.handle_waiting(pool, max_attempts=3)
    row = await pool.fetchrow(
        "SELECT status, attempts, processed_at FROM provider_events WHERE event_id = 'evt_poison'"
    )
    assert (row["status"], row["attempts"]) == ("failed", 3) and row["processed_at"] is not None
    assert await provider_events.handle_waiting(pool, max_attempts=3) == 0  # a failed event is not claimed
    assert [e["data"]["payment"]["id"] for e in await domain_events(pool)] == ["pay_fine"]


async def test_urgent_events_are_claimed_ahead_of_a_backlog(pool: asyncpg.Pool) -> None:
    for n in range(5):
        await stored_capture(pool, f"evt_bulk_{n}", f"pay_bulk_{n}")
    dispute = await store(pool, payloads.razorpay("payment.dispute.created"), "evt_dispute")
    await pool.execute("UPDATE provider_events SET priority = 1 WHERE event_id = $1", dispute[2])
    assert await provider_events.handle_waiting(pool, max_batch=1) == 1
    assert await event_status(pool, "evt_dispute") == ("processed", None)
    assert await pool.fetchval("SELECT count(*) FROM provider_events WHERE status = 'received'") == 5


async def test_concurrent_claims_share_the_waiting_events_and_handle_each_once(pool: asyncpg.Pool) -> None:
    for n in range(40):
        await stored_capture(pool, f"evt_conc_{n}", f"pay_conc_{n}")

    async def claim_until_empty() -> int:
        total = 0
        while handled := await provider_events.handle_waiting(pool, max_batch=7):
            total += handled
        return total

    assert sum(await asyncio.gather(claim_until_empty(), claim_until_empty())) == 40
    assert await pool.fetchval("SELECT count(*) FROM provider_payments WHERE status = 'success'") == 40
    assert await pool.fetchval("SELECT count(*) FROM provider_event_audit") == 40
    assert len(await domain_events(pool)) == 40
