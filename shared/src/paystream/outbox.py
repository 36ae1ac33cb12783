"""The transactional outbox: events commit with the state they describe, then reach their streams.

A service writes its events with `enqueue()` in the same transaction as its state change. The
`OutboxRelay` wakes on the commit (a statement trigger sends `NOTIFY outbox`), takes unpublished rows
in id order under a transaction-scoped advisory lock (one relay publishes at a time, so stream order
follows commit order; `FOR UPDATE SKIP LOCKED` keeps replicas from ever taking the same row),
pipelines the XADDs and marks the rows published in the same transaction.

A crash after XADD and before the commit publishes those rows again on restart: consumers are
idempotent on the event id, so at-least-once is safe. Published rows stay for the retention period
so `payctl replay` can re-publish them after a Redis data loss.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import asyncpg
import redis.asyncio as aioredis
import structlog

from paystream.aio import backoff_delay, wait_any, wait_or_stop
from paystream.db import DATABASE_UNAVAILABLE_ERRORS, Connection
from paystream.events import STREAM_FIELD, Event
from paystream.metrics import OUTBOX_BACKLOG, OUTBOX_PUBLISHED
from paystream.redis import REDIS_UNAVAILABLE_ERRORS
from paystream.settings import OutboxSettings

log = structlog.get_logger(__name__)

RELAY_LOCK_KEY = 7_301_000_002
NOTIFY_CHANNEL = "outbox"
# Safety net only: a missed NOTIFY (a dropped listener connection) costs at most this much latency.
FALLBACK_POLL_SECONDS = 1.0
LISTEN_FAILURES: tuple[type[BaseException], ...] = (*DATABASE_UNAVAILABLE_ERRORS, asyncpg.PostgresError)
PUBLISH_FAILURES: tuple[type[BaseException], ...] = (*LISTEN_FAILURES, *REDIS_UNAVAILABLE_ERRORS)


async def enqueue(conn: Connection, stream: str, events: Iterable[Event]) -> None:
    """Write events to the outbox inside the caller's transaction."""
    if not conn.is_in_transaction():
        raise RuntimeError("outbox.enqueue must run inside the state change's transaction")
    batch = list(events)
    if not batch:
        return
    await conn.execute(
        """INSERT INTO outbox (event_id, stream, event_type, merchant_id, payload)
           SELECT * FROM unnest($1::uuid[], $2::text[], $3::text[], $4::text[], $5::bytea[])""",
        [event.id for event in batch],
        [stream] * len(batch),
        [event.type.value for event in batch],
        [event.merchant_id for event in batch],
        [event.encode() for event in batch],
    )


@dataclass(frozen=True, slots=True)
class PendingRow:
    id: int
    stream: str
    payload: bytes


class OutboxRelay:
    """Publishes committed outbox rows to Redis Streams; one per process, safe with many replicas."""

    def __init__(
        self,
        pool: asyncpg.Pool,
        redis: aioredis.Redis,
        settings: OutboxSettings,
        *,
        listen_dsn: str,
        fallback_poll_s: float = FALLBACK_POLL_SECONDS,
    ) -> None:
        self._pool = pool
        self._redis = redis
        self._settings = settings
        self._listen_dsn = listen_dsn
        self._wake = asyncio.Event()
        self._fallback_poll_s = fallback_poll_s

    async def publish_pending(self) -> int:
        """Publish every committed, unpublished row; return how many were published."""
        total = 0
        while True:
            published = await self._publish_batch()
            total += published
            if published < self._settings.batch_size:
                return total

    async def _publish_batch(self) -> int:
        async with self._pool.acquire() as conn, conn.transaction():
            # Serialise relays: a second relay waits for the first's batch rather than publishing
            # later rows ahead of earlier ones.
            await conn.execute("SELECT pg_advisory_xact_lock($1)", RELAY_LOCK_KEY)
            rows = await conn.fetch(
                """SELECT id, stream, payload FROM outbox
                   WHERE published_at IS NULL
                   ORDER BY id
                   LIMIT $1
                   FOR UPDATE SKIP LOCKED""",
                self._settings.batch_size,
            )
            if not rows:
                OUTBOX_BACKLOG.set(0)
                return 0
            pending = [PendingRow(row["id"], row["stream"], row["payload"]) for row in rows]
            entry_ids = await self._xadd_all(pending)
            await conn.execute(
                """UPDATE outbox SET published_at = now(), stream_entry_id = published.entry_id
                   FROM unnest($1::bigint[], $2::text[]) AS published(id, entry_id)
                   WHERE outbox.id = published.id""",
                [row.id for row in pending],
                entry_ids,
            )
        for row in pending:
            OUTBOX_PUBLISHED.labels(row.stream).inc()
        return len(pending)

    async def _xadd_all(self, rows: Sequence[PendingRow]) -> list[str]:
        async with self._redis.pipeline(transaction=False) as pipe:
            for row in rows:
                pipe.xadd(
                    row.stream,
                    {STREAM_FIELD: row.payload},
                    maxlen=self._settings.stream_maxlen,
                    approximate=True,
                )
            results = await pipe.execute()
        return [entry.decode() if isinstance(entry, bytes) else str(entry) for entry in results]

    async def purge_published(self) -> int:
        """Delete published rows older than the retention period."""
        async with self._pool.acquire() as conn:
            status: str = await conn.execute(
                """DELETE FROM outbox
                   WHERE published_at IS NOT NULL AND created_at < now() - make_interval(days => $1)""",
                self._settings.retention_days,
            )
        return int(status.split()[-1])

    async def run(self, stop: asyncio.Event) -> None:
        """Publish on every commit notification until `stop` is set."""
        listener = asyncio.create_task(self._listen(stop), name="outbox-listener")
        failures = 0
        last_purge = 0.0
        loop = asyncio.get_running_loop()
        try:
            while not stop.is_set():
                self._wake.clear()
                try:
                    await self.publish_pending()
                    failures = 0
                    if loop.time() - last_purge > 3600:
                        last_purge = loop.time()
                        await self.purge_published()
                except PUBLISH_FAILURES as exc:
                    failures += 1
                    delay = backoff_delay(failures)
                    log.warning("outbox.publish_failed", error=str(exc), retry_in_s=round(delay, 2))
                    await wait_or_stop(stop, delay)
                    continue
                except Exception:  # a relay that stopped would strand every later commit
                    failures += 1
                    delay = backoff_delay(failures)
                    log.exception("outbox.publish_error", retry_in_s=round(delay, 2))
                    await wait_or_stop(stop, delay)
                    continue
                await wait_any([stop, self._wake], self._fallback_poll_s)
        finally:
            listener.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await listener

    async def _listen(self, stop: asyncio.Event) -> None:
        """Hold a LISTEN connection open, reconnecting with backoff; each NOTIFY wakes the relay."""
        failures = 0
        while not stop.is_set():
            conn: Connection | None = None
            try:
                conn = await asyncpg.connect(self._listen_dsn)
                await conn.add_listener(NOTIFY_CHANNEL, lambda *_: self._wake.set())
                failures = 0
                self._wake.set()  # catch up on anything committed while not listening
                while not stop.is_set() and not conn.is_closed():
                    await wait_or_stop(stop, 5.0)
            except LISTEN_FAILURES as exc:
                failures += 1
                log.warning("outbox.listen_failed", error=str(exc))
                await wait_or_stop(stop, backoff_delay(failures))
            finally:
                if conn is not None and not conn.is_closed():
                    with contextlib.suppress(Exception):
                        await conn.close(timeout=2)
