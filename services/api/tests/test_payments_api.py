"""Payments through the real API app (in-process aiohttp server, real PostgreSQL and Redis): create
(UPI and card), the events and invoice owner committed with it, orders, reading, listing, capture,
isolation between merchants, card data never kept, and 503 when PostgreSQL drops the connections."""

from __future__ import annotations

import asyncio
import re
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import pytest
from aiohttp.test_utils import TestClient, TestServer

from paystream.events import Event
from paystream_api.app import create_app
from paystream_api.settings import ApiSettings
from paystream_devstack.testing import eventually

AUTH = {"X-Api-Key": "key_test_abc123", "X-Api-Secret": "secret_test_xyz789"}
OTHER_AUTH = {"X-Api-Key": "key_other_merchant", "X-Api-Secret": "secret_other_merchant"}
VISA = "4111111111111111"
NEXT_YEAR = datetime.now(UTC).year + 1


def with_luhn_digit(partial: str) -> str:
    for check in "0123456789":
        candidate = partial + check
        total = 0
        for position, char in enumerate(reversed(candidate)):
            digit = int(char) * (2 if position % 2 else 1)
            total += digit - 9 if digit > 9 else digit
        if total % 10 == 0:
            return candidate
    raise AssertionError("unreachable")


def card(number: Any = VISA, **overrides: Any) -> dict[str, Any]:
    return {
        "number": number,
        "expiry_month": 12,
        "expiry_year": NEXT_YEAR,
        "cvv": "4" * (4 if str(number).startswith(("34", "37")) else 3),
        "holder_name": "Asha Rao",
        **overrides,
    }


def upi_payment(**overrides: Any) -> dict[str, Any]:
    return {
        "order_id": "ord_test_001",
        "amount": 50000,
        "currency": "INR",
        "method": "upi",
        "vpa": "user@paytm",
        **overrides,
    }


def card_payment(**overrides: Any) -> dict[str, Any]:
    return {
        "order_id": "order_test_async",
        "amount": 25000,
        "currency": "INR",
        "method": "card",
        "card": card(),
        **overrides,
    }


async def create(
    api: TestClient[Any, Any], body: dict[str, Any], headers: dict[str, str] = AUTH
) -> dict[str, Any]:
    response = await api.post("/api/v1/payments", json=body, headers=headers)
    assert response.status == 201, await response.text()
    payment: dict[str, Any] = await response.json()
    return payment


async def outbox_events(db_pool: asyncpg.Pool) -> list[Event]:
    rows = await db_pool.fetch("SELECT payload FROM outbox ORDER BY id")
    return [Event.decode(row["payload"]) for row in rows]


async def test_upi_payment_is_pending_at_once_with_its_events(
    api: TestClient[Any, Any], db_pool: asyncpg.Pool
) -> None:
    payment = await create(api, upi_payment())
    assert re.fullmatch(r"pay_[A-Za-z0-9]{16}", payment["id"])
    assert payment["status"] == "pending"
    assert payment["order_id"] == "ord_test_001" and payment["vpa"] == "user@paytm"
    assert payment["method"] == "upi" and payment["amount"] == 50000 and payment["currency"] == "INR"
    assert payment["card_network"] is None and payment["captured"] is False

    fetched = await (await api.get(f"/api/v1/payments/{payment['id']}", headers=AUTH)).json()
    assert fetched == payment
    created, pending = await outbox_events(db_pool)
    assert [created.type.value, pending.type.value] == ["payment.created", "payment.pending"]
    assert pending.data == {"payment": fetched}
    assert created.data == {"payment": {**fetched, "status": "created"}}
    for event in (created, pending):
        assert event.merchant_id == "mer_test0000000001" and event.invoice_id == "ord_test_001"
    owner = await db_pool.fetchrow("SELECT merchant_id FROM invoice_owners WHERE invoice_id = 'ord_test_001'")
    assert owner is not None and owner["merchant_id"] == "mer_test0000000001"


