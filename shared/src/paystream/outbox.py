"""The transactional outbox: events commit with the state they describe, then reach their streams.

A service writes its events with `enqueue()` in the same transaction as its state change; a
statement trigger also queues each new row's id in `outbox_pending` (migration 0045). The
`OutboxRelay` wakes on the commit (the connection sends `NOTIFY outbox` when it goes back to the pool,
after its transaction: see `paystream.db.notify_after_transaction`), takes queued ids in id order
under a transaction-scoped advisory lock (one relay publishes at a time, so stream order follows
commit order, and the others leave it to that one rather than wait; `FOR UPDATE SKIP LOCKED` keeps
replicas from ever taking the same row), pipelines the XADDs and deletes the published ids from the
queue in the same transaction. The outbox row itself is written once and never updated; the queue
stays as small as the backlog, and the leader vacuums it every `VACUUM_PENDING_EVERY_S` so that its
index never makes the relay read past the entries of rows published long ago.

A crash after XADD and before the commit publishes those rows again on restart: consumers are
idempotent on the event id, so at-least-once is safe. Published rows stay for the retention period
so `payctl replay` can re-publish them after a Redis data loss (and the dashboard's payment
timeline reads them by `ordering_key`).

Events that keep an order (`paystream.ordering`) are numbered as they are written: the n-th event
of a `(stream, merchant, ordering key)` gets `ordering_seq` n, in the statement that inserts it.
The upsert of the key's counter row locks it until the writing transaction ends, so numbers are
given in commit order and a rolled-back transaction gives its numbers back: no gaps, no repeats. A
consumer that sees number n therefore knows that 1..n-1 exist, committed, even before they reach it.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import partial

import asyncpg
import redis.asyncio as aioredis
import structlog

from paystream.db import DATABASE_ERRORS, Connection, notify_after_transaction
from paystream.events import Event, entry_fields
from paystream.inbox import purge_inbox
from paystream.listen import Listener, ListenSession
from paystream.loops import AGAIN, Again, run_until_stopped, wait_any
from paystream.metrics import OUTBOX_BACKLOG, OUTBOX_PUBLISHED
from paystream.ordering import ordering_key
from paystream.redis import (
    REDIS_UNAVAILABLE_ERRORS,
    check_replica_waits,
    queue_replica_waits,
)
from paystream.retention import delete_in_batches
from paystream.settings import OutboxSettings
from paystream.shards import SINGLE_SHARD, StreamLayout

log = structlog.get_logger(__name__)

RELAY_LOCK_KEY = 7_301_000_002
RELAY_LEADER_KEY = 7_301_000_003
# How often a standby relay tries to take over, and the leader checks its lock connection.
LEADER_PROBE_SECONDS = 1.0
# After a wake, how long the leader waits for more commits to publish with (see OutboxRelay.run).
DEFAULT_LINGER_S = 0.001
NOTIFY_CHANNEL = "outbox"
# Published rows past the retention period ($2 days), at most $1 (see paystream.retention).
PURGE_PUBLISHED = """
DELETE FROM outbox WHERE ctid = ANY(ARRAY(
    SELECT ctid FROM outbox
    WHERE created_at < now() - make_interval(days => $2)
      AND NOT EXISTS (SELECT FROM outbox_pending AS p WHERE p.id = outbox.id)
    LIMIT $1 FOR UPDATE SKIP LOCKED))"""
# How often the leader vacuums the queue of unpublished ids (autovacuum alone may wait a minute, and
# each published id leaves a dead index entry that every claim reads past until then).
VACUUM_PENDING_EVERY_S = 5.0
# Safety net only: a missed NOTIFY (a dropped listener connection) costs at most this much latency.
FALLBACK_POLL_SECONDS = 1.0
PUBLISH_FAILURES: tuple[type[BaseException], ...] = (*DATABASE_ERRORS, *REDIS_UNAVAILABLE_ERRORS)


# Every writer of outbox rows names its columns so: `enqueue` below, and a writer that inserts its
# events in a statement of its own (the API's provider ingest, which must also call
# `wake_relays_after_commit`). The SELECT that follows yields the values in this order.
INSERT_ROWS = (
    "INSERT INTO outbox (event_id, stream, event_type, merchant_id, payload, ordering_key, ordering_seq)"
)

# One statement for the whole batch: number the keyed events (one counter upsert per key, in key
# order so that two writers never deadlock on them), then insert every row in the caller's order
# (outbox ids, hence stream order, follow it). An event's number is its key's new counter minus the
# key's later events in this batch.
ENQUEUE = f"""
WITH incoming AS (
    SELECT * FROM unnest($2::uuid[], $3::text[], $4::text[], $5::bytea[], $6::text[])
        WITH ORDINALITY AS e(event_id, event_type, merchant_id, payload, ordering_key, position)
), counted AS (
    SELECT merchant_id, ordering_key, count(*) AS events FROM incoming
    WHERE ordering_key IS NOT NULL
    GROUP BY merchant_id, ordering_key
), numbered AS (
    INSERT INTO event_sequences AS s (stream, merchant_id, ordering_key, last_seq)
    SELECT $1, merchant_id, ordering_key, events FROM counted ORDER BY merchant_id, ordering_key
    ON CONFLICT (stream, merchant_id, ordering_key) DO UPDATE SET last_seq = s.last_seq + EXCLUDED.last_seq
    RETURNING merchant_id, ordering_key, last_seq
)
{INSERT_ROWS}
SELECT i.event_id, $1, i.event_type, i.merchant_id, i.payload, i.ordering_key,
       n.last_seq - count(*) OVER later + 1
