"""A batch of provider events whose handlers are planned (`PlannedHandler`) has its objects' moves
applied together: one INSERT for the batch's new objects. Against a real PostgreSQL: the result is
the one of handling the same events one at a time, and the batch costs one INSERT per table."""

from __future__ import annotations

from typing import Any

import asyncpg
import orjson
from provider_testkit import domain_events, store_event

from payment_processor import provider_events
from payment_processor.provider_events.store import EventKey
from paystream.db import create_pool
from paystream.settings import DatabaseSettings
from paystream_devstack.testing import provider_payloads as payloads
from paystream_devstack.testing.plugin import truncate_tables

Event = tuple[str, str, dict[str, Any]]  # (provider, event id, payload)


def capture(event_id: str, payment_id: str, event_type: str = "payment.captured", **entity: Any) -> Event:
    document = payloads.razorpay(event_type)
    document["payload"]["payment"]["entity"].update(id=payment_id, **entity)
    return ("razorpay", event_id, document)


def payable_success(transaction_id: str, invoice_no: str) -> Event:
    note = payloads.payable_signed(
        payloads.payable("success", payableTransactionId=transaction_id, invoiceNo=invoice_no),
        "PAYABLE_TEST_TOKEN",
    )
    return ("payable", f"{note['payableOrderId']}:{transaction_id}:1", note)


async def store_all(pool: asyncpg.Pool, events: list[Event]) -> list[EventKey]:
    keys = []
    for provider, event_id, document in events:
        keys.append(
            await store_event(
                pool,
                provider=provider,
                event_id=event_id,
                event_type=document.get("event", "payment"),
                payload=orjson.dumps(document).decode(),
                provider_account_id=f"pacc_test_{provider}",
                account_id="PAYABLE_TEST_KEY" if provider == "payable" else None,
            )
        )
    return keys


async def outcome(pool: asyncpg.Pool) -> dict[str, Any]:
    """What handling left, without what differs by run (ids, clocks)."""
    payments = await pool.fetch(
        """SELECT provider, payment_id, status, status_rank, provider_status, invoice_key, salon_id,
                  amount, captured, last_event_id, currency, method, error_code, entity,
                  -- PAYable's event time is when we received it, which differs by run
                  CASE WHEN provider = 'payable' THEN NULL ELSE provider_event_at END AS event_at
           FROM provider_payments ORDER BY provider, payment_id"""
    )
    audit = await pool.fetch(
        "SELECT event_id, outcome, reason, changes, emitted FROM provider_event_audit ORDER BY event_id"
    )
    owners = await pool.fetch("SELECT merchant_id, invoice_id, salon_id FROM invoice_owners ORDER BY 1, 2")
    emitted = [
        (event["type"], event["invoice_id"], event["salon_id"], _without_clocks(event["data"]))
        for event in await domain_events(pool)
    ]
    return {
        "payments": [dict(row) for row in payments],
        "audit": [dict(row) for row in audit],
        "owners": [tuple(row) for row in owners],
        "emitted": emitted,
    }


def _without_clocks(value: Any) -> Any:
    """`value` without its objects' `created_at` and `updated_at` (when this run wrote them)."""
    if isinstance(value, dict):
        return {k: _without_clocks(v) for k, v in value.items() if k not in ("created_at", "updated_at")}
    return value


async def batched_then_one_at_a_time(
    pool: asyncpg.Pool, clean_db: str, before: list[Event], batch: list[Event]
) -> tuple[dict[str, Any], dict[str, Any]]:
    """The outcome of `batch` claimed as one batch, then of the same events handled one by one,
    each after `before` was handled one by one, on an emptied database."""
    results = []
    for batched in (True, False):
        await truncate_tables(clean_db)
        for key in await store_all(pool, before):
            await provider_events.handle_one(pool, key)
        keys = await store_all(pool, batch)
        if batched:
            assert await provider_events.handle_waiting(pool) == len(batch)
        else:
            for key in keys:
                await provider_events.handle_one(pool, key)
        results.append(await outcome(pool))
    return results[0], results[1]


async def test_a_batch_of_new_and_known_payments_ends_as_if_handled_one_at_a_time(
    pool: asyncpg.Pool, clean_db: str
) -> None:
    before = [capture("evt_auth_known", "pay_known", "payment.authorized")]
    batch = [
        capture("evt_new_0", "pay_new_0"),
        capture("evt_capt_known", "pay_known"),  # exists: locked, compared, moved forward
        payable_success("txn-batch-1", "INV-BATCH-1"),  # another column set: its own INSERT
        capture("evt_new_1", "pay_new_1", "payment.failed", error_code="BAD_REQUEST_ERROR"),
        capture("evt_auth_late", "pay_late", "payment.authorized"),
    ]
    batched, one_at_a_time = await batched_then_one_at_a_time(pool, clean_db, before, batch)
    assert batched == one_at_a_time
    assert [event[0] for event in batched["emitted"]] == [
        "payment.authorized",  # `before`
        "payment.success",
        "payment.success",  # pay_known: pending -> success
        "payment.success",
        "payment.failed",
        "payment.authorized",
    ]
    known = next(row for row in batched["audit"] if row["event_id"] == "evt_capt_known")
    assert known["changes"] == [{"entity": "payment", "id": "pay_known", "from": "pending", "to": "success"}]


async def test_two_events_about_one_payment_in_a_batch_apply_in_claim_order(
    pool: asyncpg.Pool, clean_db: str
) -> None:
    batch = [
        capture("evt_a_auth", "pay_twice", "payment.authorized"),
        capture("evt_b_capt", "pay_twice"),
        capture("evt_c_other", "pay_other"),
    ]
    batched, one_at_a_time = await batched_then_one_at_a_time(pool, clean_db, [], batch)
    assert batched == one_at_a_time
    assert [(e[0], e[3]["payment"]["id"]) for e in batched["emitted"]] == [
        ("payment.authorized", "pay_twice"),
        ("payment.success", "pay_twice"),
        ("payment.success", "pay_other"),
    ]


async def test_a_batch_with_an_unplanned_handler_ends_as_if_handled_one_at_a_time(
    pool: asyncpg.Pool, clean_db: str
) -> None:
    order_paid = payloads.razorpay("order.paid")
    batch = [capture("evt_plain_0", "pay_plain_0"), ("razorpay", "evt_order_paid", order_paid)]
    batched, one_at_a_time = await batched_then_one_at_a_time(pool, clean_db, [], batch)
    assert batched == one_at_a_time
    assert {row["outcome"] for row in batched["audit"]} == {"processed"}


async def test_a_batch_of_new_payments_inserts_them_in_one_statement(
    pool: asyncpg.Pool, clean_db: str
) -> None:
    await store_all(pool, [capture(f"evt_one_insert_{n}", f"pay_one_insert_{n}") for n in range(5)])
    # A pool of one connection: the claim runs on the connection whose statements are recorded.
    single = await create_pool(DatabaseSettings(url=clean_db, pool_min_size=1, pool_max_size=1))
    seen: list[str] = []
    try:
        async with single.acquire() as conn:  # the logger stays on the connection, for the claim
            conn.add_query_logger(lambda query: seen.append(query.query))
        assert await provider_events.handle_waiting(single) == 5
    finally:
        await single.close()
    inserts = [query for query in seen if "INSERT INTO provider_payments" in query]
    assert len(inserts) == 1, inserts
    assert await pool.fetchval("SELECT count(*) FROM provider_payments") == 5
    assert len(await domain_events(pool)) == 5