@pytest.mark.parametrize(
    ("number", "network"),
    [
        (VISA, "visa"),
        ("5555555555554444", "mastercard"),
        ("2223003122003222", "mastercard"),
        ("378282246310005", "amex"),
        (with_luhn_digit("652150000000000"), "rupay"),
        (with_luhn_digit("508500000000000"), "rupay"),
    ],
)
async def test_card_payment_keeps_only_network_and_last4(
    api: TestClient[Any, Any], db_pool: asyncpg.Pool, number: str, network: str
) -> None:
    body = card_payment(card=card(number))
    payment = await create(api, body)
    assert payment["card_network"] == network and payment["card_last4"] == number[-4:]
    assert payment["vpa"] is None and payment["status"] == "pending"
    # Neither the number nor the CVV is anywhere in the database.
    cvv = body["card"]["cvv"]
    for table in ("payments", "outbox", "idempotency_keys", "invoice_owners"):
        dump = await db_pool.fetchval(f"SELECT coalesce(string_agg(t::text, ' '), '') FROM {table} t")
        assert number not in dump and number[:6] not in dump
        assert f'"cvv": "{cvv}"' not in dump and '"cvv"' not in dump


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"order_id": None}, "order_id"),
        ({"order_id": ""}, "order_id"),
        ({"order_id": "x" * 101}, "order_id"),
        ({"amount": None}, "amount"),
        ({"amount": 499.5}, "amount"),
        ({"amount": "50000"}, "amount"),
        ({"amount": 0}, "amount"),
        ({"amount": -1}, "amount"),
        ({"amount": 10**13}, "amount"),
        ({"currency": "ABC"}, "currency"),
        ({"method": "netbanking"}, "method"),
        ({"method": None}, "method"),
        ({"vpa": None}, "vpa"),
        ({"vpa": "no-at-sign"}, "vpa"),
        ({"vpa": "user@"}, "vpa"),
        ({"vpa": "@bank"}, "vpa"),
        ({"vpa": 12345}, "vpa"),
    ],
)
async def test_upi_validation_names_the_field(
    validating_api: TestClient[Any, Any], overrides: dict[str, Any], field: str
) -> None:
    response = await validating_api.post("/api/v1/payments", json=upi_payment(**overrides), headers=AUTH)
    assert response.status == 422
    body = await response.json()
    assert body["error"]["code"] == "VALIDATION_ERROR" and body["error"]["field"] == field


@pytest.mark.parametrize(
    ("card_body", "field"),
    [
        (None, "card"),
        ("4111111111111111", "card"),
        (card("4111111111111112"), "card.number"),  # Luhn
        (card("6011111111111117"), "card.number"),  # a Discover prefix: not supported
        (card("41111111"), "card.number"),
        (card(4111111111111111), "card.number"),
        (card("4111 1111 1111 111x"), "card.number"),
        (card(expiry_month=13), "card.expiry_month"),
        (card(expiry_month=0), "card.expiry_month"),
        (card(expiry_month="ab"), "card.expiry_month"),
        (card(expiry_year=2020), "card.expiry_year"),
        (card(expiry_month=1, expiry_year=datetime.now(UTC).year - 1), "card.expiry_year"),
        (card(expiry_year=NEXT_YEAR + 60), "card.expiry_year"),
        (card(cvv="12"), "card.cvv"),
        (card(cvv=123), "card.cvv"),
        (card("378282246310005", cvv="123"), "card.cvv"),
        (card(cvv=None), "card.cvv"),
        (card(holder_name=None), "card.holder_name"),
        (card(holder_name=""), "card.holder_name"),
    ],
)
async def test_card_validation_names_the_field(
    validating_api: TestClient[Any, Any], card_body: Any, field: str
) -> None:
    response = await validating_api.post("/api/v1/payments", json=card_payment(card=card_body), headers=AUTH)
    assert response.status == 422
    body = await response.json()
    assert body["error"]["field"] == field
    assert "4111" not in body["error"]["description"]


@pytest.mark.parametrize(
    ("body", "field"),
    [
        (upi_payment(card=card()), "card"),
        (upi_payment(card="x"), "card"),
        (card_payment(vpa="user@paytm"), "vpa"),
    ],
)
async def test_a_field_of_the_other_method_is_refused_not_ignored(
    api: TestClient[Any, Any], db_pool: asyncpg.Pool, body: dict[str, Any], field: str
) -> None:
    response = await api.post("/api/v1/payments", json=body, headers=AUTH)
    assert response.status == 422
    assert (await response.json())["error"]["field"] == field
    assert await db_pool.fetchval("SELECT count(*) FROM payments") == 0


async def test_card_number_with_spaces_and_string_expiry(api: TestClient[Any, Any]) -> None:
    payment = await create(
        api,
        card_payment(card=card("4111 1111 1111 1111", expiry_month="07", expiry_year=str(NEXT_YEAR % 100))),
    )
    assert payment["card_network"] == "visa" and payment["card_last4"] == "1111"


