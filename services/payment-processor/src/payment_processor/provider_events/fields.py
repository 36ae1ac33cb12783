"""Reading provider payloads defensively: typed values or None, and `Rejected` for what is required."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from payment_processor.provider_events.work import Rejected


def razorpay_entity(document: Mapping[str, Any], name: str, *, required: bool) -> dict[str, Any] | None:
    """`payload.<name>.entity` of a Razorpay event, with a string `id`; `Rejected` when required and absent."""
    payload = document.get("payload")
    wrapper = payload.get(name) if isinstance(payload, Mapping) else None
    entity = wrapper.get("entity") if isinstance(wrapper, Mapping) else None
    if isinstance(entity, dict) and isinstance(entity.get("id"), str) and entity["id"]:
        return entity
    if required:
        raise Rejected(f"payload.{name}.entity.id is missing")
    return None


def text(value: Any) -> str | None:
    if value is None or isinstance(value, dict | list):
        return None
    result = str(value).strip()
    return result or None


def integer(value: Any) -> int | None:
    """An integer amount (minor units); None for anything else (floats, strings, booleans)."""
    if isinstance(value, bool) or not isinstance(value, int):
        return None
    return value


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
