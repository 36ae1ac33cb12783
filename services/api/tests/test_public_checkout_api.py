"""The public checkout endpoints (`/api/v1/public/...`, the key only) through the real API app on
real PostgreSQL and Redis: what an order and a payment show a payer, the merchant API's validation
and Idempotency-Key semantics, paid and foreign orders refused, rate limits (429 + Retry-After), the
notifier token that watches that one order, the pages' security headers, and the orders'
`return_url`."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

import asyncpg
import orjson
import pytest
import redis.asyncio as aioredis
from aiohttp.test_utils import TestClient, TestServer
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from notifier.app import create_app as create_notifier_app
from notifier.auth import decode_token
from paystream.events import Event, EventType
from paystream_api.app import create_app
from paystream_api.seed import seed_test_merchant
from paystream_api.settings import ApiSettings
from paystream_devstack.testing.notifier_client import notifier_settings, open_client, publish
from paystream_devstack.testing.notifier_client import payment_event as notifier_payment_event

AUTH = {"X-Api-Key": "key_test_abc123", "X-Api-Secret": "secret_test_xyz789"}
KEY = "key_test_abc123"
MERCHANT = "mer_test0000000001"
NEXT_YEAR = datetime.now(UTC).year + 1
STORED_BY_A_PAYMENT = ("payments", "outbox", "idempotency_keys")


def card(**overrides: Any) -> dict[str, Any]:
    return {
        "number": "4111 1111 1111 1111",
        "expiry_month": 12,
        "expiry_year": NEXT_YEAR,
        "cvv": "123",
        "holder_name": "Asha Rao",
        **overrides,
    }


async def new_order(
    api: TestClient[Any, Any], headers: dict[str, str] = AUTH, **fields: Any
) -> dict[str, Any]:
    response = await api.post(
        "/api/v1/orders",
        json={"amount": 50000, "currency": "INR", "receipt": "rcpt_42", "notes": {"internal": "x"}, **fields},
        headers=headers,
    )
    assert response.status == 201, await response.text()
    order: dict[str, Any] = await response.json()
    return order


async def pay(
    api: TestClient[Any, Any], body: dict[str, Any], *, key: str = KEY, headers: dict[str, str] | None = None
) -> Any:
    return await api.post("/api/v1/public/payments", params={"key": key}, json=body, headers=headers)


async def counts(db_pool: asyncpg.Pool) -> dict[str, int]:
    return {table: await db_pool.fetchval(f"SELECT count(*) FROM {table}") for table in STORED_BY_A_PAYMENT}


def assert_error(body: dict[str, Any], code: str, field: str | None) -> None:
    assert body["error"]["code"] == code, body
    assert body["error"]["field"] == field, body
    assert body["error"]["description"]


# ---- the order, as the payer sees it --------------------------------------------------------------


async def test_the_public_order_shows_what_the_payer_pays_and_nothing_else(api: TestClient[Any, Any]) -> None:
    order = await new_order(api, return_url="https://shop.example.com/thanks?cart=9")
    response = await api.get(f"/api/v1/public/orders/{order['id']}", params={"key": KEY})
    assert response.status == 200
    assert response.headers["Cache-Control"] == "no-store"
    view = await response.json()
    notifier = view.pop("notifier")
    assert view == {
        "id": order["id"],
        "entity": "order",
        "amount": 50000,
        "amount_due": 50000,
        "currency": "INR",
        "status": "created",
        "receipt": "rcpt_42",
        "return_url": "https://shop.example.com/thanks?cart=9",
        "test_mode": True,
        "merchant": {"name": "Test Merchant"},
    }
    assert notifier["url"].startswith("http://127.0.0.1:")
    assert notifier["expires_in"] == 900
    claims = decode_token(notifier["token"], "test-jwt-secret")
    assert claims["merchant_id"] == MERCHANT and claims["invoice_id"] == order["id"]
    assert claims["exp"] - claims["iat"] == 900


async def test_the_public_order_needs_a_known_key(api: TestClient[Any, Any]) -> None:
    order = await new_order(api)
    path = f"/api/v1/public/orders/{order['id']}"
    missing = await api.get(path)
    assert missing.status == 401
    assert_error(await missing.json(), "AUTHENTICATION_ERROR", "key")
    unknown = await api.get(path, params={"key": "key_nobody"})
    assert unknown.status == 401
    assert_error(await unknown.json(), "AUTHENTICATION_ERROR", "key")
    secret_instead = await api.get(path, params={"key": "secret_test_xyz789"})
    assert secret_instead.status == 401
    control = await api.get(path + "?key=key_test%00abc123")
    assert control.status == 422
    assert_error(await control.json(), "VALIDATION_ERROR", "key")
    not_utf8 = await api.get(path + "?key=key_%ff%fe")
    assert not_utf8.status in (401, 422)
    assert (await not_utf8.json())["error"]["field"] == "key"


async def test_another_merchants_order_and_odd_ids_are_not_found(
    api: TestClient[Any, Any], other_merchant: dict[str, str]
) -> None:
    theirs = await new_order(api, headers=other_merchant)
    response = await api.get(f"/api/v1/public/orders/{theirs['id']}", params={"key": KEY})
    assert response.status == 404
    assert_error(await response.json(), "NOT_FOUND_ERROR", "order_id")
    for odd in (
        "ord_test_001",
        "order_%00AAAAAAAAAAAAAAA",
        "order_%ff%feAAAAAAAAAAAAAA",
        "order_¹²³AAAAAAAAAAAAA",
    ):
        odd_response = await api.get(f"/api/v1/public/orders/{odd}", params={"key": KEY})
        assert odd_response.status == 404, odd


# ---- paying ---------------------------------------------------------------------------------------


async def test_a_upi_payment_takes_amount_and_currency_from_the_order(
    api: TestClient[Any, Any], db_pool: asyncpg.Pool
) -> None:
    order = await new_order(api)
    response = await pay(api, {"order_id": order["id"], "method": "upi", "vpa": "asha@okbank"})
    assert response.status == 201, await response.text()
    assert response.headers["Cache-Control"] == "no-store"
    payment = await response.json()
    notifier = payment.pop("notifier")
    assert set(payment) == {
        "id",
        "entity",
        "order_id",
        "amount",
        "currency",
        "status",
        "method",
        "card_network",
        "card_last4",
        "error_code",
        "error_description",
        "created_at",
    }
    assert payment["status"] == "pending" and payment["amount"] == 50000 and payment["currency"] == "INR"
    assert payment["order_id"] == order["id"] and payment["method"] == "upi"
    claims = decode_token(notifier["token"], "test-jwt-secret")
    assert claims["invoice_id"] == order["id"]

    # The merchant sees it as any other payment of the order, with its events.
    merchant_view = await (await api.get(f"/api/v1/payments/{payment['id']}", headers=AUTH)).json()
    assert merchant_view["vpa"] == "asha@okbank" and merchant_view["status"] == "pending"
    row = await db_pool.fetchrow("SELECT order_ref, merchant_id FROM payments WHERE id = $1", payment["id"])
    assert row["order_ref"] == order["id"] and row["merchant_id"] == MERCHANT
    events = [
        Event.decode(row["payload"]) for row in await db_pool.fetch("SELECT payload FROM outbox ORDER BY id")
    ]
    assert [event.type for event in events] == [EventType.PAYMENT_CREATED, EventType.PAYMENT_PENDING]
    assert {event.merchant_id for event in events} == {MERCHANT}
    assert {event.invoice_id for event in events} == {order["id"]}

    polled = await api.get(f"/api/v1/public/payments/{payment['id']}", params={"key": KEY})
    assert polled.status == 200
    assert await polled.json() == payment


async def test_a_card_payment_shows_only_network_and_last4(api: TestClient[Any, Any]) -> None:
    order = await new_order(api)
    response = await pay(api, {"order_id": order["id"], "method": "card", "card": card()})
    assert response.status == 201, await response.text()
    payment = await response.json()
    assert payment["card_network"] == "visa" and payment["card_last4"] == "1111"
    assert "4111111111111111" not in await response.text()


@pytest.mark.parametrize(
    ("body", "status", "code", "field"),
    [
        ({"method": "upi", "vpa": "asha@okbank"}, 422, "VALIDATION_ERROR", "order_id"),
        ({"method": "cash"}, 422, "VALIDATION_ERROR", "method"),
        ({"method": "upi"}, 422, "VALIDATION_ERROR", "vpa"),
        ({"method": "upi", "vpa": "not a vpa"}, 422, "VALIDATION_ERROR", "vpa"),
        ({"method": "upi", "vpa": "asha@okbank", "salon": "S1"}, 422, "VALIDATION_ERROR", "salon"),
        ({"method": "card", "card": card(number="4111111111111112")}, 422, "VALIDATION_ERROR", "card.number"),
        ({"method": "card", "card": card(expiry_year=2020)}, 422, "VALIDATION_ERROR", "card.expiry_year"),
        ({"method": "card", "card": card(cvv="12")}, 422, "VALIDATION_ERROR", "card.cvv"),
        ({"method": "card", "card": card(cvv="\uff11\uff12\uff13")}, 422, "VALIDATION_ERROR", "card.cvv"),
        ({"method": "card", "card": card(holder_name="")}, 422, "VALIDATION_ERROR", "card.holder_name"),
        ({"method": "upi", "vpa": "asha@okbank", "amount": 49999}, 400, "ORDER_AMOUNT_MISMATCH", "amount"),
        ({"method": "upi", "vpa": "asha@okbank", "amount": "50000"}, 422, "VALIDATION_ERROR", "amount"),
        (
            {"method": "upi", "vpa": "asha@okbank", "currency": "USD"},
            400,
            "ORDER_CURRENCY_MISMATCH",
            "currency",
        ),
        ({"method": "upi", "vpa": "asha\x00@okbank"}, 422, "VALIDATION_ERROR", "vpa"),
    ],
)
async def test_bad_payments_name_the_field_and_store_nothing(
    api: TestClient[Any, Any],
    db_pool: asyncpg.Pool,
    body: dict[str, Any],
    status: int,
    code: str,
    field: str,
) -> None:
    order = await new_order(api)
    if field != "order_id":
        body = {"order_id": order["id"], **body}
    before = await counts(db_pool)
    response = await pay(api, body, headers={"Idempotency-Key": "attempt-1"})
    assert response.status == status, await response.text()
    assert_error(await response.json(), code, field)
    assert await counts(db_pool) == before
    attempts = await db_pool.fetchval("SELECT attempts FROM orders WHERE id = $1", order["id"])
    assert attempts == 0


async def test_malformed_bodies_are_400(api: TestClient[Any, Any]) -> None:
    for raw in (b"not json", b"[1, 2]", b""):
        response = await api.post(
            "/api/v1/public/payments",
            params={"key": KEY},
            data=raw,
            headers={"Content-Type": "application/json"},
        )
        assert response.status == 400, raw


async def test_idempotency_key_replays_the_payment_with_a_fresh_token(
    api: TestClient[Any, Any], db_pool: asyncpg.Pool
) -> None:
    order = await new_order(api)
    body = {"order_id": order["id"], "method": "upi", "vpa": "asha@okbank"}
    first = await pay(api, body, headers={"Idempotency-Key": "browser-attempt-1"})
    assert first.status == 201
    again = await pay(api, body, headers={"Idempotency-Key": "browser-attempt-1"})
    assert again.status == 201
    assert again.headers["Idempotent-Replayed"] == "true"
    first_body, again_body = await first.json(), await again.json()
    assert first_body.pop("notifier")["token"] and again_body.pop("notifier")["token"]
    assert again_body == first_body
    assert await db_pool.fetchval("SELECT count(*) FROM payments") == 1
    assert await db_pool.fetchval("SELECT count(*) FROM outbox") == 2

    changed = await pay(api, {**body, "vpa": "ravi@okbank"}, headers={"Idempotency-Key": "browser-attempt-1"})
    assert changed.status == 422
    assert_error(await changed.json(), "IDEMPOTENCY_KEY_REUSED", "Idempotency-Key")


async def test_payers_keys_never_collide_with_the_merchants_own(api: TestClient[Any, Any]) -> None:
    order = await new_order(api)
    public = await pay(
        api,
        {"order_id": order["id"], "method": "upi", "vpa": "asha@okbank"},
        headers={"Idempotency-Key": "k-1"},
    )
    assert public.status == 201
    # The merchant's backend uses the same key value for a payment of its own: its own key space.
    merchant = await api.post(
        "/api/v1/payments",
        json={"order_id": "ord_ref_1", "amount": 100, "method": "upi", "vpa": "asha@okbank"},
        headers={**AUTH, "Idempotency-Key": "k-1"},
    )
    assert merchant.status == 201
    assert "Idempotent-Replayed" not in merchant.headers
    assert (await merchant.json())["id"] != (await public.json())["id"]


async def test_a_paid_order_is_refused_but_its_payment_still_replays(
    api: TestClient[Any, Any], db_pool: asyncpg.Pool
) -> None:
    order = await new_order(api)
    body = {"order_id": order["id"], "method": "upi", "vpa": "asha@okbank"}
    first = await pay(api, body, headers={"Idempotency-Key": "attempt-1"})
    assert first.status == 201
    paid_id = (await first.json())["id"]
    # As the payment processor does when the payment succeeds.
    await db_pool.execute("UPDATE payments SET status = 'success' WHERE id = $1", paid_id)
    await db_pool.execute(
        "UPDATE orders SET status = 'paid', amount_paid = amount WHERE id = $1", order["id"]
    )
    before = await counts(db_pool)

    refused = await pay(api, body, headers={"Idempotency-Key": "attempt-2"})
    assert refused.status == 400
    assert_error(await refused.json(), "ORDER_ALREADY_PAID", "order_id")
    assert await counts(db_pool) == before

    replayed = await pay(api, body, headers={"Idempotency-Key": "attempt-1"})
    assert replayed.status == 201 and (await replayed.json())["id"] == paid_id

    view = await (await api.get(f"/api/v1/public/orders/{order['id']}", params={"key": KEY})).json()
    assert view["status"] == "paid" and view["amount_due"] == 0


async def test_only_orders_of_the_keys_merchant_can_be_paid(
    api: TestClient[Any, Any], db_pool: asyncpg.Pool, other_merchant: dict[str, str]
) -> None:
    theirs = await new_order(api, headers=other_merchant)
    before = await counts(db_pool)
    for order_id in (theirs["id"], "ord_test_001", "order_AAAAAAAAAAAAAAAA"):
        response = await pay(api, {"order_id": order_id, "method": "upi", "vpa": "asha@okbank"})
        assert response.status == 404, order_id
        assert_error(await response.json(), "NOT_FOUND_ERROR", "order_id")
    assert await counts(db_pool) == before
    their_row = await db_pool.fetchrow("SELECT attempts, status FROM orders WHERE id = $1", theirs["id"])
    assert their_row["attempts"] == 0 and their_row["status"] == "created"
    # And the other merchant's key pays its own order, not ours.
    ours = await new_order(api)
    response = await pay(
        api, {"order_id": ours["id"], "method": "upi", "vpa": "a@ok"}, key=other_merchant["X-Api-Key"]
    )
    assert response.status == 404


async def test_polling_reads_only_checkout_payments_of_the_keys_merchant(
    api: TestClient[Any, Any], other_merchant: dict[str, str]
) -> None:
    referenced = await api.post(
        "/api/v1/payments",
        json={"order_id": "ord_ref_1", "amount": 100, "method": "upi", "vpa": "asha@okbank"},
        headers=AUTH,
    )
    assert referenced.status == 201
    order = await new_order(api)
    ours = await (await pay(api, {"order_id": order["id"], "method": "upi", "vpa": "asha@okbank"})).json()
    for payment_id, key in (
        ((await referenced.json())["id"], KEY),  # made with the secret under a reference of its own
        (ours["id"], other_merchant["X-Api-Key"]),
        ("pay_AAAAAAAAAAAAAAAA", KEY),
        ("pay_%00", KEY),
    ):
        response = await api.get(f"/api/v1/public/payments/{payment_id}", params={"key": key})
        assert response.status == 404, payment_id
        assert_error(await response.json(), "NOT_FOUND_ERROR", "payment_id")


# ---- rate limits ----------------------------------------------------------------------------------


@pytest.fixture
async def limited_api(service_env: dict[str, str]) -> AsyncIterator[TestClient[Any, Any]]:
    limits = {
        "PUBLIC_PAYMENTS_PER_IP": "3",
        "PUBLIC_PAYMENTS_PER_KEY": "1000",
        "PUBLIC_READS_PER_IP": "1000",
        "PUBLIC_READS_PER_KEY": "4",
    }
    app = create_app(ApiSettings.from_env({**service_env, **limits}))
    async with TestClient(TestServer(app)) as client:
        yield client


async def test_payments_are_rate_limited_per_address(
    limited_api: TestClient[Any, Any], db_pool: asyncpg.Pool
) -> None:
    order = await new_order(limited_api)
    body = {"order_id": order["id"], "method": "upi", "vpa": "asha@okbank"}
    statuses = [(await pay(limited_api, body)).status for _ in range(3)]
    assert statuses == [201, 201, 201]
    before = await counts(db_pool)
    refused = await pay(limited_api, body)
    assert refused.status == 429
    assert 1 <= int(refused.headers["Retry-After"]) <= 60
    assert_error(await refused.json(), "RATE_LIMITED", None)
    assert await counts(db_pool) == before
    # Made-up keys are counted too (before any lookup), and reads have their own budget.
    assert (await pay(limited_api, body, key="key_made_up")).status == 429
    assert (await limited_api.get(f"/api/v1/public/orders/{order['id']}", params={"key": KEY})).status == 200


async def test_reads_are_rate_limited_per_key(
    limited_api: TestClient[Any, Any], db_pool: asyncpg.Pool
) -> None:
    order = await new_order(limited_api)
    path = f"/api/v1/public/orders/{order['id']}"
    statuses = [(await limited_api.get(path, params={"key": KEY})).status for _ in range(5)]
    assert statuses == [200, 200, 200, 200, 429]
    refused = await limited_api.get(path, params={"key": KEY})
    assert refused.status == 429 and int(refused.headers["Retry-After"]) >= 1
    # Unknown keys are not charged to a merchant: they stay 401.
    assert (await limited_api.get(path, params={"key": "key_made_up"})).status == 401


# ---- the notifier token -----------------------------------------------------------------------------


@pytest.fixture
async def notifier_url(redis: aioredis.Redis, redis_url: str, clean_db: str) -> AsyncIterator[str]:
    # The API fixture's JWT_SECRET is the notifier test settings' secret ("test-jwt-secret").
    server = TestServer(create_notifier_app(notifier_settings(redis_url, clean_db)))
    await server.start_server()
    yield str(server.make_url("")).rstrip("/")
    await server.close()


async def test_the_checkout_token_watches_its_order_and_nothing_else(
    api: TestClient[Any, Any], notifier_url: str, redis: aioredis.Redis
) -> None:
    order, other_order = await new_order(api), await new_order(api)
    created = await (await pay(api, {"order_id": order["id"], "method": "upi", "vpa": "asha@okbank"})).json()
    client = await open_client(notifier_url, token=created["notifier"]["token"])
    try:
        assert await client.subscribe(order["id"]) == {"ok": True}
        assert await client.subscribe(other_order["id"]) == {"ok": False, "error": "invoice not found"}
        others = notifier_payment_event(EventType.PAYMENT_SUCCESS, invoice_id=other_order["id"])
        ours = notifier_payment_event(
            EventType.PAYMENT_SUCCESS, invoice_id=order["id"], payment_id=created["id"]
        )
        await publish(redis, others, ours)
        completed = await client.wait_for("payment:completed")
        # Delivery is in order: had the other order's event reached this socket, it would be first.
        assert [event["invoiceId"] for event in completed] == [order["id"]]
        assert completed[0]["paymentId"] == created["id"]
        assert client.events("payment:status-update") == []  # nothing merchant-wide
    finally:
        await client.close()


# ---- pages --------------------------------------------------------------------------------------------


async def test_the_checkout_page_may_be_framed_and_runs_no_inline_script(api: TestClient[Any, Any]) -> None:
    response = await api.get("/checkout", params={"order_id": "order_AAAAAAAAAAAAAAAA", "key": KEY})
    assert response.status == 200
    assert response.content_type == "text/html"
    policy = response.headers["Content-Security-Policy"]
    directives = {part.split()[0]: part.split()[1:] for part in policy.split("; ")}
    assert directives["script-src"] == ["'self'"]
    assert "'unsafe-inline'" not in policy
    assert directives["frame-ancestors"] == ["*"]
    assert "X-Frame-Options" not in response.headers
    assert any(source.startswith("http://127.0.0.1:") for source in directives["connect-src"])
    html = await response.text()
    assert 'data-test-id="pay-button"' in html and "<script>" not in html


async def test_the_sdk_is_served_to_any_site(api: TestClient[Any, Any]) -> None:
    response = await api.get("/checkout.js")
    assert response.status == 200
    assert response.headers["Content-Type"].startswith("text/javascript")
    assert response.headers["Access-Control-Allow-Origin"] == "*"
    assert response.headers["Cross-Origin-Resource-Policy"] == "cross-origin"
    assert "window.PaymentGateway" in await response.text()


async def test_the_demo_page_is_never_framed(api: TestClient[Any, Any]) -> None:
    response = await api.get("/demo")
    assert response.status == 200
    assert "frame-ancestors 'none'" in response.headers["Content-Security-Policy"]
    assert response.headers["X-Frame-Options"] == "DENY"
    created = await api.post("/demo/orders", json={"amount": 34900})
    assert created.status == 201
    demo_order = await created.json()
    assert demo_order["key"] == KEY
    view = await api.get(f"/api/v1/public/orders/{demo_order['order_id']}", params={"key": KEY})
    assert (await view.json())["amount"] == 34900
    bad = await api.post("/demo/orders", json={"amount": 0})
    assert bad.status == 422


async def test_the_demo_exists_only_in_test_mode(service_env: dict[str, str]) -> None:
    app = create_app(ApiSettings.from_env({**service_env, "TEST_MODE": "false", "JWT_SECRET": "x" * 32}))
    async with TestClient(TestServer(app)) as client:
        assert (await client.get("/demo")).status == 404
        assert (await client.post("/demo/orders", json={"amount": 100})).status == 404
        assert (await client.get("/checkout")).status == 200


# ---- return_url on orders -------------------------------------------------------------------------------


async def test_an_order_keeps_its_return_url(api: TestClient[Any, Any]) -> None:
    order = await new_order(api, return_url="http://localhost:3000/done")
    assert order["return_url"] == "http://localhost:3000/done"
    fetched = await (await api.get(f"/api/v1/orders/{order['id']}", headers=AUTH)).json()
    assert fetched["return_url"] == "http://localhost:3000/done"
    assert (await new_order(api))["return_url"] is None


@pytest.mark.parametrize(
    "return_url",
    [
        "javascript:alert(1)",
        " javascript:alert(1)",
        "JAVASCRIPT://x.example.com/%0aalert(1)",
        "data:text/html,hi",
        "ftp://files.example.com/",
        "/relative/path",
        "//shop.example.com/done",
        "https://user:pass@shop.example.com/",
        "https://shop.example.com\\@evil.example.com/",
        "https:///nohost",
        "https://shop.example.com/a b",
        "https://shop.example.com/" + "a" * 2048,
        "",
        42,
        ["https://shop.example.com/"],
    ],
)
async def test_a_return_url_must_be_an_http_link(
    validating_api: TestClient[Any, Any], db_pool: asyncpg.Pool, return_url: Any
) -> None:
    before = await db_pool.fetchval("SELECT count(*) FROM orders")
    response = await validating_api.post(
        "/api/v1/orders", json={"amount": 100, "return_url": return_url}, headers=AUTH
    )
    assert response.status == 422, return_url
    assert_error(await response.json(), "VALIDATION_ERROR", "return_url")
    assert await db_pool.fetchval("SELECT count(*) FROM orders") == before


# ---- any byte from outside ------------------------------------------------------------------------------

PROPERTY_SETTINGS = settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
CONTROL = st.sampled_from([chr(c) for c in (*range(0x00, 0x20), 0x7F)])
ODD_TEXT = st.one_of(
    st.text(min_size=1, max_size=40),
    st.builds(lambda a, c, b: a + c + b, st.text(max_size=10), CONTROL, st.text(max_size=10)),
    st.text(alphabet="²³¹⁰٠١٢٣४५６７", min_size=1, max_size=8),
)
JSON_VALUES = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**63 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=12),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=12,
)


@pytest.fixture(scope="module")
async def roomy_client(redis_url: str, database_url: str) -> AsyncIterator[TestClient[Any, Any]]:
    """One app, with rate limits out of the way, for the properties (they only send bad input)."""
    env = {
        "REDIS_URL": redis_url,
        "DATABASE_URL": database_url,
        "JWT_SECRET": "test-jwt-secret",
        "TEST_MODE": "true",
        "PUBLIC_PAYMENTS_PER_IP": "100000",
        "PUBLIC_READS_PER_IP": "100000",
    }
    async with TestClient(TestServer(create_app(ApiSettings.from_env(env)))) as client:
        yield client


@pytest.fixture
async def roomy_api(roomy_client: TestClient[Any, Any], db_pool: asyncpg.Pool) -> TestClient[Any, Any]:
    async with db_pool.acquire() as conn, conn.transaction():
        await seed_test_merchant(conn)  # another test may have emptied the database
    return roomy_client


async def _client_error(response: Any) -> dict[str, Any]:
    assert 400 <= response.status < 500, (response.status, await response.text())
    assert response.content_type == "application/json"
    body: dict[str, Any] = await response.json()
    return body["error"]


@pytest.mark.parametrize("template", ["/api/v1/public/orders/{}", "/api/v1/public/payments/{}"])
@PROPERTY_SETTINGS
@given(segment=ODD_TEXT)
async def test_any_path_segment_is_a_json_404(
    roomy_api: TestClient[Any, Any], template: str, segment: str
) -> None:
    error = await _client_error(
        await roomy_api.get(template.format(quote(segment, safe="")), params={"key": KEY})
    )
    assert error["code"] == "NOT_FOUND_ERROR"


@PROPERTY_SETTINGS
@given(key=ODD_TEXT)
async def test_any_key_is_a_4xx_naming_it(roomy_api: TestClient[Any, Any], key: str) -> None:
    response = await roomy_api.get(f"/api/v1/public/orders/order_AAAAAAAAAAAAAAAA?key={quote(key, safe='')}")
    assert (await _client_error(response))["field"] == "key"


@PROPERTY_SETTINGS
@given(document=JSON_VALUES)
async def test_any_payment_body_is_never_a_5xx(
    roomy_api: TestClient[Any, Any], db_pool: asyncpg.Pool, document: Any
) -> None:
    before = await counts(db_pool)
    response = await roomy_api.post(
        "/api/v1/public/payments",
        params={"key": KEY},
        data=orjson.dumps(document),
        headers={"Idempotency-Key": "p-1"},
    )
    await _client_error(response)
    assert await counts(db_pool) == before