FROM incoming i LEFT JOIN numbered n USING (merchant_id, ordering_key)
WINDOW later AS (PARTITION BY i.merchant_id, i.ordering_key ORDER BY i.position DESC)
ORDER BY i.position"""


async def enqueue(conn: Connection, stream: str, events: Iterable[Event]) -> None:
    """Write events to the outbox inside the caller's transaction, numbering the ordered ones."""
    if not conn.is_in_transaction():
        raise RuntimeError("outbox.enqueue must run inside the state change's transaction")
    batch = list(events)
    if not batch:
        return
    wake_relays_after_commit(conn)
    await conn.execute(
        ENQUEUE,
        stream,
        [event.id for event in batch],
        [event.type.value for event in batch],
        [event.merchant_id for event in batch],
        [event.encode() for event in batch],
        [ordering_key(event) for event in batch],
    )


def wake_relays_after_commit(conn: Connection) -> None:
    """Wake the relays once `conn`'s transaction is over (for writers that insert outbox rows
    themselves; `enqueue` does it for its callers)."""
    notify_after_transaction(conn, NOTIFY_CHANNEL)


@dataclass(frozen=True, slots=True)
class PendingRow:
    id: int
    stream: str  # the logical stream (the outbox row's `stream`)
    key: str  # the shard stream it is published to (see `paystream.shards`)
    payload: bytes
    sequence: int | None


# The session holding the relay's leader lock (a bigint advisory key shows as its two halves).
# Advisory locks belong to a database, and pg_locks shows every database's: another database on the
# same server (another deployment, another test run) holding the same key is no leader of this one.
LEADER_LOCK_HOLDER = """SELECT pid FROM pg_locks
                        WHERE locktype = 'advisory' AND granted
                          AND classid = $1 AND objid = $2 AND objsubid = 1
                          AND database = (SELECT oid FROM pg_database WHERE datname = current_database())"""
LEADER_LOCK_HELD = f"SELECT EXISTS ({LEADER_LOCK_HOLDER})"


def advisory_lock_ids(key: int) -> tuple[int, int]:
    """`key` as pg_locks shows a bigint advisory lock: (classid, objid)."""
    return key >> 32, key & 0xFFFFFFFF


