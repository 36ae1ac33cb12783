"""The merchant webhook contract: what the API and the dispatcher must agree on, defined once.

The API creates secrets, writes test deliveries, serves the delivery logs and announces deliveries
that are due at once; the dispatcher signs and sends. Between them:

- a secret is `whsec_` + base64 of 32 random bytes (the Standard Webhooks format); the Standard
  Webhooks HMAC key is the base64-decoded part after the prefix (its UTF-8 bytes when that part is
  not valid base64, like the seeded test secret `whsec_test_abc123`);
- a delivery id is `msg_` + the hex of a UUIDv7: the delivery log's id and the `webhook-id` header,
  sortable by creation time;
- `NOTIFY` on `DUE_CHANNEL` wakes the dispatchers' schedulers (a manual retry or a test send is due
  now, and no stream event announces it);
- a delivery's body is `{"event", "timestamp", "data"}`, serialized once and stored as sent.
"""

from __future__ import annotations

import base64
import binascii
import re
import secrets
from collections.abc import Collection, Mapping
from datetime import datetime
from functools import lru_cache
from typing import Any

import orjson
import uuid_utils

SECRET_PREFIX = "whsec_"
DELIVERY_ID_PREFIX = "msg_"
DUE_CHANNEL = "webhook_due"

_DELIVERY_ID = re.compile(re.escape(DELIVERY_ID_PREFIX) + r"[0-9a-f]{32}")


def new_webhook_secret() -> str:
    """A fresh merchant secret."""
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(32)).decode()


@lru_cache(maxsize=4096)
def standard_key(secret: str) -> bytes:
    """The Standard Webhooks HMAC key of a secret."""
    encoded = secret.removeprefix(SECRET_PREFIX)
    try:
        return base64.b64decode(encoded, validate=True)
    except (binascii.Error, ValueError):
        return encoded.encode()


def new_delivery_id() -> str:
    return DELIVERY_ID_PREFIX + uuid_utils.uuid7().hex


def is_delivery_id(value: str) -> bool:
    """Whether `value` can name a delivery (anything else needs no lookup to be unknown)."""
    return _DELIVERY_ID.fullmatch(value) is not None


def webhook_test_data(merchant_id: str) -> dict[str, str]:
    """The `data` of a `webhook.test` event (the merchant's own test send)."""
    return {"message": "This is a test webhook from Paystream.", "merchant_id": merchant_id}


def webhook_body(event_type: str, occurred_at: datetime, data: Mapping[str, Any]) -> bytes:
    """The body of every attempt of a delivery: `{"event", "timestamp" (unix seconds), "data"}`."""
    return orjson.dumps({"event": event_type, "timestamp": int(occurred_at.timestamp()), "data": data})


# An endpoint's `events` filter: exact event names, `<prefix>.*` (every event whose name starts with
# `<prefix>.`, so `payment.*` takes `payment.dispute.created` too), or `*` alone. NULL in the table
# (`["*"]` in the API) is every event, including ones added later.
ALL_EVENTS = "*"
WILDCARD_SUFFIX = ".*"


def is_wildcard(pattern: str) -> bool:
    return pattern == ALL_EVENTS or pattern.endswith(WILDCARD_SUFFIX)


def pattern_matches(pattern: str, event_type: str) -> bool:
    if pattern == ALL_EVENTS:
        return True
    if pattern.endswith(WILDCARD_SUFFIX):
        return event_type.startswith(pattern[:-1])
    return pattern == event_type


def filter_matches(patterns: Collection[str] | None, event_type: str) -> bool:
    """Whether an endpoint with this `events` filter receives events of `event_type`."""
    return patterns is None or any(pattern_matches(pattern, event_type) for pattern in patterns)
