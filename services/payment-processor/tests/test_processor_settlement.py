"""The processor's payment handlers and settlement scheduler against real PostgreSQL: accepting is
idempotent and never waits out the delay, settling emits exactly one final event per payment,
final states never change, an order takes one successful payment, refunds are processed, and the
scheduler wakes at the due time rather than on a polling interval."""

from __future__ import annotations

import asyncio
import random
import time
from typing import Any

import asyncpg
import pytest
from aiohttp import web

from payment_processor import payments
from payment_processor.keys import SCHEDULER, SETTINGS
from payment_processor.outcomes import OutcomePolicy
from payment_processor.settings import ProcessorSettings, SettlementSettings
from payment_processor.settlement import FALLBACK_CHECK_S, SettlementScheduler
from paystream import settings as common_settings
from paystream.consumer import HandlerRegistry, MessageContext
from paystream.errors import PermanentError, SettingsError
from paystream.events import ConsumerGroup, Event, EventType
from paystream.resources import PAYMENT_COLUMNS, payment_resource
from paystream.web import POOL
from paystream_devstack.testing import eventually

MERCHANT = "mer_test0000000001"
GROUP = ConsumerGroup.PAYMENT_PROCESSOR


def processor_env(database_url: str, redis_url: str, **overrides: str) -> dict[str, str]:
    return {
        "DATABASE_URL": database_url,
        "REDIS_URL": redis_url,
        "TEST_MODE": "true",
        "TEST_PROCESSING_DELAY": "0",
        "TEST_PAYMENT_SUCCESS": "true",
        **overrides,
    }


class Processor:
    """The handlers and the scheduler of one processor, wired as `worker.create_app` wires them."""

    def __init__(self, pool: asyncpg.Pool, settings: ProcessorSettings) -> None:
        self.app = web.Application()
        self.app[POOL] = pool
        self.app[SETTINGS] = settings
        self.scheduler = SettlementScheduler(
            pool, OutcomePolicy(settings.common.test_mode, settings.settlement), batch_size=200
        )
        self.app[SCHEDULER] = self.scheduler
        self.registry: HandlerRegistry = payments.build_registry(self.app)
        self.deliveries = 0

    async def deliver(self, event: Event) -> None:
        self.deliveries += 1
        await self.registry(event, MessageContext("payment:events", f"0-{self.deliveries}", GROUP, "test", 1))


@pytest.fixture
async def merchant(clean_db: str, db_pool: asyncpg.Pool) -> str:
    await db_pool.execute(
        "INSERT INTO merchants (id, name, email, api_key, api_secret_hash, webhook_secret) "
        "VALUES ($1, 'Test', 'test@example.com', 'key', 'hash', 'whsec')",
        MERCHANT,
    )
    return MERCHANT


@pytest.fixture
def make_processor(merchant: str, db_pool: asyncpg.Pool, database_url: str, redis_url: str) -> Any:
    def make(**env: str) -> Processor:
        return Processor(db_pool, ProcessorSettings.from_env(processor_env(database_url, redis_url, **env)))

    return make


async def insert_payment(
    db_pool: asyncpg.Pool, payment_id: str, *, method: str = "upi", order_ref: str | None = None
) -> dict[str, Any]:
    row = await db_pool.fetchrow(
        f"""INSERT INTO payments (id, merchant_id, order_id, order_ref, amount, currency, method, vpa,
                                  card_network, card_last4, status)
            VALUES ($1, $2, COALESCE($3, 'ref_' || $1), $3, 5000, 'INR', $4,
                    CASE WHEN $4 = 'upi' THEN 'u@bank' END,
                    CASE WHEN $4 = 'card' THEN 'visa' END, CASE WHEN $4 = 'card' THEN '1111' END, 'pending')
            RETURNING {PAYMENT_COLUMNS}""",
        payment_id,
        MERCHANT,
        order_ref,
        method,
    )
    assert row is not None
    return dict(payment_resource(row))


def created_event(payment: dict[str, Any]) -> Event:
    return Event(
        type=EventType.PAYMENT_CREATED,
        merchant_id=MERCHANT,
        invoice_id=payment["order_id"],
        data={"payment": {**payment, "status": "created"}},
    )


async def final_events(db_pool: asyncpg.Pool, event_type: str) -> list[Event]:
    rows = await db_pool.fetch("SELECT payload FROM outbox WHERE event_type = $1 ORDER BY id", event_type)
    return [Event.decode(row["payload"]) for row in rows]


