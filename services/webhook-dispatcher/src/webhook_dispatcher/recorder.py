"""Writes attempt outcomes to the delivery log in batches, and lets ordered deliveries move on.

Attempts finish one by one; their outcomes queue here and one writer commits whatever has gathered
in a single UPDATE over arrays. Only the holder of a row's current lease token may write its outcome.
In the same transaction, the first attempt of an ordered delivery releases the held deliveries of its
payment that it unblocked (see ordering.py), and endpoints that answered 410 are disabled with their
pending deliveries failed.

Outcomes that cannot be written (PostgreSQL down) are kept and retried; if the process dies first,
the rows' leases expire and the attempts are made again: at least once, never silently dropped.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence

import asyncpg

from paystream.aio import backoff_delay, wait_any
from paystream.db import DATABASE_ERRORS
from paystream.logging import get_logger
from webhook_dispatcher.metrics import LEASES_LOST, OUTCOMES_UNRECORDED
from webhook_dispatcher.models import AttemptOutcome
from webhook_dispatcher.ordering import lock_keys, release_held

log = get_logger(__name__)

MAX_BATCH = 1000

RECORD_OUTCOMES = """
UPDATE webhook_deliveries d SET
    status = o.status,
    attempts = d.attempts + CASE WHEN o.attempted THEN 1 ELSE 0 END,
    last_attempt_at = CASE WHEN o.attempted THEN o.attempted_at ELSE d.last_attempt_at END,
    duration_ms = CASE WHEN o.attempted THEN o.duration_ms ELSE d.duration_ms END,
    response_code = CASE WHEN o.attempted THEN o.response_code ELSE d.response_code END,
    response_body = CASE WHEN o.attempted THEN o.response_body ELSE d.response_body END,
    error = o.error,
    next_retry_at = now() + make_interval(secs => o.retry_in_s),
    due_at = now() + make_interval(secs => o.retry_in_s),
    lease_token = NULL,
    updated_at = now()
FROM unnest($1::text[], $2::uuid[], $3::text[], $4::boolean[], $5::timestamptz[], $6::integer[],
            $7::integer[], $8::text[], $9::text[], $10::float8[])
     AS o(id, lease_token, status, attempted, attempted_at, duration_ms, response_code, response_body,
          error, retry_in_s)
WHERE d.id = o.id AND d.lease_token = o.lease_token
RETURNING d.id"""

DISABLE_ENDPOINTS = """
UPDATE webhook_endpoints SET enabled = false, disabled_reason = $2, updated_at = now()
WHERE id = ANY($1::text[]) AND enabled"""

FAIL_DISABLED_PENDING = """
UPDATE webhook_deliveries
SET status = 'failed', due_at = NULL, next_retry_at = NULL, error = $2, updated_at = now()
WHERE endpoint_id = ANY($1::text[]) AND status = 'pending' AND lease_token IS NULL"""

DISABLED_REASON = "the endpoint answered 410 Gone"
DISABLED_ERROR = "not sent: the endpoint was disabled after it answered 410 Gone"


class OutcomeRecorder:
    """Queues outcomes (`record()` never blocks) and commits them in batches."""

    def __init__(self, pool: asyncpg.Pool, *, on_due: Callable[[], None], max_batch: int = MAX_BATCH) -> None:
        self._pool = pool
        self._on_due = on_due
        self._max_batch = max_batch
        self._queue: list[AttemptOutcome] = []
        self._ready = asyncio.Event()
        self._idle = asyncio.Event()
        self._idle.set()

    def record(self, outcome: AttemptOutcome) -> None:
        self._queue.append(outcome)
        OUTCOMES_UNRECORDED.set(len(self._queue))
        self._idle.clear()
        self._ready.set()

    async def flushed(self) -> None:
        """Wait until every outcome queued so far has been written (for tests and shutdown)."""
        await self._idle.wait()

    async def run(self, stop: asyncio.Event, *, final_flush_s: float = 10.0) -> None:
        """Write outcomes until `stop` is set; then try to write what is left for `final_flush_s`."""
        failures = 0
        deadline: float | None = None
        loop = asyncio.get_running_loop()
        while True:
            if stop.is_set() and deadline is None:
                deadline = loop.time() + final_flush_s
            if not self._queue:
                self._idle.set()
                if stop.is_set():
                    return
                self._ready.clear()
                await wait_any([self._ready, stop], 1.0)
                continue
            if deadline is not None and loop.time() > deadline:
                log.error("recorder.outcomes_unwritten_at_shutdown", count=len(self._queue))
                return
            batch = self._queue[: self._max_batch]
            try:
                await self._write(batch)
            except DATABASE_ERRORS as exc:
                failures += 1
                delay = backoff_delay(failures)
                log.warning("recorder.write_failed", error=str(exc), outcomes=len(batch), retry_in_s=delay)
                await wait_any([stop], delay) if deadline is None else await asyncio.sleep(delay)
                continue
            failures = 0
            del self._queue[: len(batch)]
            OUTCOMES_UNRECORDED.set(len(self._queue))

    async def _write(self, batch: Sequence[AttemptOutcome]) -> None:
        # The keys whose held deliveries a first attempt here may release (see ordering.py).
        ordered = {
            (o.merchant_id, o.order_key)
            for o in batch
            if o.first_attempt and o.order_key is not None and o.ordering_seq is not None
        }
        disabled = sorted({o.endpoint_id for o in batch if o.disable_endpoint})
        released: list[str] = []
        async with self._pool.acquire() as conn, conn.transaction():
            await lock_keys(conn, ordered)
            recorded = await conn.fetch(
                RECORD_OUTCOMES,
                [o.delivery_id for o in batch],
                [o.lease_token for o in batch],
                [o.status.value for o in batch],
                [o.attempted for o in batch],
                [o.attempted_at for o in batch],
                [o.duration_ms for o in batch],
                [o.response_code for o in batch],
                [o.response_body for o in batch],
                [o.error for o in batch],
                [o.retry_in_s for o in batch],
            )
            if disabled:
                await conn.execute(DISABLE_ENDPOINTS, disabled, DISABLED_REASON)
                await conn.execute(FAIL_DISABLED_PENDING, disabled, DISABLED_ERROR)
            released = await release_held(conn, ordered)
        if len(recorded) < len(batch):
            lost = len(batch) - len(recorded)
            LEASES_LOST.inc(lost)
            log.warning("recorder.leases_lost", count=lost)
        for endpoint_id in disabled:
            log.warning("webhook.endpoint_disabled", endpoint_id=endpoint_id, reason=DISABLED_REASON)
        if released or any(o.retry_in_s is not None for o in batch):
            self._on_due()  # the scheduler re-reads the earliest due time