async def test_payment_for_an_order_must_match_it(api: TestClient[Any, Any], db_pool: asyncpg.Pool) -> None:
    order = await (await api.post("/api/v1/orders", json={"amount": 50000}, headers=AUTH)).json()
    wrong_amount = await api.post(
        "/api/v1/payments", json=upi_payment(order_id=order["id"], amount=49999), headers=AUTH
    )
    assert wrong_amount.status == 400
    assert (await wrong_amount.json())["error"] == {
        "code": "ORDER_AMOUNT_MISMATCH",
        "description": "amount must equal the order's amount (50000)",
        "field": "amount",
    }
    wrong_currency = await api.post(
        "/api/v1/payments", json=upi_payment(order_id=order["id"], currency="USD"), headers=AUTH
    )
    assert wrong_currency.status == 400
    assert (await wrong_currency.json())["error"]["field"] == "currency"

    payment = await create(api, upi_payment(order_id=order["id"]))
    assert payment["order_id"] == order["id"]
    attempted = await (await api.get(f"/api/v1/orders/{order['id']}", headers=AUTH)).json()
    assert attempted["status"] == "attempted" and attempted["attempts"] == 1

    await db_pool.execute(
        "UPDATE orders SET status = 'paid', amount_paid = amount WHERE id = $1", order["id"]
    )
    paid = await api.post("/api/v1/payments", json=upi_payment(order_id=order["id"]), headers=AUTH)
    assert paid.status == 400
    assert (await paid.json())["error"]["code"] == "ORDER_ALREADY_PAID"


async def test_order_id_shaped_reference_of_no_order_is_a_reference(api: TestClient[Any, Any]) -> None:
    payment = await create(api, upi_payment(order_id="order_AAAAAAAAAAAAAAAA", amount=123))
    assert payment["order_id"] == "order_AAAAAAAAAAAAAAAA"


async def test_list_payments_newest_first_with_total_and_filters(
    api: TestClient[Any, Any], db_pool: asyncpg.Pool
) -> None:
    ids = [(await create(api, upi_payment(amount=100 + n)))["id"] for n in range(5)]
    await db_pool.execute("UPDATE payments SET status = 'success' WHERE id = $1", ids[1])

    page = await (await api.get("/api/v1/payments?limit=2&offset=1", headers=AUTH)).json()
    assert page["total"] == 5 and page["limit"] == 2 and page["offset"] == 1
    assert [p["id"] for p in page["data"]] == [ids[3], ids[2]]

    everything = await (await api.get("/api/v1/payments", headers=AUTH)).json()
    assert [p["id"] for p in everything["data"]] == list(reversed(ids))

    successes = await (await api.get("/api/v1/payments?status=success", headers=AUTH)).json()
    assert successes["total"] == 1 and successes["data"][0]["id"] == ids[1]

    for query, field in [
        ("limit=0", "limit"),
        ("limit=101", "limit"),
        ("limit=x", "limit"),
        ("offset=-1", "offset"),
        ("status=done", "status"),
    ]:
        response = await api.get(f"/api/v1/payments?{query}", headers=AUTH)
        assert response.status == 422
        assert (await response.json())["error"]["field"] == field


async def test_capture(api: TestClient[Any, Any], db_pool: asyncpg.Pool) -> None:
    payment = await create(api, upi_payment())
    pending = await api.post(f"/api/v1/payments/{payment['id']}/capture", headers=AUTH)
    assert pending.status == 400
    assert (await pending.json())["error"]["code"] == "PAYMENT_NOT_SUCCESSFUL"

    await db_pool.execute("UPDATE payments SET status = 'success' WHERE id = $1", payment["id"])
    wrong = await api.post(f"/api/v1/payments/{payment['id']}/capture", json={"amount": 1}, headers=AUTH)
    assert wrong.status == 400 and (await wrong.json())["error"]["field"] == "amount"
    captured = await api.post(
        f"/api/v1/payments/{payment['id']}/capture", json={"amount": 50000}, headers=AUTH
    )
    assert captured.status == 200
    body = await captured.json()
    assert body["captured"] is True and body["captured_at"] is not None and body["status"] == "success"
    events = await outbox_events(db_pool)
    assert events[-1].type.value == "payment.captured" and events[-1].data == {"payment": body}

    again = await api.post(f"/api/v1/payments/{payment['id']}/capture", headers=AUTH)
    assert again.status == 400
    assert (await again.json())["error"]["code"] == "PAYMENT_ALREADY_CAPTURED"
    assert [e.type.value for e in await outbox_events(db_pool)].count("payment.captured") == 1

    await db_pool.execute("UPDATE payments SET status = 'failed' WHERE id <> $1", payment["id"])
    failed = await create(api, upi_payment())
    await db_pool.execute("UPDATE payments SET status = 'failed' WHERE id = $1", failed["id"])
    response = await api.post(f"/api/v1/payments/{failed['id']}/capture", headers=AUTH)
    assert response.status == 400 and (await response.json())["error"]["code"] == "PAYMENT_NOT_SUCCESSFUL"


