"""Merchant authentication: `X-Api-Key` + `X-Api-Secret`, the secret compared as a hash in constant time.

Failed attempts are throttled twice, in memory per API process (`paystream.ratelimit`):
- per client address: past `AUTH_FAILURES_PER_IP` failures a minute, every attempt from that address
  is answered 429 before any secret is checked, until the window has passed (so guessing from one
  address stops, and its answers say nothing about the secrets it tries);
- per API key (which is public: checkout pages carry it): past `AUTH_FAILURES_PER_KEY` failures a
  minute, wrong secrets for that key are answered 429 instead of 401. The right secret always
  passes: nobody can lock a merchant out by hammering its key.
A request with the right secret is never slowed: nothing is counted or waited on for it.

A request without `X-Api-Key`/`X-Api-Secret` may instead carry a dashboard session cookie
(`paystream_api.sessions`): the same handlers then serve the dashboard, writes only with the CSRF
checks. Dashboard sign-in has a budget of its own (`signin_throttle`).
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
from paystream.proxies import FORWARDED_FOR_HEADER
from paystream.ratelimit import RateLimitedError, RateLimiter
from paystream.web import POOL
from paystream_api import sessions
from paystream_api.keys import SETTINGS

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
    """The client's address that the per-address budgets count: the TCP peer's, or, when the peer
    is one of `TRUSTED_PROXIES`, the one its `X-Forwarded-For` names (`paystream.proxies`: anyone
    can send that header, so nobody else's is read). Never raises on a malformed header."""
    return request.app[SETTINGS].trusted_proxies.client_address(
        request.remote, request.headers.getall(FORWARDED_FOR_HEADER, ())
    )


async def authenticate(request: web.Request) -> Merchant:
    """The merchant named by the request's API key and secret, or by its dashboard session cookie
    when it sends neither header; 401, 403 for a cookie write that fails the CSRF checks, or 429
    past the failure budgets."""
    if (
        API_KEY_HEADER not in request.headers
        and API_SECRET_HEADER not in request.headers
        and sessions.SESSION_COOKIE in request.cookies
    ):
        return await authenticate_session(request)
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
    return await verify_credentials(request, api_key, api_secret, address_budget=throttle.per_address)


async def verify_credentials(
    request: web.Request, api_key: str, api_secret: str, *, address_budget: RateLimiter
) -> Merchant:
    """The merchant whose key and secret these are; a failure counts against `address_budget` (the
    caller checked it is not spent) and the key's budget: 401, or 429 once the key's is spent."""
    throttle = request.app[AUTH_THROTTLE]
    row = await fetch_merchant_by_key(request.app[POOL], api_key)
    # Compare against a dummy hash when the key is unknown, so timing does not reveal valid keys.
    expected = row["api_secret_hash"] if row else hash_secret("unknown-key")
    if not hmac.compare_digest(expected, hash_secret(api_secret)) or row is None:
        address_budget.hit(client_address(request))
        key_wait = throttle.per_key.check_and_hit(api_key)
        if key_wait is not None:
            log.warning("auth.key_throttled", api_key_prefix=api_key[:8])
            raise RateLimitedError(
                "too many failed authentications for this API key; retry later", retry_after_s=key_wait
            )
        raise AuthenticationError("invalid API key or secret")
    return merchant_from_row(row)


async def authenticate_session(request: web.Request) -> Merchant:
    """The merchant of the request's live dashboard session; writes must pass the CSRF checks.
    Session failures are not counted against the address: a 256-bit token cannot be guessed, and
    an expired tab polling must not lock its user out of signing in again."""
    token = sessions.session_token(request)
    row = None
    if token is not None:
        row = await sessions.live_session(
            request.app[POOL], token, idle_s=request.app[SETTINGS].dashboard_session_idle_s
        )
    if token is None or row is None:
        raise AuthenticationError(
            "the dashboard session has ended (signed out or expired); sign in again",
            code="SESSION_EXPIRED",
        )
    if request.method not in sessions.SAFE_METHODS:
        sessions.check_csrf(request, token)
    return merchant_from_row(row)


def merchant_from_row(row: asyncpg.Record) -> Merchant:
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
