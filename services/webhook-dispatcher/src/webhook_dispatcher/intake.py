"""Intake: turns stream events into delivery-log rows, committing many events per transaction.

Each handler call submits its event and waits until the event's rows (and its inbox claim, which makes
redeliveries no-ops) have committed; only then does the consumer acknowledge the stream entry. A
single writer commits whatever has queued up meanwhile in one transaction (group commit), so the cost
per event is a few array elements, not a few round trips. When a batch fails on a data error, its
events are retried one per transaction so that one bad event cannot hold back the others.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, TypeAlias

import asyncpg
from asyncpg.pool import PoolConnectionProxy

from paystream.aio import wait_any
from paystream.db import DATABASE_UNAVAILABLE_ERRORS
from paystream.events import Event
from paystream.logging import get_logger
from webhook_dispatcher.metrics import DELIVERIES_CREATED
from webhook_dispatcher.models import Endpoint, PlannedDelivery, UnattemptedDelivery
from webhook_dispatcher.planning import KeyState, OrderKey, apply_ordering, plan_deliveries

log = get_logger(__name__)

MAX_BATCH = 500

Connection: TypeAlias = "asyncpg.Connection | PoolConnectionProxy[Any]"

CLAIM_INBOX = """
INSERT INTO inbox (consumer_group, event_id)
SELECT $1, event_id FROM unnest($2::uuid[]) AS e(event_id)
ON CONFLICT DO NOTHING
RETURNING event_id"""

ENABLED_ENDPOINTS = """
SELECT id, merchant_id, events FROM webhook_endpoints
WHERE merchant_id = ANY($1::text[]) AND enabled"""

LOCK_ORDER_KEYS = "SELECT webhook_lock_order_keys($1::text[], $2::text[])"

ORDER_KEY_ROWS = """
SELECT d.id, d.endpoint_id, d.order_key, d.event_at, d.event_id, d.status, d.attempts,
       d.due_at IS NULL AS held, d.lease_token IS NOT NULL AS leased
FROM unnest($1::text[], $2::text[]) AS k(endpoint_id, order_key)
JOIN webhook_deliveries d ON d.endpoint_id = k.endpoint_id AND d.order_key = k.order_key"""

INSERT_DELIVERIES = """
INSERT INTO webhook_deliveries
    (id, merchant_id, endpoint_id, event_id, event_type, payload, order_key, event_at, due_at, next_retry_at)
SELECT r.id, r.merchant_id, r.endpoint_id, r.event_id, r.event_type, r.payload, r.order_key, r.event_at,
       now() + make_interval(secs => r.due_in_s), now() + make_interval(secs => r.due_in_s)
FROM unnest($1::text[], $2::text[], $3::text[], $4::uuid[], $5::text[], $6::bytea[], $7::text[],
            $8::timestamptz[], $9::float8[])
     AS r(id, merchant_id, endpoint_id, event_id, event_type, payload, order_key, event_at, due_in_s)
