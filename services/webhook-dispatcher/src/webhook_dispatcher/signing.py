"""Webhook signatures (the body and the secret format are `paystream.webhooks`'s).

Two schemes are sent on every attempt:

- `X-Webhook-Signature`: hex HMAC-SHA256 of the exact body bytes, keyed with the whole secret string
  (its prefix included): what existing merchant receivers verify;
- Standard Webhooks: `webhook-id`, `webhook-timestamp` (the attempt's unix time, so receivers can
  reject replays) and `webhook-signature` = `v1,<base64 HMAC-SHA256 of "{id}.{timestamp}.{body}">`,
  keyed with the secret's Standard Webhooks key (`paystream.webhooks.standard_key`). While a
  rotated-out secret is still live, its signature follows the current one, space-separated; the
  legacy scheme carries it in `X-Webhook-Signature-Previous`.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Sequence

from paystream.webhooks import standard_key

USER_AGENT = "Paystream-Webhooks/1.0"


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
