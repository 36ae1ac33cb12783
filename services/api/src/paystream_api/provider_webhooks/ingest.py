"""Durable ingest of verified provider webhooks, with group commit.

A request hands its `IngestRecord` to the `IngestWriter` and waits; it is answered only after the
statement holding its row has committed. Each of the writer's tasks takes everything queued at that
moment (up to `max_batch`) and stores it with ONE statement (one round trip, one implicit
transaction):

    INSERT INTO provider_events ... ON CONFLICT (provider, merchant_id, event_id) DO NOTHING RETURNING ...

so a provider's retry, or ten concurrent copies of one event, yield one row, and every copy is
answered 200. The row is the processor's work: once the connection is back in the pool (its
transaction over) a NOTIFY on `provider_events` wakes the payment processors, which claim waiting
rows themselves (no outbox entry, no stream hop: the event travels once).

Under load, requests that arrive while commits are in flight share
the next one, so a commit (a WAL flush, a round trip) is paid per batch rather than per request; at
low load a batch is a single request and waits for nothing.

Rows are inserted in key order so that two batches holding the same keys lock them in the same
order and never deadlock. A batch that fails for any reason other than the database being
unreachable (a constraint, an encoder refusing a value, a bug) is retried one record at a time, so one
poisonous record fails alone, answered 503, and the writer carries on. The queue is bounded: past
`max_queued` waiting records a request is answered 503 at once.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass

import asyncpg

from paystream.db import DATABASE_UNAVAILABLE_ERRORS, notify_after_transaction
from paystream.errors import RetryableError, ServiceUnavailableError
from paystream.events import PROVIDER_EVENTS_CHANNEL
from paystream.groupcommit import CommitterOverloaded, GroupCommitter, Submission
from paystream.logging import get_logger
from paystream_api.provider_webhooks.metrics import INGEST_BATCH_SIZE, INGEST_STORE_SECONDS, OutcomeCounters

log = get_logger(__name__)

DEFAULT_MAX_BATCH = 256
# Two batches in flight: one commits while the next fills. More writers made smaller batches (more
# commits, more wake-ups of PostgreSQL backends on the same two cores): with `make bench`'s rounds,
# ingest_ratio medians were 0.57 with two writers and 0.51 with four (five and four runs), and p99
# 16-37 ms against 20-63 ms.
DEFAULT_WRITERS = 2
# Past this many waiting records, a request is answered 503 at once (the provider retries later)
# rather than queued behind a database that is not keeping up.
DEFAULT_MAX_QUEUED = 10_000
# A batch not stored within this long fails its requests with 503. Its rows may still commit; the
# provider's retry then finds them (a duplicate, answered 200).
STORE_TIMEOUT_S = 10.0

RECEIVED = "received"
REJECTED = "rejected"

# One statement, so one round trip and one implicit transaction.
# The batch arrives as one JSON array of arrays, built by orjson in C: binding a dozen parallel
# arrays instead cost the API about 10 µs of encoding per event, this about 4 µs (and PostgreSQL
# about 2 µs more to parse it, measured). `jsonb`, so that the document is parsed once and `->>` is
# a lookup; the payload is a JSON string inside it, so it comes back exactly as the provider sent it.
STORE_BATCH = """
WITH incoming AS (
    SELECT e->>0 AS provider, e->>1 AS event_id, e->>2 AS type, e->>3 AS provider_account_id,
           e->>4 AS account_id, e->>5 AS merchant_id, e->>6 AS payload, e->>7 AS status,
           e->>8 AS reason, (e->>9)::smallint AS priority
    FROM jsonb_array_elements($1::jsonb) AS e
)
INSERT INTO provider_events
    (provider, event_id, type, provider_account_id, account_id, merchant_id, payload, status, reason, priority)
SELECT provider, event_id, type, provider_account_id, account_id, merchant_id, payload, status, reason, priority
FROM incoming
ORDER BY provider, merchant_id, event_id
ON CONFLICT (provider, merchant_id, event_id) DO NOTHING
RETURNING provider, merchant_id, event_id
"""

# Disputes and downtime are handled ahead of a backlog (the processor claims higher priorities first).
NORMAL_PRIORITY = 0
URGENT_PRIORITY = 1


# An event's de-duplication key: provider event ids are unique only within the merchant's account
# (another merchant's account may send the same `x-razorpay-event-id`).
IngestKey = tuple[str, str, str]


@dataclass(frozen=True, slots=True)
class IngestRecord:
    """One verified webhook, ready to store; `priority` orders the processor's claims."""

    provider: str
    event_id: str
    event_type: str
    merchant_id: str
    provider_account_id: str
    account_id: str | None
    payload: str
    status: str = RECEIVED
    reason: str | None = None
    priority: int = NORMAL_PRIORITY

    @property
    def key(self) -> IngestKey:
        return (self.provider, self.merchant_id, self.event_id)

    def row(self) -> tuple[str | int | None, ...]:
        """The record as STORE_BATCH reads it."""
        return (
            self.provider,
            self.event_id,
            self.event_type,
            self.provider_account_id,
            self.account_id,
            self.merchant_id,
            self.payload,
            self.status,
            self.reason,
            self.priority,
        )


