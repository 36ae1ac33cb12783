"""Razorpay orders, invoices and payment links: `order.paid`, `order.notification.delivered|failed`,
`invoice.paid|partially_paid|expired`, `payment_link.paid|partially_paid|expired|cancelled`.

Each first records the payment the event carries (if any), then the object itself, forward only:
orders `created` < `attempted` < `paid`; invoices and links `created`/`issued` < `partially_paid` <
`expired`/`cancelled` < `paid` (a payment that arrived counts over a late expiry). A status change
emits `order.paid`, `invoice.*` or `payment_link.*` with the object (and the payment, when present).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import asyncpg

from payment_processor.provider_events.fields import integer, iso, razorpay_entity, text
from payment_processor.provider_events.payments import payment_object
from payment_processor.provider_events.razorpay_payments import record_embedded_payment
from payment_processor.provider_events.transitions import EntityTable, Transition, advance
from payment_processor.provider_events.work import Work
from paystream.events import EventType

ORDERS = EntityTable(name="provider_orders", key="order_id", entity="order", final_rank=30)
INVOICES = EntityTable(name="invoices", key="invoice_id", entity="invoice", final_rank=30)
PAYMENT_LINKS = EntityTable(name="payment_links", key="payment_link_id", entity="payment_link", final_rank=30)

ORDER_RANK = {"created": 10, "attempted": 20, "paid": 30}
BILL_RANK = {
    "draft": 5,
    "created": 10,
    "issued": 10,
    "partially_paid": 20,
    "expired": 25,
    "cancelled": 25,
    "paid": 30,
}

INVOICE_EVENTS = {
    "paid": EventType.INVOICE_PAID,
    "partially_paid": EventType.INVOICE_PARTIALLY_PAID,
    "expired": EventType.INVOICE_EXPIRED,
}
LINK_EVENTS = {
    "paid": EventType.PAYMENT_LINK_PAID,
    "partially_paid": EventType.PAYMENT_LINK_PARTIALLY_PAID,
    "expired": EventType.PAYMENT_LINK_EXPIRED,
    "cancelled": EventType.PAYMENT_LINK_CANCELLED,
}


def _status(entity: Mapping[str, Any], implied: str, ranks: Mapping[str, int]) -> tuple[str, int]:
    """The entity's own status when we rank it, else the one the event type implies."""
    status = entity.get("status")
    if isinstance(status, str) and status in ranks:
        return status, ranks[status]
    return implied, ranks[implied]


async def _stored_payment(work: Work, payment_id: str | None) -> asyncpg.Record | None:
    if not payment_id:
        return None
    row: asyncpg.Record | None = await work.conn.fetchrow(
        "SELECT * FROM provider_payments WHERE provider = $1 AND payment_id = $2",
        work.event.provider,
        payment_id,
    )
    return row


async def upsert_order(work: Work, entity: Mapping[str, Any], implied: str) -> Transition:
    status, rank = _status(entity, implied, ORDER_RANK)
    return await advance(
        work,
        ORDERS,
        str(entity["id"]),
        status=status,
        rank=rank,
        columns={
            "amount": integer(entity.get("amount")),
            "amount_paid": integer(entity.get("amount_paid")),
            "currency": text(entity.get("currency")),
            "receipt": text(entity.get("receipt")),
            "entity": dict(entity),
        },
    )


def order_object(row: asyncpg.Record) -> dict[str, Any]:
    return {
        "id": row["order_id"],
        "entity": "order",
        "provider": row["provider"],
        "amount": row["amount"],
        "amount_paid": row["amount_paid"],
        "currency": row["currency"],
        "receipt": row["receipt"],
        "status": row["status"],
        "created_at": iso(row["created_at"]),
        "updated_at": iso(row["updated_at"]),
    }


async def handle_order_paid(work: Work) -> None:
    order = razorpay_entity(work.event.payload, "order", required=True)
    assert order is not None
    await record_embedded_payment(work)
    transition = await upsert_order(work, order, "paid")
    if not transition.status_changed or transition.status != "paid":
        return
    payment_entity = razorpay_entity(work.event.payload, "payment", required=False)
    payment = await _stored_payment(work, payment_entity["id"] if payment_entity else None)
    data: dict[str, Any] = {"order": order_object(transition.row)}
    if payment is not None:
        data["payment"] = payment_object(payment)
    await work.emit(
        EventType.ORDER_PAID,
        data,
        invoice_id=(payment["invoice_key"] if payment else None) or transition.row["order_id"],
        salon_id=payment["salon_id"] if payment else None,
    )


