"""Reading and checking what merchants send to the webhook endpoints."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from multidict import MultiMapping

from paystream.errors import ValidationError
from paystream.inputs import query_int, query_text
from paystream.netguard import UnsafeUrlError, parse_outbound_url, resolve_public_addresses
from paystream_api.validation import reject_unknown
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


async def parse_endpoint_config(body: dict[str, Any], *, allow_private_urls: bool) -> EndpointConfig:
    reject_unknown(body, CONFIG_FIELDS)
    url = body.get("url")
    if not isinstance(url, str) or not url:
        raise ValidationError("url is required and must be a string", field="url")
    await check_url(url, allow_private_urls=allow_private_urls)
    enabled = body.get("enabled", True)
    if not isinstance(enabled, bool):
        raise ValidationError("enabled must be true or false", field="enabled")
    return EndpointConfig(url=url, events=parse_events(body.get("events")), enabled=enabled)


async def check_url(url: str, *, allow_private_urls: bool) -> None:
    """http(s) only; unless private URLs are allowed, every address the host resolves to must be public."""
    try:
        target = parse_outbound_url(url)
        if not allow_private_urls:
            await resolve_public_addresses(target.host, target.port)
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
        offset=query_int(query, "offset", default=0, minimum=0, maximum=10_000_000),
        status=status,
        event=query_text(query, "event", max_length=100),
    )
