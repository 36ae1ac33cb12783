"""Orders through the real API app (in-process aiohttp server, real PostgreSQL and Redis): create,
read, and every kind of bad input: auth, malformed JSON, oversized bodies, field validation."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import pytest
from aiohttp.test_utils import TestClient

AUTH = {"X-Api-Key": "key_test_abc123", "X-Api-Secret": "secret_test_xyz789"}
OTHER_AUTH = {"X-Api-Key": "key_other_merchant", "X-Api-Secret": "secret_other_merchant"}


def assert_error(body: dict[str, Any], code: str, field: str | None = None) -> None:
    assert set(body) == {"error"}
    assert body["error"]["code"] == code
    if field is not None:
        assert body["error"]["field"] == field
    assert body["error"]["description"]


async def test_create_and_get_order(api: TestClient[Any, Any]) -> None:
    response = await api.post(
        "/api/v1/orders",
        json={"amount": 50000, "currency": "INR", "receipt": "rcpt_1", "notes": {"salon": "S1"}},
        headers=AUTH,
    )
    assert response.status == 201
    order = await response.json()
    assert re.fullmatch(r"order_[A-Za-z0-9]{16}", order["id"])
    assert order["status"] == "created"
    assert order["amount"] == 50000 and order["amount_due"] == 50000 and order["amount_paid"] == 0
    assert order["currency"] == "INR" and order["receipt"] == "rcpt_1" and order["notes"] == {"salon": "S1"}

    fetched = await api.get(f"/api/v1/orders/{order['id']}", headers=AUTH)
    assert fetched.status == 200
    assert await fetched.json() == order


async def test_an_order_is_an_invoice_its_merchant_may_watch(
    api: TestClient[Any, Any], db_pool: asyncpg.Pool
) -> None:
    from paystream.invoices import invoice_visible_to

    response = await api.post("/api/v1/orders", json={"amount": 2500}, headers=AUTH)
    order_id = (await response.json())["id"]
    assert await invoice_visible_to(db_pool, "mer_test0000000001", order_id, None)
    assert not await invoice_visible_to(db_pool, "mer_someone_else", order_id, None)


async def test_currency_defaults_to_inr(api: TestClient[Any, Any]) -> None:
    response = await api.post("/api/v1/orders", json={"amount": 100}, headers=AUTH)
    assert response.status == 201
    assert (await response.json())["currency"] == "INR"


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({}, "amount"),
        ({"amount": 100.5}, "amount"),
        ({"amount": 100.0}, "amount"),
        ({"amount": "100"}, "amount"),
        ({"amount": True}, "amount"),
        ({"amount": 0}, "amount"),
        ({"amount": -5}, "amount"),
        ({"amount": 10**15}, "amount"),
        ({"amount": 10**40}, "amount"),
        ({"amount": 100, "currency": "RUPEES"}, "currency"),
        ({"amount": 100, "currency": "XYZ"}, "currency"),
        ({"amount": 100, "currency": 356}, "currency"),
        ({"amount": 100, "receipt": "r" * 41}, "receipt"),
        ({"amount": 100, "notes": ["a"]}, "notes"),
        ({"amount": 100, "notes": {"k": {"nested": 1}}}, "notes.k"),
    ],
)
async def test_order_validation_names_the_field(
    validating_api: TestClient[Any, Any], body: dict[str, Any], field: str
) -> None:
    response = await validating_api.post("/api/v1/orders", json=body, headers=AUTH)
    assert response.status == 422
    assert_error(await response.json(), "VALIDATION_ERROR", field)


@pytest.mark.parametrize("raw", [b"{not json", b"", b"[1, 2]", b'"text"', b"{'amount': 1}"])
async def test_malformed_json_is_400(validating_api: TestClient[Any, Any], raw: bytes) -> None:
    response = await validating_api.post(
        "/api/v1/orders", data=raw, headers={**AUTH, "Content-Type": "application/json"}
    )
    assert response.status == 400
    assert_error(await response.json(), "BAD_REQUEST_ERROR")


async def test_body_over_64_kb_is_413(api: TestClient[Any, Any], db_pool: asyncpg.Pool) -> None:
    big = b'{"amount": 100, "receipt": "' + b"x" * (64 * 1024) + b'"}'
    response = await api.post(
        "/api/v1/orders", data=big, headers={**AUTH, "Content-Type": "application/json"}
    )
    assert response.status == 413
    assert_error(await response.json(), "PAYLOAD_TOO_LARGE")

    async def chunked() -> AsyncIterator[bytes]:  # no Content-Length: the limit holds while reading
        yield b'{"amount": 100, "notes": {"k": "'
        for _ in range(80):
            yield b"y" * 1024
        yield b'"}}'

    response = await api.post(
        "/api/v1/orders", data=chunked(), headers={**AUTH, "Content-Type": "application/json"}
    )
    assert response.status == 413
    assert await db_pool.fetchval("SELECT count(*) FROM orders") == 0


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"X-Api-Key": "key_test_abc123"},
        {"X-Api-Key": "key_test_abc123", "X-Api-Secret": "wrong"},
        {"X-Api-Key": "nobody", "X-Api-Secret": "secret_test_xyz789"},
    ],
)
async def test_missing_or_wrong_credentials_are_401(
    validating_api: TestClient[Any, Any], headers: dict[str, str]
) -> None:
    created = await validating_api.post("/api/v1/orders", json={"amount": 100}, headers=headers)
    assert created.status == 401
    assert_error(await created.json(), "AUTHENTICATION_ERROR")
    fetched = await validating_api.get("/api/v1/orders/order_0000000000000000", headers=headers)
    assert fetched.status == 401


async def test_unknown_and_foreign_orders_are_404(
    api: TestClient[Any, Any], other_merchant: dict[str, str]
) -> None:
    mine = await (await api.post("/api/v1/orders", json={"amount": 100}, headers=AUTH)).json()
    for order_id in ("order_0000000000000000", "order_short", "pay_x", mine["id"]):
        response = await api.get(f"/api/v1/orders/{order_id}", headers=other_merchant)
        assert response.status == 404
        assert_error(await response.json(), "NOT_FOUND_ERROR")
    assert (await api.get(f"/api/v1/orders/{mine['id']}", headers=AUTH)).status == 200
