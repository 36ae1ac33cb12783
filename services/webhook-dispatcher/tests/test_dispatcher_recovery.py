"""Recovery of an endpoint and the attempts in flight at that moment.

`POST /api/v1/webhook-endpoints/{id}/recover` re-sends the endpoint's failed deliveries of a window
and marks the ones whose attempt is in flight (`recover_at`, migration 0047), since that attempt
was made while the endpoint was failing. The API is not in this process: the tests write what it
writes (the mark; the endpoint row's lock, held while it recovers), against a real dispatcher or
its recorder, a real receiver and the real delivery log.
"""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime

import asyncpg
from aiohttp import web
from dispatcher_testkit import MakeMerchant, MakeReceiver, ReceivedRequest, StartDispatcher, delivery

from paystream.webhooks import DUE_CHANNEL, new_delivery_id, webhook_body
from paystream_devstack.testing import eventually
from webhook_dispatcher.models import AttemptOutcome, DeliveryStatus
from webhook_dispatcher.recorder import OutcomeRecorder
from webhook_dispatcher.settings import TEST_RETRY_INTERVALS

LAST_ATTEMPT = len(TEST_RETRY_INTERVALS)
RECORDER_APP = "recovery-test-recorder"


async def insert_delivery(
    pool: asyncpg.Pool, merchant_id: str, endpoint_id: str, *, attempts: int, lease_token: uuid.UUID | None
) -> str:
    """A delivery that has failed `attempts` times, due now (or leased, when given a token)."""
    delivery_id = new_delivery_id()
    now = datetime.now(UTC)
    await pool.execute(
        """INSERT INTO webhook_deliveries (id, merchant_id, endpoint_id, event_id, event_type, payload,
                                           event_at, attempts, error, due_at, next_retry_at, lease_token)
           VALUES ($1, $2, $3, $4, 'payment.success', $5, $6, $7, 'connection failed', now(), now(), $8)""",
        delivery_id,
        merchant_id,
        endpoint_id,
        uuid.uuid4(),
        webhook_body("payment.success", now, {"payment": {"id": "pay_RECOVER0000001"}}),
        now,
        attempts,
        lease_token,
    )
    return delivery_id


async def test_a_last_attempt_in_flight_when_its_endpoint_is_recovered_is_sent_again_not_failed(
    make_receiver: MakeReceiver,
    make_merchant: MakeMerchant,
    start_dispatcher: StartDispatcher,
    db_pool: asyncpg.Pool,
) -> None:
    answer = asyncio.Event()

    async def fails_once_when_told(_request: ReceivedRequest, count: int) -> web.StreamResponse:
        if count == 1:
            await answer.wait()  # the attempt in flight while the merchant recovers the endpoint
            return web.Response(status=503, text="still starting")
        return web.Response(text="ok")

    receiver = await make_receiver(["whsec_test_abc123"], fails_once_when_told)
    merchant = await make_merchant(receiver.url)
    delivery_id = await insert_delivery(
        db_pool, merchant.id, merchant.endpoint_id, attempts=LAST_ATTEMPT - 1, lease_token=None
    )
    await start_dispatcher()
    await db_pool.execute("SELECT pg_notify($1, '')", DUE_CHANNEL)
    await eventually(lambda: receiver.requests, timeout=10, message="the last attempt is in flight")

    # What the API's recovery writes for it.
    marked = await db_pool.execute(
        """UPDATE webhook_deliveries SET recover_at = now()
           WHERE id = $1 AND status = 'pending' AND lease_token IS NOT NULL""",
        delivery_id,
    )
    assert marked == "UPDATE 1"
    answer.set()

    async def succeeded() -> asyncpg.Record | None:
        row = await delivery(db_pool, delivery_id)
        return row if row["status"] == "success" else None

    row = await eventually(succeeded, timeout=10, message="the delivery sent again after its last failure")
    assert row["attempts"] == LAST_ATTEMPT + 1 and row["recover_at"] is None, dict(row)
    assert [r.webhook_id for r in receiver.requests] == [delivery_id, delivery_id]
    assert receiver.requests[0].body == receiver.requests[1].body


