"""Merchant authentication: `X-Api-Key` + `X-Api-Secret`, the secret compared as a hash in constant time."""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass

import asyncpg
from aiohttp import web

from paystream.errors import AuthenticationError
from paystream.web import POOL


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


def hash_secret(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


MERCHANT_KEY = web.AppKey("authenticated_merchant", Merchant)


async def authenticate(request: web.Request) -> Merchant:
    """The merchant named by the request's API key and secret, or 401."""
    api_key = request.headers.get("X-Api-Key", "")
    api_secret = request.headers.get("X-Api-Secret", "")
    if not api_key or not api_secret:
        raise AuthenticationError("X-Api-Key and X-Api-Secret headers are required")
    row = await fetch_merchant_by_key(request.app[POOL], api_key)
    # Compare against a dummy hash when the key is unknown, so timing does not reveal valid keys.
    expected = row["api_secret_hash"] if row else hash_secret("unknown-key")
    if not hmac.compare_digest(expected, hash_secret(api_secret)) or row is None:
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