async def test_merchants_cannot_see_each_others_payments(
    api: TestClient[Any, Any], db_pool: asyncpg.Pool, other_merchant: dict[str, str]
) -> None:
    mine = await create(api, upi_payment())
    theirs = await create(api, upi_payment(order_id="their_ref"), headers=other_merchant)
    await db_pool.execute("UPDATE payments SET status = 'success'")

    for payment_id, headers in ((mine["id"], other_merchant), (theirs["id"], AUTH)):
        for method, path in (
            ("GET", f"/api/v1/payments/{payment_id}"),
            ("POST", f"/api/v1/payments/{payment_id}/capture"),
            ("GET", f"/api/v1/payments/{payment_id}/refunds"),
        ):
            response = await api.request(method, path, headers=headers)
            assert response.status == 404, (method, path)
            assert (await response.json())["error"]["code"] == "NOT_FOUND_ERROR"
        refund = await api.post(f"/api/v1/payments/{payment_id}/refunds", json={"amount": 1}, headers=headers)
        assert refund.status == 404
    listing = await (await api.get("/api/v1/payments", headers=other_merchant)).json()
    assert [p["id"] for p in listing["data"]] == [theirs["id"]] and listing["total"] == 1
    assert await db_pool.fetchval("SELECT count(*) FROM refunds") == 0
    assert await db_pool.fetchval("SELECT count(*) FROM payments WHERE captured") == 0


async def test_unknown_payment_ids_are_404(validating_api: TestClient[Any, Any]) -> None:
    for payment_id in ("pay_0000000000000000", "pay_x", "order_0000000000000000", "%20"):
        response = await validating_api.get(f"/api/v1/payments/{payment_id}", headers=AUTH)
        assert response.status == 404


class TcpProxy:
    """A TCP proxy to PostgreSQL that the test can cut (refusing and dropping connections) and
    restore: PostgreSQL going down as the API sees it, without stopping the shared server."""

    def __init__(self, target_host: str, target_port: int) -> None:
        self.target = (target_host, target_port)
        self.server: asyncio.Server | None = None
        self.port = 0
        self.writers: set[asyncio.StreamWriter] = set()

    async def start(self) -> None:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", self.port)
        self.port = self.server.sockets[0].getsockname()[1]

    async def cut(self) -> None:
        assert self.server is not None
        self.server.close()
        await self.server.wait_closed()
        for writer in list(self.writers):
            writer.transport.abort()

    async def _serve(self, client_reader: asyncio.StreamReader, client_writer: asyncio.StreamWriter) -> None:
        upstream_reader, upstream_writer = await asyncio.open_connection(*self.target)
        self.writers.update((client_writer, upstream_writer))

        async def pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            try:
                while chunk := await reader.read(65536):
                    writer.write(chunk)
                    await writer.drain()
            except OSError:
                pass
            finally:
                writer.transport.abort()
                self.writers.discard(writer)

        await asyncio.gather(pipe(client_reader, upstream_writer), pipe(upstream_reader, client_writer))


async def test_postgres_down_is_503_and_recovers(service_env: dict[str, str]) -> None:
    target = urlsplit(service_env["DATABASE_URL"])
    proxy = TcpProxy(target.hostname or "127.0.0.1", target.port or 5432)
    await proxy.start()
    proxied = urlunsplit(target._replace(netloc=f"{target.username or ''}@127.0.0.1:{proxy.port}"))
    if target.password:
        proxied = urlunsplit(
            target._replace(netloc=f"{target.username}:{target.password}@127.0.0.1:{proxy.port}")
        )
    app = create_app(ApiSettings.from_env({**service_env, "DATABASE_URL": proxied}))
    async with TestClient(TestServer(app)) as api:
        assert (await api.post("/api/v1/payments", json=upi_payment(), headers=AUTH)).status == 201
        await proxy.cut()
        for path in ("/api/v1/payments", "/api/v1/payments/pay_0000000000000000"):
            response = await api.get(path, headers=AUTH)
            assert response.status == 503
            assert (await response.json())["error"]["code"] == "SERVICE_UNAVAILABLE"
            assert response.headers["Retry-After"] == "1"
        response = await api.post("/api/v1/payments", json=upi_payment(), headers=AUTH)
        assert response.status == 503
        await proxy.start()  # PostgreSQL is back: the pool reconnects by itself

        async def created() -> bool:
            response = await api.post("/api/v1/payments", json=upi_payment(), headers=AUTH)
            return response.status == 201

        await eventually(created, timeout=10, interval=0.1)
        await proxy.cut()
