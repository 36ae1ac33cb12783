"""Intake: turns stream events into delivery-log rows, committing many events per transaction.

Each handler call submits its event and waits until the event's rows (and its inbox claim, which makes
redeliveries no-ops) have committed; only then does the consumer acknowledge the stream entry. A
single writer of a `paystream.groupcommit.GroupCommitter` commits whatever has queued up meanwhile in
one transaction (group commit), so the cost per event is a few array elements, not a few round trips;
the engine's rules hold for the handlers waiting (refused at once before start and after stop; on
a stop past its grace period, failed with RetryableError, so the consumer delivers them again). When
a batch fails on a data error, its events are retried one per transaction (`split_and_retry`) so
that one bad event cannot hold back the others.

The same transaction records the numbered events as taken in and applies the ordering rule
(ordering.py): inbox claims, then the keys' lock (TAKE_IN), then one statement that writes the rows,
due or held, and releases the held rows the batch unblocked.
"""

from __future__ import annotations

import asyncio
import uuid
from collections import defaultdict
from collections.abc import Callable, Sequence

import asyncpg

from paystream.db import DATABASE_UNAVAILABLE_ERRORS, Connection
from paystream.events import Event
from paystream.groupcommit import GroupCommitter, Submission, split_and_retry
from paystream.inbox import claim_events
from paystream.logging import get_logger
from webhook_dispatcher.metrics import DELIVERIES_CREATED
from webhook_dispatcher.models import Endpoint, IncomingEvent, PlannedDelivery
from webhook_dispatcher.ordering import (
    FIRST_WAITING,
    MAY_MAKE_FIRST_ATTEMPT,
    RELEASE_UPDATE,
    STORED_UNATTEMPTED,
    key_columns,
    release_if_held,
    take_in,
)
from webhook_dispatcher.planning import plan_deliveries

log = get_logger(__name__)

MAX_BATCH = 500

ENABLED_ENDPOINTS = """
SELECT id, merchant_id, events FROM webhook_endpoints
WHERE merchant_id = ANY($1::text[]) AND enabled AND deleted_at IS NULL"""

# After TAKE_IN (in an earlier statement of the same transaction, see ordering.py): the new rows,
# each due at once or held by the ordering rule, and the stored held rows of the batch's keys that
# the batch's events let go. `unattempted` holds the new rows too: a new row holds the later ones,
# new or stored, of its endpoint and key (`new` has no two rows of one event and endpoint: the
# inbox claim dropped redeliveries).
WRITE_DELIVERIES = f"""
WITH keys AS (SELECT DISTINCT * FROM unnest($10::text[], $11::text[]) AS u(merchant_id, order_key)),
new AS (
    SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::uuid[], $5::text[], $6::bytea[],
                         $7::text[], $8::bigint[], $9::timestamptz[])
        AS r(id, merchant_id, endpoint_id, event_id, event_type, payload, order_key, ordering_seq, event_at)
),
unattempted AS (
    {STORED_UNATTEMPTED}
    UNION ALL
    SELECT endpoint_id, order_key, ordering_seq FROM new WHERE ordering_seq IS NOT NULL
),
first_waiting AS ({FIRST_WAITING}),
inserted AS (
    INSERT INTO webhook_deliveries (id, merchant_id, endpoint_id, event_id, event_type, payload,
                                    order_key, ordering_seq, event_at, due_at, next_retry_at)
    SELECT d.id, d.merchant_id, d.endpoint_id, d.event_id, d.event_type, d.payload,
           d.order_key, d.ordering_seq, d.event_at, due.at, due.at
    FROM new d
    LEFT JOIN webhook_order_keys k USING (merchant_id, order_key)
    LEFT JOIN first_waiting w ON w.endpoint_id = d.endpoint_id AND w.order_key = d.order_key
    CROSS JOIN LATERAL (
        SELECT CASE WHEN d.ordering_seq IS NULL OR {MAY_MAKE_FIRST_ATTEMPT} THEN now() END AS at
    ) due
    ON CONFLICT (event_id, endpoint_id) DO NOTHING
    RETURNING 1
),
released AS ({RELEASE_UPDATE})
SELECT (SELECT count(*) FROM inserted) AS written, (SELECT count(*) FROM released) AS released"""


