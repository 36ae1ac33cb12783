"""Provider ids are unique only within a merchant's provider account: two merchants' accounts sending
events with the same event ids about the same object ids (payments, orders, refunds, disputes,
downtimes, invoices, payment links, validations, account events, PAYable transactions and saved
cards) each keep their own rows, statuses, amounts, invoice owners and domain events.

Events are stored as the API stores them (a `provider_events` row with the merchant of the account
that signed it) and handled by the processor against a real PostgreSQL.
"""

from __future__ import annotations

import copy
from typing import Any

import asyncpg
import orjson
from provider_testkit import store_event

from payment_processor import provider_events
from paystream_devstack.testing import provider_payloads as payloads

MERCHANT_A = "mer_test0000000001"  # the test merchant
MERCHANT_B = "mer_other000000001"
ACCOUNT = {MERCHANT_A: "pacc_test_razorpay", MERCHANT_B: "pacc_other_razorpay"}
PAYABLE_ACCOUNT = {MERCHANT_A: ("pacc_test_payable", "PAYABLE_TEST_KEY"), MERCHANT_B: ("pacc_b", "B_KEY")}
TYPED_TABLES = {
    "provider_payments": "payment_id",
    "provider_orders": "order_id",
    "provider_refunds": "refund_id",
    "disputes": "dispute_id",
    "downtime_events": "downtime_id",
    "invoices": "invoice_id",
    "payment_links": "payment_link_id",
    "fund_account_validations": "validation_id",
    "account_events": "event_id",
    "saved_card_tokens": "token_id",
}
# Differ from one run to the next, not from one merchant to the other.
VOLATILE = {"created_at", "updated_at", "processed_at", "received_at", "id", "occurred_at"}


async def deliver(
    pool: asyncpg.Pool, merchant_id: str, document: dict[str, Any], event_id: str, provider: str = "razorpay"
) -> None:
    """What the API commits for a verified webhook of the merchant's account, then its handling."""
    account, account_id = (
        PAYABLE_ACCOUNT[merchant_id]
        if provider == "payable"
        else (ACCOUNT[merchant_id], document["account_id"])
    )
    event_type = document.get("event", "payment") if provider == "razorpay" else "payment"
    envelope = await store_event(
        pool,
        provider=provider,
        event_id=event_id,
        event_type=event_type,
        payload=orjson.dumps(document).decode(),
        provider_account_id=account,
        account_id=account_id,
        merchant_id=merchant_id,
    )
    await provider_events.handle_one(pool, envelope)


def as_merchant_b(document: dict[str, Any]) -> dict[str, Any]:
    """The same event (same ids) from merchant B's account, with B's own amounts and salon."""
    changed = copy.deepcopy(document)
    changed["account_id"] = "acc_OtherAccount01"
    for wrapper in changed.get("payload", {}).values():
        entity = wrapper.get("entity") if isinstance(wrapper, dict) else None
        if not isinstance(entity, dict):
            continue
        for field in ("amount", "amount_paid", "amount_refunded"):
            if isinstance(entity.get(field), int) and entity[field]:
                entity[field] += 7
        if isinstance(entity.get("notes"), dict) and "salon_id" in entity["notes"]:
            entity["notes"]["salon_id"] = "7"
    return changed


def _stable(value: Any) -> Any:
    """A value without what changes between runs (timestamps, serial ids), for comparison."""
    if isinstance(value, dict):
        return {key: _stable(item) for key, item in value.items() if key not in VOLATILE}
    if isinstance(value, list):
        return [_stable(item) for item in value]
    return value


async def merchant_view(pool: asyncpg.Pool, merchant_id: str) -> dict[str, Any]:
    """Everything the merchant's provider events left: typed rows, event outcomes, audit rows,
    invoice owners and the domain events on `payment:events`."""
    view: dict[str, Any] = {}
    for table, key in TYPED_TABLES.items():
        rows = await pool.fetch(f"SELECT * FROM {table} WHERE merchant_id = $1 ORDER BY {key}", merchant_id)
        view[table] = [_stable(dict(row)) for row in rows]
    view["provider_events"] = [
        tuple(row)
        for row in await pool.fetch(
            "SELECT event_id, status, reason FROM provider_events WHERE merchant_id = $1 ORDER BY event_id",
            merchant_id,
        )
    ]
    view["audit"] = [
        _stable(dict(row))
        for row in await pool.fetch(
            """SELECT event_id, outcome, reason, changes, emitted FROM provider_event_audit
               WHERE merchant_id = $1 ORDER BY event_id""",
            merchant_id,
        )
    ]
    view["invoice_owners"] = [
        tuple(row)
        for row in await pool.fetch(
            "SELECT invoice_id, salon_id FROM invoice_owners WHERE merchant_id = $1 ORDER BY invoice_id",
            merchant_id,
        )
    ]
    events = [
        orjson.loads(row["payload"])
        for row in await pool.fetch(
            "SELECT payload FROM outbox WHERE stream = 'payment:events' AND merchant_id = $1 ORDER BY id",
            merchant_id,
        )
    ]
    assert all(event["merchant_id"] == merchant_id for event in events)
    view["payment_events"] = [_stable(event) for event in events]
    return view


