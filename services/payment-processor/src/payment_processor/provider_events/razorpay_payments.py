"""Razorpay `payment.authorized`, `payment.captured`, `payment.failed`."""

from __future__ import annotations

from payment_processor.provider_events.fields import razorpay_entity
from payment_processor.provider_events.payments import (
    RAZORPAY_STATUS,
    emit_payment_change,
    plan_razorpay_payment,
    upsert_razorpay_payment,
)
from payment_processor.provider_events.transitions import Advance, PlannedHandler
from payment_processor.provider_events.work import Rejected, Work

STATUS_OF_EVENT = {
    "payment.authorized": "authorized",
    "payment.captured": "captured",
    "payment.failed": "failed",
}


def plan_payment(work: Work) -> Advance:
    """The event type says the status; the entity is the payment as of the event."""
    entity = razorpay_entity(work.event.payload, "payment", required=True)
    assert entity is not None
    return plan_razorpay_payment(entity, STATUS_OF_EVENT[work.event.type])


handle_payment = PlannedHandler(plan_payment, emit_payment_change)


async def record_embedded_payment(work: Work) -> None:
    """Other events (order, invoice, refund, dispute, link) carry the payment as it stands: record it
    too, so a missed or late `payment.captured` is made up for by whichever event arrives first."""
    entity = razorpay_entity(work.event.payload, "payment", required=False)
    if entity is None:
        return
    status = entity.get("status")
    if not (isinstance(status, str) and status in RAZORPAY_STATUS):
        work.note(f"embedded payment {entity['id']} has no usable status; not recorded")
        return
    try:
        await upsert_razorpay_payment(work, entity, status)
    except Rejected as exc:  # the event's own object still counts; note the payment's problem
        work.note(f"embedded payment {entity['id']} not recorded: {exc.reason}")