class IngestWriter:
    """Stores records in batched transactions; `submit()` returns once its record is durable.

    A `paystream.groupcommit.GroupCommitter` runs the batches (its rules for waiters on overload,
    before start, on stop and on cancellation hold here); every way a record can fail to be stored
    reaches the request as ServiceUnavailableError (503), so the provider retries."""

    def __init__(
        self,
        pool: asyncpg.Pool,
        *,
        max_batch: int = DEFAULT_MAX_BATCH,
        writers: int = DEFAULT_WRITERS,
        max_queued: int = DEFAULT_MAX_QUEUED,
    ) -> None:
        self._pool = pool
        self._committer: GroupCommitter[IngestRecord, bool] = GroupCommitter(
            self._commit, name="provider-ingest", max_batch=max_batch, writers=writers, max_queued=max_queued
        )

    def start(self) -> None:
        self._committer.start()

    async def stop(self, grace_s: float = 10.0) -> None:
        """Refuse new records, store what is queued (within `grace_s`), then stop the writers."""
        await self._committer.stop(grace_s)

    async def submit(self, record: IngestRecord) -> bool:
        """Store `record`; True when it is new, False when it was stored before (a duplicate).
        Raises ServiceUnavailableError (503) when it cannot be stored now."""
        try:
            # No timer per request: each batch's store is bounded by STORE_TIMEOUT_S and the queue
            # by max_queued, so a waiter is always settled within a bounded time.
            return await self._committer.submit(record)
        except ServiceUnavailableError:
            raise
        except CommitterOverloaded:
            raise ServiceUnavailableError("too many webhooks waiting to be stored; retry shortly") from None
        except RetryableError:
            raise ServiceUnavailableError("shutting down; retry shortly") from None
        except Exception as exc:  # anything else a batch met: the record is not stored
            raise ServiceUnavailableError("the event could not be stored; retry shortly") from exc

    async def _commit(self, batch: Sequence[Submission[IngestRecord, bool]]) -> None:
        by_key: dict[IngestKey, list[Submission[IngestRecord, bool]]] = {}
        for submission in batch:
            by_key.setdefault(submission.item.key, []).append(submission)
        keys = sorted(by_key)  # one lock order for every batch: two batches never deadlock
        INGEST_BATCH_SIZE.observe(len(batch))
        try:
            async with self._connection() as conn:
                with INGEST_STORE_SECONDS.time():
                    inserted = await self._store(conn, [by_key[key][0].item for key in keys])
                # Answered before the connection goes back to the pool, which costs one more round
                # trip (the NOTIFY that wakes the processors) that no request needs to wait for.
                _answer(by_key, inserted)
        except DATABASE_UNAVAILABLE_ERRORS as exc:
            # TimeoutError is among these: a store that took too long.
            log.warning("provider_ingest.database_unavailable", error=str(exc), batch=len(batch))
            _fail(batch, ServiceUnavailableError("the database is unavailable; retry shortly"))
        except Exception as exc:
            if len(keys) > 1:
                # Find the one that fails: store the others one key at a time.
                log.warning("provider_ingest.batch_failed", error=repr(exc), batch=len(keys))
                for key in keys:
                    await self._commit(by_key[key])
                return
            log.error("provider_ingest.store_failed", error=repr(exc), provider=batch[0].item.provider)
            _fail(batch, ServiceUnavailableError("the event could not be stored; retry shortly"))

    @contextlib.asynccontextmanager
    async def _connection(self) -> AsyncIterator[asyncpg.pool.PoolConnectionProxy]:
        async with asyncio.timeout(STORE_TIMEOUT_S):
            conn = await self._pool.acquire()
        try:
            notify_after_transaction(conn, PROVIDER_EVENTS_CHANNEL)
            yield conn
        finally:
            await self._pool.release(conn)

    @staticmethod
    async def _store(conn: asyncpg.pool.PoolConnectionProxy, records: list[IngestRecord]) -> set[IngestKey]:
        async with asyncio.timeout(STORE_TIMEOUT_S):
            # The pool's json codec encodes the list with orjson.
            rows = await conn.fetch(STORE_BATCH, [record.row() for record in records])
        return {(row["provider"], row["merchant_id"], row["event_id"]) for row in rows}


async def store_and_count(writer: IngestWriter, record: IngestRecord, outcomes: OutcomeCounters) -> None:
    """Make a verified event durable (raising when it cannot be stored) and count its outcome."""
    try:
        is_new = await writer.submit(record)
    except Exception:
        outcomes.unavailable.inc()
        raise
    if record.status == REJECTED:
        outcomes.rejected.inc()
        log.warning(
            "provider_event.rejected",
            provider=record.provider,
            event_id=record.event_id,
            reason=record.reason,
        )
    elif is_new:
        outcomes.accepted.inc()
    else:
        outcomes.duplicate.inc()


def _answer(by_key: dict[IngestKey, list[Submission[IngestRecord, bool]]], inserted: set[IngestKey]) -> None:
    for key, submissions in by_key.items():
        is_new = key in inserted
        for submission in submissions:
            submission.resolve(is_new)
            is_new = False  # the other copies in this batch are duplicates of the first


def _fail(batch: Sequence[Submission[IngestRecord, bool]], error: Exception) -> None:
    for submission in batch:
        submission.fail(error)
