"""What each event on `payment:events` becomes for Socket.IO clients.

- Payment events (`data.payment`, the object as `GET /api/v1/payments/{id}` returns it) become
  `payment:status-update` for the merchant and salon rooms; `payment.success` and `payment.failed`,
  the transitions into a final state, also become `payment:completed` for `payment:<invoiceId>`.
- Refund events (`data.refund`) become `refund:status-update` for the merchant and salon rooms.
- `token.saved` (`data.token`) becomes `payment:token-saved` for the salon room (the merchant room
  when the event names no salon), with an allow-list of masked card fields only.

invoiceId is the envelope's `invoice_id`: the merchant's `order_id` for API payments, `invoiceNo`
for PAYable, the order or invoice id for Razorpay. Statuses are upper-cased (`PENDING`, `SUCCESS`,
`FAILED`, ...). The routing is a pure function of the event, so live delivery and catch-up agree.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from notifier.rooms import Emission, merchant_room, payment_room, salon_room
from paystream.events import Event, EventType
from paystream.logging import get_logger

log = get_logger(__name__)

STATUS_UPDATE = "payment:status-update"
COMPLETED = "payment:completed"
TOKEN_SAVED = "payment:token-saved"
REFUND_STATUS_UPDATE = "refund:status-update"

PAYMENT_STATUS_EVENTS = frozenset(
    {
        EventType.PAYMENT_CREATED,
        EventType.PAYMENT_PENDING,
        EventType.PAYMENT_AUTHORIZED,
        EventType.PAYMENT_SUCCESS,
        EventType.PAYMENT_FAILED,
        EventType.PAYMENT_CAPTURED,
    }
)
# Transitions into a final state. `payment.captured` follows a success that was already final.
FINAL_PAYMENT_EVENTS = frozenset({EventType.PAYMENT_SUCCESS, EventType.PAYMENT_FAILED})
REFUND_EVENTS = frozenset(
    {
        EventType.REFUND_CREATED,
        EventType.REFUND_PROCESSED,
        EventType.REFUND_FAILED,
        EventType.REFUND_SPEED_CHANGED,
    }
)
# The only card fields a token notification may carry, whatever else the event holds.
TOKEN_FIELDS = {
    "id": "tokenId",
    "token_id": "tokenId",
    "tokenId": "tokenId",
    "masked_card_no": "maskedCardNo",
    "maskedCardNo": "maskedCardNo",
    "masked_number": "maskedCardNo",
    "last4": "last4",
    "scheme": "scheme",
    "network": "scheme",
    "exp": "expiry",
    "expiry": "expiry",
    "expiry_month": "expiryMonth",
    "expiry_year": "expiryYear",
    "holder_name": "holderName",
    "cardHolderName": "holderName",
    "nickname": "nickname",
    "default": "defaultCard",
    "default_card": "defaultCard",
    "defaultCard": "defaultCard",
}
# A run of 12+ digits (spaces and dashes allowed) could be a card number: never forward it.
_PAN_LIKE = re.compile(r"(?:\d[ -]?){12,}")


def notifications_for(event: Event) -> list[Emission]:
    """The emissions an event produces, in the order they are sent."""
    if event.type in PAYMENT_STATUS_EVENTS:
        return _payment_notifications(event)
    if event.type in REFUND_EVENTS:
        return _refund_notifications(event)
    if event.type is EventType.TOKEN_SAVED:
        return _token_notifications(event)
    return []


def _payment_notifications(event: Event) -> list[Emission]:
    payment = event.data.get("payment")
    if not isinstance(payment, Mapping) or not isinstance(payment.get("id"), str):
        log.warning("notification.payment_missing", event_id=event.id, event_type=event.type.value)
        return []
    payload: dict[str, Any] = {
        "invoiceId": event.invoice_id,
        "paymentId": payment["id"],
        "status": _status(payment.get("status")),
        "amount": payment.get("amount"),
        "currency": payment.get("currency"),
        "timestamp": _timestamp(event),
        "eventId": event.id,
    }
    emissions = [_to_merchant_and_salon(STATUS_UPDATE, payload, event)]
    if event.type in FINAL_PAYMENT_EVENTS and event.invoice_id:
        completed = dict(payload)
        if payment.get("error_code"):
            completed["errorCode"] = payment.get("error_code")
            completed["errorDescription"] = payment.get("error_description")
        emissions.append(
            Emission(
                name=COMPLETED,
                payload=completed,
                rooms=(payment_room(event.merchant_id, event.invoice_id),),
                merchant_id=event.merchant_id,
                salon_id=event.salon_id,
            )
        )
    return emissions


def _refund_notifications(event: Event) -> list[Emission]:
    refund = event.data.get("refund")
    if not isinstance(refund, Mapping) or not isinstance(refund.get("id"), str):
        log.warning("notification.refund_missing", event_id=event.id, event_type=event.type.value)
        return []
    payload: dict[str, Any] = {
        "invoiceId": event.invoice_id,
        "refundId": refund["id"],
        "paymentId": refund.get("payment_id"),
        "status": _status(refund.get("status")),
        "amount": refund.get("amount"),
        "currency": refund.get("currency"),
        "timestamp": _timestamp(event),
        "eventId": event.id,
    }
    return [_to_merchant_and_salon(REFUND_STATUS_UPDATE, payload, event)]


def _token_notifications(event: Event) -> list[Emission]:
    token = event.data.get("token")
    if not isinstance(token, Mapping):
        log.warning("notification.token_missing", event_id=event.id)
        return []
    payload: dict[str, Any] = {
        "invoiceId": event.invoice_id,
        "token": masked_token(token),
        "timestamp": _timestamp(event),
        "eventId": event.id,
    }
    room = (
        salon_room(event.merchant_id, event.salon_id)
        if event.salon_id is not None
        else merchant_room(event.merchant_id)
    )
    return [Emission(TOKEN_SAVED, payload, (room,), event.merchant_id, event.salon_id)]


def masked_token(token: Mapping[str, Any]) -> dict[str, Any]:
    """Only allow-listed fields, and none that looks like a full card number."""
    masked: dict[str, Any] = {}
    for source, target in TOKEN_FIELDS.items():
        value = token.get(source)
        if value is None or target in masked:
            continue
        if not isinstance(value, str | int | bool) or _PAN_LIKE.search(str(value)):
            continue
        masked[target] = value
    return masked


def _to_merchant_and_salon(name: str, payload: dict[str, Any], event: Event) -> Emission:
    rooms = [merchant_room(event.merchant_id)]
    if event.salon_id is not None:
        rooms.append(salon_room(event.merchant_id, event.salon_id))
    return Emission(name, payload, tuple(rooms), event.merchant_id, event.salon_id)


def _status(value: Any) -> str | None:
    return value.upper() if isinstance(value, str) else None


def _timestamp(event: Event) -> str:
    return event.occurred_at.isoformat(timespec="milliseconds").replace("+00:00", "Z")
