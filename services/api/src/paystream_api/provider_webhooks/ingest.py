"""Durable ingest of verified provider webhooks, with group commit.

A request hands its `IngestRecord` to the `IngestWriter` and waits; it is answered only after the
statement holding its row has committed. Each of the writer's tasks takes everything queued at that
moment (up to `max_batch`) and stores it with ONE statement (one round trip, one implicit
transaction):

    INSERT INTO provider_events ... ON CONFLICT (provider, event_id) DO NOTHING RETURNING ...
    + the outbox rows of the events that were new

so a provider's retry, or ten concurrent copies of one event, yield one row and one outbox entry,
and every copy is answered 200. Under load, requests that arrive while commits are in flight share
the next one, so a commit (a WAL flush, a round trip) is paid per batch rather than per request; at
low load a batch is a single request and waits for nothing.

Rows are inserted in key order so that two batches holding the same keys lock them in the same
order and never deadlock. A batch that fails for a reason other than the database being
unreachable is retried one record at a time, so one poisonous record cannot fail its neighbours.
The queue is bounded: past `max_queued` waiting records a request is answered 503 at once.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import asyncpg

from paystream.db import DATABASE_UNAVAILABLE_ERRORS
from paystream.errors import ServiceUnavailableError
from paystream.events import Event, EventType
from paystream.logging import get_logger
from paystream.outbox import wake_relays_after_commit
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

# One statement, so one round trip and one implicit transaction: the events, and the outbox rows of
# those that are new. The outbox columns are those `paystream.outbox.enqueue` writes (no
# `ordering_seq`: a raw provider event keeps no order, see paystream.ordering).
# The batch arrives as one JSON array of arrays, built by orjson in C: binding a dozen parallel
# arrays instead cost the API about 10 µs of encoding per event, this about 4 µs (and PostgreSQL
# about 2 µs more to parse it, measured). `jsonb`, so that the document is parsed once and `->>` is
# a lookup; the payload is a JSON string inside it, so it comes back exactly as the provider sent it.
STORE_BATCH = """
WITH incoming AS (
    SELECT e->>0 AS provider, e->>1 AS event_id, e->>2 AS type, e->>3 AS provider_account_id,
           e->>4 AS account_id, e->>5 AS merchant_id, e->>6 AS payload, e->>7 AS status,
           e->>8 AS reason, e->>9 AS stream, (e->>10)::uuid AS envelope_id,
           convert_to(e->>11, 'UTF8') AS envelope
    FROM jsonb_array_elements($1::jsonb) AS e
), stored AS (
    INSERT INTO provider_events
        (provider, event_id, type, provider_account_id, account_id, merchant_id, payload, status, reason)
    SELECT provider, event_id, type, provider_account_id, account_id, merchant_id, payload, status, reason
    FROM incoming
    ORDER BY provider, event_id
    ON CONFLICT (provider, event_id) DO NOTHING
    RETURNING provider, event_id
), queued AS (
    INSERT INTO outbox (event_id, stream, event_type, merchant_id, payload)
    SELECT i.envelope_id, i.stream, 'provider_event.received', i.merchant_id, i.envelope
    FROM incoming i JOIN stored s USING (provider, event_id)
    WHERE i.stream IS NOT NULL
)
SELECT provider, event_id FROM stored
"""


@dataclass(frozen=True, slots=True)
class IngestRecord:
    """One verified webhook, ready to store. `stream` is where its processing is queued (None for a
    rejected event: there is nothing to process)."""

    provider: str
    event_id: str
    event_type: str
    merchant_id: str
    provider_account_id: str
    account_id: str | None
    payload: str
    status: str = RECEIVED
    reason: str | None = None
    stream: str | None = None

    @property
    def key(self) -> tuple[str, str]:
        return (self.provider, self.event_id)

    def row(self) -> tuple[str | None, ...]:
        """The record as STORE_BATCH reads it: its columns, then its outbox entry's id and envelope."""
        envelope = self.processing_event()
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
            self.stream,
            envelope.id,
            envelope.encode().decode(),
        )

    def processing_event(self) -> Event:
        """The outbox entry that asks the payment processor to handle this row."""
        return Event(
            type=EventType.PROVIDER_EVENT_RECEIVED,
            merchant_id=self.merchant_id,
            data={"provider": self.provider, "event_id": self.event_id, "type": self.event_type},
        )


@dataclass(slots=True)
class _Pending:
    record: IngestRecord
    waiters: list[asyncio.Future[bool]] = field(default_factory=list)


