"""Which deliveries must keep their order, and where an event sits in a payment's life.

A payment's events (and those of its refunds and disputes) share an ordering key, the payment id:
their first attempts to one endpoint go out in the order the events happened. The lifecycle rank
tells whether an earlier event of the payment can still be expected (see `planning.py`).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from paystream.events import Event, EventType

LIFECYCLE_RANK: Mapping[EventType, int] = {
    EventType.PAYMENT_CREATED: 0,
    EventType.PAYMENT_PENDING: 1,
    EventType.PAYMENT_AUTHORIZED: 2,
    EventType.PAYMENT_SUCCESS: 3,
    EventType.PAYMENT_FAILED: 3,
    EventType.PAYMENT_CAPTURED: 4,
    EventType.REFUND_CREATED: 5,
    EventType.REFUND_PROCESSED: 6,
    EventType.REFUND_FAILED: 6,
    EventType.REFUND_SPEED_CHANGED: 6,
    EventType.DISPUTE_CREATED: 7,
    EventType.DISPUTE_UNDER_REVIEW: 8,
    EventType.DISPUTE_ACTION_REQUIRED: 8,
    EventType.DISPUTE_WON: 9,
    EventType.DISPUTE_LOST: 9,
    EventType.DISPUTE_CLOSED: 9,
}


def _object_id(data: Mapping[str, Any], name: str, *id_fields: str) -> str | None:
    obj = data.get(name)
    if not isinstance(obj, Mapping):
        return None
    for id_field in id_fields:
        value = obj.get(id_field)
        if isinstance(value, str) and value:
            return value
    return None


def ordering_key(event: Event) -> str | None:
    """The payment an event belongs to, or None when its deliveries need no order."""
    if event.type is EventType.WEBHOOK_TEST:
        return None
    data = event.data
    return (
        _object_id(data, "payment", "id")
        or _object_id(data, "refund", "payment_id", "id")
        or _object_id(data, "dispute", "payment_id", "id")
    )


def lifecycle_rank(event_type: str) -> int | None:
    try:
        return LIFECYCLE_RANK.get(EventType(event_type))
    except ValueError:
        return None


def first_subscribed_rank(subscribed: Iterable[str] | None) -> int:
    """The rank of the earliest lifecycle event an endpoint receives (0 when it receives them all)."""
    if subscribed is None:
        return 0
    ranks = [rank for rank in (lifecycle_rank(name) for name in subscribed) if rank is not None]
    return min(ranks, default=0)
