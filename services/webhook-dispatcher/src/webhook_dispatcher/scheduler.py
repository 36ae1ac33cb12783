"""The scheduler: claims due deliveries from PostgreSQL and runs their attempts, within limits.

The delivery log is the schedule. A claim takes due rows with `FOR UPDATE SKIP LOCKED` and leases
them (their `due_at` moves to the lease's end and they get a fresh token), so replicas never take the
same row and a crashed dispatcher's rows come back when the lease ends. Between claims the scheduler
(a `paystream.duetime.DueTimeLoop`) sleeps until the earliest due time, woken early by new
deliveries (from this process's intake), by finished attempts (capacity) and by `NOTIFY` on the
due channel (the API's manual retries and test sends; a `paystream.listen.Listener`).

Concurrency is bounded twice: at most `max_in_flight` attempts in all, and at most
`endpoint_max_in_flight` per endpoint, enforced in the claim itself. An endpoint that hangs fills
only its own slots for one timeout each, so other endpoints' deliveries keep flowing. An endpoint's
`rate_limit_per_s` is enforced in the claim too (CLAIM_DUE below), across every replica, since the
endpoint row carries the schedule: its deliveries above the rate stay due and wait their turn.
"""

from __future__ import annotations

import asyncio
import uuid
from collections import Counter
from collections.abc import Sequence

import asyncpg

from paystream.duetime import Claimed, DueTimeLoop, DueTiming
from paystream.listen import Listener
from paystream.logging import get_logger
from paystream.webhooks import DUE_CHANNEL as NOTIFY_CHANNEL
from webhook_dispatcher.delivery import DeliverySender
from webhook_dispatcher.metrics import IN_FLIGHT
from webhook_dispatcher.models import DueDelivery
from webhook_dispatcher.recorder import OutcomeRecorder
from webhook_dispatcher.settings import DeliverySettings

log = get_logger(__name__)

# A safety net for a missed notification; the earliest due time normally decides the wait.
FALLBACK_WAKE_S = 5.0
# Due rows exist but none could be taken (every one belongs to an endpoint at its limit here).
SATURATED_WAKE_S = 1.0
# How many endpoints with due rows one claim visits beyond one per row it may take, so that endpoints
# at their limit here (or out of rate allowance), which yield nothing, do not end the walk early.
WALK_SLACK = 32