async def test_a_failure_for_good_written_while_its_endpoint_is_being_recovered_sees_the_recovery(
    database_url: str, db_pool: asyncpg.Pool, make_merchant: MakeMerchant
) -> None:
    """The race the mark alone leaves open: the recovery's transaction does not see the delivery as
    failed (its outcome is not committed yet) and marks nothing (the attempt is over). The recorder
    therefore writes a failure for good only after any recovery of the endpoint in progress, and
    then sees what it wrote."""
    merchant = await make_merchant("http://127.0.0.1:9/hooks")
    token = uuid.uuid4()
    delivery_id = await insert_delivery(
        db_pool, merchant.id, merchant.endpoint_id, attempts=LAST_ATTEMPT - 1, lease_token=token
    )
    pool = await asyncpg.create_pool(
        database_url, min_size=1, max_size=2, server_settings={"application_name": RECORDER_APP}
    )
    assert pool is not None
    recorder = OutcomeRecorder(pool, on_due=lambda: None)
    stop = asyncio.Event()
    recorder.start()
    running = asyncio.create_task(recorder.run(stop))
    try:
        async with db_pool.acquire() as api, api.transaction():
            # The recovery holds the endpoint row from its start to its commit.
            await api.execute(
                "SELECT 1 FROM webhook_endpoints WHERE id = $1 FOR UPDATE", merchant.endpoint_id
            )
            recorder.record(
                AttemptOutcome(
                    delivery_id=delivery_id,
                    lease_token=token,
                    merchant_id=merchant.id,
                    endpoint_id=merchant.endpoint_id,
                    order_key=None,
                    ordering_seq=None,
                    status=DeliveryStatus.FAILED,
                    attempted=True,
                    first_attempt=False,
                    attempted_at=datetime.now(UTC),
                    duration_ms=1,
                    error="connection failed",
                )
            )

            # Sentinel: the recorder waits for the recovery's lock.
            async def recorder_waits() -> bool:
                waiting = await db_pool.fetchval(
                    """SELECT count(*) FROM pg_stat_activity
                       WHERE application_name = $1 AND wait_event_type = 'Lock'""",
                    RECORDER_APP,
                )
                return bool(waiting)

            assert await eventually(recorder_waits, timeout=10, message="the outcome waits for the recovery")
            # Meanwhile the recovery saw the delivery pending and in flight, and marked it.
            await api.execute("UPDATE webhook_deliveries SET recover_at = now() WHERE id = $1", delivery_id)
        await asyncio.wait_for(recorder.flushed(), timeout=10)
    finally:
        stop.set()
        await running
        await pool.close()

    row = await delivery(db_pool, delivery_id)
    assert (row["status"], row["attempts"], row["lease_token"], row["recover_at"]) == (
        "pending",
        LAST_ATTEMPT,
        None,
        None,
    ), dict(row)
    assert row["due_at"] is not None and row["due_at"] == row["next_retry_at"]
    assert row["error"] == "connection failed"


async def test_without_a_recovery_the_last_failure_is_final_and_clears_nothing_else(
    db_pool: asyncpg.Pool, make_merchant: MakeMerchant
) -> None:
    merchant = await make_merchant("http://127.0.0.1:9/hooks")
    tokens = [uuid.uuid4(), uuid.uuid4()]
    last, earlier = [
        await insert_delivery(
            db_pool, merchant.id, merchant.endpoint_id, attempts=attempts, lease_token=token
        )
        for attempts, token in zip((LAST_ATTEMPT - 1, 1), tokens, strict=True)
    ]
    # A mark on a delivery whose attempt is not its last changes nothing but is cleared.
    await db_pool.execute("UPDATE webhook_deliveries SET recover_at = now() WHERE id = $1", earlier)
    recorder = OutcomeRecorder(db_pool, on_due=lambda: None)
    stop = asyncio.Event()
    recorder.start()
    running = asyncio.create_task(recorder.run(stop))
    try:
        for delivery_id, token, retry_in_s in ((last, tokens[0], None), (earlier, tokens[1], 10.0)):
            recorder.record(
                AttemptOutcome(
                    delivery_id=delivery_id,
                    lease_token=token,
                    merchant_id=merchant.id,
                    endpoint_id=merchant.endpoint_id,
                    order_key=None,
                    ordering_seq=None,
                    status=DeliveryStatus.PENDING if retry_in_s else DeliveryStatus.FAILED,
                    attempted=True,
                    first_attempt=False,
                    attempted_at=datetime.now(UTC),
                    duration_ms=1,
                    error="connection failed",
                    retry_in_s=retry_in_s,
                )
            )
        await asyncio.wait_for(recorder.flushed(), timeout=10)
    finally:
        stop.set()
        await running
    failed, retrying = await delivery(db_pool, last), await delivery(db_pool, earlier)
    assert (failed["status"], failed["due_at"], failed["recover_at"]) == ("failed", None, None)
    assert (retrying["status"], retrying["recover_at"]) == ("pending", None)
    wait_s = (retrying["due_at"] - retrying["last_attempt_at"]).total_seconds()
    assert 9.5 < wait_s < 10.5, wait_s
