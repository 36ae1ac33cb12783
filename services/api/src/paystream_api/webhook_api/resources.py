"""The REST representations of a webhook configuration and of a delivery log."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import asyncpg
import orjson

from paystream.resources import format_timestamp
from paystream_api.webhook_api.events import events_to_resource


def _timestamp(value: datetime | None) -> str | None:
    return None if value is None else format_timestamp(value)


def config_resource(
    secret: str, endpoint: asyncpg.Record | None, previous_expires_at: datetime | None
) -> dict[str, Any]:
    """The merchant's webhook configuration, with the current secret (the merchant's own)."""
    return {
        "url": endpoint["url"] if endpoint else None,
        "events": events_to_resource(endpoint["events"] if endpoint else None),
        "enabled": bool(endpoint["enabled"]) if endpoint else False,
        "disabled_reason": endpoint["disabled_reason"] if endpoint else None,
        "secret": secret,
        "previous_secret_expires_at": _timestamp(previous_expires_at),
        "created_at": _timestamp(endpoint["created_at"]) if endpoint else None,
        "updated_at": _timestamp(endpoint["updated_at"]) if endpoint else None,
    }


def endpoint_resource(
    row: asyncpg.Record, secret: str | None, previous_expires_at: datetime | None
) -> dict[str, Any]:
    """One webhook endpoint; `secret` is None where it is not shown (lists)."""
    resource = {
        "id": row["id"],
        "url": row["url"],
        "description": row["description"],
        "events": events_to_resource(row["events"]),
        "enabled": bool(row["enabled"]),
        "disabled_reason": row["disabled_reason"],
        "disabled_at": _timestamp(row["disabled_at"]),
        "failing_since": _timestamp(row["failing_since"]),
        "headers": dict(row["headers"] or {}),
        "rate_limit_per_s": row["rate_limit_per_s"],
        "is_default": bool(row["is_default"]),
        "created_at": _timestamp(row["created_at"]),
        "updated_at": _timestamp(row["updated_at"]),
    }
    if secret is not None:
        resource["secret"] = secret
        resource["previous_secret_expires_at"] = _timestamp(previous_expires_at)
    return resource


def delivery_resource(row: asyncpg.Record) -> dict[str, Any]:
    """One delivery log; `payload` is the exact body that was (or will be) sent."""
    return {
        "id": row["id"],
        "endpoint_id": row["endpoint_id"],
        "event": row["event_type"],
        "payload": orjson.Fragment(bytes(row["payload"])),
        "status": row["status"],
        "attempts": row["attempts"],
        "last_attempt_at": _timestamp(row["last_attempt_at"]),
        "next_retry_at": _timestamp(row["next_retry_at"]),
        "response_code": row["response_code"],
        "response_body": row["response_body"],
        "duration_ms": row["duration_ms"],
        "error": row["error"],
        "created_at": _timestamp(row["created_at"]),
    }
