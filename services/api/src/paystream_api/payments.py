"""Payments through the merchant API: create (201 at once, pending), read, list, capture.

A new payment commits with its `payment.created` and `payment.pending` events (in that order) and
its invoice owner; the payment processor settles it later. When `order_id` names one of the
merchant's orders, the amount (and currency) must match it and a paid order takes no new payment;
otherwise `order_id` is the merchant's own reference.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import asyncpg
from aiohttp import web

from paystream import inputs, outbox
from paystream.db import Connection
from paystream.errors import BadRequestError, NotFoundError, ValidationError
from paystream.events import EventType, Stream
from paystream.invoices import record_invoice_owner
from paystream.logging import get_logger
from paystream.resources import (
    PAYMENT_COLUMNS,
    PAYMENT_STATUSES,
    PaymentResource,
    payment_event,
    payment_resource,
)
from paystream.web import POOL, json_response
from paystream_api import validation
from paystream_api.auth import authenticate
from paystream_api.cards import CardSummary, validate_card
from paystream_api.creation import create_once
from paystream_api.ids import ORDER_ID, PAYMENT_ID, PAYMENT_PREFIX, is_id, new_id
from paystream_api.request_body import read_json_object

log = get_logger(__name__)

METHODS = ("upi", "card")
ORDER_REFERENCE_MAX_LENGTH = 100
# name@bank: a handle of letters, digits, dots, hyphens or underscores, then the bank's handle.
VPA = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,254}@[A-Za-z][A-Za-z0-9.-]{1,63}")
LIST_DEFAULT_LIMIT = 10
LIST_MAX_LIMIT = 100
LIST_MAX_OFFSET = 1_000_000


@dataclass(frozen=True, slots=True)
class NewPayment:
    order_id: str
    amount: int
    currency: str | None  # None: the order's currency, or INR
    method: str
    vpa: str | None
    card: CardSummary | None


PAYMENT_FIELDS = frozenset({"order_id", "amount", "currency", "method", "vpa", "card"})
CAPTURE_FIELDS = frozenset({"amount"})


def parse_new_payment(fields: Mapping[str, Any], today: datetime) -> NewPayment:
    """Validate a payment request (422 naming the first bad field). The card, if any, is reduced
    to its network and last four digits here."""
    validation.reject_unknown(fields, PAYMENT_FIELDS)
    order_id = validation.text(
        validation.require(fields, "order_id"), "order_id", max_length=ORDER_REFERENCE_MAX_LENGTH
    )
    amount = validation.amount(validation.require(fields, "amount"))
    currency = validation.currency(fields["currency"]) if fields.get("currency") is not None else None
    method = validation.choice(validation.require(fields, "method"), "method", METHODS)
    vpa: str | None = None
    card: CardSummary | None = None
    # A field of the other method is refused, never ignored: a card sent with a UPI payment (or a
    # VPA with a card payment) says the request is not what its sender thinks.
    other = "card" if method == "upi" else "vpa"
    if fields.get(other) is not None:
        raise ValidationError(f"{other} is not a parameter of a {method} payment", field=other)
    if method == "upi":
        raw_vpa = validation.require(fields, "vpa")
        if not isinstance(raw_vpa, str) or not VPA.fullmatch(raw_vpa.strip()):
            raise ValidationError("vpa must be a UPI address like name@bank", field="vpa")
        vpa = raw_vpa.strip()
    else:
        card = validate_card(validation.require(fields, "card"), today.date())
    return NewPayment(order_id, amount, currency, method, vpa, card)


async def _claim_order(conn: Connection, merchant_id: str, payment: NewPayment) -> asyncpg.Record | None:
    """The merchant's order named by `order_id`, counted as attempted (locked until commit); None
    when `order_id` is the merchant's own reference."""
    if not is_id(ORDER_ID, payment.order_id):
        return None
    row: asyncpg.Record | None = await conn.fetchrow(
        """UPDATE orders
           SET attempts = attempts + 1,
               status = CASE WHEN status = 'created' THEN 'attempted' ELSE status END,
               updated_at = now()
           WHERE id = $1 AND merchant_id = $2
           RETURNING id, amount, currency, status""",
        payment.order_id,
        merchant_id,
    )
    if row is None:
        return None
    if row["status"] == "paid":
        raise BadRequestError("the order is already paid", field="order_id", code="ORDER_ALREADY_PAID")
    if row["amount"] != payment.amount:
        raise BadRequestError(
            f"amount must equal the order's amount ({row['amount']})",
            field="amount",
            code="ORDER_AMOUNT_MISMATCH",
        )
    if payment.currency is not None and payment.currency != row["currency"]:
        raise BadRequestError(
            f"currency must equal the order's currency ({row['currency']})",
            field="currency",
            code="ORDER_CURRENCY_MISMATCH",
        )
    return row


