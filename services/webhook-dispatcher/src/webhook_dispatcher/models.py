"""The records that pass between the dispatcher's stages: endpoints, planned and claimed deliveries,
and attempt outcomes."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from paystream.events import Event, EventType
from paystream.ordering import ordering_key
from paystream.webhooks import filter_matches


class DeliveryStatus(StrEnum):
    PENDING = "pending"
    SUCCESS = "success"
    FAILED = "failed"


@dataclass(frozen=True, slots=True)
class Endpoint:
    id: str
    merchant_id: str
    # None: every event type; else exact names and `prefix.*` wildcards (`paystream.webhooks`).
    events: frozenset[str] | None

    def subscribes(self, event_type: str) -> bool:
        # A test event is sent because the merchant asked for it, whatever the subscription.
        return event_type == EventType.WEBHOOK_TEST or filter_matches(self.events, event_type)


@dataclass(frozen=True, slots=True)
class IncomingEvent:
    """An event handed to the intake, with its place in its payment's order (see ordering.py):
    `sequence` is None when the event has no ordering key or came without a number."""

    event: Event
    order_key: str | None
    sequence: int | None

    @classmethod
    def of(cls, event: Event, sequence: int | None) -> IncomingEvent:
        key = ordering_key(event)
        return cls(event, key, sequence if key is not None else None)


@dataclass(frozen=True, slots=True)
class PlannedDelivery:
    """A delivery-log row about to be written; whether it is due or held, ordering.py decides."""

    id: str
    merchant_id: str
    endpoint: Endpoint
    event_id: str
    event_type: str
    payload: bytes
    order_key: str | None
    ordering_seq: int | None
    event_at: datetime


@dataclass(frozen=True, slots=True)
class DueDelivery:
    """A row this dispatcher has claimed (holds the lease of) and must attempt now."""

    id: str
    merchant_id: str
    endpoint_id: str
    event_type: str
    payload: bytes
    attempts: int
    order_key: str | None
    ordering_seq: int | None
    url: str
    endpoint_enabled: bool
    secrets: tuple[str, ...]
    lease_token: uuid.UUID
    # The endpoint's own headers, sent with every attempt (the signature headers are never among them).
    headers: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True, slots=True)
class AttemptOutcome:
    """What one attempt (or a decision not to attempt) did to a delivery."""

    delivery_id: str
    lease_token: uuid.UUID
    merchant_id: str
    endpoint_id: str
    order_key: str | None
    ordering_seq: int | None
    status: DeliveryStatus
    attempted: bool
    # True when this was the delivery's first attempt: later deliveries of its key may now go.
    first_attempt: bool
    attempted_at: datetime | None = None
    duration_ms: int | None = None
    response_code: int | None = None
    response_body: str | None = None
    error: str | None = None
    retry_in_s: float | None = None
    disable_endpoint: bool = False
