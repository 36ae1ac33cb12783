"""Razorpay disputes (`payment.dispute.*`) and downtimes (`payment.downtime.*`).

Both are stored with the urgent priority: the processor claims them ahead of the bulk of events.

Disputes rank `open` < `action_required` = `under_review` < `won` = `lost` = `closed` (final). The two
middle stages can alternate, so within that rank the newer event wins; nothing leaves a final
status, so a `payment.dispute.created` arriving after `won` changes nothing. A status change emits
`payment.dispute.<stage>` with `data = {"dispute": {...}}`.

Downtimes rank `scheduled` < `started` (refreshed by `updated`) < `resolved`. They concern the
provider's methods, not one merchant's money, so they are stored for operators and emit nothing.
"""

from __future__ import annotations

from typing import Any

import asyncpg

from payment_processor.provider_events.fields import (
    identifier,
    integer,
    iso,
    razorpay_entity,
    text,
    unix_time,
)
from payment_processor.provider_events.payments import invoice_key_of
from payment_processor.provider_events.razorpay_payments import record_embedded_payment
from payment_processor.provider_events.transitions import EntityTable, advance
from payment_processor.provider_events.work import Work
from paystream.events import EventType

DISPUTES = EntityTable(name="disputes", key="dispute_id", entity="dispute", final_rank=30)
DOWNTIMES = EntityTable(name="downtime_events", key="downtime_id", entity="downtime", final_rank=30)

DISPUTE_STAGES: dict[str, tuple[str, int, EventType]] = {
    "payment.dispute.created": ("open", 10, EventType.DISPUTE_CREATED),
    "payment.dispute.action_required": ("action_required", 20, EventType.DISPUTE_ACTION_REQUIRED),
    "payment.dispute.under_review": ("under_review", 20, EventType.DISPUTE_UNDER_REVIEW),
    "payment.dispute.won": ("won", 30, EventType.DISPUTE_WON),
    "payment.dispute.lost": ("lost", 30, EventType.DISPUTE_LOST),
    "payment.dispute.closed": ("closed", 30, EventType.DISPUTE_CLOSED),
}
EVENT_FOR_DISPUTE_STATUS = {status: event_type for status, _rank, event_type in DISPUTE_STAGES.values()}
DOWNTIME_RANK = {"scheduled": 10, "started": 20, "resolved": 30}


def dispute_object(row: asyncpg.Record) -> dict[str, Any]:
    return {
        "id": row["dispute_id"],
        "entity": "dispute",
        "provider": row["provider"],
        "payment_id": row["payment_id"],
        "amount": row["amount"],
        "currency": row["currency"],
        "reason_code": row["reason_code"],
        "phase": row["phase"],
        "status": row["status"],
        "respond_by": iso(row["respond_by"]),
        "created_at": iso(row["created_at"]),
        "updated_at": iso(row["updated_at"]),
    }


async def handle_dispute(work: Work) -> None:
    dispute = razorpay_entity(work.event.payload, "dispute", required=True)
    assert dispute is not None
    await record_embedded_payment(work)
    status, rank, _event_type = DISPUTE_STAGES[work.event.type]
    transition = await advance(
        work,
        DISPUTES,
        str(dispute["id"]),
        status=status,
        rank=rank,
        columns={
            "payment_id": identifier(dispute.get("payment_id"), "payload.dispute.entity.payment_id"),
            "amount": integer(dispute.get("amount"), "payload.dispute.entity.amount"),
            "currency": text(dispute.get("currency")),
            "reason_code": text(dispute.get("reason_code")),
            "phase": text(dispute.get("phase")),
            "respond_by": unix_time(dispute.get("respond_by")),
            "entity": dict(dispute),
        },
    )
    if not transition.status_changed:
        return
    invoice_id, salon_id = await invoice_key_of(work, transition.row["payment_id"])
    await work.emit(
        EVENT_FOR_DISPUTE_STATUS[transition.status],
        {"dispute": dispute_object(transition.row)},
        invoice_id=invoice_id,
        salon_id=salon_id,
    )


async def handle_downtime(work: Work) -> None:
    downtime = razorpay_entity(work.event.payload, "payment.downtime", required=True)
    assert downtime is not None
    stage = work.event.type.rsplit(".", 1)[-1]
    entity_status = downtime.get("status")
    if stage == "resolved":
        status = "resolved"
    elif isinstance(entity_status, str) and entity_status in DOWNTIME_RANK and entity_status != "resolved":
        status = entity_status
    else:
        status = "started"
    instrument = downtime.get("instrument")
    await advance(
        work,
        DOWNTIMES,
        str(downtime["id"]),
        status=status,
        rank=DOWNTIME_RANK[status],
        columns={
            "method": text(downtime.get("method")),
            "severity": text(downtime.get("severity")),
            "scheduled": downtime.get("scheduled") if isinstance(downtime.get("scheduled"), bool) else None,
            "begin_at": unix_time(downtime.get("begin")),
            "end_at": unix_time(downtime.get("end")),
            "instrument": instrument if isinstance(instrument, dict) else None,
            "entity": dict(downtime),
        },
    )
