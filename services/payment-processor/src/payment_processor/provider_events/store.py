"""`provider_events` rows as the processor sees them: claim the waiting ones, settle them with their
audit rows, count the failures; each step is one statement for a whole batch of events.

A row is named by (provider, merchant, event id): provider event ids are unique only within the
merchant's provider account, so every join and update here carries the merchant."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asyncpg
import orjson

from payment_processor.provider_events.fields import unix_time
from payment_processor.provider_events.work import StoredEvent, Work
from paystream.db import Connection

RECEIVED = "received"
PROCESSED = "processed"
IGNORED = "ignored"
REJECTED = "rejected"


# The waiting rows, most urgent first, then in arrival order: the partial index
# `provider_events_waiting_idx` holds exactly these, in this order, so a claim reads what it takes
# and sorts nothing, however long the backlog. SKIP LOCKED: replicas never take the same row.
EVENT_COLUMNS = "provider, event_id, type, merchant_id, account_id, payload, received_at"
CLAIM_WAITING = f"""
SELECT {EVENT_COLUMNS} FROM provider_events
WHERE status = 'received'
ORDER BY priority DESC, received_at
LIMIT $1
FOR UPDATE SKIP LOCKED"""

# The keys of the waiting rows, in claim order, without locking or reading their payloads: what a
# failed batch is split into (each is then claimed alone).
WAITING_KEYS = """
SELECT provider, merchant_id, event_id FROM provider_events
WHERE status = 'received'
ORDER BY priority DESC, received_at
LIMIT $1"""

# One row again, for handling alone after its batch failed: still waiting, and not taken meanwhile.
CLAIM_ONE = f"""
SELECT {EVENT_COLUMNS} FROM provider_events
WHERE provider = $1 AND merchant_id = $2 AND event_id = $3 AND status = 'received'
FOR UPDATE SKIP LOCKED"""

# A failed attempt that the event's content did not cause (a bug, a deadlock): counted, and at the
# limit the event ends `failed`, the provider events' dead-letter state.
RECORD_FAILURE = """
UPDATE provider_events
SET attempts = attempts + 1, last_error = $4,
    status = CASE WHEN attempts + 1 >= $5 THEN 'failed' ELSE status END,
    processed_at = CASE WHEN attempts + 1 >= $5 THEN now() END
WHERE provider = $1 AND merchant_id = $2 AND event_id = $3 AND status = 'received'
RETURNING status"""

SETTLE = """
WITH settled AS (
    UPDATE provider_events e
    SET status = s.outcome, reason = s.reason, processed_at = now()
    FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $6::text[])
        AS s(provider, event_id, outcome, reason, merchant_id)
    WHERE e.provider = s.provider AND e.merchant_id = s.merchant_id AND e.event_id = s.event_id
)
INSERT INTO provider_event_audit (provider, event_id, event_type, merchant_id, outcome, reason, changes, emitted)
SELECT a.provider, a.event_id, a.event_type, a.merchant_id, a.outcome, a.reason, a.changes::jsonb,
       ARRAY(SELECT jsonb_array_elements_text(a.emitted::jsonb))
FROM unnest($1::text[], $2::text[], $5::text[], $6::text[], $3::text[], $4::text[], $7::text[], $8::text[])
     AS a(provider, event_id, event_type, merchant_id, outcome, reason, changes, emitted)"""


EventKey = tuple[str, str, str]  # (provider, merchant_id, event_id)


async def claim_waiting(conn: Connection, limit: int) -> list[StoredEvent]:
    """Take (lock) up to `limit` waiting events, inside the transaction that handles them."""
    if not conn.is_in_transaction():
        raise RuntimeError("claim_waiting must run inside the handler's transaction")
    return [_stored(row) for row in await conn.fetch(CLAIM_WAITING, limit)]


async def waiting_keys(conn: Connection | asyncpg.Pool, limit: int) -> list[EventKey]:
    """The keys of up to `limit` waiting events, in claim order (nothing locked)."""
    rows = await conn.fetch(WAITING_KEYS, limit)
    return [(row["provider"], row["merchant_id"], row["event_id"]) for row in rows]


async def claim_one(conn: Connection, key: EventKey) -> StoredEvent | None:
    """Take one event again if it still waits (None: handled meanwhile, or another replica has it)."""
    if not conn.is_in_transaction():
        raise RuntimeError("claim_one must run inside the handler's transaction")
    row = await conn.fetchrow(CLAIM_ONE, *key)
    return None if row is None else _stored(row)


async def record_failure(conn: Connection, key: EventKey, error: str, max_attempts: int) -> str | None:
    """Count a failed attempt; the event's status after it (`failed` at the limit)."""
    status: str | None = await conn.fetchval(RECORD_FAILURE, *key, error, max_attempts)
    return status


def _stored(row: Any) -> StoredEvent:
    provider: str = row["provider"]
    try:
        document: Any = orjson.loads(row["payload"])
    except orjson.JSONDecodeError:
        document = None
    payload = document if isinstance(document, dict) else {}
    received_at: datetime = row["received_at"]
    occurred_at = unix_time(payload.get("created_at")) if provider == "razorpay" else None
    return StoredEvent(
        provider=provider,
        event_id=row["event_id"],
        type=row["type"],
        merchant_id=row["merchant_id"],
        account_id=row["account_id"],
        payload=payload,
        received_at=received_at,
        occurred_at=occurred_at or received_at,
    )


@dataclass(frozen=True, slots=True)
class Settlement:
    """How an event ended: its work (changes, emitted events, notes), the outcome and its reason."""

    work: Work
    outcome: str
    reason: str | None = None

    @property
    def full_reason(self) -> str | None:
        reason = "; ".join(part for part in (self.reason, *self.work.notes) if part) or None
        # A note may quote an id from the event; a NUL in it must not make the outcome unstorable.
        return reason.replace("\x00", "\\u0000") if reason else None


async def settle(conn: Connection, settlements: Sequence[Settlement]) -> None:
    """Mark the events handled and write their audit rows, in one statement (in the transaction of
    their effects)."""
    if not settlements:
        return
    events = [settlement.work.event for settlement in settlements]
    await conn.execute(
        SETTLE,
        [event.provider for event in events],
        [event.event_id for event in events],
        [settlement.outcome for settlement in settlements],
        [settlement.full_reason for settlement in settlements],
        [event.type for event in events],
        [event.merchant_id for event in events],
        # JSON text, not lists: asyncpg would read a list of lists as a two-dimensional array.
        [orjson.dumps(settlement.work.changes).decode() for settlement in settlements],
        [
            orjson.dumps([emitted.type.value for emitted in settlement.work.emitted]).decode()
            for settlement in settlements
        ],
    )
