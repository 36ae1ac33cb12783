"""The public checkout endpoints' handlers (see the package doc)."""

from __future__ import annotations

from datetime import UTC, datetime

import asyncpg
import orjson
from aiohttp import web

from paystream.db import Connection
from paystream.errors import NotFoundError
from paystream.resources import PAYMENT_COLUMNS, payment_resource
from paystream.web import POOL, json_response
from paystream_api import validation
from paystream_api.creation import REPLAY_HEADER, create_once
from paystream_api.ids import PAYMENT_ID, is_id
from paystream_api.keys import SETTINGS
from paystream_api.orders import fetch_order
from paystream_api.payments import (
    ORDER_REFERENCE_MAX_LENGTH,
    PAYMENT_FIELDS,
    insert_payment,
    parse_new_payment,
)
from paystream_api.public_api.access import PUBLIC_THROTTLE, public_merchant
from paystream_api.public_api.views import (
    CheckoutPayment,
    NotifierGrant,
    checkout_order,
    checkout_payment,
    notifier_grant,
)
from paystream_api.request_body import read_json_object

# Idempotency keys from payers' browsers live apart from the merchant's own (see create_once).
CHECKOUT_KEY_SCOPE = "checkout"
# A status is worth nothing once stale, and a shared cache must never keep one payer's answer.
NO_STORE = {"Cache-Control": "no-store"}


async def get_checkout_order(request: web.Request) -> web.Response:
    merchant = await public_merchant(request, request.app[PUBLIC_THROTTLE].reads)
    row = await fetch_order(request.app[POOL], merchant.id, request.match_info["order_id"])
    if row is None:
        raise NotFoundError("no such order", field="order_id")
    settings = request.app[SETTINGS]
    grant = notifier_grant(settings, merchant.id, row["id"])
    view = checkout_order(row, merchant, grant, test_mode=settings.common.test_mode.enabled)
    return json_response(view, headers=NO_STORE)


async def create_checkout_payment(request: web.Request) -> web.Response:
    """201 with the pending payment and a fresh notifier grant. The body is the merchant API's
    payment request without the need for `amount` and `currency` (the order's; when sent, they
    must match it); `order_id` must name an order of the key's merchant."""
    merchant = await public_merchant(request, request.app[PUBLIC_THROTTLE].payments)
    body = await read_json_object(request)
    validation.reject_unknown(body.fields, PAYMENT_FIELDS)
    order_id = validation.text(
        validation.require(body.fields, "order_id"), "order_id", max_length=ORDER_REFERENCE_MAX_LENGTH
    )
    order = await fetch_order(request.app[POOL], merchant.id, order_id)
    if order is None:  # never a merchant's own reference: the public key pays only real orders
        raise NotFoundError("no such order", field="order_id")
    fields = dict(body.fields)
    if fields.get("amount") is None:
        fields["amount"] = order["amount"]
    if fields.get("currency") is None:
        fields["currency"] = order["currency"]
    payment = parse_new_payment(fields, datetime.now(UTC))

    # A paid order is refused inside the creating transaction (insert_payment locks the order), not
    # here: a browser retrying a payment that went through must get its replay, not a refusal.
    async def create(conn: Connection) -> CheckoutPayment:
        return checkout_payment(await insert_payment(conn, merchant.id, payment))

    created = await create_once(request, merchant.id, body, create, key_scope=CHECKOUT_KEY_SCOPE)
    return _with_grant(created, notifier_grant(request.app[SETTINGS], merchant.id, order["id"]))


async def get_checkout_payment(request: web.Request) -> web.Response:
    merchant = await public_merchant(request, request.app[PUBLIC_THROTTLE].reads)
    payment_id = request.match_info["payment_id"]
    row: asyncpg.Record | None = None
    if is_id(PAYMENT_ID, payment_id):
        # Only payments for orders: the key never reads what the merchant made with its secret
        # under a reference of its own.
        row = await request.app[POOL].fetchrow(
            f"""SELECT {PAYMENT_COLUMNS} FROM payments
                WHERE id = $1 AND merchant_id = $2 AND order_ref IS NOT NULL""",
            payment_id,
            merchant.id,
        )
    if row is None:
        raise NotFoundError("no such payment", field="payment_id")
    return json_response(checkout_payment(payment_resource(row)), headers=NO_STORE)


def _with_grant(created: web.Response, grant: NotifierGrant) -> web.Response:
    """The stored (or replayed) answer plus a grant minted now: a replay a day later must not
    hand out a token that expired long ago, so the grant is never part of the stored answer."""
    assert isinstance(created.body, bytes)
    answer = orjson.loads(created.body)
    answer["notifier"] = grant
    headers = dict(NO_STORE)
    if REPLAY_HEADER in created.headers:
        headers[REPLAY_HEADER] = created.headers[REPLAY_HEADER]
    return json_response(answer, status=created.status, headers=headers)
