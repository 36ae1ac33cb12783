"""Writes attempt outcomes to the delivery log in batches, and lets ordered deliveries move on.

Attempts finish one by one; their outcomes queue here and one writer commits whatever has gathered
in a single UPDATE over arrays: a write-behind `paystream.groupcommit.GroupCommitter` (`record()`
queues and returns; nothing waits for the commit). Only the holder of a row's current lease token
may write its outcome. In the same transaction, the first attempt of an ordered delivery releases
the held deliveries of its payment that it unblocked (see ordering.py); each endpoint's run of
failures is tracked (`failing_since`: set by a failed attempt, cleared by a successful one); and
endpoints that answered 410, or have failed every attempt for `auto_disable_after_s`, are disabled
with their pending deliveries failed, and an `endpoint.disabled` event (through the outbox, in the
same transaction) tells the merchant's other endpoints and the dashboard. A failure for good of a
delivery that a recovery of its endpoint found in flight (`recover_at`) makes it due again instead,
at the time the recovery gave it; batches holding failures for good first wait for any recovery of
their endpoints in progress (AWAIT_RECOVERIES), so that none is missed by both.

Outcomes that cannot be written (PostgreSQL down) are kept and retried until written (the commit
function's rule); if the process dies first, or shutdown's flush runs out of time, the rows' leases
expire and the attempts are made again: at least once, never silently dropped.
"""

from __future__ import annotations

import asyncio
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime

import asyncpg

from paystream.db import DATABASE_ERRORS
from paystream.errors import RetryableError
from paystream.events import Event, EventType, Stream
from paystream.groupcommit import GroupCommitter, Submission, split_and_retry
from paystream.logging import get_logger
from paystream.loops import backoff_delay
from paystream.outbox import enqueue
from paystream.resources import format_timestamp
from webhook_dispatcher.metrics import LEASES_LOST, OUTCOMES_UNRECORDED
from webhook_dispatcher.models import AttemptOutcome, DeliveryStatus
from webhook_dispatcher.ordering import lock_keys, release_if_held

log = get_logger(__name__)

MAX_BATCH = 1000

# An attempt that failed a delivery for good after its endpoint's recovery marked it in flight
# (`recover_at`, migration 0047): the delivery goes again at the time the recovery gave it.
RECOVERED = "(o.status = 'failed' AND o.attempted AND d.recover_at IS NOT NULL)"

RECORD_OUTCOMES = f"""
UPDATE webhook_deliveries d SET
    status = CASE WHEN {RECOVERED} THEN 'pending' ELSE o.status END,
    attempts = d.attempts + CASE WHEN o.attempted THEN 1 ELSE 0 END,
    last_attempt_at = CASE WHEN o.attempted THEN o.attempted_at ELSE d.last_attempt_at END,
    duration_ms = CASE WHEN o.attempted THEN o.duration_ms ELSE d.duration_ms END,
    response_code = CASE WHEN o.attempted THEN o.response_code ELSE d.response_code END,
    response_body = CASE WHEN o.attempted THEN o.response_body ELSE d.response_body END,
    error = o.error,
    next_retry_at = CASE WHEN {RECOVERED} THEN greatest(d.recover_at, now())
                         ELSE now() + make_interval(secs => o.retry_in_s) END,
    due_at = CASE WHEN {RECOVERED} THEN greatest(d.recover_at, now())
                  ELSE now() + make_interval(secs => o.retry_in_s) END,
    recover_at = NULL,
    lease_token = NULL,
    updated_at = now()
FROM unnest($1::text[], $2::uuid[], $3::text[], $4::boolean[], $5::timestamptz[], $6::integer[],
            $7::integer[], $8::text[], $9::text[], $10::float8[])
     AS o(id, lease_token, status, attempted, attempted_at, duration_ms, response_code, response_body,
          error, retry_in_s)
WHERE d.id = o.id AND d.lease_token = o.lease_token
RETURNING d.id, d.status = 'pending' AND o.status = 'failed' AS recovered"""

# Before writing failures for good: wait for any recovery of their endpoints in progress (it holds
# the endpoint row FOR UPDATE until it commits), so that the statement writing them sees its marks;
# a recovery that starts later sees them failed. A key-share lock: other recorders take it too, and
# it does not conflict with their failure-run updates of the same rows.
AWAIT_RECOVERIES = """
SELECT 1 FROM webhook_endpoints WHERE id = ANY($1::text[]) ORDER BY id FOR KEY SHARE"""

