"""Turning events into delivery-log rows: one per (event, subscribed endpoint), with the exact body.

Whether a row is due at once or held behind an earlier event of its payment is the ordering rule's
call, made as the rows are written (see ordering.py).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence

from paystream.webhooks import new_delivery_id, webhook_body
from webhook_dispatcher.models import Endpoint, IncomingEvent, PlannedDelivery


def plan_deliveries(
    incoming: Iterable[IncomingEvent],
    endpoints_by_merchant: Mapping[str, Sequence[Endpoint]],
    new_id: Callable[[], str] = new_delivery_id,
) -> list[PlannedDelivery]:
    """One row per (event, subscribed endpoint)."""
    planned: list[PlannedDelivery] = []
    for item in incoming:
        event = item.event
        endpoints = [e for e in endpoints_by_merchant.get(event.merchant_id, ()) if e.subscribes(event.type)]
        if not endpoints:
            continue
        body = webhook_body(event.type.value, event.occurred_at, event.data)
        for endpoint in endpoints:
            planned.append(
                PlannedDelivery(
                    id=new_id(),
                    merchant_id=event.merchant_id,
                    endpoint=endpoint,
                    event_id=event.id,
                    event_type=event.type.value,
                    payload=body,
                    order_key=item.order_key,
                    ordering_seq=item.sequence,
                    event_at=event.occurred_at,
                )
            )
    return planned
