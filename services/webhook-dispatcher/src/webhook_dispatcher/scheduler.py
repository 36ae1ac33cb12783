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
`rate_limit_per_s` is enforced in the claim too (LIMITED below), across every replica, since the
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
# How many due rows a claim looks at per row it may take, so that one endpoint's backlog at its limit
# does not hide other endpoints' due rows.
SCAN_FACTOR = 4

# Rate-limited endpoints, and how many attempts each may start now: as many as fit between its
# schedule's next instant and one second from now (a generic cell rate algorithm with a burst of one
# second's worth). An endpoint with none left is skipped by the scan, so its backlog, however long,
# hides nobody else's due rows; the claim moves its schedule on by the rows it took.
LIMITED = """
SELECT id AS endpoint_id,
       floor(EXTRACT(EPOCH FROM now() + interval '1 second' - GREATEST(rate_next_at, now()))
             * rate_limit_per_s)::integer AS allowance
FROM webhook_endpoints WHERE rate_limit_per_s IS NOT NULL"""

CLAIM_DUE = f"""
WITH busy AS (
    SELECT * FROM unnest($4::text[], $5::integer[]) AS b(endpoint_id, in_flight)
), limited AS MATERIALIZED ({LIMITED}
), due AS (
    SELECT c.id, c.due_at,
           row_number() OVER (PARTITION BY c.endpoint_id ORDER BY c.due_at, c.id) AS place,
           c.endpoint_id
    FROM (
        SELECT id, endpoint_id, due_at FROM webhook_deliveries
        WHERE due_at <= now() AND status = 'pending' AND endpoint_id <> ALL($6::text[])
          AND endpoint_id NOT IN (SELECT endpoint_id FROM limited WHERE allowance < 1)
        ORDER BY due_at
        LIMIT $7
    ) AS c
), picked AS (
    SELECT w.id, w.endpoint_id, e.url, e.enabled AND e.deleted_at IS NULL AS enabled, e.headers,
           COALESCE(e.secret, m.webhook_secret) AS webhook_secret,
           CASE WHEN e.secret IS NULL THEN p.secret
                WHEN e.previous_secret_expires_at > now() THEN e.previous_secret END AS previous_secret
    FROM webhook_deliveries w
    JOIN due ON due.id = w.id
    JOIN webhook_endpoints e ON e.id = w.endpoint_id
    JOIN merchants m ON m.id = w.merchant_id
    LEFT JOIN webhook_previous_secrets p ON p.merchant_id = w.merchant_id AND p.expires_at > now()
    LEFT JOIN busy ON busy.endpoint_id = due.endpoint_id
    LEFT JOIN limited ON limited.endpoint_id = due.endpoint_id
    WHERE due.place <= LEAST($3 - COALESCE(busy.in_flight, 0), COALESCE(limited.allowance, $3))
      AND w.due_at <= now() AND w.status = 'pending'
    ORDER BY due.due_at
    LIMIT $1
    FOR UPDATE OF w SKIP LOCKED
), paced AS (
    UPDATE webhook_endpoints e
    SET rate_next_at = GREATEST(e.rate_next_at, now()) + make_interval(secs => taken.n::float8 / e.rate_limit_per_s)
    FROM (SELECT endpoint_id, count(*) AS n FROM picked GROUP BY endpoint_id) AS taken
    WHERE e.id = taken.endpoint_id AND e.rate_limit_per_s IS NOT NULL
)
UPDATE webhook_deliveries d
SET due_at = now() + make_interval(secs => $2), lease_token = $8, updated_at = now()
FROM picked
WHERE d.id = picked.id
RETURNING d.id, d.merchant_id, d.endpoint_id, d.event_type, d.payload, d.attempts, d.order_key,
          d.ordering_seq, picked.url, picked.enabled, picked.headers, picked.webhook_secret,
          picked.previous_secret"""

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
        free = self._settings.max_in_flight - len(self._attempts)
        if free <= 0:
            return 0, 0
        wanted = min(free, self._settings.claim_batch)
        cap = self._settings.endpoint_max_in_flight
        busy = [(endpoint, load) for endpoint, load in self._endpoint_load.items() if load > 0]
        saturated = [endpoint for endpoint, load in busy if load >= cap]
        token = uuid.uuid4()
        rows = await self._pool.fetch(
            CLAIM_DUE,
            wanted,
            self._settings.lease_s,
            cap,
            [endpoint for endpoint, _ in busy],
            [load for _, load in busy],
            saturated,
            wanted * SCAN_FACTOR,
            token,
        )
        for row in rows:
            self._start(_due_delivery(row, token))
        return len(rows), wanted

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
