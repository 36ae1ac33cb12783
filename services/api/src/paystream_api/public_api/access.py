"""Who a public checkout request is for, and whether it may go on: the `?key=` query parameter
names the merchant (the key is public: checkout pages carry it), and two budgets per kind of call
(per client address, then per merchant) answer 429 with `Retry-After` once spent.

The address budget is counted before the key is even read, so a flood of made-up keys costs one
dictionary entry per address and no database query past its budget. The key budget is counted per
merchant, only for keys that exist.
"""

from __future__ import annotations

from dataclasses import dataclass

from aiohttp import web

from paystream import inputs
from paystream.errors import AuthenticationError
from paystream.ratelimit import RateLimitedError, RateLimiter
from paystream.web import POOL
from paystream_api.auth import MAX_CREDENTIAL_LENGTH, client_address, fetch_merchant_by_key
from paystream_api.settings import PublicLimits

KEY_PARAMETER = "key"
WINDOW_S = 60.0


@dataclass(frozen=True, slots=True)
class Budget:
    """One kind of public call's two limits."""

    per_address: RateLimiter
    per_key: RateLimiter


@dataclass(frozen=True, slots=True)
class PublicThrottle:
    payments: Budget
    reads: Budget

    @classmethod
    def per_minute(cls, limits: PublicLimits) -> PublicThrottle:
        return cls(
            payments=Budget(
                RateLimiter(limits.payments_per_address, WINDOW_S),
                RateLimiter(limits.payments_per_key, WINDOW_S),
            ),
            reads=Budget(
                RateLimiter(limits.reads_per_address, WINDOW_S),
                RateLimiter(limits.reads_per_key, WINDOW_S),
            ),
        )


PUBLIC_THROTTLE = web.AppKey("public_throttle", PublicThrottle)


@dataclass(frozen=True, slots=True)
class PublicMerchant:
    """What a public call may know of the merchant: its id (to scope every lookup) and its name."""

    id: str
    name: str


async def public_merchant(request: web.Request, budget: Budget) -> PublicMerchant:
    """The merchant whose key the request carries; 401 for a missing or unknown key, 429 past a
    budget (the address's first)."""
    wait = budget.per_address.check_and_hit(client_address(request))
    if wait is not None:
        raise RateLimitedError(
            "too many checkout requests from this address; retry later", retry_after_s=wait
        )
    key = inputs.query_text(request.rel_url.query, KEY_PARAMETER, max_length=MAX_CREDENTIAL_LENGTH)
    if key is None:
        raise AuthenticationError("the key query parameter is required", field=KEY_PARAMETER)
    row = await fetch_merchant_by_key(request.app[POOL], key) if inputs.is_token(key) else None
    if row is None:
        raise AuthenticationError("unknown key", field=KEY_PARAMETER)
    wait = budget.per_key.check_and_hit(row["id"])
    if wait is not None:
        raise RateLimitedError("too many checkout requests for this key; retry later", retry_after_s=wait)
    return PublicMerchant(id=row["id"], name=row["name"])