async def test_accepting_is_idempotent(make_processor: Any, db_pool: asyncpg.Pool) -> None:
    processor = make_processor(TEST_PROCESSING_DELAY="60000")
    payment = await insert_payment(db_pool, "pay_accept00000001")
    event = created_event(payment)
    await processor.deliver(event)
    first = await db_pool.fetchval("SELECT process_after FROM payments WHERE id = $1", payment["id"])
    assert first is not None
    await processor.deliver(event)  # a redelivery
    await processor.deliver(created_event(payment))  # a copy with another event id
    assert await db_pool.fetchval("SELECT process_after FROM payments WHERE id = $1", payment["id"]) == first
    assert await db_pool.fetchval("SELECT count(*) FROM inbox WHERE consumer_group = $1", GROUP) == 2
    # Not due for a minute: nothing settles now.
    assert await processor.scheduler.settle_due() == 0
    assert await db_pool.fetchval("SELECT status FROM payments WHERE id = $1", payment["id"]) == "pending"


async def test_settling_emits_one_final_event_and_never_changes_it(
    make_processor: Any, db_pool: asyncpg.Pool
) -> None:
    processor = make_processor()
    payment = await insert_payment(db_pool, "pay_settle00000001")
    await processor.deliver(created_event(payment))
    assert await processor.scheduler.settle_due() == 1
    row = await db_pool.fetchrow(f"SELECT {PAYMENT_COLUMNS} FROM payments WHERE id = $1", payment["id"])
    assert row is not None and row["status"] == "success" and row["error_code"] is None
    (event,) = await final_events(db_pool, "payment.success")
    assert event.data == {"payment": payment_resource(row)}
    assert event.invoice_id == payment["order_id"] and event.merchant_id == MERCHANT

    # Redelivered, re-scheduled by hand, settled again: nothing moves.
    await processor.deliver(created_event(payment))
    await db_pool.execute("UPDATE payments SET process_after = now() - interval '1 second'")
    assert await processor.scheduler.settle_due() == 0
    assert len(await final_events(db_pool, "payment.success")) == 1
    assert await db_pool.fetchval("SELECT status FROM payments WHERE id = $1", payment["id"]) == "success"


async def test_test_mode_failure(make_processor: Any, db_pool: asyncpg.Pool) -> None:
    processor = make_processor(TEST_PAYMENT_SUCCESS="false")
    payment = await insert_payment(db_pool, "pay_failure0000001", method="card")
    await processor.deliver(created_event(payment))
    await processor.scheduler.settle_due()
    (event,) = await final_events(db_pool, "payment.failed")
    settled = event.data["payment"]
    assert settled["status"] == "failed" and settled["id"] == payment["id"]
    assert settled["error_code"] == "PAYMENT_DECLINED" and settled["error_description"]
    assert await final_events(db_pool, "payment.success") == []


async def test_an_order_takes_one_successful_payment(make_processor: Any, db_pool: asyncpg.Pool) -> None:
    await db_pool.execute(
        "INSERT INTO orders (id, merchant_id, amount, currency, status) VALUES ('order_one', $1, 5000, 'INR', 'attempted')",
        MERCHANT,
    )
    processor = make_processor()
    first = await insert_payment(db_pool, "pay_order000000001", order_ref="order_one")
    second = await insert_payment(db_pool, "pay_order000000002", order_ref="order_one")
    await processor.deliver(created_event(first))
    await processor.deliver(created_event(second))
    assert await processor.scheduler.settle_due() == 2
    statuses = dict(await db_pool.fetch("SELECT status, error_code FROM payments ORDER BY process_after"))
    assert statuses == {"success": None, "failed": "ORDER_ALREADY_PAID"}
    order = await db_pool.fetchrow("SELECT status, amount_paid FROM orders WHERE id = 'order_one'")
    assert order is not None and dict(order) == {"status": "paid", "amount_paid": 5000}

    late = await insert_payment(db_pool, "pay_order000000003", order_ref="order_one")
    await processor.deliver(created_event(late))
    await processor.scheduler.settle_due()
    assert (
        await db_pool.fetchval("SELECT error_code FROM payments WHERE id = $1", late["id"])
        == "ORDER_ALREADY_PAID"
    )


async def test_refunds_are_processed_once(make_processor: Any, db_pool: asyncpg.Pool) -> None:
    processor = make_processor()
    payment = await insert_payment(db_pool, "pay_refund00000001")
    await db_pool.execute("UPDATE payments SET status = 'success', amount_refunded = 1000")
    await db_pool.execute(
        "INSERT INTO refunds (id, merchant_id, payment_id, amount, currency, status) "
        "VALUES ('rfnd_0000000000000001', $1, $2, 1000, 'INR', 'pending')",
        MERCHANT,
        payment["id"],
    )
    event = Event(
        type=EventType.REFUND_CREATED, merchant_id=MERCHANT, data={"refund": {"id": "rfnd_0000000000000001"}}
    )
    await processor.deliver(event)
    await processor.deliver(event)
    assert await processor.scheduler.settle_due() == 1
    assert await processor.scheduler.settle_due() == 0
    (processed,) = await final_events(db_pool, "refund.processed")
    refund = processed.data["refund"]
    assert refund["status"] == "processed" and refund["processed_at"] is not None
    assert processed.invoice_id == payment["order_id"]


