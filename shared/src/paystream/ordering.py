"""Which events keep an order: the ordering key, defined once for the writers and the consumers.

A payment's events, and those of its refunds and disputes, share an ordering key: the payment id.
The id comes from outside (a provider's payment id is unique only within its merchant), so the key
always travels with the event's merchant: the order of an event is the order of its
`(merchant_id, ordering key)`.

`paystream.outbox.enqueue` numbers each keyed event 1, 2, 3... per key and stream, in the writing
transaction, and the number reaches consumers as the stream entry's `seq` field
(`paystream.events.SEQUENCE_FIELD`). Consumers that deliver in order (the webhook dispatcher) use
the numbers to know that an earlier event exists before it has reached them.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from paystream.events import Event, EventType

# Never ordered: the merchant's own test send.
UNORDERED_EVENT_TYPES = frozenset({EventType.WEBHOOK_TEST})


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
    """The payment an event belongs to (within its merchant), or None when it needs no order."""
    if event.type in UNORDERED_EVENT_TYPES or not event.merchant_id:
        return None
    data = event.data
    return (
        _object_id(data, "payment", "id")
        or _object_id(data, "refund", "payment_id", "id")
        or _object_id(data, "dispute", "payment_id", "id")
    )
