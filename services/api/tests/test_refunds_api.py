"""Refunds through the real API app (in-process aiohttp server, real PostgreSQL): only for successful
payments, never more than the payment minus its refunds that have not failed, read and list, and
isolation between merchants."""

from __future__ import annotations

import re
from typing import Any

import asyncpg
import pytest
from aiohttp.test_utils import TestClient

from paystream.events import Event
from paystream_api.auth import hash_secret

AUTH = {"X-Api-Key": "key_test_abc123", "X-Api-Secret": "secret_test_xyz789"}
OTHER_AUTH = {"X-Api-Key": "key_other_merchant", "X-Api-Secret": "secret_other_merchant"}
PAYMENT = {
    "order_id": "ord_test_001",
    "amount": 10000,
    "currency": "INR",
    "method": "upi",
    "vpa": "user@paytm",
}


@pytest.fixture
async def paid(api: TestClient[Any, Any], db_pool: asyncpg.Pool) -> dict[str, Any]:
    """A successful payment of 10000."""
    payment: dict[str, Any] = await (await api.post("/api/v1/payments", json=PAYMENT, headers=AUTH)).json()
    await db_pool.execute("UPDATE payments SET status = 'success' WHERE id = $1", payment["id"])
    return payment


async def refund(
    api: TestClient[Any, Any], payment_id: str, body: dict[str, Any], headers: dict[str, str] = AUTH
) -> tuple[int, dict[str, Any]]:
    response = await api.post(f"/api/v1/payments/{payment_id}/refunds", json=body, headers=headers)
    return response.status, await response.json()


async def test_partial_refunds_up_to_the_amount(
    api: TestClient[Any, Any], db_pool: asyncpg.Pool, paid: dict[str, Any]
) -> None:
    status, first = await refund(api, paid["id"], {"amount": 4000, "reason": "customer asked"})
    assert status == 201
    assert re.fullmatch(r"rfnd_[A-Za-z0-9]{16}", first["id"])
    assert first["status"] == "pending" and first["payment_id"] == paid["id"]
    assert first["amount"] == 4000 and first["currency"] == "INR" and first["reason"] == "customer asked"
    assert first["processed_at"] is None

    fetched = await (await api.get(f"/api/v1/refunds/{first['id']}", headers=AUTH)).json()
    assert fetched == first
    row = await db_pool.fetchrow("SELECT payload FROM outbox WHERE event_type = 'refund.created'")
    assert row is not None
    event = Event.decode(row["payload"])
    assert event.data == {"refund": first} and event.invoice_id == "ord_test_001"

    status, error = await refund(api, paid["id"], {"amount": 6001})
    assert status == 400
    assert (
        error["error"]["code"] == "REFUND_AMOUNT_EXCEEDS_REFUNDABLE" and error["error"]["field"] == "amount"
    )
    assert (await refund(api, paid["id"], {"amount": 6000}))[0] == 201
    assert (await refund(api, paid["id"], {"amount": 1}))[0] == 400

    payment = await (await api.get(f"/api/v1/payments/{paid['id']}", headers=AUTH)).json()
    assert payment["amount_refunded"] == 10000 and payment["refund_status"] == "full"

    # A refund that failed no longer counts against the payment.
    await db_pool.execute("UPDATE refunds SET status = 'failed' WHERE id = $1", first["id"])
    assert (await refund(api, paid["id"], {"amount": 4000}))[0] == 201
    assert (await refund(api, paid["id"], {"amount": 1}))[0] == 400

    listing = await (await api.get(f"/api/v1/payments/{paid['id']}/refunds", headers=AUTH)).json()
    assert listing["total"] == 3 and [r["amount"] for r in listing["data"]] == [4000, 6000, 4000]
    page = await (
        await api.get(f"/api/v1/payments/{paid['id']}/refunds?limit=1&offset=1", headers=AUTH)
    ).json()
    assert [r["amount"] for r in page["data"]] == [6000] and page["total"] == 3


async def test_only_successful_payments_are_refundable(
    api: TestClient[Any, Any], db_pool: asyncpg.Pool
) -> None:
    payment = await (await api.post("/api/v1/payments", json=PAYMENT, headers=AUTH)).json()
    for status in ("pending", "failed"):
        await db_pool.execute("UPDATE payments SET status = $2 WHERE id = $1", payment["id"], status)
        code, body = await refund(api, payment["id"], {"amount": 100})
        assert code == 400 and body["error"]["code"] == "PAYMENT_NOT_REFUNDABLE"
    assert await db_pool.fetchval("SELECT count(*) FROM refunds") == 0


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({}, "amount"),
        ({"amount": 0}, "amount"),
        ({"amount": -100}, "amount"),
        ({"amount": 10.5}, "amount"),
        ({"amount": "100"}, "amount"),
        ({"amount": 100, "reason": "r" * 256}, "reason"),
        ({"amount": 100, "reason": 5}, "reason"),
    ],
)
async def test_refund_validation(
    api: TestClient[Any, Any], paid: dict[str, Any], body: dict[str, Any], field: str
) -> None:
    status, error = await refund(api, paid["id"], body)
    assert status == 422 and error["error"]["field"] == field


async def test_refunds_of_unknown_or_foreign_payments_are_404(
    api: TestClient[Any, Any], db_pool: asyncpg.Pool, paid: dict[str, Any]
) -> None:
    await db_pool.execute(
        """INSERT INTO merchants (id, name, email, api_key, api_secret_hash, webhook_secret)
           VALUES ('mer_other000000001', 'Other', 'other@example.com', $1, $2, 'whsec_other')""",
        OTHER_AUTH["X-Api-Key"],
        hash_secret(OTHER_AUTH["X-Api-Secret"]),
    )
    _, mine = await refund(api, paid["id"], {"amount": 100})
    assert (await refund(api, "pay_0000000000000000", {"amount": 100}))[0] == 404
    assert (await refund(api, paid["id"], {"amount": 100}, OTHER_AUTH))[0] == 404
    for refund_id, headers in ((mine["id"], OTHER_AUTH), ("rfnd_0000000000000000", AUTH), ("rfnd_x", AUTH)):
        response = await api.get(f"/api/v1/refunds/{refund_id}", headers=headers)
        assert response.status == 404
        assert (await response.json())["error"]["code"] == "NOT_FOUND_ERROR"
    assert (await api.get(f"/api/v1/refunds/{mine['id']}", headers={})).status == 401
    assert await db_pool.fetchval("SELECT count(*) FROM refunds") == 1
