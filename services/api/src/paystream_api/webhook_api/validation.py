"""Reading and checking what merchants send to the webhook endpoints."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from multidict import MultiMapping

from paystream.errors import ValidationError
from paystream.inputs import is_free_text, is_text, query_int, query_text
from paystream.netguard import OutboundPolicy, UnsafeUrlError, check_outbound_url
from paystream_api.validation import reject_unknown
from paystream_api.webhook_api.events import parse_events

MAX_LIMIT = 100
MAX_OFFSET = 10_000_000
MAX_EVENT_LENGTH = 100
DEFAULT_LIMIT = 10
DELIVERY_STATUSES = ("pending", "success", "failed")
CONFIG_FIELDS = frozenset({"url", "events", "enabled"})
ENDPOINT_FIELDS = frozenset({"url", "description", "events", "enabled", "headers", "rate_limit_per_s"})
RECOVER_FIELDS = frozenset({"since", "until"})
MAX_URL_LENGTH = 2048
MAX_DESCRIPTION_LENGTH = 500
MAX_HEADERS = 20
MAX_HEADER_VALUE_LENGTH = 1000
MAX_RATE_LIMIT_PER_S = 10_000
# An HTTP token (RFC 9110), which is what a header name must be.
_HEADER_NAME = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]{1,100}")
# Visible ASCII and spaces inside (no leading or trailing space, no line breaks).
_HEADER_VALUE = re.compile(r"[\x21-\x7e]([\x20-\x7e]*[\x21-\x7e])?")
# Names the dispatcher sets itself or that belong to the connection, never the merchant's.
_RESERVED_PREFIXES = ("webhook-", "x-webhook-")
_RESERVED_HEADERS = frozenset(
    {
        "connection",
        "content-encoding",
        "content-length",
        "content-type",
        "expect",
        "host",
        "keep-alive",
        "proxy-authorization",
        "proxy-connection",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
        "user-agent",
    }
)
_TIMESTAMP = re.compile(
    r"[0-9]{4}-[0-9]{2}-[0-9]{2}[Tt ][0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]{1,6})?([Zz]|[+-][0-9]{2}:[0-9]{2})"
)


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
    endpoint_id: str | None = None


@dataclass(frozen=True, slots=True)
class RecoverWindow:
    since: datetime
    until: datetime | None


async def parse_endpoint_config(body: dict[str, Any], *, policy: OutboundPolicy) -> EndpointConfig:
    reject_unknown(body, CONFIG_FIELDS)
    url = await parse_url(body.get("url"), policy)
    enabled = body.get("enabled", True)
    if not isinstance(enabled, bool):
        raise ValidationError("enabled must be true or false", field="enabled")
    return EndpointConfig(url=url, events=parse_events(body.get("events")), enabled=enabled)


async def parse_endpoint_fields(
    body: dict[str, Any], *, policy: OutboundPolicy, partial: bool
) -> dict[str, Any]:
    """The columns a create (every field but `url` optional) or an update (`partial`: only the
    fields given) sets, checked; `events`, `headers` and `rate_limit_per_s` may be null to clear."""
    reject_unknown(body, ENDPOINT_FIELDS)
    fields: dict[str, Any] = {}
    if "url" in body or not partial:
        fields["url"] = await parse_url(body.get("url"), policy)
    if "description" in body:
        fields["description"] = parse_description(body["description"])
    if "events" in body:
        fields["events"] = parse_events(body["events"])
    if "enabled" in body:
        if not isinstance(body["enabled"], bool):
            raise ValidationError("enabled must be true or false", field="enabled")
        fields["enabled"] = body["enabled"]
    if "headers" in body:
        fields["headers"] = parse_headers(body["headers"])
    if "rate_limit_per_s" in body:
        fields["rate_limit_per_s"] = parse_rate_limit(body["rate_limit_per_s"])
    if partial and not fields:
        raise ValidationError(f"name at least one of {', '.join(sorted(ENDPOINT_FIELDS))}", field=None)
    return fields


async def parse_url(value: Any, policy: OutboundPolicy) -> str:
    if not isinstance(value, str) or not value:
        raise ValidationError("url is required and must be a string", field="url")
    if len(value) > MAX_URL_LENGTH or not is_text(value):
        raise ValidationError(
            f"url must be at most {MAX_URL_LENGTH} characters, without control characters", field="url"
        )
    await check_url(value, policy)
    return value


def parse_description(value: Any) -> str:
    if value is None:
        return ""
    if not isinstance(value, str) or len(value) > MAX_DESCRIPTION_LENGTH or not is_free_text(value):
        raise ValidationError(
            f"description must be text of at most {MAX_DESCRIPTION_LENGTH} characters", field="description"
        )
    return value


def parse_headers(value: Any) -> dict[str, str]:
    """Custom headers sent with every attempt: at most 20, never one the dispatcher sets itself."""
    if value is None:
        return {}
    if not isinstance(value, dict) or len(value) > MAX_HEADERS:
        raise ValidationError(f"headers must be an object of at most {MAX_HEADERS} headers", field="headers")
    seen: set[str] = set()
    for name, header_value in value.items():
        lowered = name.lower()
        if not _HEADER_NAME.fullmatch(name):
            raise ValidationError(
                "a header name must be an HTTP token of 1 to 100 characters", field="headers"
            )
        if lowered.startswith(_RESERVED_PREFIXES) or lowered in _RESERVED_HEADERS:
            raise ValidationError(
                f"the {name} header is set by Paystream and cannot be custom", field="headers"
            )
        if lowered in seen:
            raise ValidationError(f"the {name} header is named twice", field="headers")
        seen.add(lowered)
        if (
            not isinstance(header_value, str)
            or len(header_value) > MAX_HEADER_VALUE_LENGTH
            or not _HEADER_VALUE.fullmatch(header_value)
        ):
            raise ValidationError(
                f"the {name} header's value must be 1 to {MAX_HEADER_VALUE_LENGTH} printable ASCII "
                "characters, without leading or trailing spaces",
                field="headers",
            )
    return dict(value)


def parse_rate_limit(value: Any) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_RATE_LIMIT_PER_S:
        raise ValidationError(
            f"rate_limit_per_s must be null or an integer from 1 to {MAX_RATE_LIMIT_PER_S}",
            field="rate_limit_per_s",
        )
    return value


def parse_timestamp(value: Any, field: str) -> datetime:
    """An RFC 3339 date-time with its offset (`2026-12-01T10:00:00Z`)."""
    if not isinstance(value, str) or not _TIMESTAMP.fullmatch(value):
        raise ValidationError(f"{field} must be an RFC 3339 date-time with an offset", field=field)
    try:
        return datetime.fromisoformat(value.replace("z", "Z").replace("Z", "+00:00"))
    except ValueError:
        raise ValidationError(f"{field} is not a valid date-time", field=field) from None


def parse_recover_window(body: dict[str, Any]) -> RecoverWindow:
    reject_unknown(body, RECOVER_FIELDS)
    if body.get("since") is None:
        raise ValidationError("since is required", field="since")
    since = parse_timestamp(body["since"], "since")
    until = None if body.get("until") is None else parse_timestamp(body["until"], "until")
    if until is not None and until <= since:
        raise ValidationError("until must be later than since", field="until")
    return RecoverWindow(since, until)


async def check_url(url: str, policy: OutboundPolicy) -> None:
    """http(s) only, read as the dispatcher will send it; every address the host resolves to must
    pass the outbound policy that the dispatcher also enforces when it connects."""
    try:
        await check_outbound_url(url, policy)
    except UnsafeUrlError as exc:
        raise ValidationError(f"url is not allowed: {exc}", field="url") from None


def parse_log_query(query: MultiMapping[str]) -> LogQuery:
    status = query_text(query, "status")
    if status is not None and status not in DELIVERY_STATUSES:
        raise ValidationError("status must be pending, success or failed", field="status")
    endpoint_id = query_text(query, "endpoint_id", max_length=100)
    if endpoint_id is not None and not is_endpoint_id(endpoint_id):
        raise ValidationError("endpoint_id must name a webhook endpoint (we_...)", field="endpoint_id")
    return LogQuery(
        limit=query_int(query, "limit", default=DEFAULT_LIMIT, minimum=1, maximum=MAX_LIMIT),
        offset=query_int(query, "offset", default=0, minimum=0, maximum=MAX_OFFSET),
        status=status,
        event=query_text(query, "event", max_length=MAX_EVENT_LENGTH),
        endpoint_id=endpoint_id,
    )


_ENDPOINT_ID = re.compile(r"we_[0-9a-f]{32}")


def is_endpoint_id(value: str) -> bool:
    """Whether `value` can name an endpoint (anything else needs no lookup to be unknown)."""
    return _ENDPOINT_ID.fullmatch(value) is not None
