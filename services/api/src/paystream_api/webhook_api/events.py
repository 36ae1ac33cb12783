"""Which event types a merchant can subscribe to, and how `events` is written in a config."""

from __future__ import annotations

from paystream.events import EventType

ALL_EVENTS = "*"
# Platform-internal events that are never sent to merchants.
INTERNAL_EVENT_TYPES = frozenset({EventType.PROVIDER_EVENT_RECEIVED, EventType.WEBHOOK_DELIVERY_DUE})
SUBSCRIBABLE_EVENT_TYPES = frozenset(t.value for t in EventType if t not in INTERNAL_EVENT_TYPES)


def events_to_resource(stored: list[str] | None) -> list[str]:
    """NULL in the table (every type, including ones added later) reads as `["*"]`."""
    return [ALL_EVENTS] if stored is None else list(stored)