async def empty(pool: asyncpg.Pool) -> None:
    tables = [*TYPED_TABLES, "provider_events", "provider_event_audit", "invoice_owners", "outbox", "inbox"]
    await pool.execute(f"TRUNCATE {', '.join(tables)}")


async def test_the_reported_probe_another_merchants_capture_of_the_same_payment_id(
    pool: asyncpg.Pool,
) -> None:
    """Merchant B's `payment.authorized` for pay_SHARED1 (7000, its order, its salon); the test
    merchant, signing with its own account, sends `payment.captured` for the same id with amount 1;
    then B's own capture arrives. (Event ids that collide too: the next test.)"""

    def payment(event_type: str, amount: int, order_id: str, salon_id: str) -> dict[str, Any]:
        document = payloads.razorpay(event_type)
        entity = document["payload"]["payment"]["entity"]
        entity.update(id="pay_SHARED1", amount=amount, order_id=order_id, notes={"salon_id": salon_id})
        return document

    await deliver(pool, MERCHANT_B, payment("payment.authorized", 7000, "order_B1", "b-salon"), "evt_B_1")
    await deliver(pool, MERCHANT_A, payment("payment.captured", 1, "order_A1", "42"), "evt_A_1")
    await deliver(pool, MERCHANT_B, payment("payment.captured", 7000, "order_B1", "b-salon"), "evt_B_2")

    rows = {
        row["merchant_id"]: row
        for row in await pool.fetch("SELECT * FROM provider_payments WHERE payment_id = 'pay_SHARED1'")
    }
    assert set(rows) == {MERCHANT_A, MERCHANT_B}
    b_row, a_row = rows[MERCHANT_B], rows[MERCHANT_A]
    assert (b_row["status"], b_row["amount"], b_row["order_id"], b_row["salon_id"]) == (
        "success",
        7000,
        "order_B1",
        "b-salon",
    )
    assert (a_row["status"], a_row["amount"], a_row["order_id"], a_row["salon_id"]) == (
        "success",
        1,
        "order_A1",
        "42",
    )
    assert await pool.fetchval("SELECT count(*) FROM provider_events WHERE status = 'processed'") == 3

    events = [
        orjson.loads(row["payload"])
        for row in await pool.fetch("SELECT payload FROM outbox WHERE stream = 'payment:events' ORDER BY id")
    ]
    by_merchant = {
        merchant: [
            (e["type"], e["invoice_id"], e["salon_id"], e["data"]["payment"]["amount"])
            for e in events
            if e["merchant_id"] == merchant
        ]
        for merchant in (MERCHANT_A, MERCHANT_B)
    }
    assert by_merchant[MERCHANT_A] == [("payment.success", "order_A1", "42", 1)]
    assert by_merchant[MERCHANT_B] == [
        ("payment.authorized", "order_B1", "b-salon", 7000),
        ("payment.success", "order_B1", "b-salon", 7000),
    ]
    owners = sorted(
        tuple(row) for row in await pool.fetch("SELECT merchant_id, invoice_id, salon_id FROM invoice_owners")
    )
    assert owners == sorted([(MERCHANT_A, "order_A1", "42"), (MERCHANT_B, "order_B1", "b-salon")])