ON CONFLICT (event_id, endpoint_id) DO NOTHING"""

HOLD = """
UPDATE webhook_deliveries SET due_at = NULL, next_retry_at = NULL, updated_at = now()
WHERE id = ANY($1::text[]) AND status = 'pending' AND attempts = 0 AND lease_token IS NULL"""

RELEASE = """
UPDATE webhook_deliveries SET due_at = now(), next_retry_at = now(), updated_at = now()
WHERE id = ANY($1::text[]) AND status = 'pending' AND due_at IS NULL"""


@dataclass(slots=True)
class _Submission:
    event: Event
    done: asyncio.Future[None]


class DeliveryIntake:
    """Group-commits events into delivery-log rows; `submit()` returns once the event's rows committed."""

    def __init__(
        self,
        pool: asyncpg.Pool,
        *,
        group: str,
        settle_s: float,
        on_due: Callable[[], None],
        max_batch: int = MAX_BATCH,
    ) -> None:
        self._pool = pool
        self._group = group
        self._settle_s = settle_s
        self._on_due = on_due
        self._max_batch = max_batch
        self._queue: list[_Submission] = []
        self._ready = asyncio.Event()

    async def submit(self, event: Event) -> None:
        """Write the event's deliveries (exactly once per event id) and wait for the commit."""
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._queue.append(_Submission(event, done))
        self._ready.set()
        await done

    async def run(self, stop: asyncio.Event) -> None:
        """Commit batches until `stop` is set and nothing is left to commit."""
        while True:
            if not self._queue:
                if stop.is_set():
                    return
                self._ready.clear()
                await wait_any([self._ready, stop], 1.0)
                continue
            batch, self._queue = self._queue[: self._max_batch], self._queue[self._max_batch :]
            await self._commit(batch)

    async def _commit(self, batch: Sequence[_Submission]) -> None:
        live = [item for item in batch if not item.done.done()]
        if not live:
            return
        try:
            written = await self._write([item.event for item in live])
        except asyncio.CancelledError:
            for item in live:
                if not item.done.done():
                    item.done.cancel()
            raise
        except (asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
            if len(live) > 1 and not isinstance(exc, DATABASE_UNAVAILABLE_ERRORS):
                log.warning("intake.batch_failed_retrying_singly", error=str(exc), events=len(live))
                for item in live:
                    await self._commit([item])
                return
            self._fail(live, exc)
            return
        except Exception as exc:  # the handlers see it, and the consumer retries their events
            self._fail(live, exc)
            return
        for item in live:
            if not item.done.done():
                item.done.set_result(None)
        if written:
            self._on_due()

    @staticmethod
    def _fail(items: Sequence[_Submission], exc: BaseException) -> None:
        for item in items:
            if not item.done.done():
                item.done.set_exception(exc)
                # Retrieved here so that a handler that timed out meanwhile leaves no loud warning.
                with contextlib.suppress(BaseException):
                    item.done.exception()

    async def _write(self, events: Sequence[Event]) -> bool:
        """The events' delivery rows: inbox claims, rows and ordering in one transaction. True when
        rows were written (the scheduler then re-reads the earliest due time)."""
        async with self._pool.acquire() as conn:
            # Looked up before the transaction: events of merchants without an endpoint for them
            # (most of them, for most merchants) then cost one read and no commit at all.
            merchants = sorted({event.merchant_id for event in events})
            endpoints: dict[str, list[Endpoint]] = defaultdict(list)
            for row in await conn.fetch(ENABLED_ENDPOINTS, merchants):
                events_filter = frozenset(row["events"]) if row["events"] is not None else None
                endpoints[row["merchant_id"]].append(Endpoint(row["id"], row["merchant_id"], events_filter))
            unique = list({event.id: event for event in events}.values())
            planned = plan_deliveries(unique, endpoints)
            if not planned:
                return False  # nothing to send, so nothing to make idempotent
            async with conn.transaction():
                written = await self._write_planned(conn, planned)
        DELIVERIES_CREATED.inc(written)
        return written > 0

    async def _write_planned(self, conn: Connection, planned: list[PlannedDelivery]) -> int:
        """Inside the transaction: claim the events, insert their rows, apply per-key ordering; how
        many rows were written."""
        # Only the events this group has not handled before get rows (redeliveries do nothing).
        candidates = sorted({row.event_id for row in planned})
        claimed = await conn.fetch(CLAIM_INBOX, self._group, candidates)
        fresh_ids = {str(row["event_id"]) for row in claimed}
        planned = [row for row in planned if str(uuid.UUID(row.event_id)) in fresh_ids]
        if not planned:
            return 0
        hold: list[str] = []
        release: list[str] = []
        keys = sorted({(row.endpoint.id, row.order_key) for row in planned if row.order_key is not None})
        if keys:
            state = await self._key_state(conn, keys)
            decision = apply_ordering(planned, state, self._settle_s)
            hold, release = decision.hold, decision.release
        await _insert(conn, planned)
        if hold:
            await conn.execute(HOLD, hold)
        if release:
            await conn.execute(RELEASE, release)
        return len(planned)

    @staticmethod
    async def _key_state(conn: Connection, keys: Sequence[OrderKey]) -> dict[OrderKey, KeyState]:
        endpoint_ids = [endpoint_id for endpoint_id, _ in keys]
        order_keys = [order_key for _, order_key in keys]
        await conn.execute(LOCK_ORDER_KEYS, endpoint_ids, order_keys)
        state: dict[OrderKey, KeyState] = defaultdict(KeyState)
        for row in await conn.fetch(ORDER_KEY_ROWS, endpoint_ids, order_keys):
            key_state = state[(row["endpoint_id"], row["order_key"])]
            key_state.seen = True
            if row["status"] == "pending" and row["attempts"] == 0:
                key_state.unattempted.append(
                    UnattemptedDelivery(
                        id=row["id"],
                        endpoint_id=row["endpoint_id"],
                        order_key=row["order_key"],
                        event_at=row["event_at"],
                        event_id=row["event_id"],
                        held=row["held"],
                        leased=row["leased"],
                    )
                )
        return state


async def _insert(conn: Connection, planned: Sequence[PlannedDelivery]) -> None:
    await conn.execute(
        INSERT_DELIVERIES,
        [row.id for row in planned],
        [row.merchant_id for row in planned],
        [row.endpoint.id for row in planned],
        [row.event_id for row in planned],
        [row.event_type for row in planned],
        [row.payload for row in planned],
        [row.order_key for row in planned],
        [row.event_at for row in planned],
        [row.due_in_s for row in planned],
    )
