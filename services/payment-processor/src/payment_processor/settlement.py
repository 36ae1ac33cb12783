"""The settlement scheduler: moves accepted payments and refunds to their final state when due.

The `payment.created` / `refund.created` handlers only stamp `process_after` (when the processing
delay ends) and return, so a handler slot is never held for the delay and thousands of payments
can wait at once. This scheduler (a `paystream.duetime.DueTimeLoop`) sleeps until the earliest
`process_after` in the tables (or until a handler tells it about an earlier one), then settles
everything due in batches: one transaction per batch selects the due rows `FOR UPDATE SKIP LOCKED`
(replicas never take the same row), decides each outcome, updates the rows and writes their events
to the outbox. The `status = 'pending'` guard under the row lock means a final state never changes,
and since `process_after` lives in PostgreSQL, a processor restarted mid-delay settles every payment
exactly once.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

import asyncpg
from prometheus_client import Counter

from payment_processor.outcomes import ORDER_PAID_BY_ANOTHER_PAYMENT, Outcome, OutcomePolicy
from paystream import outbox
from paystream.db import Connection
from paystream.duetime import Claimed, DueTimeLoop, DueTiming
from paystream.events import Event, EventType, Stream
from paystream.logging import get_logger
from paystream.resources import payment_event, payment_resource, refund_event, refund_resource

log = get_logger(__name__)

# Look at the tables at least this often, for work another (dead) replica's handler scheduled.
FALLBACK_CHECK_S = 2.0
# Rows due but locked by another replica: give it a moment rather than spin.
LOCKED_ELSEWHERE_PAUSE_S = 0.02
# Sleep a hair past the due time, so the rows are due by the database's clock too.
DUE_MARGIN_S = 0.002

SETTLED = Counter(
    "paystream_settlements_total", "API payments and refunds moved to a final state", ["kind", "status"]
)


@dataclass(frozen=True, slots=True)
class DueTimes:
    """Seconds until the earliest accepted payment / refund is due; None when there is none."""

    payments: float | None
    refunds: float | None


class SettlementScheduler:
    def __init__(self, pool: asyncpg.Pool, policy: OutcomePolicy, *, batch_size: int = 500) -> None:
        self._pool = pool
        self._policy = policy
        self._batch_size = batch_size
        self._loop = DueTimeLoop(
            "settlement",
            self._claim,
            self._seconds_to_next_due,
            DueTiming(
                fallback_s=FALLBACK_CHECK_S, busy_pause_s=LOCKED_ELSEWHERE_PAUSE_S, margin_s=DUE_MARGIN_S
            ),
        )

    def due_in(self, seconds: float) -> None:
        """A handler scheduled work `seconds` from now: wake the loop if it would sleep past that."""
        self._loop.due_in(seconds)

    # -- settling -------------------------------------------------------------------------------

    async def settle_due(self) -> int:
        """Settle everything due now (payments, then refunds); return how many rows were settled."""
        return await self._settle_all(self._settle_payment_batch) + await self._settle_all(
            self._settle_refund_batch
        )

    async def _settle_all(self, settle_batch: Callable[[], Awaitable[int]]) -> int:
        total = 0
        while True:
            settled = await settle_batch()
            total += settled
            if settled < self._batch_size:
                return total

    async def _settle_payment_batch(self) -> int:
        async with self._pool.acquire() as conn, conn.transaction():
            due = await conn.fetch(
                """SELECT id, method, order_ref FROM payments
                   WHERE status = 'pending' AND process_after <= now()
                   ORDER BY process_after
                   LIMIT $1
                   FOR UPDATE SKIP LOCKED""",
                self._batch_size,
            )
            if not due:
                return 0
            outcomes = await self._decide(conn, due)
            rows = await conn.fetch(
                """UPDATE payments AS p
                   SET status = d.status, error_code = d.error_code,
                       error_description = d.error_description, settled_at = now(), updated_at = now()
                   FROM unnest($1::text[], $2::text[], $3::text[], $4::text[])
                        AS d(id, status, error_code, error_description)
                   WHERE p.id = d.id AND p.status = 'pending'
                   RETURNING p.*""",
                [row["id"] for row in due],
                [outcomes[row["id"]].status for row in due],
                [outcomes[row["id"]].error_code for row in due],
                [outcomes[row["id"]].error_description for row in due],
            )
            paid = [
                (row["order_ref"], row["amount"])
                for row in rows
                if row["order_ref"] and row["status"] == "success"
            ]
            if paid:
                await conn.execute(
                    """UPDATE orders AS o SET status = 'paid', amount_paid = d.amount, updated_at = now()
                       FROM unnest($1::text[], $2::bigint[]) AS d(id, amount)
                       WHERE o.id = d.id""",
                    [order_id for order_id, _ in paid],
                    [amount for _, amount in paid],
                )
            position = {row["id"]: index for index, row in enumerate(due)}
            events: list[Event] = []
            for row in sorted(rows, key=lambda settled: position[settled["id"]]):
                event_type = (
                    EventType.PAYMENT_SUCCESS if row["status"] == "success" else EventType.PAYMENT_FAILED
                )
                events.append(payment_event(event_type, payment_resource(row)))
            await outbox.enqueue(conn, Stream.PAYMENT_EVENTS, events)
        for row in rows:
            SETTLED.labels("payment", row["status"]).inc()
        log.info("settlement.payments_settled", count=len(rows))
        return len(due)

    async def _decide(self, conn: Connection, due: Sequence[asyncpg.Record]) -> dict[str, Outcome]:
        """Each payment's outcome. An order takes one successful payment: the orders are locked (in
        id order, so batches cannot deadlock) and a later success for a paid order becomes a failure."""
        order_ids = sorted({row["order_ref"] for row in due if row["order_ref"]})
        paid_orders: set[str] = set()
        if order_ids:
            orders = await conn.fetch(
                "SELECT id, status FROM orders WHERE id = ANY($1::text[]) ORDER BY id FOR UPDATE", order_ids
            )
            paid_orders = {order["id"] for order in orders if order["status"] == "paid"}
        outcomes: dict[str, Outcome] = {}
        for row in due:
            outcome = self._policy.payment_outcome(row["method"])
            order_id = row["order_ref"]
            if outcome.succeeded and order_id:
                if order_id in paid_orders:
                    outcome = ORDER_PAID_BY_ANOTHER_PAYMENT
                else:
                    paid_orders.add(order_id)
            outcomes[row["id"]] = outcome
        return outcomes

    async def _settle_refund_batch(self) -> int:
        async with self._pool.acquire() as conn, conn.transaction():
            due = await conn.fetch(
                """SELECT r.id, p.order_id AS invoice_id FROM refunds AS r
                   JOIN payments AS p ON p.id = r.payment_id
                   WHERE r.status = 'pending' AND r.process_after <= now()
                   ORDER BY r.process_after
                   LIMIT $1
                   FOR UPDATE OF r SKIP LOCKED""",
                self._batch_size,
            )
            if not due:
                return 0
            rows = await conn.fetch(
                """UPDATE refunds SET status = 'processed', processed_at = now(), updated_at = now()
                   WHERE id = ANY($1::text[]) AND status = 'pending'
                   RETURNING *""",
                [row["id"] for row in due],
            )
            invoices = {row["id"]: row["invoice_id"] for row in due}
            await outbox.enqueue(
                conn,
                Stream.PAYMENT_EVENTS,
                [
                    refund_event(
                        EventType.REFUND_PROCESSED, refund_resource(row), invoice_id=invoices[row["id"]]
                    )
                    for row in rows
                ],
            )
        SETTLED.labels("refund", "processed").inc(len(rows))
        log.info("settlement.refunds_settled", count=len(rows))
        return len(due)

    async def due_in_seconds(self) -> DueTimes:
        """Seconds until the earliest accepted payment and refund are due (negative: overdue), in
        one query on the partial `*_due_idx` indexes."""
        row = await self._pool.fetchrow(
            """SELECT
                 EXTRACT(EPOCH FROM (SELECT min(process_after) FROM payments WHERE status = 'pending')
                                    - clock_timestamp())::float8 AS payments,
                 EXTRACT(EPOCH FROM (SELECT min(process_after) FROM refunds WHERE status = 'pending')
                                    - clock_timestamp())::float8 AS refunds"""
        )
        assert row is not None
        return DueTimes(payments=row["payments"], refunds=row["refunds"])

    async def _claim(self) -> Claimed:
        """Settle the kinds that are due (payments, then refunds), each until none is left."""
        due = await self.due_in_seconds()
        settled = 0
        if due.payments is not None and due.payments <= 0:
            settled += await self._settle_all(self._settle_payment_batch)
        if due.refunds is not None and due.refunds <= 0:
            settled += await self._settle_all(self._settle_refund_batch)
        return Claimed.SOME if settled else Claimed.NOTHING

    async def _seconds_to_next_due(self) -> float | None:
        due = await self.due_in_seconds()
        upcoming = [seconds for seconds in (due.payments, due.refunds) if seconds is not None]
        return min(upcoming) if upcoming else None

    # -- running --------------------------------------------------------------------------------

    async def run(self, stop: asyncio.Event) -> None:
        """Settle due work until `stop` is set, sleeping until the next due time in between."""
        log.info("settlement.started")
        await self._loop.run(stop)
        log.info("settlement.stopped")
