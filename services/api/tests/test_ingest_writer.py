"""The provider ingest writer on real PostgreSQL: one record that cannot be stored fails alone,
answered 503, and the writers carry on (they used to die with it and leave every later webhook
hanging)."""

from __future__ import annotations

import asyncio

import asyncpg
import pytest

from paystream.errors import ServiceUnavailableError
from paystream_api.provider_webhooks.ingest import IngestRecord, IngestWriter


def record(event_id: str, event_type: str = "payment.captured") -> IngestRecord:
    return IngestRecord(
        provider="razorpay",
        event_id=event_id,
        event_type=event_type,
        merchant_id="mer_test_00000001",
        provider_account_id="pacc_test_razorpay",
        account_id=None,
        payload='{"event": "payment.captured"}',
    )


async def test_a_record_the_encoder_refuses_fails_alone_and_the_writers_carry_on(
    clean_db: str, db_pool: asyncpg.Pool
) -> None:
    writer = IngestWriter(db_pool, writers=2)
    writer.start()
    try:
        # A lone surrogate: what a non-UTF-8 byte becomes, and what orjson refuses to encode.
        poison = [record(f"evt_poison_{n}", event_type="payment.\udcff") for n in range(3)]
        good = [record(f"evt_good_{n}") for n in range(5)]
        async with asyncio.timeout(10):
            outcomes = await asyncio.gather(
                *(writer.submit(item) for item in [*poison, *good]), return_exceptions=True
            )
        assert all(isinstance(outcome, ServiceUnavailableError) for outcome in outcomes[:3])
        assert outcomes[3:] == [True] * 5
        async with asyncio.timeout(10):
            assert await writer.submit(record("evt_later")) is True
    finally:
        await writer.stop()
    stored = await db_pool.fetch("SELECT event_id FROM provider_events ORDER BY event_id")
    assert [row["event_id"] for row in stored] == sorted(["evt_later", *(f"evt_good_{n}" for n in range(5))])


async def test_submit_before_start_and_after_stop_is_503_at_once(db_pool: asyncpg.Pool) -> None:
    writer = IngestWriter(db_pool)
    with pytest.raises(ServiceUnavailableError):
        await asyncio.wait_for(writer.submit(record("evt_early")), timeout=5)
    writer.start()
    await writer.stop()
    with pytest.raises(ServiceUnavailableError):
        await asyncio.wait_for(writer.submit(record("evt_late")), timeout=5)