class DeliveryIntake:
    """Group-commits events into delivery-log rows; `submit()` returns once the event's rows committed."""

    def __init__(
        self,
        pool: asyncpg.Pool,
        *,
        group: str,
        on_due: Callable[[], None],
        max_batch: int = MAX_BATCH,
    ) -> None:
        self._pool = pool
        self._group = group
        self._on_due = on_due
        # One writer, as before: batches of one process then never wait for each other's key locks
        # (ordering.py). Unbounded: each handler waits for its own submission, so the consumer's
        # concurrency bounds the queue, and a refusal would only spend one of the event's deliveries.
        self._committer: GroupCommitter[IncomingEvent, None] = GroupCommitter(
            self._commit, name="webhook-intake", max_batch=max_batch, writers=1
        )

    def start(self) -> None:
        """Start taking submissions (before the consumer hands over events; `run` does it too)."""
        self._committer.start()

    async def submit(self, event: Event, sequence: int | None = None) -> None:
        """Take the event in: write its deliveries (exactly once per event id) and record its number
        (`sequence`, from the stream entry), then wait for the commit."""
        await self._committer.submit(IncomingEvent.of(event, sequence))

    async def run(self, stop: asyncio.Event) -> None:
        """Commit batches until `stop` is set, then what is queued (until the supervisor's grace
        period ends: it cancels this task, and the waiting handlers fail with RetryableError)."""
        await self._committer.run(stop)

    async def _commit(self, batch: Sequence[Submission[IncomingEvent, None]]) -> None:
        try:
            due = await self._write([submission.item for submission in batch])
        except DATABASE_UNAVAILABLE_ERRORS:
            raise  # the batch fails: the handlers see it, and the consumer retries their events
        except asyncpg.PostgresError as exc:
            if len(batch) == 1:
                raise
            log.warning("intake.batch_failed_retrying_singly", error=str(exc), events=len(batch))
            await split_and_retry(batch, self._commit)
            return
        for submission in batch:
            submission.resolve(None)
        if due:
            self._on_due()

    async def _write(self, incoming: Sequence[IncomingEvent]) -> bool:
        """The events' delivery rows, inbox claims and ordering in one transaction. True when rows
        were written or released (the scheduler then re-reads the earliest due time)."""
        async with self._pool.acquire() as conn:
            # Looked up before the transaction: events of merchants without an endpoint for them
            # (most of them, for most merchants) then cost no transaction.
            merchants = sorted({item.event.merchant_id for item in incoming})
            endpoints: dict[str, list[Endpoint]] = defaultdict(list)
            for row in await conn.fetch(ENABLED_ENDPOINTS, merchants):
                events_filter = frozenset(row["events"]) if row["events"] is not None else None
                endpoints[row["merchant_id"]].append(Endpoint(row["id"], row["merchant_id"], events_filter))
            unique = list({item.event.id: item for item in incoming}.values())
            numbered = [
                (item.event.merchant_id, item.order_key, item.sequence)
                for item in unique
                if item.order_key is not None and item.sequence is not None
            ]
            planned = plan_deliveries(unique, endpoints)
            if not planned:
                if not numbered:
                    return False  # nothing to send, nothing to hold back
                # Nothing to send, but the numbers count: successors sent elsewhere wait for them.
                # Two statements on their own suffice: the release must come after the lock's
                # statement anyway (ordering.py), and a crash between the two leaves the stream
                # entries unacknowledged, so that their redelivery releases.
                await take_in(conn, numbered)
                released = await release_if_held(conn, [(m, k) for m, k, _ in numbered])
                return bool(released)
            async with conn.transaction():
                written, released_count = await self._write_planned(conn, planned, numbered)
        DELIVERIES_CREATED.inc(written)
        return written > 0 or released_count > 0

    async def _write_planned(
        self, conn: Connection, planned: list[PlannedDelivery], numbered: list[tuple[str, str, int]]
    ) -> tuple[int, int]:
        """Inside the transaction: claim the events, record their numbers, write their rows and
        release what they unblocked; (rows written, held rows released)."""
        # Only the events this group has not handled before get rows (redeliveries do nothing).
        candidates = sorted({row.event_id for row in planned})
        fresh_ids = await claim_events(conn, self._group, candidates)
        planned = [row for row in planned if str(uuid.UUID(row.event_id)) in fresh_ids]
        if not planned and not numbered:
            return 0, 0
        await take_in(conn, numbered)
        merchants, order_keys = key_columns((m, k) for m, k, _ in numbered)
        result = await conn.fetchrow(
            WRITE_DELIVERIES,
            [row.id for row in planned],
            [row.merchant_id for row in planned],
            [row.endpoint.id for row in planned],
            [row.event_id for row in planned],
            [row.event_type for row in planned],
            [row.payload for row in planned],
            [row.order_key for row in planned],
            [row.ordering_seq for row in planned],
            [row.event_at for row in planned],
            merchants,
            order_keys,
        )
        assert result is not None
        return int(result["written"]), int(result["released"])
