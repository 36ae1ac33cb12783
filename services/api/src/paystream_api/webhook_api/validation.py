"""Reading and checking what merchants send to the webhook endpoints."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from multidict import MultiMapping

from paystream.errors import ValidationError
from paystream.inputs import query_int, query_text
from paystream.netguard import OutboundPolicy, UnsafeUrlError, check_outbound_url
from paystream_api.validation import reject_unknown
from paystream_api.webhook_api.events import ALL_EVENTS, SUBSCRIBABLE_EVENT_TYPES

MAX_LIMIT = 100
MAX_OFFSET = 10_000_000
MAX_EVENT_LENGTH = 100
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
    reject_unknown(body, CONFIG_FIELDS)
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
    status = query_text(query, "status")
    if status is not None and status not in DELIVERY_STATUSES:
        raise ValidationError("status must be pending, success or failed", field="status")
    return LogQuery(
        limit=query_int(query, "limit", default=DEFAULT_LIMIT, minimum=1, maximum=MAX_LIMIT),
        offset=query_int(query, "offset", default=0, minimum=0, maximum=MAX_OFFSET),
        status=status,
        event=query_text(query, "event", max_length=MAX_EVENT_LENGTH),
    )
