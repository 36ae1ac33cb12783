"""Reading and checking what merchants send to the webhook endpoints."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from multidict import MultiMapping

from paystream.errors import ValidationError
from paystream.netguard import OutboundPolicy, UnsafeUrlError, check_outbound_url
from paystream_api.webhook_api.events import ALL_EVENTS, SUBSCRIBABLE_EVENT_TYPES

MAX_LIMIT = 100
DEFAULT_LIMIT = 10
DELIVERY_STATUSES = ("pending", "success", "failed")
CONFIG_FIELDS = frozenset({"url", "events", "enabled"})


@dataclass(frozen=True, slots=True)
class EndpointConfig:
    url: str
    # None: every event type.
    events: list[str] | None
    enabled: bool


@dataclass(frozen=True, slots=True)
class LogQuery:
    limit: int
    offset: int
    status: str | None
    event: str | None


async def parse_endpoint_config(body: dict[str, Any], *, policy: OutboundPolicy) -> EndpointConfig:
    unknown = sorted(set(body) - CONFIG_FIELDS)
    if unknown:
        raise ValidationError(f"unknown field {unknown[0]!r}", field=unknown[0])
    url = body.get("url")
    if not isinstance(url, str) or not url:
        raise ValidationError("url is required and must be a string", field="url")
    await check_url(url, policy)
    enabled = body.get("enabled", True)
    if not isinstance(enabled, bool):
        raise ValidationError("enabled must be true or false", field="enabled")
    return EndpointConfig(url=url, events=parse_events(body.get("events")), enabled=enabled)


async def check_url(url: str, policy: OutboundPolicy) -> None:
    """http(s) only, read as the dispatcher will send it; every address the host resolves to must
    pass the outbound policy that the dispatcher also enforces when it connects."""
    try:
        await check_outbound_url(url, policy)
    except UnsafeUrlError as exc:
        raise ValidationError(f"url is not allowed: {exc}", field="url") from None


def parse_events(value: Any) -> list[str] | None:
    if value is None:
        return None
    if not isinstance(value, list) or not value or not all(isinstance(item, str) for item in value):
        raise ValidationError("events must be a non-empty list of event types", field="events")
    if ALL_EVENTS in value:
        if len(value) > 1:
            raise ValidationError('"*" cannot be combined with other event types', field="events")
        return None
    unknown = [item for item in value if item not in SUBSCRIBABLE_EVENT_TYPES]
    if unknown:
        raise ValidationError(f"unknown event type {unknown[0]!r}", field="events")
    return list(dict.fromkeys(value))


def parse_log_query(query: MultiMapping[str]) -> LogQuery:
    status = query.get("status") or None
    if status is not None and status not in DELIVERY_STATUSES:
        raise ValidationError("status must be pending, success or failed", field="status")
    event = query.get("event") or None
    if event is not None and len(event) > 100:
        raise ValidationError("event is too long", field="event")
    return LogQuery(
        limit=_int_param(query, "limit", DEFAULT_LIMIT, 1, MAX_LIMIT),
        offset=_int_param(query, "offset", 0, 0, 10_000_000),
        status=status,
        event=event,
    )


def _int_param(query: MultiMapping[str], name: str, default: int, minimum: int, maximum: int) -> int:
    raw = query.get(name)
    if raw is None or raw == "":
        return default
    if not raw.isdigit():
        raise ValidationError(f"{name} must be an integer", field=name)
    value = int(raw)
    if not minimum <= value <= maximum:
        raise ValidationError(f"{name} must be between {minimum} and {maximum}", field=name)
    return value
