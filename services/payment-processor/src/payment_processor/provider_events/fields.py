"""Reading provider payloads defensively: typed values or None, and `Rejected` for what is required
or cannot be stored.

Every value here comes from outside. What a handler writes must fit its column: an id is a key or an
index entry (PostgreSQL cannot index a value past about 2.7 kB), an amount is a `bigint`. A value
that does not fit would fail the event's transaction on every retry, so it is refused here, naming
the field, and the event ends `rejected`.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from payment_processor.provider_events.work import Rejected

# Provider ids are short (Razorpay's about 20 characters); this bound keeps any id indexable.
MAX_ID_LENGTH = 255
BIGINT_MIN, BIGINT_MAX = -(2**63), 2**63 - 1


def razorpay_entity(document: Mapping[str, Any], name: str, *, required: bool) -> dict[str, Any] | None:
    """`payload.<name>.entity` of a Razorpay event, with a usable string `id`; `Rejected` when
    required and absent or unusable, else None."""
    payload = document.get("payload")
    wrapper = payload.get(name) if isinstance(payload, Mapping) else None
    entity = wrapper.get("entity") if isinstance(wrapper, Mapping) else None
    entity_id = entity.get("id") if isinstance(entity, dict) else None
    usable = isinstance(entity_id, str) and 0 < len(entity_id) <= MAX_ID_LENGTH
    if usable and isinstance(entity, dict):
        return entity
    if not required:
        return None
    if isinstance(entity_id, str) and entity_id:
        raise Rejected(f"payload.{name}.entity.id is longer than {MAX_ID_LENGTH} characters")
    raise Rejected(f"payload.{name}.entity.id is missing")


def text(value: Any) -> str | None:
    if value is None or isinstance(value, dict | list):
        return None
    result = str(value).strip()
    return result or None


def identifier(value: Any, field: str) -> str | None:
    """An id the event names (one we key or index by): text, or None; `Rejected` when too long."""
    result = text(value)
    if result is not None and len(result) > MAX_ID_LENGTH:
        raise Rejected(f"{field} is longer than {MAX_ID_LENGTH} characters")
    return result


def integer(value: Any, field: str) -> int | None:
    """An integer amount (minor units); None for anything else (fractions, strings, booleans).
    `Rejected` for a number past `bigint` (JSON integers too large for 64 bits arrive as floats)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    if not BIGINT_MIN <= value <= BIGINT_MAX:
        raise Rejected(f"{field} is out of range")
    return value if isinstance(value, int) else None


def unix_time(value: Any) -> datetime | None:
    if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
        return None
    try:
        return datetime.fromtimestamp(value, UTC)
    except (OverflowError, OSError, ValueError):
        return None


def notes(entity: Mapping[str, Any]) -> dict[str, Any]:
    """Razorpay `notes`: an object, or an empty array when there are none."""
    value = entity.get("notes")
    return dict(value) if isinstance(value, Mapping) else {}


def iso(value: datetime | None) -> str | None:
    return value.isoformat().replace("+00:00", "Z") if value is not None else None
