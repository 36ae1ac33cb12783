"""The event envelope: one typed, versioned record for everything that crosses a stream.

An event is encoded with orjson into the single stream field `event`. Its id is a UUIDv7: unique
and ordered by time, so it doubles as the idempotency key of every consumer (the inbox). An event
that keeps an order (see `paystream.ordering`) also carries its number within its payment in a second
field, `seq`: written by the outbox (which assigns it), kept by dead-lettering and by every replay.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

import orjson
import uuid_utils

from paystream.errors import PermanentError

STREAM_FIELD = b"event"
SEQUENCE_FIELD = b"seq"
ENVELOPE_VERSION = 1
# A sequence number is a positive PostgreSQL bigint.
MAX_SEQUENCE = 2**63 - 1


class Stream(StrEnum):
    """The streams of the bus. A stream's dead letters live at `<stream>:dlq`."""

    PAYMENT_EVENTS = "payment:events"


# Verified provider webhooks do not travel on a stream: the API stores each in `provider_events` and
# NOTIFYs this channel after the commit; the payment processor claims the waiting rows itself.
PROVIDER_EVENTS_CHANNEL = "provider_events"


class ConsumerGroup(StrEnum):
    """The consumer groups on the streams: a group's name keys its inbox rows, its pending entries and
    its heartbeats, so every process of a service (and every tool that inspects it) uses these."""

    PAYMENT_PROCESSOR = "payment-processor"
    WEBHOOK_DISPATCHER = "webhook-dispatcher"


DEAD_LETTER_SUFFIX = ":dlq"


def dead_letter_stream(stream: str) -> str:
    return f"{stream}{DEAD_LETTER_SUFFIX}"


class EventType(StrEnum):
    PAYMENT_CREATED = "payment.created"
    PAYMENT_PENDING = "payment.pending"
    PAYMENT_SUCCESS = "payment.success"
    PAYMENT_FAILED = "payment.failed"
    PAYMENT_CAPTURED = "payment.captured"
    PAYMENT_AUTHORIZED = "payment.authorized"
    REFUND_CREATED = "refund.created"
    REFUND_PROCESSED = "refund.processed"
    REFUND_FAILED = "refund.failed"
    REFUND_SPEED_CHANGED = "refund.speed_changed"
    ORDER_PAID = "order.paid"
    DISPUTE_CREATED = "payment.dispute.created"
    DISPUTE_WON = "payment.dispute.won"
    DISPUTE_LOST = "payment.dispute.lost"
    DISPUTE_CLOSED = "payment.dispute.closed"
    DISPUTE_UNDER_REVIEW = "payment.dispute.under_review"
    DISPUTE_ACTION_REQUIRED = "payment.dispute.action_required"
    DOWNTIME_STARTED = "payment.downtime.started"
    DOWNTIME_UPDATED = "payment.downtime.updated"
    DOWNTIME_RESOLVED = "payment.downtime.resolved"
    INVOICE_PAID = "invoice.paid"
    INVOICE_PARTIALLY_PAID = "invoice.partially_paid"
    INVOICE_EXPIRED = "invoice.expired"
    PAYMENT_LINK_PAID = "payment_link.paid"
    PAYMENT_LINK_PARTIALLY_PAID = "payment_link.partially_paid"
    PAYMENT_LINK_EXPIRED = "payment_link.expired"
    PAYMENT_LINK_CANCELLED = "payment_link.cancelled"
    TOKEN_SAVED = "token.saved"
    WEBHOOK_TEST = "webhook.test"
    # Sent to a merchant's other endpoints when one is disabled after failing for days.
    ENDPOINT_DISABLED = "endpoint.disabled"


# Every event type is a merchant event: subscribable, and taken in by the dispatcher (so that its
# number counts in its payment's order). Which ones are ever sent, and what their `data` holds, is
# the event catalogue's (`paystream.catalogue`).
MERCHANT_EVENT_TYPES = tuple(EventType)


def entry_fields(payload: bytes, sequence: int | None) -> dict[bytes, bytes]:
    """The fields of an event's stream entry: the encoded envelope, and its sequence number if any."""
    fields = {STREAM_FIELD: payload}
    if sequence is not None:
        fields[SEQUENCE_FIELD] = str(sequence).encode()
    return fields


def parse_sequence(raw: bytes | str) -> int:
    """A `seq` field's value; ValueError unless it is plain ASCII digits for 1 to 2^63 - 1 (no sign,
    no spaces, no superscripts or other Unicode digits that `int()` would accept)."""
    text = raw.decode("ascii") if isinstance(raw, bytes) else raw
    if not (0 < len(text) <= 19 and text.isascii() and text.isdigit()):
        raise ValueError(f"not a sequence number: {text[:40]!r}")
    value = int(text)
    if not 1 <= value <= MAX_SEQUENCE:
        raise ValueError(f"sequence number out of range: {text!r}")
    return value


def new_event_id() -> str:
    """A UUIDv7: unique, and sortable by creation time."""
    return str(uuid_utils.uuid7())


def utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True, slots=True)
class Event:
    type: EventType
    merchant_id: str
    data: Mapping[str, Any]
    id: str = field(default_factory=new_event_id)
    version: int = ENVELOPE_VERSION
    occurred_at: datetime = field(default_factory=utc_now)
    salon_id: str | None = None
    invoice_id: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "type": self.type.value,
            "version": self.version,
            "occurred_at": self.occurred_at,
            "merchant_id": self.merchant_id,
            "salon_id": self.salon_id,
            "invoice_id": self.invoice_id,
            "data": self.data,
        }

    def encode(self) -> bytes:
        return orjson.dumps(self.to_dict(), option=orjson.OPT_UTC_Z)

    @classmethod
    def decode(cls, raw: bytes | str) -> Event:
        """Parse an encoded envelope; anything malformed is a `PermanentError` (it goes to the DLQ)."""
        try:
            body = orjson.loads(raw)
            return cls(
                id=str(body["id"]),
                type=EventType(body["type"]),
                version=int(body["version"]),
                occurred_at=datetime.fromisoformat(body["occurred_at"]),
                merchant_id=str(body["merchant_id"]),
                salon_id=body.get("salon_id"),
                invoice_id=body.get("invoice_id"),
                data=body.get("data") or {},
            )
        except (orjson.JSONDecodeError, KeyError, ValueError, TypeError) as exc:
            raise PermanentError(f"malformed event envelope: {exc}") from exc

    @classmethod
    def from_fields(cls, fields: Mapping[bytes, bytes]) -> Event:
        raw = fields.get(STREAM_FIELD)
        if raw is None:
            raise PermanentError("stream entry has no 'event' field")
        return cls.decode(raw)
