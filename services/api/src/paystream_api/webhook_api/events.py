"""Which event types a merchant can subscribe to, and how `events` is written in a config."""

from __future__ import annotations

from paystream.events import MERCHANT_EVENT_TYPES

ALL_EVENTS = "*"
SUBSCRIBABLE_EVENT_TYPES = frozenset(t.value for t in MERCHANT_EVENT_TYPES)


def events_to_resource(stored: list[str] | None) -> list[str]:
    """NULL in the table (every type, including ones added later) reads as `["*"]`."""
    return [ALL_EVENTS] if stored is None else list(stored)
