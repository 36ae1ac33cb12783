"""Stream handlers: every merchant-facing event on `payment:events` becomes delivery-log rows.

The handler only records the deliveries (see intake.py); attempts run in the scheduler, so a slow
merchant endpoint never holds a stream entry or a consumer slot.
"""

from __future__ import annotations

import uuid

from paystream.consumer import Handler, HandlerRegistry, MessageContext
from paystream.errors import PermanentError
from paystream.events import MERCHANT_EVENT_TYPES, Event
from webhook_dispatcher.intake import DeliveryIntake


def build_registry(intake: DeliveryIntake) -> Handler:
    async def record_deliveries(event: Event, ctx: MessageContext) -> None:
        try:
            uuid.UUID(event.id)
        except ValueError:
            raise PermanentError(f"event id {event.id!r} is not a UUID") from None
        if not event.merchant_id:
            raise PermanentError("event has no merchant_id")
        await intake.submit(event, ctx.sequence)

    registry = HandlerRegistry()
    for event_type in MERCHANT_EVENT_TYPES:
        registry.add(event_type, record_deliveries)
    return registry
