"""Reading and checking what merchants send to the webhook endpoints."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson
from aiohttp import web
from multidict import MultiMapping

from paystream.errors import BadRequestError, PayloadTooLargeError, ValidationError
from paystream.netguard import UnsafeUrlError, parse_outbound_url, resolve_public_addresses
from paystream_api.webhook_api.events import ALL_EVENTS, SUBSCRIBABLE_EVENT_TYPES

MAX_BODY_BYTES = 64 * 1024
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


async def read_json_object(request: web.Request) -> dict[str, Any]:
    """The body as a JSON object: 413 past 64 KB, 400 when it is not a JSON object."""
    if request.content_length is not None and request.content_length > MAX_BODY_BYTES:
        raise PayloadTooLargeError("request body exceeds 64 KB")
    raw = await request.content.read(MAX_BODY_BYTES + 1)
    if len(raw) > MAX_BODY_BYTES:
        raise PayloadTooLargeError("request body exceeds 64 KB")
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError:
        raise BadRequestError("the request body is not valid JSON") from None
    if not isinstance(body, dict):
        raise BadRequestError("the request body must be a JSON object")
    return body


async def parse_endpoint_config(body: dict[str, Any], *, allow_private_urls: bool) -> EndpointConfig:
    unknown = sorted(set(body) - CONFIG_FIELDS)
    if unknown:
        raise ValidationError(f"unknown field {unknown[0]!r}", field=unknown[0])
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