# Per endpoint with attempts in the batch: whether one of them succeeded, and when the failures
# after the last success began (NULL: none failed after it). Written only when it changes.
TRACK_FAILURES = """
UPDATE webhook_endpoints e
SET failing_since = CASE WHEN r.succeeded THEN r.failing_since
                         ELSE COALESCE(e.failing_since, r.failing_since) END
FROM unnest($1::text[], $2::boolean[], $3::timestamptz[]) AS r(endpoint_id, succeeded, failing_since)
WHERE e.id = r.endpoint_id
  AND e.failing_since IS DISTINCT FROM (CASE WHEN r.succeeded THEN r.failing_since
                                              ELSE COALESCE(e.failing_since, r.failing_since) END)"""

DISABLE_ENDPOINTS = """
UPDATE webhook_endpoints SET enabled = false, disabled_reason = $2, disabled_at = now(), updated_at = now()
WHERE id = ANY($1::text[]) AND enabled
RETURNING id, merchant_id, url, disabled_at, disabled_reason"""

DISABLE_FAILING_ENDPOINTS = """
UPDATE webhook_endpoints SET enabled = false, disabled_reason = $2, disabled_at = now(), updated_at = now()
WHERE id = ANY($1::text[]) AND enabled AND failing_since <= now() - make_interval(secs => $3)
RETURNING id, merchant_id, url, disabled_at, disabled_reason"""

FAIL_DISABLED_PENDING = """
UPDATE webhook_deliveries
SET status = 'failed', due_at = NULL, next_retry_at = NULL, error = $2, updated_at = now()
WHERE endpoint_id = ANY($1::text[]) AND status = 'pending' AND lease_token IS NULL"""

DISABLED_REASON = "the endpoint answered 410 Gone"
DISABLED_ERROR = "not sent: the endpoint was disabled after it answered 410 Gone"
FAILING_REASON = "every attempt failed for {duration}"
FAILING_ERROR = "not sent: the endpoint was disabled after every attempt failed for {duration}"


@dataclass(frozen=True, slots=True)
class FailureRun:
    """What a batch's attempts say about one endpoint's run of failures."""

    succeeded: bool
    # When the failures after the batch's last success (or all of them, without one) began.
    failing_since: datetime | None


def failure_runs(batch: Sequence[AttemptOutcome]) -> dict[str, FailureRun]:
    """Per endpoint with attempts in `batch` (outcomes not attempted say nothing of it)."""
    by_endpoint: dict[str, list[AttemptOutcome]] = defaultdict(list)
    for outcome in batch:
        if outcome.attempted and outcome.attempted_at is not None:
            by_endpoint[outcome.endpoint_id].append(outcome)
    runs = {}
    for endpoint_id, outcomes in by_endpoint.items():
        outcomes.sort(key=lambda o: o.attempted_at or datetime.min)
        successes = [i for i, o in enumerate(outcomes) if o.status is DeliveryStatus.SUCCESS]
        after = outcomes[successes[-1] + 1 :] if successes else outcomes
        runs[endpoint_id] = FailureRun(bool(successes), after[0].attempted_at if after else None)
    return runs


