"""PAYable IPG notifications against the real app, PostgreSQL and Redis."""

from __future__ import annotations

import asyncio
from typing import Any

import asyncpg
import orjson
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from paystream_api.app import create_app
from paystream_api.settings import ApiSettings
from paystream_devstack.testing import provider_payloads as payloads

URLS = ("/api/v1/providers/payable/webhook", "/api/payments/webhook")


@pytest.fixture
def token(service_env: dict[str, str]) -> str:
    return service_env["PAYABLE_MERCHANT_TOKEN"]


def signed(name: str, token: str, **fields: Any) -> dict[str, Any]:
    note: dict[str, Any] = payloads.payable_signed(payloads.payable(name, **fields), token)
    return note


async def assert_nothing_stored(db_pool: asyncpg.Pool) -> None:
    assert await db_pool.fetchval("SELECT count(*) FROM provider_events") == 0
    assert await db_pool.fetchval("SELECT count(*) FROM outbox") == 0


@pytest.mark.parametrize("url", URLS)
async def test_a_verified_notification_is_stored_and_answered_status_200(
    api: TestClient[web.Request, web.Application], token: str, db_pool: asyncpg.Pool, url: str
) -> None:
    note = signed("success", token)
    response = await api.post(url, json=note)
    assert response.status == 200
    assert await response.json() == {"Status": 200}
    row = await db_pool.fetchrow("SELECT * FROM provider_events")
    assert row["provider"] == "payable"
    assert row["event_id"] == "oid-63f2b7c1:txn-8841207:1"
    assert row["type"] == "payment.success"
    assert row["status"] == "received"
    assert row["merchant_id"] == "mer_test0000000001"
    assert orjson.loads(row["payload"]) == note
    assert row["priority"] == 0
    assert await db_pool.fetchval("SELECT count(*) FROM outbox") == 0  # the row is the processor's work


async def test_failure_and_tokenization_notifications_are_stored(
    api: TestClient[web.Request, web.Application], token: str, db_pool: asyncpg.Pool
) -> None:
    for name in ("failure", "tokenization"):
        response = await api.post(URLS[0], json=signed(name, token))
        assert response.status == 200
    types = dict(await db_pool.fetch("SELECT event_id, type FROM provider_events"))
    assert types == {
        "oid-63f2b7c1:txn-8841199:0": "payment.failed",
        "oid-63f2b7c1:txn-8841301:1": "payment.success",
    }


@pytest.mark.parametrize(
    "tamper",
    ["wrong_check_value", "missing_check_value", "unknown_merchant_key", "changed_amount", "wrong_token"],
)
async def test_an_unverifiable_notification_is_401_and_nothing_is_stored(
    api: TestClient[web.Request, web.Application], token: str, db_pool: asyncpg.Pool, tamper: str
) -> None:
    note = signed("success", token)
    if tamper == "wrong_check_value":
        note["checkValue"] = "A" * 128
    elif tamper == "missing_check_value":
        del note["checkValue"]
    elif tamper == "unknown_merchant_key":
        note = signed("success", token, merchantKey="SOMEONE_ELSE")
    elif tamper == "changed_amount":
        note["payableAmount"] = "1.00"
    elif tamper == "wrong_token":
        note = signed("success", "not-the-token")
    response = await api.post(URLS[0], json=note)
    assert response.status == 401
    assert "error" in await response.json()
    await assert_nothing_stored(db_pool)


async def test_check_value_is_case_insensitive_hex(
    api: TestClient[web.Request, web.Application], token: str, db_pool: asyncpg.Pool
) -> None:
    note = signed("success", token)
    note["checkValue"] = note["checkValue"].lower()
    assert (await api.post(URLS[0], json=note)).status == 200


async def test_duplicates_store_one_row(
    api: TestClient[web.Request, web.Application], token: str, db_pool: asyncpg.Pool
) -> None:
    note = signed("success", token)
    responses = await asyncio.gather(*(api.post(URLS[i % 2], json=note) for i in range(10)))
    assert [r.status for r in responses] == [200] * 10
    assert await db_pool.fetchval("SELECT count(*) FROM provider_events") == 1


async def test_a_verified_notification_missing_fields_is_stored_rejected(
    api: TestClient[web.Request, web.Application], token: str, db_pool: asyncpg.Pool
) -> None:
    note = signed("success", token, invoiceNo="", payableCurrency=None)
    response = await api.post(URLS[0], json=note)
    assert response.status == 200
    assert await response.json() == {"Status": 200}
    row = await db_pool.fetchrow("SELECT status, reason FROM provider_events")
    assert row["status"] == "rejected"
    assert row["reason"] == "missing required fields: payableCurrency, invoiceNo"
    assert await db_pool.fetchval("SELECT count(*) FROM outbox") == 0