async def test_every_entity_type_stays_with_its_merchant_under_colliding_ids(pool: asyncpg.Pool) -> None:
    """Each merchant's outcome of every Razorpay event type is exactly what it would be without the
    other merchant's events with the same event ids about the same objects, whichever comes first."""
    documents = {
        MERCHANT_A: [payloads.razorpay(event_type) for event_type in payloads.RAZORPAY_EVENT_TYPES],
        MERCHANT_B: [as_merchant_b(payloads.razorpay(t)) for t in payloads.RAZORPAY_EVENT_TYPES],
    }
    alone: dict[str, dict[str, Any]] = {}
    for merchant, docs in documents.items():
        for n, document in enumerate(docs):
            await deliver(pool, merchant, document, f"evt_{n:03d}")
        alone[merchant] = await merchant_view(pool, merchant)
        await empty(pool)

    for n in range(len(payloads.RAZORPAY_EVENT_TYPES)):
        # Merchant A's event first for one type, B's for the next.
        for merchant in [MERCHANT_A, MERCHANT_B] if n % 2 else [MERCHANT_B, MERCHANT_A]:
            await deliver(pool, merchant, documents[merchant][n], f"evt_{n:03d}")

    for merchant in (MERCHANT_A, MERCHANT_B):
        together = await merchant_view(pool, merchant)
        for part, expected in alone[merchant].items():
            assert together[part] == expected, (merchant, part)
    # Every typed table holds each object twice, once per merchant, and every event is processed.
    for table, key in TYPED_TABLES.items():
        if table == "saved_card_tokens":
            continue  # PAYable only (below)
        per_key = await pool.fetch(
            f"SELECT {key}, array_agg(merchant_id ORDER BY merchant_id) AS merchants FROM {table} GROUP BY {key}"
        )
        assert per_key, table
        assert all(row["merchants"] == sorted([MERCHANT_A, MERCHANT_B]) for row in per_key), table
    statuses = await pool.fetch("SELECT status, count(*) FROM provider_events GROUP BY status")
    assert dict(statuses) == {"processed": 2 * len(payloads.RAZORPAY_EVENT_TYPES)}


async def test_payable_transactions_and_saved_cards_stay_with_their_merchant(pool: asyncpg.Pool) -> None:
    """Two merchants (two merchantKeys) whose notifications carry the same payableOrderId,
    payableTransactionId and token id: the same event id, the same payment id, the same token."""
    note_a = payloads.payable("tokenization")
    note_b = payloads.payable("tokenization", merchantKey="B_KEY", invoiceNo="INV-B-1", payableAmount="20.00")
    note_b["customerRefNo"] = "SALON7"
    note_b["token"] = {**note_b["token"], "maskedCardNo": "************4242"}
    event_id = f"{note_a['payableOrderId']}:{note_a['payableTransactionId']}:{note_a['statusCode']}"

    await deliver(pool, MERCHANT_B, note_b, event_id, provider="payable")
    await deliver(pool, MERCHANT_A, note_a, event_id, provider="payable")

    statuses = await pool.fetch(
        "SELECT merchant_id, status FROM provider_events WHERE event_id = $1", event_id
    )
    assert sorted(tuple(row) for row in statuses) == sorted(
        [(MERCHANT_A, "processed"), (MERCHANT_B, "processed")]
    )
    payments = {
        row["merchant_id"]: row
        for row in await pool.fetch(
            "SELECT * FROM provider_payments WHERE payment_id = $1", note_a["payableTransactionId"]
        )
    }
    assert (payments[MERCHANT_A]["invoice_key"], payments[MERCHANT_A]["amount"]) == (
        note_a["invoiceNo"],
        150000,
    )
    assert (
        payments[MERCHANT_B]["invoice_key"],
        payments[MERCHANT_B]["amount"],
        payments[MERCHANT_B]["salon_id"],
    ) == (
        "INV-B-1",
        2000,
        "7",
    )
    tokens = dict(await pool.fetch("SELECT merchant_id, masked_card_no FROM saved_card_tokens"))
    assert tokens[MERCHANT_B] == "************4242"
    assert tokens[MERCHANT_A] != "************4242"
    events = [
        orjson.loads(row["payload"])
        for row in await pool.fetch("SELECT payload FROM outbox WHERE stream = 'payment:events' ORDER BY id")
    ]
    assert sorted((e["merchant_id"], e["type"], e["invoice_id"]) for e in events) == sorted(
        [
            (MERCHANT_A, "payment.success", note_a["invoiceNo"]),
            (MERCHANT_A, "token.saved", note_a["invoiceNo"]),
            (MERCHANT_B, "payment.success", "INV-B-1"),
            (MERCHANT_B, "token.saved", "INV-B-1"),
        ]
    )
    owners = sorted(
        tuple(row) for row in await pool.fetch("SELECT merchant_id, invoice_id FROM invoice_owners")
    )
    assert owners == sorted([(MERCHANT_A, note_a["invoiceNo"]), (MERCHANT_B, "INV-B-1")])