def describe_duration(seconds: float) -> str:
    if seconds >= 86_400 and seconds % 86_400 == 0:
        days = int(seconds // 86_400)
        return f"{days} day" + ("s" if days != 1 else "")
    if seconds >= 3600 and seconds % 3600 == 0:
        hours = int(seconds // 3600)
        return f"{hours} hour" + ("s" if hours != 1 else "")
    return "1 second" if seconds == 1 else f"{seconds:g} seconds"


def disabled_event(row: asyncpg.Record) -> Event:
    """`endpoint.disabled`, for the merchant's other endpoints and its dashboard."""
    return Event(
        type=EventType.ENDPOINT_DISABLED,
        merchant_id=row["merchant_id"],
        data={
            "endpoint": {
                "id": row["id"],
                "url": row["url"],
                "disabled_at": format_timestamp(row["disabled_at"]),
                "reason": row["disabled_reason"],
            }
        },
    )


class OutcomeRecorder:
    """Queues outcomes (`record()` never blocks) and commits them in batches."""

    def __init__(
        self,
        pool: asyncpg.Pool,
        *,
        on_due: Callable[[], None],
        auto_disable_after_s: float = 5 * 86_400.0,
        max_batch: int = MAX_BATCH,
    ) -> None:
        self._pool = pool
        self._on_due = on_due
        self._auto_disable_after_s = auto_disable_after_s
        # Unbounded: an outcome refused would be an attempt made twice, and the attempts in flight
        # (bounded by the scheduler) are what fills the queue.
        self._committer: GroupCommitter[AttemptOutcome, None] = GroupCommitter(
            self._commit, name="webhook-recorder", max_batch=max_batch, writers=1
        )
        self._unwritten: set[asyncio.Future[None]] = set()
        self._idle = asyncio.Event()
        self._idle.set()

    def start(self) -> None:
        """Start taking outcomes (before the first attempt can finish; `run` does it too)."""
        self._committer.start()

    def record(self, outcome: AttemptOutcome) -> None:
        try:
            written = self._committer.submit_nowait(outcome)
        except RetryableError:  # stopped: shutdown's order (attempts drain first) makes this rare
            log.warning("recorder.outcome_refused", delivery_id=outcome.delivery_id)
            return  # its lease expires and the attempt is made again
        self._unwritten.add(written)
        OUTCOMES_UNRECORDED.set(len(self._unwritten))
        self._idle.clear()
        written.add_done_callback(self._settled)

    def _settled(self, written: asyncio.Future[None]) -> None:
        self._unwritten.discard(written)
        OUTCOMES_UNRECORDED.set(len(self._unwritten))
        if not self._unwritten:
            self._idle.set()

    async def flushed(self) -> None:
        """Wait until every outcome queued so far has been written (for tests and shutdown)."""
        await self._idle.wait()

    async def run(self, stop: asyncio.Event, *, final_flush_s: float = 10.0) -> None:
        """Write outcomes until `stop` is set; then try to write what is left for `final_flush_s`."""
        await self._committer.run(stop, grace_s=final_flush_s)

    async def _commit(self, batch: Sequence[Submission[AttemptOutcome, None]]) -> None:
        """Write the batch, retrying until it is written: an outcome given up on would be an attempt
        made twice. (Only shutdown's deadline ends the retries, by cancelling them.)"""
        failures = 0
        while True:
            try:
                await self._write([submission.item for submission in batch])
            except DATABASE_ERRORS as exc:
                failures += 1
                delay = backoff_delay(failures)
                log.warning("recorder.write_failed", error=str(exc), outcomes=len(batch), retry_in_s=delay)
                await asyncio.sleep(delay)
                continue
            except asyncio.CancelledError:
                log.error("recorder.outcomes_unwritten_at_shutdown", count=len(self._unwritten))
                raise
            except Exception:
                if len(batch) == 1:
                    raise  # a bug, not the database: the batch fails (logged), its lease expires
                await split_and_retry(batch, self._commit)  # so that one bad outcome fails alone
                return
            break
        for submission in batch:
            submission.resolve(None)

    async def _write(self, batch: Sequence[AttemptOutcome]) -> None:
        # The keys whose held deliveries a first attempt here may release (see ordering.py).
        ordered = {
            (o.merchant_id, o.order_key)
            for o in batch
            if o.first_attempt and o.order_key is not None and o.ordering_seq is not None
        }
        gone = sorted({o.endpoint_id for o in batch if o.disable_endpoint})
        failing_for_good = sorted(
            {o.endpoint_id for o in batch if o.attempted and o.status is DeliveryStatus.FAILED}
        )
        runs = failure_runs(batch)
        failing = sorted(endpoint for endpoint, run in runs.items() if run.failing_since is not None)
        disabled: list[asyncpg.Record] = []
        released: list[str] = []
        async with self._pool.acquire() as conn, conn.transaction():
            if failing_for_good:  # rare: only the last attempts that failed
                await conn.execute(AWAIT_RECOVERIES, failing_for_good)
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
            if runs:
                await conn.execute(
                    TRACK_FAILURES,
                    list(runs),
                    [run.succeeded for run in runs.values()],
                    [run.failing_since for run in runs.values()],
                )
            if gone:
                rows = await conn.fetch(DISABLE_ENDPOINTS, gone, DISABLED_REASON)
                await conn.execute(FAIL_DISABLED_PENDING, [r["id"] for r in rows], DISABLED_ERROR)
                disabled.extend(rows)
            if failing:
                duration = describe_duration(self._auto_disable_after_s)
                rows = await conn.fetch(
                    DISABLE_FAILING_ENDPOINTS,
                    failing,
                    FAILING_REASON.format(duration=duration),
                    self._auto_disable_after_s,
                )
                await conn.execute(
                    FAIL_DISABLED_PENDING, [r["id"] for r in rows], FAILING_ERROR.format(duration=duration)
                )
                disabled.extend(rows)
            if disabled:
                await enqueue(conn, Stream.PAYMENT_EVENTS, [disabled_event(row) for row in disabled])
            # Gated: with the keys locked above, every held delivery of theirs is committed and seen.
            released = await release_if_held(conn, ordered)
        if len(recorded) < len(batch):
            lost = len(batch) - len(recorded)
            LEASES_LOST.inc(lost)
            log.warning("recorder.leases_lost", count=lost)
        for row in disabled:
            log.warning(
                "webhook.endpoint_disabled",
                endpoint_id=row["id"],
                merchant_id=row["merchant_id"],
                reason=row["disabled_reason"],
            )
        recovered = any(row["recovered"] for row in recorded)
        if released or recovered or any(o.retry_in_s is not None for o in batch):
            self._on_due()  # the scheduler re-reads the earliest due time
