"""Refunds: create (201, pending) for successful payments, read one, list a payment's refunds.

The refundable amount is the payment's amount minus all its refunds that have not failed, computed
with the payment row locked (`FOR UPDATE`) in the transaction that inserts the refund: concurrent
refunds of one payment queue on that lock, so together they can never exceed the payment.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from paystream import inputs, outbox
from paystream.db import Connection
from paystream.errors import BadRequestError, NotFoundError
from paystream.events import EventType, Stream
from paystream.logging import get_logger
from paystream.resources import REFUND_COLUMNS, RefundResource, refund_event, refund_resource
from paystream.web import POOL, json_response
from paystream_api import validation
from paystream_api.auth import authenticate
from paystream_api.creation import create_once
from paystream_api.ids import PAYMENT_ID, REFUND_ID, REFUND_PREFIX, is_id, new_id
from paystream_api.payments import LIST_DEFAULT_LIMIT, LIST_MAX_LIMIT, LIST_MAX_OFFSET, fetch_payment
from paystream_api.request_body import read_json_object

log = get_logger(__name__)

REASON_MAX_LENGTH = 255


@dataclass(frozen=True, slots=True)
class NewRefund:
    amount: int
    reason: str | None


REFUND_FIELDS = frozenset({"amount", "reason"})


def parse_new_refund(fields: Mapping[str, Any]) -> NewRefund:
    validation.reject_unknown(fields, REFUND_FIELDS)
    return NewRefund(
        amount=validation.amount(validation.require(fields, "amount")),
        reason=validation.optional_text(fields.get("reason"), "reason", max_length=REASON_MAX_LENGTH),
    )


async def insert_refund(
    conn: Connection, merchant_id: str, payment_id: str, refund: NewRefund
) -> RefundResource:
    """Insert a pending refund if the payment can take it (caller's transaction)."""
    payment = await fetch_payment(conn, merchant_id, payment_id, for_update=True)
    if payment["status"] != "success":
        raise BadRequestError(
            f"only a successful payment can be refunded; this one is {payment['status']}",
            code="PAYMENT_NOT_REFUNDABLE",
        )
    already_refunded = await conn.fetchval(
        "SELECT COALESCE(sum(amount), 0) FROM refunds WHERE payment_id = $1 AND status <> 'failed'",
        payment_id,
    )
    refundable = payment["amount"] - already_refunded
    if refund.amount > refundable:
        raise BadRequestError(
            f"amount exceeds the refundable amount ({refundable})",
            field="amount",
            code="REFUND_AMOUNT_EXCEEDS_REFUNDABLE",
        )
    row = await conn.fetchrow(
        f"""INSERT INTO refunds (id, merchant_id, payment_id, amount, currency, status, reason)
            VALUES ($1, $2, $3, $4, $5, 'pending', $6)
            RETURNING {REFUND_COLUMNS}""",
        new_id(REFUND_PREFIX),
        merchant_id,
        payment_id,
        refund.amount,
        payment["currency"],
        refund.reason,
    )
    assert row is not None
    await conn.execute(
        "UPDATE payments SET amount_refunded = $2, updated_at = now() WHERE id = $1",
        payment_id,
        already_refunded + refund.amount,
    )
    resource = refund_resource(row)
    await outbox.enqueue(
        conn,
        Stream.PAYMENT_EVENTS,
        [refund_event(EventType.REFUND_CREATED, resource, invoice_id=payment["order_id"])],
    )
    log.info("refund.created", refund_id=row["id"], payment_id=payment_id, amount=refund.amount)
    return resource


async def create_refund(request: web.Request) -> web.Response:
    merchant = await authenticate(request)
    payment_id = request.match_info["payment_id"]
    if not is_id(PAYMENT_ID, payment_id):
        raise NotFoundError("no such payment", field="id")
    body = await read_json_object(request)
    # Validated before the idempotency key is claimed: a malformed request never uses one up.
    refund = parse_new_refund(body.fields)

    async def create(conn: Connection) -> RefundResource:
        return await insert_refund(conn, merchant.id, payment_id, refund)

    return await create_once(request, merchant.id, body, create)


async def get_refund(request: web.Request) -> web.Response:
    merchant = await authenticate(request)
    refund_id = request.match_info["refund_id"]
    row = None
    if is_id(REFUND_ID, refund_id):
        row = await request.app[POOL].fetchrow(
            f"SELECT {REFUND_COLUMNS} FROM refunds WHERE id = $1 AND merchant_id = $2", refund_id, merchant.id
        )
    if row is None:
        raise NotFoundError("no such refund", field="id")
    return json_response(refund_resource(row))


async def list_payment_refunds(request: web.Request) -> web.Response:
    merchant = await authenticate(request)
    query = request.rel_url.query
    limit = inputs.query_int(query, "limit", default=LIST_DEFAULT_LIMIT, minimum=1, maximum=LIST_MAX_LIMIT)
    offset = inputs.query_int(query, "offset", default=0, minimum=0, maximum=LIST_MAX_OFFSET)
    pool = request.app[POOL]
    payment = await fetch_payment(pool, merchant.id, request.match_info["payment_id"])
    rows = await pool.fetch(
        f"""SELECT {REFUND_COLUMNS} FROM refunds WHERE payment_id = $1
            ORDER BY created_at DESC, id DESC LIMIT $2 OFFSET $3""",
        payment["id"],
        limit,
        offset,
    )
    total = await pool.fetchval("SELECT count(*) FROM refunds WHERE payment_id = $1", payment["id"])
    return json_response(
        {
            "entity": "collection",
            "data": [refund_resource(row) for row in rows],
            "count": len(rows),
            "total": total,
            "limit": limit,
            "offset": offset,
        }
    )


def setup_routes(app: web.Application) -> None:
    app.router.add_post("/api/v1/payments/{payment_id}/refunds", create_refund)
    app.router.add_get("/api/v1/payments/{payment_id}/refunds", list_payment_refunds)
    app.router.add_get("/api/v1/refunds/{refund_id}", get_refund)
