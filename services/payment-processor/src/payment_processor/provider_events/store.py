"""`provider_events` rows as the processor sees them: lock one, and settle it with its audit row."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import orjson

from payment_processor.provider_events.fields import unix_time
from payment_processor.provider_events.work import DbConnection, StoredEvent, Work

RECEIVED = "received"
PROCESSED = "processed"
IGNORED = "ignored"
REJECTED = "rejected"


async def lock_event(conn: DbConnection, provider: str, event_id: str) -> tuple[str, StoredEvent] | None:
    """(status, event) of the stored row, locked for this transaction; None when there is no row."""
    row = await conn.fetchrow(
        """SELECT provider, event_id, type, merchant_id, account_id, payload, received_at, status
           FROM provider_events WHERE provider = $1 AND event_id = $2 FOR UPDATE""",
        provider,
        event_id,
    )
    if row is None:
        return None
    try:
        document: Any = orjson.loads(row["payload"])
    except orjson.JSONDecodeError:
        document = None
    payload = document if isinstance(document, dict) else {}
    received_at: datetime = row["received_at"]
    occurred_at = unix_time(payload.get("created_at")) if provider == "razorpay" else None
    event = StoredEvent(
        provider=row["provider"],
        event_id=row["event_id"],
        type=row["type"],
        merchant_id=row["merchant_id"] or "",
        account_id=row["account_id"],
        payload=payload,
        received_at=received_at,
        occurred_at=occurred_at or received_at,
    )
    return row["status"], event


async def settle(work: Work, outcome: str, reason: str | None) -> None:
    """Mark the event handled and write its audit row (same transaction as its effects)."""
    event = work.event
    full_reason = "; ".join(part for part in (reason, *work.notes) if part) or None
    await work.conn.execute(
        """UPDATE provider_events SET status = $3, reason = $4, processed_at = now()
           WHERE provider = $1 AND event_id = $2""",
        event.provider,
        event.event_id,
        outcome,
        full_reason,
    )
    await work.conn.execute(
        """INSERT INTO provider_event_audit
               (provider, event_id, event_type, merchant_id, outcome, reason, changes, emitted)
           VALUES ($1, $2, $3, $4, $5, $6, $7, $8)""",
        event.provider,
        event.event_id,
        event.type,
        event.merchant_id,
        outcome,
        full_reason,
        work.changes,
        [emitted.type.value for emitted in work.emitted],
    )
