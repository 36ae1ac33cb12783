"""A payment's events, oldest first: `GET /api/v1/payments/{id}/events` (the payment page's timeline).

The events are the outbox rows the platform wrote about the payment (its own events and those of its
refunds and disputes), read by merchant and their `ordering_key` (the payment id, `paystream.ordering`; migration 0045).
Published rows are kept
`OUTBOX_RETENTION_DAYS`; for an older payment the timeline is rebuilt from the payment's and its
refunds' own timestamps (`source: "record"`).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asyncpg
import orjson
from aiohttp import web

from paystream.db import Connection
from paystream.events import EventType, Stream
from paystream.resources import format_timestamp
from paystream.web import POOL, json_response
from paystream_api.auth import authenticate
from paystream_api.payments import fetch_payment

MAX_EVENTS = 500
# The payment-related fields a timeline entry shows (never the whole object: that is on the page).
SUMMARY_FIELDS = ("id", "status", "amount", "currency", "error_code", "error_description", "reason")


@dataclass(frozen=True, slots=True)
class TimelineEntry:
    event_id: str | None  # None for an entry rebuilt from the records
    event_type: str
    occurred_at: datetime
    subject: dict[str, Any]  # the payment's or refund's fields at that event

    def to_resource(self) -> dict[str, Any]:
        return {
            "id": self.event_id,
            "type": self.event_type,
            "occurred_at": format_timestamp(self.occurred_at),
            "object": self.subject,
        }


def _subject(data: Any) -> dict[str, Any]:
    if not isinstance(data, dict):
        return {}
    for name in ("payment", "refund", "dispute"):
        value = data.get(name)
        if isinstance(value, dict):
            return {"entity": name, **{k: value[k] for k in SUMMARY_FIELDS if value.get(k) is not None}}
    return {}


async def payment_timeline(
    conn: Connection | asyncpg.Pool, merchant_id: str, payment_id: str
) -> list[TimelineEntry]:
    """The outbox events of the merchant's payment `payment_id`, in the order they were written."""
    rows = await conn.fetch(
        f"""SELECT event_id, event_type, payload, created_at FROM outbox
            WHERE stream = '{Stream.PAYMENT_EVENTS.value}' AND merchant_id = $1
              AND ordering_key = $2
            ORDER BY id LIMIT {MAX_EVENTS}""",
        merchant_id,
        payment_id,
    )
    entries = []
    for row in rows:
        envelope = orjson.loads(bytes(row["payload"]))
        try:
            occurred_at = datetime.fromisoformat(envelope["occurred_at"])
        except (KeyError, TypeError, ValueError):
            occurred_at = row["created_at"]
        entries.append(
            TimelineEntry(
                str(row["event_id"]), row["event_type"], occurred_at, _subject(envelope.get("data"))
            )
        )
    return entries


async def recorded_timeline(
    conn: Connection | asyncpg.Pool, merchant_id: str, payment_id: str
) -> list[TimelineEntry]:
    """The timeline as the payment's and its refunds' timestamps tell it (events past retention)."""
    payment = await conn.fetchrow(
        """SELECT id, status, amount, currency, error_code, error_description, created_at, settled_at,
                  captured_at FROM payments WHERE id = $1 AND merchant_id = $2""",
        payment_id,
        merchant_id,
    )
    if payment is None:
        return []
    base = {
        "entity": "payment",
        "id": payment["id"],
        "amount": payment["amount"],
        "currency": payment["currency"],
    }
    entries = [TimelineEntry(None, EventType.PAYMENT_CREATED.value, payment["created_at"], base)]
    if payment["settled_at"] is not None and payment["status"] in ("success", "failed"):
        settled = {**base, "status": payment["status"]}
        if payment["error_code"]:
            settled |= {
                "error_code": payment["error_code"],
                "error_description": payment["error_description"],
            }
        entries.append(TimelineEntry(None, f"payment.{payment['status']}", payment["settled_at"], settled))
    if payment["captured_at"] is not None:
        entries.append(TimelineEntry(None, EventType.PAYMENT_CAPTURED.value, payment["captured_at"], base))
    for refund in await conn.fetch(
        """SELECT id, amount, currency, status, reason, created_at, processed_at FROM refunds
           WHERE payment_id = $1 AND merchant_id = $2 ORDER BY created_at, id""",
        payment_id,
        merchant_id,
    ):
        subject = {
            "entity": "refund",
            "id": refund["id"],
            "amount": refund["amount"],
            "currency": refund["currency"],
        }
        entries.append(TimelineEntry(None, EventType.REFUND_CREATED.value, refund["created_at"], subject))
        if refund["processed_at"] is not None and refund["status"] in ("processed", "failed"):
            entries.append(
                TimelineEntry(
                    None,
                    f"refund.{refund['status']}",
                    refund["processed_at"],
                    {**subject, "status": refund["status"]},
                )
            )
    return sorted(entries, key=lambda entry: entry.occurred_at)


async def list_payment_events(request: web.Request) -> web.Response:
    merchant = await authenticate(request)
    pool = request.app[POOL]
    payment = await fetch_payment(pool, merchant.id, request.match_info["payment_id"])
    entries = await payment_timeline(pool, merchant.id, payment["id"])
    source = "events"
    if not entries:
        entries, source = await recorded_timeline(pool, merchant.id, payment["id"]), "record"
    return json_response(
        {
            "entity": "collection",
            "data": [entry.to_resource() for entry in entries],
            "count": len(entries),
            "source": source,
        }
    )


def setup_routes(app: web.Application) -> None:
    app.router.add_get("/api/v1/payments/{payment_id}/events", list_payment_events)
