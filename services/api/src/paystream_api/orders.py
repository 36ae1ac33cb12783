"""`POST /api/v1/orders` and `GET /api/v1/orders/{id}`."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import asyncpg
from aiohttp import web

from paystream.db import Connection
from paystream.errors import NotFoundError
from paystream.invoices import record_invoice_owner
from paystream.logging import get_logger
from paystream.resources import ORDER_COLUMNS, OrderResource, order_resource
from paystream.web import POOL, json_response
from paystream_api import validation
from paystream_api.auth import authenticate
from paystream_api.creation import create_once
from paystream_api.ids import ORDER_ID, ORDER_PREFIX, is_id, new_id
from paystream_api.request_body import read_json_object

log = get_logger(__name__)

RECEIPT_MAX_LENGTH = 40


@dataclass(frozen=True, slots=True)
class NewOrder:
    amount: int
    currency: str
    receipt: str | None
    notes: dict[str, str | int | float | bool]
    # Where a standalone hosted checkout offers to send the payer back (see frontend.checkout).
    return_url: str | None = None


ORDER_FIELDS = frozenset({"amount", "currency", "receipt", "notes", "return_url"})


def parse_new_order(fields: Mapping[str, Any]) -> NewOrder:
    """Validate an order request (422 naming the first bad field)."""
    validation.reject_unknown(fields, ORDER_FIELDS)
    return NewOrder(
        amount=validation.amount(validation.require(fields, "amount")),
        currency=validation.currency(fields.get("currency")),
        receipt=validation.optional_text(fields.get("receipt"), "receipt", max_length=RECEIPT_MAX_LENGTH),
        notes=validation.notes(fields.get("notes")),
        return_url=None
        if fields.get("return_url") is None
        else validation.link(fields["return_url"], "return_url"),
    )


async def insert_order(conn: Connection, merchant_id: str, order: NewOrder) -> OrderResource:
    row = await conn.fetchrow(
        f"""INSERT INTO orders (id, merchant_id, amount, currency, receipt, notes, return_url)
            VALUES ($1, $2, $3, $4, $5, $6, $7)
            RETURNING {ORDER_COLUMNS}""",
        new_id(ORDER_PREFIX),
        merchant_id,
        order.amount,
        order.currency,
        order.receipt,
        order.notes,
        order.return_url,
    )
    assert row is not None
    # The order id is the invoice a checkout page watches on the notifier: its owner is known at once.
    await record_invoice_owner(conn, merchant_id, row["id"])
    log.info("order.created", order_id=row["id"], merchant_id=merchant_id, amount=order.amount)
    return order_resource(row)


async def create_order(request: web.Request) -> web.Response:
    merchant = await authenticate(request)
    body = await read_json_object(request)
    # Validated before the idempotency key is claimed: a malformed request never uses one up.
    order = parse_new_order(body.fields)

    async def create(conn: Connection) -> OrderResource:
        return await insert_order(conn, merchant.id, order)

    return await create_once(request, merchant.id, body, create)


async def fetch_order(
    conn: Connection | asyncpg.Pool, merchant_id: str, order_id: str
) -> asyncpg.Record | None:
    if not is_id(ORDER_ID, order_id):
        return None
    row: asyncpg.Record | None = await conn.fetchrow(
        f"SELECT {ORDER_COLUMNS} FROM orders WHERE id = $1 AND merchant_id = $2", order_id, merchant_id
    )
    return row


async def get_order(request: web.Request) -> web.Response:
    merchant = await authenticate(request)
    row = await fetch_order(request.app[POOL], merchant.id, request.match_info["order_id"])
    if row is None:
        raise NotFoundError("no such order", field="id")
    return json_response(order_resource(row))


def setup_routes(app: web.Application) -> None:
    app.router.add_post("/api/v1/orders", create_order)
    app.router.add_get("/api/v1/orders/{order_id}", get_order)
