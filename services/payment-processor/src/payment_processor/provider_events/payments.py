"""Provider payments (`provider_payments`): ranks, the payment object, and payment domain events.

Razorpay statuses rank `created` < `failed` < `authorized` < `captured` < `refunded`. `failed` ranks
below `authorized` because Razorpay reports late authorisations: a payment that failed can still be
authorised (and captured) later, and then the money has moved. Nothing moves a payment back: a late
`payment.authorized` after `payment.captured` changes nothing and emits nothing.

Our payment status (the contract's lower-case one) follows: created -> `created`, authorized ->
`pending`, captured and refunded -> `success`, failed -> `failed`. A domain event is emitted only
when that status changes: `payment.authorized` (status `pending`: money blocked, not yet captured,
and Razorpay refunds it if never captured, so it is not called a success), `payment.success` on
capture, `payment.failed`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import asyncpg

from payment_processor.provider_events.fields import identifier, integer, iso, notes, text
from payment_processor.provider_events.transitions import Advance, EntityTable, Transition, apply
from payment_processor.provider_events.work import Rejected, Work
from paystream.events import EventType

PAYMENTS = EntityTable(
    name="provider_payments",
    key="payment_id",
    entity="payment",
    final_rank=40,
    sticky=frozenset({"invoice_key", "salon_id", "order_id", "invoice_id"}),
)

# Where a Razorpay payment entity sits in an event (the event's own, or the one another carries).
PAYMENT_FIELD = "payload.payment.entity"

# provider status -> (our status, rank)
RAZORPAY_STATUS: Mapping[str, tuple[str, int]] = {
    "created": ("created", 0),
    "failed": ("failed", 10),
    "authorized": ("pending", 20),
    "captured": ("success", 30),
    "refunded": ("success", 40),
}

PAYMENT_EVENT_FOR_STATUS: Mapping[str, EventType] = {
    "pending": EventType.PAYMENT_AUTHORIZED,
    "success": EventType.PAYMENT_SUCCESS,
    "failed": EventType.PAYMENT_FAILED,
}


def razorpay_invoice_key(entity: Mapping[str, Any]) -> str | None:
    """The envelope `invoice_id` of a Razorpay payment: its invoice when it pays one, else its order."""
    return identifier(entity.get("invoice_id"), f"{PAYMENT_FIELD}.invoice_id") or identifier(
        entity.get("order_id"), f"{PAYMENT_FIELD}.order_id"
    )


def razorpay_salon(entity: Mapping[str, Any]) -> str | None:
    """A salon named by the merchant in the payment's `notes.salon_id`, if any."""
    return identifier(notes(entity).get("salon_id"), f"{PAYMENT_FIELD}.notes.salon_id")


def plan_razorpay_payment(entity: Mapping[str, Any], provider_status: str) -> Advance:
    """The move that records a Razorpay payment entity at `provider_status` (forward only)."""
    if provider_status not in RAZORPAY_STATUS:
        raise Rejected(f"unknown payment status {provider_status!r}")
    status, rank = RAZORPAY_STATUS[provider_status]
    amount = integer(entity.get("amount"), f"{PAYMENT_FIELD}.amount")
    if amount is None:
        raise Rejected("payload.payment.entity.amount is missing or not an integer")
    refunded = integer(entity.get("amount_refunded"), f"{PAYMENT_FIELD}.amount_refunded")
    card = entity.get("card") if isinstance(entity.get("card"), Mapping) else {}
    return Advance(
        PAYMENTS,
        str(entity["id"]),
        status=status,
        rank=rank,
        columns={
            "provider_status": provider_status,
            "invoice_key": razorpay_invoice_key(entity),
            "salon_id": razorpay_salon(entity),
            "order_id": identifier(entity.get("order_id"), f"{PAYMENT_FIELD}.order_id"),
            "invoice_id": identifier(entity.get("invoice_id"), f"{PAYMENT_FIELD}.invoice_id"),
            "amount": amount,
            "currency": text(entity.get("currency")),
            "method": text(entity.get("method")),
            "captured": provider_status in ("captured", "refunded") or entity.get("captured") is True,
            "amount_refunded": refunded or 0,
            "error_code": text(entity.get("error_code")),
            "error_description": text(entity.get("error_description")),
            "entity": {**entity, "card": _masked_card(card)} if card else dict(entity),
        },
    )


async def upsert_razorpay_payment(work: Work, entity: Mapping[str, Any], provider_status: str) -> Transition:
    """Record a Razorpay payment entity at `provider_status` (forward only) and emit its event."""
    transition = await apply(work, plan_razorpay_payment(entity, provider_status))
    await emit_payment_change(work, transition)
    return transition


async def emit_payment_change(work: Work, transition: Transition) -> None:
    row = transition.row
    if row["invoice_key"] and transition.before is None:
        work.record_owner(row["invoice_key"], row["salon_id"])
    event_type = PAYMENT_EVENT_FOR_STATUS.get(row["status"])
    if not transition.status_changed or event_type is None:
        return
    await work.emit(
        event_type,
        {"payment": payment_object(row)},
        invoice_id=row["invoice_key"],
        salon_id=row["salon_id"],
    )


def _masked_card(card: Mapping[str, Any]) -> dict[str, Any]:
    """A card entity keeps only what identifies it to a person: network, type, issuer, last 4."""
    return {key: card.get(key) for key in ("id", "entity", "name", "last4", "network", "type", "issuer")}


def payment_object(row: asyncpg.Record) -> dict[str, Any]:
    """A provider payment shaped like the merchant API's payment object, plus where it came from."""
    entity: Mapping[str, Any] = row["entity"] or {}
    card = entity.get("card") if isinstance(entity.get("card"), Mapping) else {}
    network = text(card.get("network")) if card else None
    return {
        "id": row["payment_id"],
        "entity": "payment",
        "provider": row["provider"],
        "provider_status": row["provider_status"],
        "order_id": row["order_id"],
        "invoice_id": row["invoice_key"],
        "amount": row["amount"],
        "currency": row["currency"],
        "method": row["method"],
        "vpa": text(entity.get("vpa")),
        "card_network": network.lower() if network else None,
        "card_last4": text(card.get("last4")) if card else None,
        "status": row["status"],
        "captured": row["captured"],
        "amount_refunded": row["amount_refunded"],
        "error_code": row["error_code"],
        "error_description": row["error_description"],
        "salon_id": row["salon_id"],
        "created_at": iso(row["created_at"]),
        "updated_at": iso(row["updated_at"]),
    }


async def invoice_key_of(work: Work, payment_id: str | None) -> tuple[str | None, str | None]:
    """(invoice key, salon) of the event's merchant's payment, for events that only name the payment."""
    if not payment_id:
        return None, None
    row = await work.conn.fetchrow(
        """SELECT invoice_key, salon_id FROM provider_payments
           WHERE provider = $1 AND merchant_id = $2 AND payment_id = $3""",
        work.event.provider,
        work.event.merchant_id,
        payment_id,
    )
    return (row["invoice_key"], row["salon_id"]) if row else (None, None)