async def test_bodies_that_are_not_json_objects_are_400(
    api: TestClient[web.Request, web.Application], db_pool: asyncpg.Pool
) -> None:
    for body in (b"merchantKey=PAYABLE_TEST_KEY&statusCode=1", b"[1, 2]", b""):
        response = await api.post(URLS[0], data=body, headers={"Content-Type": "application/json"})
        assert response.status == 400, body
        assert (await response.json())["error"]["code"] == "BAD_REQUEST_ERROR"
    await assert_nothing_stored(db_pool)


async def test_an_unmasked_card_number_is_masked_before_it_is_stored(
    api: TestClient[web.Request, web.Application], token: str, db_pool: asyncpg.Pool
) -> None:
    note = signed("tokenization", token, cardNumber="4111 1111 1111 1111")
    note["token"]["maskedCardNo"] = "4111111111111111"
    response = await api.post(URLS[0], json=note)
    assert response.status == 200
    payload = await db_pool.fetchval("SELECT payload FROM provider_events")
    assert "4111111111111111" not in payload.replace(" ", "")
    stored = orjson.loads(payload)
    assert stored["cardNumber"] == "************1111"
    assert stored["token"]["maskedCardNo"] == "************1111"


async def test_a_verified_notification_holding_a_nul_is_stored_rejected_and_never_queued(
    api: TestClient[web.Request, web.Application], token: str, db_pool: asyncpg.Pool
) -> None:
    note = signed("success", token, invoiceNo="INV-\x00-1", customerRefNo="SALON7\x00")
    response = await api.post(URLS[0], data=orjson.dumps(note), headers={"Content-Type": "application/json"})
    assert response.status == 200
    assert await response.json() == {"Status": 200}
    row = await db_pool.fetchrow("SELECT status, reason, event_id FROM provider_events")
    assert row["status"] == "rejected"
    assert "NUL" in row["reason"]
    assert "\x00" not in row["event_id"]
    assert await db_pool.fetchval("SELECT count(*) FROM outbox") == 0


@pytest.mark.parametrize(
    ("status_code", "status_message", "expected"),
    [(1, "FAILED", "payment.success"), (0, "SUCCESS", "payment.failed"), ("1", "", "payment.success")],
)
async def test_success_is_decided_by_the_signed_status_code_not_the_unsigned_message(
    api: TestClient[web.Request, web.Application],
    token: str,
    db_pool: asyncpg.Pool,
    status_code: int | str,
    status_message: str,
    expected: str,
) -> None:
    note = signed("success", token, statusCode=status_code, statusMessage=status_message)
    response = await api.post(URLS[0], json=note)
    assert response.status == 200
    assert await db_pool.fetchval("SELECT type FROM provider_events") == expected


async def test_two_merchants_with_the_same_order_and_transaction_ids_both_have_their_event_stored(
    service_env: dict[str, str], token: str, db_pool: asyncpg.Pool
) -> None:
    """PAYable order and transaction ids are chosen per merchantKey: another merchant's notification
    with the same ids (so the same event id) is its own event, not a duplicate."""
    await db_pool.execute(
        """INSERT INTO merchants (id, name, email, api_key, api_secret_hash, webhook_secret)
           VALUES ('mer_other000000001', 'Other', 'other@example.com', 'key_other', 'x', 'whsec_other')"""
    )
    await db_pool.execute(
        """INSERT INTO provider_accounts (id, provider, account_id, merchant_id, merchant_token)
           VALUES ('pacc_other_payable', 'payable', 'OTHER_KEY', 'mer_other000000001', 'OTHER_TOKEN')"""
    )
    app = create_app(ApiSettings.from_env(service_env))
    async with TestClient(TestServer(app)) as api:
        notes = [
            signed("success", "OTHER_TOKEN", merchantKey="OTHER_KEY", invoiceNo="INV-OTHER-1"),
            signed("success", token),
        ]
        responses = await asyncio.gather(*(api.post(URLS[0], json=note) for note in notes * 2))
        assert [response.status for response in responses] == [200] * 4
    rows = await db_pool.fetch(
        "SELECT merchant_id, event_id, payload FROM provider_events ORDER BY merchant_id"
    )
    assert [(row["merchant_id"], row["event_id"]) for row in rows] == [
        ("mer_other000000001", "oid-63f2b7c1:txn-8841207:1"),
        ("mer_test0000000001", "oid-63f2b7c1:txn-8841207:1"),
    ]
    assert orjson.loads(rows[0]["payload"])["invoiceNo"] == "INV-OTHER-1"
