"""Turning events into delivery-log rows, and deciding when each row's first attempt may go out.

Ordering rule, per (endpoint, ordering key): at any time only the earliest not-yet-attempted row (in
event order: occurred_at, then the UUIDv7 event id) may be due; the rows after it are held (no due
time) until the recorder notes that row's first attempt and releases the next one. Rows are written
under a transaction-scoped advisory lock on their (endpoint, key), so two replicas handling events of
one payment at once see each other's rows.

Within one dispatcher the stream consumer already hands a payment's events over one at a time, in
stream order. Across replicas, a later event (say `payment.pending`) can be written before an
earlier one (`payment.created`) that another replica read a moment before. So a row that opens its
key (no row of the key exists yet) while an earlier lifecycle event can still be expected waits a
short settle time; if the earlier event arrives meanwhile, it goes first and the later row is held.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from paystream.events import Event
from webhook_dispatcher.models import Endpoint, PlannedDelivery, UnattemptedDelivery, new_delivery_id
from webhook_dispatcher.ordering import first_subscribed_rank, lifecycle_rank, ordering_key
from webhook_dispatcher.signing import webhook_body

OrderKey = tuple[str, str]


def plan_deliveries(
    events: Iterable[Event],
    endpoints_by_merchant: Mapping[str, Sequence[Endpoint]],
    new_id: Callable[[], str] = new_delivery_id,
) -> list[PlannedDelivery]:
    """One row per (event, subscribed endpoint), each due at once until ordering says otherwise."""
    planned: list[PlannedDelivery] = []
    for event in events:
        endpoints = [e for e in endpoints_by_merchant.get(event.merchant_id, ()) if e.subscribes(event.type)]
        if not endpoints:
            continue
        body = webhook_body(event.type.value, event.occurred_at, event.data)
        key = ordering_key(event)
        for endpoint in endpoints:
            planned.append(
                PlannedDelivery(
                    id=new_id(),
                    merchant_id=event.merchant_id,
                    endpoint=endpoint,
                    event_id=event.id,
                    event_type=event.type.value,
                    payload=body,
                    order_key=key,
                    event_at=event.occurred_at,
                )
            )
    return planned


@dataclass(slots=True)
class KeyState:
    """What the database holds for one (endpoint, ordering key)."""

    seen: bool = False
    unattempted: list[UnattemptedDelivery] = field(default_factory=list)


@dataclass(slots=True)
class OrderingDecision:
    # Existing rows to hold back (an earlier event has just arrived) or to release.
    hold: list[str] = field(default_factory=list)
    release: list[str] = field(default_factory=list)


def apply_ordering(
    planned: Sequence[PlannedDelivery], state: Mapping[OrderKey, KeyState], settle_s: float
) -> OrderingDecision:
    """Set `due_in_s` of the planned rows and say which existing rows to hold or release."""
    decision = OrderingDecision()
    groups: dict[OrderKey, list[PlannedDelivery]] = defaultdict(list)
    for row in planned:
        if row.order_key is not None:
            groups[(row.endpoint.id, row.order_key)].append(row)
    for key, new_rows in groups.items():
        key_state = state.get(key, KeyState())
        queue: list[PlannedDelivery | UnattemptedDelivery] = [*key_state.unattempted, *new_rows]
        queue.sort(key=lambda queued: queued.order_position)
        first, rest = queue[0], queue[1:]
        if isinstance(first, PlannedDelivery):
            first.due_in_s = settle_s if _may_follow_unseen_event(first, key_state.seen) else 0.0
        elif first.held:
            decision.release.append(first.id)
        for queued in rest:
            if isinstance(queued, PlannedDelivery):
                queued.due_in_s = None
            elif not queued.held and not queued.leased:
                decision.hold.append(queued.id)
    return decision


def _may_follow_unseen_event(row: PlannedDelivery, seen: bool) -> bool:
    """True when the row opens its key although the endpoint receives an earlier lifecycle event."""
    if seen:
        return False
    rank = lifecycle_rank(row.event_type)
    return rank is not None and rank > first_subscribed_rank(row.endpoint.events)