# The claim, in three steps that each read only what they take (migration 0048's index on
# (endpoint_id, due_at) of pending rows):
# - `walk`: the endpoints that have due rows, in id order after a cursor, one index descent each
#   (a loose index scan), at most $7 of them. The scheduler moves the cursor on between claims, so
#   endpoints are served in turn and one endpoint's backlog, however long, costs one descent.
# - `room`: what each may start now: its free slots here ($3 minus its attempts in flight, $4/$5)
#   and, when it is rate limited, its allowance (a generic cell rate algorithm with a burst of one
#   second's worth, on the endpoint row: it holds across replicas; `paced` moves the schedule on by
#   the rows taken).
# - `due`: each endpoint's oldest due rows, as many as its room, locked (SKIP LOCKED: another
#   replica's claim in the same instant takes others); of those the oldest $1 are leased: their due
#   time moves to the lease's end and they get this claim's token ($8). (Their ids are also given to
#   the UPDATE as an array, so that it looks them up by primary key whatever the planner guesses of
#   the batch's size.) The due test is written as a row comparison on purpose: it is an index
#   condition of the (endpoint_id, due_at) index, and it does not imply `due_at IS NOT NULL`, so
#   the planner cannot take the index on due_at instead (which it prefers, the due times being well
#   correlated with the table's order, and which reads through every other endpoint's due rows).
# Every row returned also says how far the walk went (`walked_to`, `walked`), for the next cursor.
CLAIM_DUE = """
WITH RECURSIVE walk(endpoint_id, visited) AS (
    SELECT (SELECT endpoint_id FROM webhook_deliveries
            WHERE status = 'pending' AND due_at <= now() AND endpoint_id > $6
            ORDER BY endpoint_id LIMIT 1), 1
    UNION ALL
    SELECT (SELECT d.endpoint_id FROM webhook_deliveries d
            WHERE d.status = 'pending' AND d.due_at <= now() AND d.endpoint_id > walk.endpoint_id
            ORDER BY d.endpoint_id LIMIT 1), walk.visited + 1
    FROM walk WHERE walk.endpoint_id IS NOT NULL AND walk.visited < $7
), walked AS MATERIALIZED (
    SELECT endpoint_id FROM walk WHERE endpoint_id IS NOT NULL
), busy AS (
    SELECT * FROM unnest($4::text[], $5::integer[]) AS b(endpoint_id, in_flight)
), room AS (
    SELECT e.id AS endpoint_id, e.url, e.enabled AND e.deleted_at IS NULL AS enabled, e.headers,
           e.secret, e.previous_secret, e.previous_secret_expires_at,
           LEAST($3 - COALESCE(busy.in_flight, 0),
                 CASE WHEN e.rate_limit_per_s IS NULL THEN $3
                      ELSE floor(EXTRACT(EPOCH FROM now() + interval '1 second'
                                         - GREATEST(e.rate_next_at, now())) * e.rate_limit_per_s)::integer
                 END) AS free
    FROM walked
    JOIN webhook_endpoints e ON e.id = walked.endpoint_id
    LEFT JOIN busy ON busy.endpoint_id = walked.endpoint_id
), due AS (
    SELECT c.id, c.due_at, c.merchant_id, room.*
    FROM room CROSS JOIN LATERAL (
        SELECT id, due_at, merchant_id FROM webhook_deliveries
        WHERE endpoint_id = room.endpoint_id AND status = 'pending'
          AND (endpoint_id, due_at) <= (room.endpoint_id, now())
        ORDER BY endpoint_id, due_at
        LIMIT GREATEST(room.free, 0)
        FOR UPDATE SKIP LOCKED
    ) AS c
), picked AS (
    SELECT due.id, due.endpoint_id, due.url, due.enabled, due.headers,
           COALESCE(due.secret, m.webhook_secret) AS webhook_secret,
           CASE WHEN due.secret IS NULL THEN p.secret
                WHEN due.previous_secret_expires_at > now() THEN due.previous_secret END AS previous_secret
    FROM due
    JOIN merchants m ON m.id = due.merchant_id
    LEFT JOIN webhook_previous_secrets p ON p.merchant_id = due.merchant_id AND p.expires_at > now()
    ORDER BY due.due_at
    LIMIT $1
), paced AS (
    UPDATE webhook_endpoints e
    SET rate_next_at = GREATEST(e.rate_next_at, now()) + make_interval(secs => taken.n::float8 / e.rate_limit_per_s)
    FROM (SELECT endpoint_id, count(*) AS n FROM picked GROUP BY endpoint_id) AS taken
    WHERE e.id = taken.endpoint_id AND e.rate_limit_per_s IS NOT NULL
)
UPDATE webhook_deliveries d
SET due_at = now() + make_interval(secs => $2), lease_token = $8, updated_at = now()
FROM picked
WHERE d.id = picked.id AND d.id = ANY((SELECT array_agg(id) FROM picked)::text[])
RETURNING d.id, d.merchant_id, d.endpoint_id, d.event_type, d.payload, d.attempts, d.order_key,
          d.ordering_seq, picked.url, picked.enabled, picked.headers, picked.webhook_secret,
          picked.previous_secret,
          (SELECT max(endpoint_id) FROM walked) AS walked_to, (SELECT count(*) FROM walked) AS walked"""

SECONDS_TO_EARLIEST_DUE = """
SELECT EXTRACT(EPOCH FROM (due_at - now()))::float8
FROM webhook_deliveries WHERE due_at IS NOT NULL
ORDER BY due_at LIMIT 1"""