async def insert_payment(conn: Connection, merchant_id: str, payment: NewPayment) -> PaymentResource:
    """Insert a pending payment with its two events and invoice owner (caller's transaction)."""
    order = await _claim_order(conn, merchant_id, payment)
    currency = order["currency"] if order is not None else (payment.currency or validation.DEFAULT_CURRENCY)
    row = await conn.fetchrow(
        f"""INSERT INTO payments (id, merchant_id, order_id, order_ref, amount, currency, method, vpa,
                                  card_network, card_last4, status)
            VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, 'pending')
            RETURNING {PAYMENT_COLUMNS}""",
        new_id(PAYMENT_PREFIX),
        merchant_id,
        payment.order_id,
        order["id"] if order is not None else None,
        payment.amount,
        currency,
        payment.method,
        payment.vpa,
        payment.card.network if payment.card else None,
        payment.card.last4 if payment.card else None,
    )
    assert row is not None
    await record_invoice_owner(conn, merchant_id, payment.order_id)
    created = payment_resource(row, status="created")
    pending = payment_resource(row)
    await outbox.enqueue(
        conn,
        Stream.PAYMENT_EVENTS,
        [
            payment_event(EventType.PAYMENT_CREATED, created),
            payment_event(EventType.PAYMENT_PENDING, pending),
        ],
    )
    log.info(
        "payment.created",
        payment_id=row["id"],
        merchant_id=merchant_id,
        amount=payment.amount,
        method=payment.method,
    )
    return pending


async def create_payment(request: web.Request) -> web.Response:
    merchant = await authenticate(request)
    body = await read_json_object(request)
    # Validated before the idempotency key is claimed: a malformed request never uses one up.
    payment = parse_new_payment(body.fields, datetime.now(UTC))

    async def create(conn: Connection) -> PaymentResource:
        return await insert_payment(conn, merchant.id, payment)

    return await create_once(request, merchant.id, body, create)


async def fetch_payment(
    conn: Connection | asyncpg.Pool, merchant_id: str, payment_id: str, *, for_update: bool = False
) -> asyncpg.Record:
    """The merchant's payment, or 404 (also for another merchant's: never reveal it exists)."""
    row: asyncpg.Record | None = None
    if is_id(PAYMENT_ID, payment_id):
        lock = " FOR UPDATE" if for_update else ""
        row = await conn.fetchrow(
            f"SELECT {PAYMENT_COLUMNS} FROM payments WHERE id = $1 AND merchant_id = $2{lock}",
            payment_id,
            merchant_id,
        )
    if row is None:
        raise NotFoundError("no such payment", field="id")
    return row


async def get_payment(request: web.Request) -> web.Response:
    merchant = await authenticate(request)
    row = await fetch_payment(request.app[POOL], merchant.id, request.match_info["payment_id"])
    return json_response(payment_resource(row))


async def list_payments(request: web.Request) -> web.Response:
    merchant = await authenticate(request)
    query = request.rel_url.query
    limit = inputs.query_int(query, "limit", default=LIST_DEFAULT_LIMIT, minimum=1, maximum=LIST_MAX_LIMIT)
    offset = inputs.query_int(query, "offset", default=0, minimum=0, maximum=LIST_MAX_OFFSET)
    status = inputs.query_text(query, "status")
    if status is not None:
        validation.choice(status, "status", PAYMENT_STATUSES)
    pool = request.app[POOL]
    rows = await pool.fetch(
        f"""SELECT {PAYMENT_COLUMNS} FROM payments
            WHERE merchant_id = $1 AND ($2::text IS NULL OR status = $2)
            ORDER BY created_at DESC, id DESC
            LIMIT $3 OFFSET $4""",
        merchant.id,
        status,
        limit,
        offset,
    )
    total = await pool.fetchval(
        "SELECT count(*) FROM payments WHERE merchant_id = $1 AND ($2::text IS NULL OR status = $2)",
        merchant.id,
        status,
    )
    return json_response(
        {
            "entity": "collection",
            "data": [payment_resource(row) for row in rows],
            "count": len(rows),
            "total": total,
            "limit": limit,
            "offset": offset,
        }
    )


async def capture_payment(request: web.Request) -> web.Response:
    """Capture a successful payment once: 200 with `captured: true` and a `payment.captured` event."""
    merchant = await authenticate(request)
    body = await read_json_object(request, allow_empty=True)
    validation.reject_unknown(body.fields, CAPTURE_FIELDS)
    requested_amount = body.fields.get("amount")
    if requested_amount is not None:
        validation.amount(requested_amount)
    async with request.app[POOL].acquire() as conn, conn.transaction():
        row = await fetch_payment(conn, merchant.id, request.match_info["payment_id"], for_update=True)
        if row["status"] != "success":
            raise BadRequestError(
                f"only a successful payment can be captured; this one is {row['status']}",
                code="PAYMENT_NOT_SUCCESSFUL",
            )
        if row["captured"]:
            raise BadRequestError("the payment is already captured", code="PAYMENT_ALREADY_CAPTURED")
        if requested_amount is not None and requested_amount != row["amount"]:
            raise BadRequestError(
                f"amount must equal the payment's amount ({row['amount']})",
                field="amount",
                code="CAPTURE_AMOUNT_MISMATCH",
            )
        captured = await conn.fetchrow(
            f"""UPDATE payments SET captured = true, captured_at = now(), updated_at = now()
                WHERE id = $1 RETURNING {PAYMENT_COLUMNS}""",
            row["id"],
        )
        assert captured is not None
        resource = payment_resource(captured)
        await outbox.enqueue(
            conn, Stream.PAYMENT_EVENTS, [payment_event(EventType.PAYMENT_CAPTURED, resource)]
        )
    log.info("payment.captured", payment_id=resource["id"], merchant_id=merchant.id)
    return json_response(resource)


def setup_routes(app: web.Application) -> None:
    app.router.add_post("/api/v1/payments", create_payment)
    app.router.add_get("/api/v1/payments", list_payments)
    app.router.add_get("/api/v1/payments/{payment_id}", get_payment)
    app.router.add_post("/api/v1/payments/{payment_id}/capture", capture_payment)
