"""Razorpay `refund.created|processed|failed|speed_changed`.

Refund statuses rank `pending` < `processed` = `failed` (both final: the first to arrive stands).
`refund.speed_changed` refreshes the refund's speed without moving its status and emits
`refund.speed_changed`; the others emit `refund.created` / `refund.processed` / `refund.failed` when
the status changes. The payment the event carries is recorded first (its refunded amount).
"""

from __future__ import annotations

from typing import Any

import asyncpg

from payment_processor.provider_events.fields import identifier, integer, iso, notes, razorpay_entity, text
from payment_processor.provider_events.payments import invoice_key_of
from payment_processor.provider_events.razorpay_payments import record_embedded_payment
from payment_processor.provider_events.transitions import EntityTable, advance
from payment_processor.provider_events.work import Rejected, Work
from paystream.events import EventType

REFUNDS = EntityTable(name="provider_refunds", key="refund_id", entity="refund", final_rank=30)
REFUND_RANK = {"pending": 10, "processed": 30, "failed": 30}
IMPLIED_STATUS = {
    "refund.created": "pending",
    "refund.processed": "processed",
    "refund.failed": "failed",
    "refund.speed_changed": "pending",
}
EVENT_FOR_STATUS = {
    "pending": EventType.REFUND_CREATED,
    "processed": EventType.REFUND_PROCESSED,
    "failed": EventType.REFUND_FAILED,
}


def refund_object(row: asyncpg.Record) -> dict[str, Any]:
    """A provider refund shaped like the merchant API's refund object."""
    entity = row["entity"] or {}
    return {
        "id": row["refund_id"],
        "entity": "refund",
        "provider": row["provider"],
        "payment_id": row["payment_id"],
        "amount": row["amount"],
        "currency": row["currency"],
        "status": row["status"],
        "reason": text(notes(entity).get("reason")),
        "speed_requested": row["speed_requested"],
        "speed_processed": row["speed_processed"],
        "processed_at": iso(row["updated_at"]) if row["status"] == "processed" else None,
        "created_at": iso(row["created_at"]),
        "updated_at": iso(row["updated_at"]),
    }


async def handle_refund(work: Work) -> None:
    refund = razorpay_entity(work.event.payload, "refund", required=True)
    assert refund is not None
    amount = integer(refund.get("amount"), "payload.refund.entity.amount")
    if amount is None:
        raise Rejected("payload.refund.entity.amount is missing or not an integer")
    await record_embedded_payment(work)
    event_type = work.event.type
    status = IMPLIED_STATUS[event_type]
    entity_status = refund.get("status")
    if (
        event_type == "refund.speed_changed"
        and isinstance(entity_status, str)
        and entity_status in REFUND_RANK
    ):
        status = entity_status
    transition = await advance(
        work,
        REFUNDS,
        str(refund["id"]),
        status=status,
        rank=REFUND_RANK[status],
        columns={
            "payment_id": identifier(refund.get("payment_id"), "payload.refund.entity.payment_id"),
            "amount": amount,
            "currency": text(refund.get("currency")),
            "speed_requested": text(refund.get("speed_requested")),
            "speed_processed": text(refund.get("speed_processed")),
            "entity": dict(refund),
        },
    )
    if transition.status_changed:
        domain_type = EVENT_FOR_STATUS[transition.status]
    elif event_type == "refund.speed_changed" and transition.applied:
        domain_type = EventType.REFUND_SPEED_CHANGED
        work.change("refund_speed", transition.row["refund_id"], None, str(transition.row["speed_processed"]))
    else:
        return
    invoice_id, salon_id = await invoice_key_of(work, transition.row["payment_id"])
    await work.emit(
        domain_type, {"refund": refund_object(transition.row)}, invoice_id=invoice_id, salon_id=salon_id
    )