class OutboxRelay:
    """Publishes committed outbox rows to Redis Streams; one per process, safe with many replicas."""

    def __init__(
        self,
        pool: asyncpg.Pool,
        redis: aioredis.Redis,
        settings: OutboxSettings,
        *,
        listen_dsn: str,
        application_name: str = "outbox relay",
        fallback_poll_s: float = FALLBACK_POLL_SECONDS,
        linger_s: float = DEFAULT_LINGER_S,
        takeover_delay_s: float = 0.0,
        layout: StreamLayout = SINGLE_SHARD,
    ) -> None:
        self._pool = pool
        # Which shard stream each row goes to: every process must agree (STREAM_SHARDS).
        self._layout = layout
        self._redis = redis
        self._settings = settings
        self._listen_dsn = listen_dsn
        self._application_name = application_name
        self._wake = asyncio.Event()
        self._fallback_poll_s = fallback_poll_s
        self._linger_s = linger_s
        # How long the leader lock must be seen free before this relay takes it (0: at once). A
        # relay of last resort (the API's: publishing costs the event loop that answers requests)
        # so leaves the lead to the others while any of them is alive.
        self._takeover_delay_s = takeover_delay_s
        self._is_leader = False
        self._leadership = asyncio.Event()
        self._free_since: float | None = None  # since when a standby has seen the leader lock free
        self._last_purge = 0.0
        self._last_vacuum = 0.0

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
            # One relay publishes at a time, so later rows never overtake earlier ones. A relay that
            # finds another one publishing leaves the rows to it instead of queueing behind it: every
            # commit notifies every relay, so the one publishing is woken for rows committed during
            # its batch and takes them next.
            #
            # The mark need not wait for its WAL flush (synchronous_commit off, this transaction
            # only): a mark lost in a crash only publishes its rows again, which consumers already
            # absorb (they are idempotent on the event id), and the relay's turn ends sooner.
            rows = await conn.fetch(
                """WITH turn AS (
                       SELECT pg_try_advisory_xact_lock($2) AS ours,
                              set_config('synchronous_commit', 'off', true)
                   )
                   SELECT o.id, o.stream, o.payload, o.ordering_seq,
                          o.event_id, o.merchant_id, o.ordering_key
                   FROM outbox_pending AS p JOIN outbox AS o USING (id), turn
                   WHERE turn.ours
                   ORDER BY p.id
                   LIMIT $1
                   FOR UPDATE OF p SKIP LOCKED""",
                self._settings.batch_size,
                RELAY_LOCK_KEY,
            )
            if not rows:
                OUTBOX_BACKLOG.set(0)
                return 0
            key_for = self._layout.key_for
            pending = [
                PendingRow(
                    row["id"],
                    row["stream"],
                    key_for(row["stream"], row["merchant_id"], row["ordering_key"], str(row["event_id"])),
                    row["payload"],
                    row["ordering_seq"],
                )
                for row in rows
            ]
            await self._xadd_all(pending)
            await conn.execute(
                "DELETE FROM outbox_pending WHERE id = ANY($1::bigint[])", [row.id for row in pending]
            )
        for row in pending:
            OUTBOX_PUBLISHED.labels(row.stream).inc()
        return len(pending)

    async def _xadd_all(self, rows: Sequence[PendingRow]) -> None:
        # Not a transaction: the rows' shards may live on different cluster nodes (a cluster
        # pipeline sends each node its own commands, in order). A failure part-way publishes the
        # batch again, which consumers absorb.
        wanted = self._settings.wait_replicas
        async with self._redis.pipeline(transaction=False) as pipe:
            for row in rows:
                pipe.xadd(
                    row.key,
                    entry_fields(row.payload, row.sequence),  # type: ignore[arg-type]
                    maxlen=self._settings.stream_maxlen,
                    approximate=True,
                )
            waits = queue_replica_waits(pipe, self._redis, (r.key for r in rows), wanted) if wanted else 0
            replies = await pipe.execute()
        if wanted:
            # Not yet safe from a failover: the rows stay unpublished (the transaction rolls back)
            # and go again, after a backoff, to whichever master then serves their shards.
            check_replica_waits(replies, waits, wanted, "the batch")

    async def purge_published(self) -> int:
        """Delete published rows older than the retention period, a batch at a time."""
        return await delete_in_batches(self._pool, PURGE_PUBLISHED, self._settings.retention_days)

    async def vacuum_pending(self) -> None:
        """Vacuum the queue of unpublished ids (tiny: milliseconds). Where the relay's database role
        does not own the table, PostgreSQL skips it with a warning and autovacuum does it alone."""
        async with self._pool.acquire() as conn:
            await conn.execute("VACUUM (SKIP_LOCKED) outbox_pending")

    async def purge_handled(self) -> int:
        """Forget consumers' handled-event records past their retention (the leader does it hourly)."""
        return await purge_inbox(self._pool, self._settings.inbox_retention_days)

    @property
    def is_leader(self) -> bool:
        return self._is_leader

    async def run(self, stop: asyncio.Event) -> None:
        """Publish on every commit notification until `stop` is set, while this relay leads.

        Of all the relays (one per service process), the one holding the leader lock on its LISTEN
        connection publishes; the others stand by and try to take over every second, so a leader
        that dies is replaced within about a second and its committed rows are published then.
        After a wake the leader lingers `linger_ms` so that the commits of a busy moment leave in one
        batch (one transaction and one pipelined round of XADDs) instead of one batch each."""
        self._last_purge = self._last_vacuum = 0.0
        async with self._listener().running(stop):
            # Never ends on an error: a relay that stopped would strand every later commit.
            await run_until_stopped(
                "outbox.publish",
                partial(self._publish_turn, stop),
                stop,
                interval_s=self._fallback_poll_s,
                wake=self._wake,
                linger_s=self._linger_s,
                retry_on=PUBLISH_FAILURES,
            )

    async def _publish_turn(self, stop: asyncio.Event) -> Again | None:
        """The leader publishes (and purges hourly); a standby waits to lead, or for its next try."""
        if not self._is_leader:
            await wait_any([stop, self._leadership], self._fallback_poll_s)
            return AGAIN
        await self.publish_pending()
        now = asyncio.get_running_loop().time()
        if now - self._last_vacuum > VACUUM_PENDING_EVERY_S:
            self._last_vacuum = now
            await self.vacuum_pending()
        if now - self._last_purge > 3600:
            self._last_purge = now
            await self.purge_published()
            await self.purge_handled()
        return None

    def _listener(self) -> Listener:
        """The relay's LISTEN connection (see `paystream.listen`): the session-level leader lock
        taken on it makes this relay the publishing one, and only then does it listen."""
        return Listener(
            self._listen_dsn,
            NOTIFY_CHANNEL,
            self._wake.set,
            name="outbox relay",
            server_settings={
                "application_name": self._application_name,
                # This session holds the leader lock: should the process hang (alive, so its socket
                # stays open), PostgreSQL ends the session once it has been idle this long, which
                # frees the lock for a standby. A live relay probes every second, so is never idle.
                "idle_session_timeout": str(self._settings.leader_idle_timeout_s * 1000),
            },
            listen_at_once=False,
            tend=self._probe_leadership,
            tend_interval_s=LEADER_PROBE_SECONDS,
            on_session_end=self._lose_leadership,
        )

    async def _probe_leadership(self, session: ListenSession) -> None:
        """Take the leader lock if it is free (and, for a relay of last resort, has been free for
        its takeover delay); every statement is also a liveness probe of the lock's session."""
        conn = session.connection
        if not self._is_leader and self._takeover_delay_s > 0:
            if await conn.fetchval(LEADER_LOCK_HELD, *advisory_lock_ids(RELAY_LEADER_KEY)):
                self._free_since = None
            elif self._free_since is None:
                self._free_since = time.monotonic()
            if self._free_since is None or time.monotonic() - self._free_since < self._takeover_delay_s:
                return
        # A dead connection has lost the lock with it.
        leads = await conn.fetchval("SELECT pg_try_advisory_lock($1)", RELAY_LEADER_KEY)
        if leads and self._is_leader:
            # Held already: pg_try_advisory_lock stacks, keep the hold count at one.
            await conn.execute("SELECT pg_advisory_unlock($1)", RELAY_LEADER_KEY)
        elif leads:
            # Only the leader listens: every NOTIFY wakes each listening session and its process,
            # and a standby has nothing to do with a commit. Listening wakes the relay once, to
            # catch up on anything committed while no one led.
            await session.listen()
            log.info("outbox.relay_leading")
            self._is_leader = True
            self._leadership.set()

    def _lose_leadership(self) -> None:
        self._is_leader = False
        self._leadership.clear()
        self._free_since = None