async def handle_order_notification(work: Work) -> None:
    """Delivery of Razorpay's order notification: noted on the order; nothing for merchants."""
    order = razorpay_entity(work.event.payload, "order", required=True)
    assert order is not None
    implied = order.get("status") if order.get("status") in ORDER_RANK else "created"
    transition = await upsert_order(work, order, str(implied))
    outcome = work.event.type.rsplit(".", 1)[-1]  # delivered | failed
    await work.conn.execute(
        """UPDATE provider_orders SET notification_status = $3, updated_at = now()
           WHERE provider = $1 AND order_id = $2""",
        work.event.provider,
        transition.row["order_id"],
        outcome,
    )
    work.change("order_notification", transition.row["order_id"], None, outcome)


async def handle_invoice(work: Work) -> None:
    invoice = razorpay_entity(work.event.payload, "invoice", required=True)
    assert invoice is not None
    await record_embedded_payment(work)
    implied = work.event.type.split(".", 1)[1]
    status, rank = _status(invoice, implied, BILL_RANK)
    transition = await advance(
        work,
        INVOICES,
        str(invoice["id"]),
        status=status,
        rank=rank,
        columns={
            "order_id": text(invoice.get("order_id")),
            "payment_id": text(invoice.get("payment_id")),
            "amount": integer(invoice.get("amount")),
            "amount_paid": integer(invoice.get("amount_paid")),
            "amount_due": integer(invoice.get("amount_due")),
            "currency": text(invoice.get("currency")),
            "short_url": text(invoice.get("short_url")),
            "entity": dict(invoice),
        },
    )
    event_type = INVOICE_EVENTS.get(transition.status)
    if not transition.status_changed or event_type is None:
        return
    row = transition.row
    payment = await _stored_payment(work, row["payment_id"])
    data: dict[str, Any] = {
        "invoice": {
            "id": row["invoice_id"],
            "entity": "invoice",
            "provider": row["provider"],
            "order_id": row["order_id"],
            "payment_id": row["payment_id"],
            "amount": row["amount"],
            "amount_paid": row["amount_paid"],
            "amount_due": row["amount_due"],
            "currency": row["currency"],
            "status": row["status"],
            "short_url": row["short_url"],
            "updated_at": iso(row["updated_at"]),
        }
    }
    if payment is not None:
        data["payment"] = payment_object(payment)
    await work.emit(
        event_type, data, invoice_id=row["invoice_id"], salon_id=payment["salon_id"] if payment else None
    )


async def handle_payment_link(work: Work) -> None:
    link = razorpay_entity(work.event.payload, "payment_link", required=True)
    assert link is not None
    await record_embedded_payment(work)
    implied = work.event.type.split(".", 1)[1]
    status, rank = _status(link, implied, BILL_RANK)
    transition = await advance(
        work,
        PAYMENT_LINKS,
        str(link["id"]),
        status=status,
        rank=rank,
        columns={
            "order_id": text(link.get("order_id")),
            "reference_id": text(link.get("reference_id")),
            "amount": integer(link.get("amount")),
            "amount_paid": integer(link.get("amount_paid")),
            "currency": text(link.get("currency")),
            "short_url": text(link.get("short_url")),
            "entity": dict(link),
        },
    )
    event_type = LINK_EVENTS.get(transition.status)
    if not transition.status_changed or event_type is None:
        return
    row = transition.row
    payment_entity = razorpay_entity(work.event.payload, "payment", required=False)
    payment = await _stored_payment(work, payment_entity["id"] if payment_entity else None)
    data: dict[str, Any] = {
        "payment_link": {
            "id": row["payment_link_id"],
            "entity": "payment_link",
            "provider": row["provider"],
            "order_id": row["order_id"],
            "reference_id": row["reference_id"],
            "amount": row["amount"],
            "amount_paid": row["amount_paid"],
            "currency": row["currency"],
            "status": row["status"],
            "short_url": row["short_url"],
            "updated_at": iso(row["updated_at"]),
        }
    }
    if payment is not None:
        data["payment"] = payment_object(payment)
    invoice_id = (payment["invoice_key"] if payment else None) or row["order_id"] or row["payment_link_id"]
    await work.emit(
        event_type, data, invoice_id=invoice_id, salon_id=payment["salon_id"] if payment else None
    )