class IngestWriter:
    """Stores records in batched transactions; `submit()` returns once its record is durable."""

    def __init__(
        self,
        pool: asyncpg.Pool,
        *,
        max_batch: int = DEFAULT_MAX_BATCH,
        writers: int = DEFAULT_WRITERS,
        max_queued: int = DEFAULT_MAX_QUEUED,
    ) -> None:
        self._pool = pool
        self._max_batch = max_batch
        self._max_queued = max_queued
        self._writer_count = writers
        self._queue: asyncio.Queue[tuple[IngestRecord, asyncio.Future[bool]]] = asyncio.Queue()
        self._tasks: list[asyncio.Task[None]] = []
        self._closed = False

    def start(self) -> None:
        self._tasks = [
            asyncio.create_task(self._write_loop(), name=f"provider-ingest-{n}")
            for n in range(self._writer_count)
        ]

    async def stop(self, grace_s: float = 10.0) -> None:
        """Refuse new records, store what is queued (within `grace_s`), then stop the writers."""
        if self._closed:
            return
        self._closed = True
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(grace_s):
                await self._queue.join()
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        while not self._queue.empty():
            _record, waiter = self._queue.get_nowait()
            if not waiter.done():
                waiter.set_exception(ServiceUnavailableError("shutting down; retry shortly"))

    async def submit(self, record: IngestRecord) -> bool:
        """Store `record`; True when it is new, False when it was stored before (a duplicate).
        Raises ServiceUnavailableError (503) when it cannot be stored now."""
        if self._closed:
            raise ServiceUnavailableError("shutting down; retry shortly")
        if self._queue.qsize() >= self._max_queued:
            raise ServiceUnavailableError("too many webhooks waiting to be stored; retry shortly")
        waiter: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        self._queue.put_nowait((record, waiter))
        try:
            # No timer per request: the writer bounds each batch's store with STORE_TIMEOUT_S and
            # the queue is bounded, so a waiter is always settled within a bounded time.
            return await waiter
        finally:
            if not waiter.done():  # abandoned (the request was cancelled): the writer settles it
                waiter.add_done_callback(_retrieve)

    async def _write_loop(self) -> None:
        while True:
            first = await self._queue.get()
            batch = [first]
            while len(batch) < self._max_batch and not self._queue.empty():
                batch.append(self._queue.get_nowait())
            try:
                await self._write(batch)
            finally:
                for _ in batch:
                    self._queue.task_done()

    async def _write(self, batch: list[tuple[IngestRecord, asyncio.Future[bool]]]) -> None:
        pending: dict[tuple[str, str], _Pending] = {}
        for record, waiter in batch:
            pending.setdefault(record.key, _Pending(record)).waiters.append(waiter)
        ordered = [pending[key] for key in sorted(pending)]
        INGEST_BATCH_SIZE.observe(len(batch))
        try:
            async with self._connection() as conn:
                with INGEST_STORE_SECONDS.time():
                    inserted = await self._store(conn, [item.record for item in ordered])
                # Answered before the connection goes back to the pool, which costs one more round
                # trip (the NOTIFY that wakes the relay) that no request needs to wait for.
                _answer(ordered, inserted)
        except (*DATABASE_UNAVAILABLE_ERRORS, asyncpg.exceptions.CannotConnectNowError) as exc:  # type: ignore[misc]
            # TimeoutError is among these: a store that took too long.
            log.warning("provider_ingest.database_unavailable", error=str(exc), batch=len(batch))
            _fail(ordered, ServiceUnavailableError("the database is unavailable; retry shortly"))
            return
        except asyncpg.PostgresError as exc:
            if len(ordered) == 1:
                log.error("provider_ingest.store_failed", error=str(exc), provider=ordered[0].record.provider)
                _fail(ordered, ServiceUnavailableError("the event could not be stored; retry shortly"))
                return
            # Find the one that fails: store the others one by one.
            for item in ordered:
                await self._write([(item.record, waiter) for waiter in item.waiters])
            return
        except asyncio.CancelledError:
            _fail(ordered, ServiceUnavailableError("shutting down; retry shortly"))
            raise

    @contextlib.asynccontextmanager
    async def _connection(self) -> AsyncIterator[asyncpg.pool.PoolConnectionProxy]:
        async with asyncio.timeout(STORE_TIMEOUT_S):
            conn = await self._pool.acquire()
        try:
            wake_relays_after_commit(conn)
            yield conn
        finally:
            await self._pool.release(conn)

    @staticmethod
    async def _store(
        conn: asyncpg.pool.PoolConnectionProxy, records: list[IngestRecord]
    ) -> set[tuple[str, str]]:
        async with asyncio.timeout(STORE_TIMEOUT_S):
            # The pool's json codec encodes the list with orjson.
            rows = await conn.fetch(STORE_BATCH, [record.row() for record in records])
        return {(row["provider"], row["event_id"]) for row in rows}


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


def _answer(items: list[_Pending], inserted: set[tuple[str, str]]) -> None:
    for item in items:
        is_new = item.record.key in inserted
        for waiter in item.waiters:
            if not waiter.done():
                waiter.set_result(is_new)
                is_new = False  # the other copies in this batch are duplicates of the first


def _fail(items: list[_Pending], error: Exception) -> None:
    for item in items:
        for waiter in item.waiters:
            if not waiter.done():
                waiter.set_exception(error)


def _retrieve(waiter: asyncio.Future[bool]) -> None:
    if not waiter.cancelled():
        waiter.exception()  # mark an abandoned waiter's error as seen
