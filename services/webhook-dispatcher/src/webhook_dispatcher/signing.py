"""Webhook bodies and signatures.

Two schemes are sent on every attempt:

- `X-Webhook-Signature`: hex HMAC-SHA256 of the exact body bytes, keyed with the whole secret string
  (`whsec_` prefix included): what existing merchant receivers verify;
- Standard Webhooks: `webhook-id`, `webhook-timestamp` (the attempt's unix time, so receivers can
  reject replays) and `webhook-signature` = `v1,<base64 HMAC-SHA256 of "{id}.{timestamp}.{body}">`,
  keyed with the base64-decoded part after `whsec_` (its UTF-8 bytes when that part is not valid
  base64). While a rotated-out secret is still live, its signature follows the current one,
  space-separated; the legacy scheme carries it in `X-Webhook-Signature-Previous`.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
from collections.abc import Mapping, Sequence
from datetime import datetime
from functools import lru_cache
from typing import Any

import orjson

SECRET_PREFIX = "whsec_"
USER_AGENT = "Paystream-Webhooks/1.0"


def webhook_body(event_type: str, occurred_at: datetime, data: Mapping[str, Any]) -> bytes:
    """The delivery body, serialized once: `{"event", "timestamp", "data"}`."""
    return orjson.dumps({"event": event_type, "timestamp": int(occurred_at.timestamp()), "data": data})


@lru_cache(maxsize=4096)
def standard_key(secret: str) -> bytes:
    """The Standard Webhooks HMAC key of a secret."""
    encoded = secret.removeprefix(SECRET_PREFIX)
    try:
        return base64.b64decode(encoded, validate=True)
    except (binascii.Error, ValueError):
        return encoded.encode()


def legacy_signature(secret: str, body: bytes) -> str:
    """`X-Webhook-Signature`: hex HMAC-SHA256 of the body keyed with the whole secret string."""
    return hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def standard_signature(secret: str, message_id: str, timestamp: int, body: bytes) -> str:
    """One `v1,<base64>` entry of `webhook-signature`."""
    signed = b"%s.%d.%s" % (message_id.encode(), timestamp, body)
    digest = hmac.new(standard_key(secret), signed, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode()


def signed_headers(message_id: str, timestamp: int, body: bytes, secrets: Sequence[str]) -> dict[str, str]:
    """Every header of one attempt; `secrets` is the current secret, then a still-live previous one."""
    if not secrets:
        raise ValueError("a delivery needs at least one secret")
    headers = {
        "Content-Type": "application/json",
        "User-Agent": USER_AGENT,
        "X-Webhook-Signature": legacy_signature(secrets[0], body),
        "webhook-id": message_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": " ".join(
            standard_signature(secret, message_id, timestamp, body) for secret in secrets
        ),
    }
    if len(secrets) > 1:
        headers["X-Webhook-Signature-Previous"] = legacy_signature(secrets[1], body)
    return headers
