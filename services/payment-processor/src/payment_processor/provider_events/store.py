"""`provider_events` rows as the processor sees them: lock them, and settle them with their audit
rows; each step is one statement for a whole batch of events.

A row is named by (provider, merchant, event id): provider event ids are unique only within the
merchant's provider account, so every join and update here carries the merchant."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import orjson

from payment_processor.provider_events.fields import unix_time
from payment_processor.provider_events.work import StoredEvent, Work
from paystream.db import Connection

RECEIVED = "received"
PROCESSED = "processed"
IGNORED = "ignored"
REJECTED = "rejected"


# The row's own status is the inbox of this path: a row locked here that is no longer `received`
# was handled before (a redelivery, or a replayed envelope with a new id), and the lock makes a
# concurrent delivery of the same event wait for the first one's commit, then see its status.
LOCK_EVENTS = """
WITH wanted AS (
    SELECT * FROM unnest($1::uuid[], $2::text[], $3::text[], $4::text[])
        AS w(envelope_id, provider, merchant_id, event_id)
), locked AS (
    SELECT e.provider, e.event_id, e.type, e.merchant_id, e.account_id, e.payload, e.received_at, e.status
    FROM provider_events e
    JOIN wanted w ON e.provider = w.provider AND e.merchant_id = w.merchant_id AND e.event_id = w.event_id
    ORDER BY e.provider, e.merchant_id, e.event_id
    FOR UPDATE OF e
)
SELECT wanted.envelope_id, locked.*
FROM wanted
LEFT JOIN locked ON locked.provider = wanted.provider AND locked.merchant_id = wanted.merchant_id
    AND locked.event_id = wanted.event_id"""

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


@dataclass(frozen=True, slots=True)
class EventClaim:
    """A `provider_event.received` envelope and the row it names."""

    envelope_id: str
    provider: str
    merchant_id: str
    event_id: str

    @property
    def row_key(self) -> tuple[str, str, str]:
        return (self.provider, self.merchant_id, self.event_id)


@dataclass(frozen=True, slots=True)
class LockedEvent:
    status: str
    event: StoredEvent


async def lock_events(conn: Connection, claims: Sequence[EventClaim]) -> dict[str, LockedEvent | None]:
    """Lock the rows the envelopes name, in one statement; keyed by envelope id, None when the
    envelope names no stored row. Rows are locked in key order, so two batches that share rows wait
    for each other instead of deadlocking."""
    if not conn.is_in_transaction():
        raise RuntimeError("lock_events must run inside the handler's transaction")
    rows = await conn.fetch(
        LOCK_EVENTS,
        [claim.envelope_id for claim in claims],
        [claim.provider for claim in claims],
        [claim.merchant_id for claim in claims],
        [claim.event_id for claim in claims],
    )
    return {str(row["envelope_id"]): _locked(row) if row["event_id"] is not None else None for row in rows}


def _locked(row: Any) -> LockedEvent:
    provider: str = row["provider"]
    try:
        document: Any = orjson.loads(row["payload"])
    except orjson.JSONDecodeError:
        document = None
    payload = document if isinstance(document, dict) else {}
    received_at: datetime = row["received_at"]
    occurred_at = unix_time(payload.get("created_at")) if provider == "razorpay" else None
    event = StoredEvent(
        provider=provider,
        event_id=row["event_id"],
        type=row["type"],
        merchant_id=row["merchant_id"],
        account_id=row["account_id"],
        payload=payload,
        received_at=received_at,
        occurred_at=occurred_at or received_at,
    )
    return LockedEvent(row["status"], event)


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