class Scheduler:
    def __init__(
        self,
        pool: asyncpg.Pool,
        sender: DeliverySender,
        recorder: OutcomeRecorder,
        settings: DeliverySettings,
        *,
        listen_dsn: str,
    ) -> None:
        self._pool = pool
        self._sender = sender
        self._recorder = recorder
        self._settings = settings
        self._attempts: set[asyncio.Task[None]] = set()
        self._endpoint_load: Counter[str] = Counter()
        # The endpoint id after which the next claim's walk starts (see CLAIM_DUE).
        self._cursor = ""
        self._loop = DueTimeLoop(
            "webhook-scheduler",
            self._claim,
            self._seconds_to_earliest_due,
            DueTiming(fallback_s=FALLBACK_WAKE_S, busy_pause_s=SATURATED_WAKE_S),
        )
        self._listener = Listener(listen_dsn, NOTIFY_CHANNEL, self.wake, name="webhook scheduler")

    def wake(self) -> None:
        """Claim again now (there is new work or free capacity)."""
        self._loop.wake()

    @property
    def in_flight(self) -> int:
        return len(self._attempts)

    async def run(self, stop: asyncio.Event) -> None:
        """Claim and attempt until `stop`; then let in-flight attempts finish (one HTTP timeout)."""
        try:
            async with self._listener.running(stop):
                await self._loop.run(stop)
        finally:
            await self._drain()

    async def claim_once(self) -> tuple[int, int]:
        """Claim as many due deliveries as there is capacity for and start them: (claimed, wanted)."""
        wanted = min(self._settings.max_in_flight - len(self._attempts), self._settings.claim_batch)
        if wanted <= 0:
            return 0, 0
        claimed = 0
        # A walk that started after the cursor and reached the last endpoint goes round once more
        # from the first, for the endpoints before the cursor.
        for _ in range(2):
            started_from = self._cursor
            claimed += await self._claim_from(started_from, wanted - claimed)
            if claimed >= wanted or not started_from or self._cursor:
                break
        return claimed, wanted

    async def _claim_from(self, cursor: str, wanted: int) -> int:
        """One claim walking the endpoints after `cursor`; moves the cursor on. Returns rows taken."""
        busy = [(endpoint, load) for endpoint, load in self._endpoint_load.items() if load > 0]
        most_visited = wanted + len(busy) + WALK_SLACK
        token = uuid.uuid4()
        rows = await self._pool.fetch(
            CLAIM_DUE,
            wanted,
            self._settings.lease_s,
            self._settings.endpoint_max_in_flight,
            [endpoint for endpoint, _ in busy],
            [load for _, load in busy],
            cursor,
            most_visited,
            token,
        )
        # Where the next claim's walk starts: after the last endpoint visited when the walk stopped
        # at its length (more endpoints may follow), else at the first (it reached the last one, or
        # took nothing and cannot tell).
        walked_all = not rows or rows[0]["walked"] < most_visited
        self._cursor = "" if walked_all else str(rows[0]["walked_to"])
        for row in rows:
            self._start(_due_delivery(row, token))
        return len(rows)

    async def _claim(self) -> Claimed:
        # With every slot busy the claim asks for nothing, and a finishing attempt wakes the loop.
        # Due rows it could not take belong to endpoints at their limit here, or were just claimed
        # by another replica: a finishing attempt wakes the loop, or it looks again after
        # SATURATED_WAKE_S.
        return Claimed.of(*await self.claim_once())

    async def _seconds_to_earliest_due(self) -> float | None:
        seconds: float | None = await self._pool.fetchval(SECONDS_TO_EARLIEST_DUE)
        return seconds

    def _start(self, delivery: DueDelivery) -> None:
        self._endpoint_load[delivery.endpoint_id] += 1
        task = asyncio.create_task(self._attempt(delivery), name=f"attempt:{delivery.id}")
        self._attempts.add(task)
        IN_FLIGHT.set(len(self._attempts))

        def finished(done: asyncio.Task[None]) -> None:
            self._attempts.discard(done)
            self._endpoint_load[delivery.endpoint_id] -= 1
            if self._endpoint_load[delivery.endpoint_id] <= 0:
                del self._endpoint_load[delivery.endpoint_id]
            IN_FLIGHT.set(len(self._attempts))
            self._loop.wake()

        task.add_done_callback(finished)

    async def _attempt(self, delivery: DueDelivery) -> None:
        try:
            outcome = await self._sender.attempt(delivery)
        except asyncio.CancelledError:
            raise  # its lease runs out and the attempt is made again
        except Exception:
            log.exception("scheduler.attempt_crashed", delivery_id=delivery.id)
            return  # likewise: the lease runs out and another claim retries it
        self._recorder.record(outcome)

    async def _drain(self) -> None:
        if not self._attempts:
            return
        log.info("scheduler.draining", in_flight=len(self._attempts))
        _, pending = await asyncio.wait(set(self._attempts), timeout=self._settings.http_timeout_s + 1)
        for task in pending:
            task.cancel()
        if pending:
            await asyncio.wait(pending, timeout=2)


def _due_delivery(row: asyncpg.Record, token: uuid.UUID) -> DueDelivery:
    secrets: Sequence[str] = [s for s in (row["webhook_secret"], row["previous_secret"]) if s]
    return DueDelivery(
        id=row["id"],
        merchant_id=row["merchant_id"],
        endpoint_id=row["endpoint_id"],
        event_type=row["event_type"],
        payload=bytes(row["payload"]),
        attempts=row["attempts"],
        order_key=row["order_key"],
        ordering_seq=row["ordering_seq"],
        url=row["url"],
        endpoint_enabled=row["enabled"],
        secrets=tuple(secrets),
        lease_token=token,
        headers=tuple((str(name), str(value)) for name, value in (row["headers"] or {}).items()),
    )
