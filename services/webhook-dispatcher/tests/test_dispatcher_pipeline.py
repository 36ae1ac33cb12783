"""The intake and the recorder on the shared group-commit engine, against real PostgreSQL: what the
handlers waiting on the intake get before it starts, after it stops and when it is cancelled; one
event the database refuses fails alone; outcomes are kept until written."""

from __future__ import annotations

import asyncio
import sys
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import asyncpg
import pytest

from paystream.errors import RetryableError
from paystream.events import EventType
from paystream_devstack.testing import eventually
from webhook_dispatcher.intake import DeliveryIntake
from webhook_dispatcher.models import AttemptOutcome, DeliveryStatus
from webhook_dispatcher.recorder import OutcomeRecorder

sys.path.insert(0, str(Path(__file__).parent))

from dispatcher_testkit import MakeMerchant, deliveries, payment_event

GROUP = "webhook-dispatcher"
NOWHERE = "http://127.0.0.1:9/hooks"
WAIT_S = 10.0  # far beyond what a refusal takes: a handler left waiting would fail the test
RECORDER_APP = "recorder under test"


@dataclass
class RunningIntake:
    intake: DeliveryIntake
    stop: asyncio.Event
    task: asyncio.Task[None]


@pytest.fixture
async def run_intake(db_pool: asyncpg.Pool) -> AsyncIterator[Callable[[], RunningIntake]]:
    running: list[RunningIntake] = []

    def start() -> RunningIntake:
        intake = DeliveryIntake(db_pool, group=GROUP, on_due=lambda: None)
        stop = asyncio.Event()
        running.append(RunningIntake(intake, stop, asyncio.create_task(intake.run(stop))))
        return running[-1]

    yield start
    for item in running:
        item.stop.set()
        await asyncio.gather(item.task, return_exceptions=True)


async def test_a_submission_after_the_intake_stopped_is_refused_at_once(
    run_intake: Callable[[], RunningIntake], make_merchant: MakeMerchant, db_pool: asyncpg.Pool
) -> None:
    running = run_intake()
    merchant = await make_merchant(NOWHERE)
    await running.intake.submit(
        payment_event(EventType.PAYMENT_CREATED, merchant.id, "pay_before", "created")
    )
    running.stop.set()
    await running.task
    late = payment_event(EventType.PAYMENT_CREATED, merchant.id, "pay_late", "created")
    # Before: it queued where no writer would take it, and the handler waited for its timeout.
    with pytest.raises(RetryableError):
        await asyncio.wait_for(running.intake.submit(late), WAIT_S)
    assert [row["event_type"] for row in await deliveries(db_pool, merchant.id)] == ["payment.created"]


async def test_a_submission_before_the_intake_started_is_refused_at_once(
    db_pool: asyncpg.Pool, make_merchant: MakeMerchant
) -> None:
    merchant = await make_merchant(NOWHERE)
    intake = DeliveryIntake(db_pool, group=GROUP, on_due=lambda: None)
    event = payment_event(EventType.PAYMENT_CREATED, merchant.id, "pay_early", "created")
    with pytest.raises(RetryableError):
        await asyncio.wait_for(intake.submit(event), WAIT_S)


async def test_handlers_waiting_when_the_intake_is_cancelled_fail_with_a_retryable_error(
    run_intake: Callable[[], RunningIntake], make_merchant: MakeMerchant, db_pool: asyncpg.Pool
) -> None:
    merchant = await make_merchant(NOWHERE)
    running = run_intake()
    async with db_pool.acquire() as blocker, blocker.transaction():
        # The intake's first statement reads the endpoints: hold it there, mid-commit.
        await blocker.execute("LOCK TABLE webhook_endpoints IN ACCESS EXCLUSIVE MODE")
        event = payment_event(EventType.PAYMENT_CREATED, merchant.id, "pay_cancelled", "created")
        waiting = asyncio.create_task(running.intake.submit(event))

        async def intake_blocked() -> bool:
            blocked: bool = await db_pool.fetchval(
                """SELECT EXISTS (SELECT FROM pg_stat_activity
                                  WHERE wait_event_type = 'Lock' AND query LIKE '%FROM webhook_endpoints%')"""
            )
            return blocked

        await eventually(intake_blocked, timeout=WAIT_S, message="the intake waits on the lock")
        running.task.cancel()  # the supervisor's hard deadline
        # Before: the handler's wait was cancelled, which the consumer takes for its own shutdown.
        outcome = (await asyncio.wait_for(asyncio.gather(waiting, return_exceptions=True), WAIT_S))[0]
        assert isinstance(outcome, RetryableError), repr(outcome)
    await asyncio.gather(running.task, return_exceptions=True)


