"""Provider events as the API leaves them for the processor, and what the processor made of them."""

from __future__ import annotations

from typing import Any

import asyncpg
import orjson

from payment_processor.provider_events.store import EventKey

MERCHANT = "mer_test0000000001"


async def store_event(
    pool: asyncpg.Pool,
    *,
    provider: str,
    event_id: str,
    event_type: str,
    payload: str,
    provider_account_id: str,
    account_id: str | None = None,
    merchant_id: str = MERCHANT,
) -> EventKey:
    """What the API commits for a verified webhook: the `provider_events` row (payload as sent);
    returns its key."""
    await pool.execute(
        """INSERT INTO provider_events (provider, event_id, type, provider_account_id, account_id, merchant_id, payload)
           VALUES ($1, $2, $3, $4, $5, $6, $7)""",
        provider,
        event_id,
        event_type,
        provider_account_id,
        account_id,
        merchant_id,
        payload,
    )
    return (provider, merchant_id, event_id)


async def domain_events(pool: asyncpg.Pool) -> list[dict[str, Any]]:
    """The events the processor queued on `payment:events`, in order."""
    rows = await pool.fetch("SELECT payload FROM outbox WHERE stream = 'payment:events' ORDER BY id")
    return [orjson.loads(row["payload"]) for row in rows]


async def event_status(pool: asyncpg.Pool, event_id: str) -> tuple[str, str | None]:
    """A stored event's status and reason."""
    row = await pool.fetchrow("SELECT status, reason FROM provider_events WHERE event_id = $1", event_id)
    assert row is not None, event_id
    return row["status"], row["reason"]