async def test_malformed_events_are_permanent_errors(make_processor: Any) -> None:

    processor = make_processor()
    for data in ({}, {"payment": "pay_x"}, {"payment": {"id": 5}}):
        with pytest.raises(PermanentError):
            await processor.deliver(Event(type=EventType.PAYMENT_CREATED, merchant_id=MERCHANT, data=data))


async def test_handlers_never_wait_out_the_delay(make_processor: Any, db_pool: asyncpg.Pool) -> None:
    """A thousand payments accepted at once, each with a 60 s delay: every handler returns at once,
    and once due they settle in batches, exactly one final event each."""
    processor = make_processor(TEST_PROCESSING_DELAY="60000")
    await db_pool.execute(
        """INSERT INTO payments (id, merchant_id, order_id, amount, currency, method, vpa, status)
           SELECT 'pay_bulk' || lpad(n::text, 12, '0'), $1, 'ref', 100, 'INR', 'upi', 'u@bank', 'pending'
           FROM generate_series(1, 1000) AS n""",
        MERCHANT,
    )
    rows = await db_pool.fetch(f"SELECT {PAYMENT_COLUMNS} FROM payments")
    semaphore = asyncio.Semaphore(64)

    async def deliver(event: Event) -> None:
        async with semaphore:
            await processor.deliver(event)

    started = time.monotonic()
    await asyncio.gather(*(deliver(created_event(dict(payment_resource(row)))) for row in rows))
    assert time.monotonic() - started < 30  # far less than one payment's delay
    assert await db_pool.fetchval("SELECT count(*) FROM payments WHERE process_after IS NULL") == 0

    await db_pool.execute("UPDATE payments SET process_after = now() - interval '1 second'")
    assert await processor.scheduler.settle_due() == 1000
    counts = await db_pool.fetch(
        """SELECT count(*) AS events FROM outbox WHERE event_type = 'payment.success'
           GROUP BY convert_from(payload, 'UTF8')::jsonb -> 'data' -> 'payment' ->> 'id'"""
    )
    assert len(counts) == 1000 and {row["events"] for row in counts} == {1}


async def test_scheduler_wakes_at_the_due_time(make_processor: Any, db_pool: asyncpg.Pool) -> None:
    processor = make_processor(TEST_PROCESSING_DELAY="300")
    stop = asyncio.Event()
    runner = asyncio.create_task(processor.scheduler.run(stop))
    try:
        # Let the scheduler find nothing and go to sleep for its fallback interval.
        await asyncio.sleep(0.1)
        for n in range(2):
            payment = await insert_payment(db_pool, f"pay_wake0000000000{n}")
            accepted_at = time.monotonic()
            await processor.deliver(created_event(payment))

            async def settled(payment_id: str = payment["id"]) -> bool:
                return (
                    await db_pool.fetchval("SELECT status FROM payments WHERE id = $1", payment_id)
                    == "success"
                )

            await eventually(settled, timeout=FALLBACK_CHECK_S + 3, interval=0.01)
            took = time.monotonic() - accepted_at
            assert 0.29 <= took < 0.3 + FALLBACK_CHECK_S * 0.5, took
    finally:
        stop.set()
        await asyncio.wait_for(runner, 5)


def test_production_policy() -> None:
    policy = OutcomePolicy(
        common_settings.TestModeSettings(enabled=False), SettlementSettings(), random.Random(7)
    )
    delays = [policy.delay_seconds() for _ in range(2000)]
    assert min(delays) >= 5.0 and max(delays) <= 10.0 and max(delays) - min(delays) > 4.5
    for method, rate in (("upi", 0.90), ("card", 0.95)):
        outcomes = [policy.payment_outcome(method) for _ in range(20_000)]
        successes = sum(outcome.succeeded for outcome in outcomes) / len(outcomes)
        assert abs(successes - rate) < 0.01, (method, successes)
        failure = next(outcome for outcome in outcomes if not outcome.succeeded)
        assert failure.error_code == "PAYMENT_DECLINED" and failure.error_description


def test_test_mode_policy() -> None:
    policy = OutcomePolicy(
        common_settings.TestModeSettings(enabled=True, processing_delay_ms=250, payment_success=False),
        SettlementSettings(),
    )
    assert policy.delay_seconds() == 0.25
    assert not policy.payment_outcome("upi").succeeded


@pytest.mark.parametrize(
    "env",
    [
        {"PROCESSING_DELAY_MIN_MS": "9000", "PROCESSING_DELAY_MAX_MS": "5000"},
        {"UPI_SUCCESS_RATE": "1.5"},
        {"CARD_SUCCESS_RATE": "-0.1"},
        {"SETTLEMENT_BATCH_SIZE": "0"},
    ],
)
def test_bad_settlement_settings_name_the_variable(env: dict[str, str]) -> None:
    with pytest.raises(SettingsError) as raised:
        SettlementSettings.from_env(env)
    assert any(name in str(raised.value) for name in env)
