"""Razorpay orders, invoices and payment links: `order.paid`, `order.notification.delivered|failed`,
`invoice.paid|partially_paid|expired`, `payment_link.paid|partially_paid|expired|cancelled`.

Each first records the payment the event carries (if any), then the object itself, forward only:
orders `created` < `attempted` < `paid`; invoices and links `created`/`issued` < `partially_paid` <
`expired`/`cancelled` < `paid` (a payment that arrived counts over a late expiry). A status change
emits `order.paid`, `invoice.*` or `payment_link.*` with the object (and the payment, when present).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import asyncpg

from payment_processor.provider_events.fields import identifier, integer, iso, razorpay_entity, text
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
        "SELECT * FROM provider_payments WHERE provider = $1 AND merchant_id = $2 AND payment_id = $3",
        work.event.provider,
        work.event.merchant_id,
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
            "amount": integer(entity.get("amount"), "payload.order.entity.amount"),
            "amount_paid": integer(entity.get("amount_paid"), "payload.order.entity.amount_paid"),
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
    transition = await upsert_order(work, order, "created")
    outcome = work.event.type.rsplit(".", 1)[-1]  # delivered | failed
    await work.conn.execute(
        """UPDATE provider_orders SET notification_status = $4, updated_at = now()
           WHERE provider = $1 AND merchant_id = $2 AND order_id = $3""",
        work.event.provider,
        work.event.merchant_id,
        transition.row["order_id"],
        outcome,
    )
    work.change("order_notification", transition.row["order_id"], None, outcome)


@dataclass(frozen=True, slots=True)
class BillKind:
    """Invoices and payment links: one life cycle (BILL_RANK), different columns and events."""

    table: EntityTable
    events: Mapping[str, EventType]
    # Copied from the Razorpay entity into the typed table, and shown in the emitted object.
    text_fields: tuple[str, ...]
    amount_fields: tuple[str, ...]


INVOICE = BillKind(
    INVOICES,
    INVOICE_EVENTS,
    ("order_id", "payment_id", "currency", "short_url"),
    ("amount", "amount_paid", "amount_due"),
)
PAYMENT_LINK = BillKind(
    PAYMENT_LINKS,
    LINK_EVENTS,
    ("order_id", "reference_id", "currency", "short_url"),
    ("amount", "amount_paid"),
)


async def _advance_bill(work: Work, kind: BillKind) -> tuple[asyncpg.Record, EventType | None]:
    """Record the bill (and the payment it carries), forward only; the event its change emits."""
    bill = razorpay_entity(work.event.payload, kind.table.entity, required=True)
    assert bill is not None
    await record_embedded_payment(work)
    status, rank = _status(bill, work.event.type.split(".", 1)[1], BILL_RANK)
    where = f"payload.{kind.table.entity}.entity"
    # Ids (`order_id`, `payment_id`, `reference_id`) name invoices and look payments up.
    columns: dict[str, Any] = {
        name: identifier(bill.get(name), f"{where}.{name}") if name.endswith("_id") else text(bill.get(name))
        for name in kind.text_fields
    }
    columns.update({name: integer(bill.get(name), f"{where}.{name}") for name in kind.amount_fields})
    columns["entity"] = dict(bill)
    transition = await advance(work, kind.table, str(bill["id"]), status=status, rank=rank, columns=columns)
    event_type = kind.events.get(transition.status) if transition.status_changed else None
    return transition.row, event_type


async def _emit_bill(
    work: Work,
    kind: BillKind,
    event_type: EventType,
    row: asyncpg.Record,
    payment: asyncpg.Record | None,
    *,
    invoice_id: str,
) -> None:
    bill = {
        "id": row[kind.table.key],
        "entity": kind.table.entity,
        "provider": row["provider"],
        **{name: row[name] for name in (*kind.text_fields, *kind.amount_fields)},
        "status": row["status"],
        "updated_at": iso(row["updated_at"]),
    }
    data: dict[str, Any] = {kind.table.entity: bill}
    if payment is not None:
        data["payment"] = payment_object(payment)
    await work.emit(
        event_type, data, invoice_id=invoice_id, salon_id=payment["salon_id"] if payment else None
    )


async def handle_invoice(work: Work) -> None:
    row, event_type = await _advance_bill(work, INVOICE)
    if event_type is None:
        return
    payment = await _stored_payment(work, row["payment_id"])
    await _emit_bill(work, INVOICE, event_type, row, payment, invoice_id=row["invoice_id"])


async def handle_payment_link(work: Work) -> None:
    row, event_type = await _advance_bill(work, PAYMENT_LINK)
    if event_type is None:
        return
    payment_entity = razorpay_entity(work.event.payload, "payment", required=False)
    payment = await _stored_payment(work, payment_entity["id"] if payment_entity else None)
    invoice_id = (payment["invoice_key"] if payment else None) or row["order_id"] or row["payment_link_id"]
    await _emit_bill(work, PAYMENT_LINK, event_type, row, payment, invoice_id=invoice_id)
