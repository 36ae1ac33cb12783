"""The records that pass between the dispatcher's stages: endpoints, planned and claimed deliveries,
and attempt outcomes."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

import uuid_utils

from paystream.events import EventType


class DeliveryStatus(StrEnum):
    PENDING = "pending"
    SUCCESS = "success"
    FAILED = "failed"


def new_delivery_id() -> str:
    """`msg_` + a UUIDv7: the log id and the `webhook-id` header, sortable by creation time."""
    return "msg_" + uuid_utils.uuid7().hex


@dataclass(frozen=True, slots=True)
class Endpoint:
    id: str
    merchant_id: str
    # None: every event type.
    events: frozenset[str] | None

    def subscribes(self, event_type: str) -> bool:
        # A test event is sent because the merchant asked for it, whatever the subscription.
        return event_type == EventType.WEBHOOK_TEST or self.events is None or event_type in self.events


@dataclass(slots=True)
class PlannedDelivery:
    """A delivery-log row about to be written. `due_in_s` None means held (see planning.py)."""

    id: str
    merchant_id: str
    endpoint: Endpoint
    event_id: str
    event_type: str
    payload: bytes
    order_key: str | None
    event_at: datetime
    due_in_s: float | None = 0.0

    @property
    def order_position(self) -> tuple[datetime, uuid.UUID]:
        return (self.event_at, uuid.UUID(self.event_id))


@dataclass(frozen=True, slots=True)
class UnattemptedDelivery:
    """An existing pending row of an ordering key that has not had its first attempt yet."""

    id: str
    endpoint_id: str
    order_key: str
    event_at: datetime
    event_id: uuid.UUID
    held: bool
    leased: bool

    @property
    def order_position(self) -> tuple[datetime, uuid.UUID]:
        return (self.event_at, self.event_id)


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
    url: str
    endpoint_enabled: bool
    secrets: tuple[str, ...]
    lease_token: uuid.UUID


@dataclass(frozen=True, slots=True)
class AttemptOutcome:
    """What one attempt (or a decision not to attempt) did to a delivery."""

    delivery_id: str
    lease_token: uuid.UUID
    endpoint_id: str
    order_key: str | None
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
