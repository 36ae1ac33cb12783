"""PAYable IPG notification handling against a real PostgreSQL: success, failure, tokenization, salon."""

from __future__ import annotations

from typing import Any

import asyncpg
import orjson
from provider_testkit import MERCHANT, domain_events, store_event

from payment_processor import provider_events
from payment_processor.provider_events.payable import salon_from_reference
from paystream_devstack.testing import provider_payloads as payloads


async def deliver(pool: asyncpg.Pool, name: str, **fields: Any) -> str:
    note = payloads.payable_signed(payloads.payable(name, **fields), "PAYABLE_TEST_TOKEN")
    event_id = f"{note['payableOrderId']}:{note['payableTransactionId']}:{note['statusCode']}"
    envelope = await store_event(
        pool,
        provider="payable",
        event_id=event_id,
        event_type="payment",
        payload=orjson.dumps(note).decode(),
        provider_account_id="pacc_test_payable",
        account_id="PAYABLE_TEST_KEY",
    )
    await provider_events.handle_one(pool, envelope)
    return event_id


async def test_a_success_is_a_successful_payment_for_the_invoice_and_salon(pool: asyncpg.Pool) -> None:
    event_id = await deliver(pool, "success")
    assert (
        await pool.fetchval("SELECT status FROM provider_events WHERE event_id = $1", event_id) == "processed"
    )
    [event] = await domain_events(pool)
    assert event["type"] == "payment.success"
    assert event["merchant_id"] == MERCHANT
    assert event["invoice_id"] == "INV-2024-0042"
    assert event["salon_id"] == "42"
    payment = event["data"]["payment"]
    assert payment["id"] == "txn-8841207"
    assert payment["provider"] == "payable"
    assert payment["status"] == "success"
    assert payment["amount"] == 150000  # "1500.00" LKR in cents
    assert payment["currency"] == "LKR"
    assert payment["order_id"] == "INV-2024-0042"
    assert payment["card_network"] == "visa" and payment["card_last4"] == "1111"
    owner = await pool.fetchrow("SELECT salon_id FROM invoice_owners WHERE invoice_id = 'INV-2024-0042'")
    assert owner["salon_id"] == "42"
    assert await pool.fetchval("SELECT count(*) FROM saved_card_tokens") == 0


async def test_anything_else_is_a_failed_payment_with_its_code_and_message(pool: asyncpg.Pool) -> None:
    await deliver(pool, "failure")
    # statusCode 0 is a failure whatever the (unsigned) message says.
    await deliver(
        pool, "failure", payableTransactionId="txn-odd", invoiceNo="INV-ODD", statusMessage="SUCCESS"
    )
    events = await domain_events(pool)
    assert [e["type"] for e in events] == ["payment.failed", "payment.failed"]
    failed = events[0]["data"]["payment"]
    assert failed["status"] == "failed"
    assert failed["error_code"] == "0"
    assert failed["error_description"] == "FAILED"
    assert events[0]["invoice_id"] == "INV-2024-0043"


async def test_status_code_1_is_a_success_whatever_the_unsigned_message_says(pool: asyncpg.Pool) -> None:
    await deliver(pool, "success", statusMessage="PENDING")
    assert [e["type"] for e in await domain_events(pool)] == ["payment.success"]


async def test_a_late_failure_never_undoes_a_success(pool: asyncpg.Pool) -> None:
    await deliver(pool, "success")
    await deliver(pool, "success", statusCode=0, statusMessage="FAILED")
    assert await pool.fetchval("SELECT status FROM provider_payments") == "success"
    assert [e["type"] for e in await domain_events(pool)] == ["payment.success"]


async def test_tokenization_saves_a_masked_card_and_emits_token_saved(pool: asyncpg.Pool) -> None:
    await deliver(pool, "tokenization")
    events = await domain_events(pool)
    assert [e["type"] for e in events] == ["payment.success", "token.saved"]
    token_event = events[1]
    assert token_event["salon_id"] == "42"
    assert token_event["invoice_id"] == "INV-2024-0044"
    token = token_event["data"]["token"]
    assert token == {
        "masked_card_no": "411111xxxxxx1111",
        "expiry": "12/27",
        "scheme": "VISA",
        "holder_name": "Nimal Perera",
        "nickname": "My Visa",
        "default_card": True,
        "reference": "ref-CUST-7781-1",
        "customer_id": "CUST-7781",
    }
    row = await pool.fetchrow("SELECT * FROM saved_card_tokens")
    assert row["token_id"] == "tok-5f0c9a1e-7b2d"
    assert row["masked_card_no"] == "411111xxxxxx1111"
    # Saving the same token again (a second payment with it) emits nothing new.
    await deliver(pool, "tokenization", payableTransactionId="txn-8841302")
    assert [e["type"] for e in await domain_events(pool)][-1] == "payment.success"


async def test_an_unmasked_card_number_never_reaches_tables_or_events(pool: asyncpg.Pool) -> None:
    await deliver(
        pool,
        "tokenization",
        cardNumber="4111111111111111",
        token={"tokenId": "tok-x", "maskedCardNo": "4111111111111111", "exp": "01/30", "defaultCard": 0},
    )
    dumped = orjson.dumps(await domain_events(pool)).decode()
    dumped += str(await pool.fetch("SELECT * FROM saved_card_tokens"))
    dumped += str(await pool.fetch("SELECT entity::text FROM provider_payments"))
    assert "4111111111111111" not in dumped
    assert await pool.fetchval("SELECT masked_card_no FROM saved_card_tokens") == "************1111"


async def test_a_notification_without_a_salon_reference_has_no_salon(pool: asyncpg.Pool) -> None:
    await deliver(pool, "success", customerRefNo="CUST-7781")
    [event] = await domain_events(pool)
    assert event["salon_id"] is None
    assert event["data"]["payment"]["salon_id"] is None


def test_salon_references() -> None:
    assert salon_from_reference("SALON42") == "42"
    assert salon_from_reference(" salon007 ") == "007"
    for reference in ("SALON", "SALON-42", "42", "XSALON42", "SALON42A", None, 42, ""):
        assert salon_from_reference(reference) is None, reference


async def test_a_bad_amount_is_rejected(pool: asyncpg.Pool) -> None:
    event_id = await deliver(pool, "success", payableAmount="15.005")
    row = await pool.fetchrow("SELECT status, reason FROM provider_events WHERE event_id = $1", event_id)
    assert row["status"] == "rejected"
    assert "payableAmount" in row["reason"]
    assert await domain_events(pool) == []
