"""What a provider event handler works with: the stored event, its transaction, and what it did.

A handler reads `work.event`, changes typed tables through `work.conn` (inside the transaction that
also claims the event and settles its row), notes each state change with `work.change()` for the
audit row, and emits domain events with `work.emit()`; they are enqueued on `payment:events` in the
same transaction. A handler that finds the event unusable raises `Rejected`: the event is stored as
`rejected` with the reason, which is final (retrying cannot help).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from paystream.db import Connection
from paystream.events import Event, EventType
from paystream.invoices import InvoiceOwner


class Rejected(Exception):
    """The event lacks what its handler needs; `reason` says what."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True, slots=True)
class StoredEvent:
    """A `provider_events` row, its payload parsed."""

    provider: str
    event_id: str
    type: str
    merchant_id: str
    account_id: str | None
    payload: Mapping[str, Any]
    received_at: datetime
    occurred_at: datetime
    """The provider's own time for the event (Razorpay `created_at`), else when we received it."""


@dataclass(slots=True)
class Work:
    conn: Connection
    event: StoredEvent
    changes: list[dict[str, Any]] = field(default_factory=list)
    emitted: list[Event] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    owners: list[InvoiceOwner] = field(default_factory=list)
    """Invoices whose owner the event names; recorded with the batch's settlement."""

    def change(self, entity: str, entity_id: str, before: str | None, after: str) -> None:
        self.changes.append({"entity": entity, "id": entity_id, "from": before, "to": after})

    def note(self, text: str) -> None:
        self.notes.append(text)

    def record_owner(self, invoice_id: str, salon_id: str | None) -> None:
        """Note who owns the invoice (recorded in this transaction, before it commits)."""
        self.owners.append(InvoiceOwner(self.event.merchant_id, invoice_id, salon_id))

    async def emit(
        self,
        event_type: EventType,
        data: Mapping[str, Any],
        *,
        invoice_id: str | None,
        salon_id: str | None,
    ) -> None:
        """Queue a domain event for `payment:events`; record who owns its invoice in this transaction."""
        merchant_id = self.event.merchant_id
        if invoice_id:
            self.record_owner(invoice_id, salon_id)
        self.emitted.append(
            Event(
                type=event_type,
                merchant_id=merchant_id,
                data=data,
                invoice_id=invoice_id,
                salon_id=salon_id,
            )
        )
