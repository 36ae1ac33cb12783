"""Tokens for the notifier's Socket.IO handshake: HS256 JWTs with `sub`, `merchant_id`, optional
`salon_id` and `exp` (the claims `notifier.auth` requires).

In production a merchant's own backend mints them with the shared `JWT_SECRET`; this is for people
trying the notifier by hand (`payctl token`, the `make run` banner). HS256 is an HMAC over two
base64url JSON documents, so no JWT library is needed here; the notifier verifies with PyJWT, and a
test checks that it accepts these.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import time

import orjson

ALGORITHM = "HS256"
MAX_ID_LENGTH = 128


def check_identifier(name: str, value: str) -> str:
    """The notifier's rule for ids in a token: 1-128 characters, no colon (room names use colons)."""
    if not value or len(value) > MAX_ID_LENGTH or ":" in value:
        raise ValueError(f"{name} must be 1 to {MAX_ID_LENGTH} characters without ':', got {value!r}")
    return value


def mint_socket_token(
    secret: str,
    *,
    merchant_id: str,
    salon_id: str | None = None,
    user_id: str = "dev-user",
    ttl_s: float = 3600.0,
    now: float | None = None,
) -> tuple[str, int]:
    """A signed token and its expiry (seconds since the epoch); ValueError for an unusable id."""
    if not secret:
        raise ValueError("the secret is empty")
    if ttl_s <= 0:
        raise ValueError("the token's lifetime must be positive")
    expires_at = int((time.time() if now is None else now) + ttl_s)
    claims: dict[str, str | int] = {
        "sub": check_identifier("user", user_id),
        "merchant_id": check_identifier("merchant", merchant_id),
        "exp": expires_at,
    }
    if salon_id is not None:
        claims["salon_id"] = check_identifier("salon", salon_id)
    header = _encode(orjson.dumps({"alg": ALGORITHM, "typ": "JWT"}))
    payload = _encode(orjson.dumps(claims))
    signing_input = f"{header}.{payload}".encode()
    signature = hmac.new(secret.encode(), signing_input, hashlib.sha256).digest()
    return f"{header}.{payload}.{_encode(signature)}", expires_at


def _encode(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()
