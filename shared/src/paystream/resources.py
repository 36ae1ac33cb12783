"""The REST representations of orders, payments and refunds, and the events that carry them.

The API answers with these objects and the payment processor emits them in its events, so both
build them here from the same table columns: a webhook receiver sees exactly what
`GET /api/v1/payments/{id}` (or `/refunds/{id}`, `/orders/{id}`) returns.

Timestamps are ISO 8601 in UTC with millisecond precision and a `Z` suffix; amounts are integers in
minor units. A payment shows only the card's network and last four digits: nothing else of a card
is ever stored.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, Literal, Protocol, TypedDict

from paystream.events import Event, EventType

PaymentStatus = Literal["created", "pending", "success", "failed"]
RefundStatus = Literal["pending", "processed", "failed"]
OrderStatus = Literal["created", "attempted", "paid"]

PAYMENT_STATUSES: tuple[str, ...] = ("created", "pending", "success", "failed")
REFUND_STATUSES: tuple[str, ...] = ("pending", "processed", "failed")

# The columns each representation is built from: select these (or `*`) wherever one is needed.
ORDER_COLUMNS = (
    "id, merchant_id, amount, amount_paid, currency, receipt, notes, status, attempts, return_url, "
    "created_at, updated_at"
)
PAYMENT_COLUMNS = (
    "id, merchant_id, order_id, amount, currency, method, vpa, card_network, card_last4, status, "
    "captured, captured_at, amount_refunded, error_code, error_description, created_at, updated_at"
)
REFUND_COLUMNS = (
    "id, merchant_id, payment_id, amount, currency, status, reason, processed_at, created_at, updated_at"
)


class Row(Protocol):
    """A database row read by column name (an asyncpg Record, or a dict in tests)."""

    def __getitem__(self, key: str, /) -> Any: ...


class OrderResource(TypedDict):
    id: str
    entity: Literal["order"]
    merchant_id: str
    amount: int
    amount_paid: int
    amount_due: int
    currency: str
    receipt: str | None
    notes: dict[str, Any]
    status: str
    attempts: int
    return_url: str | None
    created_at: str
    updated_at: str


class PaymentResource(TypedDict):
    id: str
    entity: Literal["payment"]
    merchant_id: str
    order_id: str
    amount: int
    currency: str
    status: str
    method: str
    vpa: str | None
    card_network: str | None
    card_last4: str | None
    captured: bool
    captured_at: str | None
    amount_refunded: int
    refund_status: Literal["partial", "full"] | None
    error_code: str | None
    error_description: str | None
    created_at: str
    updated_at: str


class RefundResource(TypedDict):
    id: str
    entity: Literal["refund"]
    merchant_id: str
    payment_id: str
    amount: int
    currency: str
    status: str
    reason: str | None
    processed_at: str | None
    created_at: str
    updated_at: str


def format_timestamp(value: datetime) -> str:
    """`2024-05-01T10:00:00.123Z`: UTC, milliseconds, the same everywhere an object is shown."""
    return value.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _optional_timestamp(value: datetime | None) -> str | None:
    return None if value is None else format_timestamp(value)


def order_resource(row: Row) -> OrderResource:
    amount = int(row["amount"])
    amount_paid = int(row["amount_paid"])
    return {
        "id": row["id"],
        "entity": "order",
        "merchant_id": row["merchant_id"],
        "amount": amount,
        "amount_paid": amount_paid,
        "amount_due": amount - amount_paid,
        "currency": row["currency"],
        "receipt": row["receipt"],
        "notes": dict(row["notes"] or {}),
        "status": row["status"],
        "attempts": int(row["attempts"]),
        "return_url": row["return_url"],
        "created_at": format_timestamp(row["created_at"]),
        "updated_at": format_timestamp(row["updated_at"]),
    }


def payment_resource(row: Row, *, status: PaymentStatus | None = None) -> PaymentResource:
    """The payment as the API shows it; `status` overrides the row's (the `payment.created` event
    shows the payment as created, in the same transaction that makes it pending)."""
    amount = int(row["amount"])
    refunded = int(row["amount_refunded"])
    refund_status: Literal["partial", "full"] | None = None
    if refunded > 0:
        refund_status = "full" if refunded >= amount else "partial"
    return {
        "id": row["id"],
        "entity": "payment",
        "merchant_id": row["merchant_id"],
        "order_id": row["order_id"],
        "amount": amount,
        "currency": row["currency"],
        "status": status or row["status"],
        "method": row["method"],
        "vpa": row["vpa"],
        "card_network": row["card_network"],
        "card_last4": row["card_last4"],
        "captured": bool(row["captured"]),
        "captured_at": _optional_timestamp(row["captured_at"]),
        "amount_refunded": refunded,
        "refund_status": refund_status,
        "error_code": row["error_code"],
        "error_description": row["error_description"],
        "created_at": format_timestamp(row["created_at"]),
        "updated_at": format_timestamp(row["updated_at"]),
    }


def refund_resource(row: Row) -> RefundResource:
    return {
        "id": row["id"],
        "entity": "refund",
        "merchant_id": row["merchant_id"],
        "payment_id": row["payment_id"],
        "amount": int(row["amount"]),
        "currency": row["currency"],
        "status": row["status"],
        "reason": row["reason"],
        "processed_at": _optional_timestamp(row["processed_at"]),
        "created_at": format_timestamp(row["created_at"]),
        "updated_at": format_timestamp(row["updated_at"]),
    }


def payment_event(event_type: EventType, payment: PaymentResource, *, salon_id: str | None = None) -> Event:
    """A `payment.*` event: `data = {"payment": <the payment>}`, its invoice the merchant's order_id."""
    return Event(
        type=event_type,
        merchant_id=payment["merchant_id"],
        invoice_id=payment["order_id"],
        salon_id=salon_id,
        data={"payment": payment},
    )


def refund_event(
    event_type: EventType, refund: RefundResource, *, invoice_id: str, salon_id: str | None = None
) -> Event:
    """A `refund.*` event: `data = {"refund": <the refund>}`, its invoice the payment's order_id."""
    return Event(
        type=event_type,
        merchant_id=refund["merchant_id"],
        invoice_id=invoice_id,
        salon_id=salon_id,
        data={"refund": refund},
    )
