"""Which event types a merchant can subscribe to, and how an `events` filter is written.

A filter is a non-empty list of exact event names and `<prefix>.*` wildcards (`payment.*`,
`payment.dispute.*`; matching is `paystream.webhooks.filter_matches`), or `["*"]` for every event,
including ones added later (stored as NULL).
"""

from __future__ import annotations

from typing import Any

from paystream.errors import ValidationError
from paystream.events import MERCHANT_EVENT_TYPES
from paystream.webhooks import ALL_EVENTS, WILDCARD_SUFFIX

SUBSCRIBABLE_EVENT_TYPES = frozenset(t.value for t in MERCHANT_EVENT_TYPES)
# Every prefix a wildcard may name: `payment`, `payment.dispute`, `refund`, ...
WILDCARD_PREFIXES = frozenset(
    name.rsplit(".", depth)[0] for name in SUBSCRIBABLE_EVENT_TYPES for depth in range(1, name.count(".") + 1)
)
MAX_FILTER_ENTRIES = 100


def events_to_resource(stored: list[str] | None) -> list[str]:
    """NULL in the table (every type, including ones added later) reads as `["*"]`."""
    return [ALL_EVENTS] if stored is None else list(stored)


def parse_events(value: Any, *, field: str = "events") -> list[str] | None:
    """A filter as stored: None for every event, else the entries in order, without repeats."""
    if value is None:
        return None
    if (
        not isinstance(value, list)
        or not value
        or len(value) > MAX_FILTER_ENTRIES
        or not all(isinstance(item, str) for item in value)
    ):
        raise ValidationError(
            f"{field} must be a list of 1 to {MAX_FILTER_ENTRIES} event types or wildcards", field=field
        )
    if ALL_EVENTS in value:
        if len(value) > 1:
            raise ValidationError('"*" cannot be combined with other event types', field=field)
        return None
    for item in value:
        if item.endswith(WILDCARD_SUFFIX):
            if item.removesuffix(WILDCARD_SUFFIX) not in WILDCARD_PREFIXES:
                raise ValidationError(f"{item!r} matches no event type", field=field)
        elif item not in SUBSCRIBABLE_EVENT_TYPES:
            raise ValidationError(f"unknown event type {item[:100]!r}", field=field)
    return list(dict.fromkeys(value))