async def test_an_event_the_database_refuses_fails_alone_and_the_rest_of_its_batch_is_written(
    run_intake: Callable[[], RunningIntake], make_merchant: MakeMerchant, db_pool: asyncpg.Pool
) -> None:
    running = run_intake()
    merchant = await make_merchant(NOWHERE)
    good = payment_event(EventType.PAYMENT_CREATED, merchant.id, "pay_good", "created")
    # A NUL in the payment id (its ordering key): no text column can hold it.
    refused = payment_event(EventType.PAYMENT_CREATED, merchant.id, "pay_\x00bad", "created")
    also_good = payment_event(EventType.PAYMENT_CREATED, merchant.id, "pay_also_good", "created")
    outcomes = await asyncio.gather(
        *(running.intake.submit(event) for event in (good, refused, also_good)), return_exceptions=True
    )
    assert outcomes[0] is None and outcomes[2] is None
    assert isinstance(outcomes[1], asyncpg.PostgresError), repr(outcomes[1])
    written = {str(row["event_id"]) for row in await deliveries(db_pool, merchant.id)}
    assert written == {good.id, also_good.id}


async def test_outcomes_are_kept_and_retried_until_written(
    database_url: str, db_pool: asyncpg.Pool, make_merchant: MakeMerchant
) -> None:
    merchant = await make_merchant(NOWHERE)
    delivery_id, token = f"msg_{uuid.uuid4().hex}", uuid.uuid4()
    await db_pool.execute(
        """INSERT INTO webhook_deliveries (id, merchant_id, endpoint_id, event_id, event_type, payload,
                                           event_at, due_at, next_retry_at, lease_token)
           VALUES ($1, $2, $3, $4, 'payment.created', '\\x7b7d', now(), now() + interval '1 minute',
                   now(), $5)""",
        delivery_id,
        merchant.id,
        merchant.endpoint_id,
        uuid.uuid4(),
        token,
    )
    # The recorder's statements give up after 50 ms: while the table is locked, every write fails.
    pool = await asyncpg.create_pool(
        database_url,
        min_size=1,
        max_size=2,
        server_settings={"statement_timeout": "50", "application_name": RECORDER_APP},
    )
    assert pool is not None
    recorder = OutcomeRecorder(pool, on_due=lambda: None)
    stop = asyncio.Event()
    recorder.start()
    running = asyncio.create_task(recorder.run(stop))
    try:
        async with db_pool.acquire() as blocker, blocker.transaction():
            await blocker.execute("LOCK TABLE webhook_deliveries IN ACCESS EXCLUSIVE MODE")
            recorder.record(
                AttemptOutcome(
                    delivery_id=delivery_id,
                    lease_token=token,
                    merchant_id=merchant.id,
                    endpoint_id=merchant.endpoint_id,
                    order_key=None,
                    ordering_seq=None,
                    status=DeliveryStatus.SUCCESS,
                    attempted=True,
                    first_attempt=True,
                    attempted_at=datetime.now(UTC),
                    duration_ms=3,
                    response_code=200,
                )
            )

            # Each write waits on the lock until its timeout; two different waits: it was retried.
            waits: set[datetime] = set()

            async def retried() -> bool:
                rows = await db_pool.fetch(
                    """SELECT query_start FROM pg_stat_activity
                       WHERE application_name = $1 AND wait_event_type = 'Lock'""",
                    RECORDER_APP,
                )
                waits.update(row["query_start"] for row in rows)
                return len(waits) >= 2

            await eventually(retried, timeout=WAIT_S, message="a refused write retried")
        await asyncio.wait_for(recorder.flushed(), WAIT_S)
        status = await db_pool.fetchval("SELECT status FROM webhook_deliveries WHERE id = $1", delivery_id)
        assert status == "success"
    finally:
        stop.set()
        await running
        await pool.close()
