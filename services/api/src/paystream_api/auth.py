"""Merchant authentication: `X-Api-Key` + `X-Api-Secret`, the secret compared as a hash in constant time.

Failed attempts are throttled twice, in memory per API process (`paystream.ratelimit`):
- per client address: past `AUTH_FAILURES_PER_IP` failures a minute, every attempt from that address
  is answered 429 before any secret is checked, until the window has passed (so guessing from one
  address stops, and its answers say nothing about the secrets it tries);
- per API key (which is public: checkout pages carry it): past `AUTH_FAILURES_PER_KEY` failures a
  minute, wrong secrets for that key are answered 429 instead of 401. The right secret always
  passes: nobody can lock a merchant out by hammering its key.
A request with the right secret is never slowed: nothing is counted or waited on for it.
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass

import asyncpg
from aiohttp import web

from paystream.errors import AuthenticationError
from paystream.inputs import header_token
from paystream.logging import get_logger
from paystream.ratelimit import RateLimitedError, RateLimiter
from paystream.web import POOL

log = get_logger(__name__)

API_KEY_HEADER = "X-Api-Key"
API_SECRET_HEADER = "X-Api-Secret"
MAX_CREDENTIAL_LENGTH = 255
THROTTLE_WINDOW_S = 60.0


@dataclass(frozen=True, slots=True)
class Merchant:
    id: str
    name: str
    email: str
    api_key: str
    webhook_secret: str

    def to_resource(self) -> dict[str, str]:
        """What `GET /api/v1/merchants/me` shows: never a secret."""
        return {"id": self.id, "name": self.name, "email": self.email, "key": self.api_key}


@dataclass(frozen=True, slots=True)
class AuthThrottle:
    """The two failure budgets of merchant authentication (see the module doc)."""

    per_address: RateLimiter
    per_key: RateLimiter

    @classmethod
    def per_minute(cls, *, per_address: int, per_key: int) -> AuthThrottle:
        return cls(RateLimiter(per_address, THROTTLE_WINDOW_S), RateLimiter(per_key, THROTTLE_WINDOW_S))


AUTH_THROTTLE = web.AppKey("auth_throttle", AuthThrottle)


def hash_secret(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def client_address(request: web.Request) -> str:
    """The peer's address (a forwarding header is not trusted: anyone can send one)."""
    return request.remote or "unknown"


async def authenticate(request: web.Request) -> Merchant:
    """The merchant named by the request's API key and secret; 401, or 429 past the failure budgets."""
    throttle = request.app[AUTH_THROTTLE]
    address = client_address(request)
    wait = throttle.per_address.retry_after(address)
    if wait is not None:
        raise RateLimitedError(
            "too many failed authentications from this address; retry later", retry_after_s=wait
        )
    try:
        api_key = header_token(request.headers, API_KEY_HEADER, max_length=MAX_CREDENTIAL_LENGTH)
        api_secret = header_token(request.headers, API_SECRET_HEADER, max_length=MAX_CREDENTIAL_LENGTH)
    except Exception:
        throttle.per_address.hit(address)
        raise
    if not api_key or not api_secret:
        throttle.per_address.hit(address)
        raise AuthenticationError("X-Api-Key and X-Api-Secret headers are required")
    row = await fetch_merchant_by_key(request.app[POOL], api_key)
    # Compare against a dummy hash when the key is unknown, so timing does not reveal valid keys.
    expected = row["api_secret_hash"] if row else hash_secret("unknown-key")
    if not hmac.compare_digest(expected, hash_secret(api_secret)) or row is None:
        throttle.per_address.hit(address)
        key_wait = throttle.per_key.check_and_hit(api_key)
        if key_wait is not None:
            log.warning("auth.key_throttled", api_key_prefix=api_key[:8])
            raise RateLimitedError(
                "too many failed authentications for this API key; retry later", retry_after_s=key_wait
            )
        raise AuthenticationError("invalid API key or secret")
    return Merchant(
        id=row["id"],
        name=row["name"],
        email=row["email"],
        api_key=row["api_key"],
        webhook_secret=row["webhook_secret"],
    )


async def fetch_merchant_by_key(pool: asyncpg.Pool, api_key: str) -> asyncpg.Record | None:
    row: asyncpg.Record | None = await pool.fetchrow(
        "SELECT id, name, email, api_key, api_secret_hash, webhook_secret FROM merchants WHERE api_key = $1",
        api_key,
    )
    return row
