"""The notifier's tokens, as every issuer mints them: HS256 JWTs for the notifier's audience.

The notifier (`notifier.auth`) checks them; the API mints them for browsers (a checkout's, scoped to
one invoice; a dashboard's, scoped to the merchant), and dev tools mint them for trying Socket.IO by
hand. One definition of the claims, so the issuers and the checker cannot drift apart.
"""

from __future__ import annotations

import time
import warnings

import jwt
from jwt.warnings import InsecureKeyLengthWarning

ALGORITHM = "HS256"
AUDIENCE = "notifier"
# Browsers get short-lived tokens: a leaked one is worth a quarter of an hour.
BROWSER_TOKEN_TTL_S = 15 * 60
MAX_ID_LENGTH = 128


def check_identifier(name: str, value: str) -> str:
    """The notifier's rule for ids in a token: 1-128 characters, no colon (room names use colons)."""
    if not value or len(value) > MAX_ID_LENGTH or ":" in value:
        raise ValueError(f"{name} must be 1 to {MAX_ID_LENGTH} characters without ':', got {value!r}")
    return value


def mint_notifier_token(
    secret: str,
    *,
    merchant_id: str,
    subject: str,
    salon_id: str | None = None,
    invoice_id: str | None = None,
    ttl_s: float = BROWSER_TOKEN_TTL_S,
    now: float | None = None,
) -> str:
    """A token for `merchant_id` (and `salon_id`); with `invoice_id`, one that may watch only that
    invoice and receives nothing merchant-wide. ValueError for an id the notifier would refuse."""
    if not secret:
        raise ValueError("the secret is empty")
    if ttl_s <= 0:
        raise ValueError("the token's lifetime must be positive")
    check_identifier("merchant", merchant_id)
    check_identifier("subject", subject)
    if salon_id is not None:
        check_identifier("salon", salon_id)
    if invoice_id is not None and (not invoice_id or len(invoice_id) > MAX_ID_LENGTH):
        raise ValueError(f"invoice must be 1 to {MAX_ID_LENGTH} characters")
    issued_at = int(time.time() if now is None else now)
    claims: dict[str, object] = {
        "sub": subject,
        "merchant_id": merchant_id,
        "aud": AUDIENCE,
        "iat": issued_at,
        "exp": issued_at + int(ttl_s),
    }
    if salon_id is not None:
        claims["salon_id"] = salon_id
    if invoice_id is not None:
        claims["invoice_id"] = invoice_id
    with warnings.catch_warnings():
        # Secret length is checked at start-up outside TEST_MODE; a short test secret is fine here.
        warnings.simplefilter("ignore", InsecureKeyLengthWarning)
        return jwt.encode(claims, secret, algorithm=ALGORITHM)
