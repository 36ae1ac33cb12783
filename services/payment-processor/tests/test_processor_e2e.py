"""End to end with real processes (`python -m paystream_api`, `python -m payment_processor`), real
Redis and PostgreSQL: a payment's whole life and its events in stream order, failures in test mode,
the jobs status endpoint, and a processor killed with SIGKILL mid-delay that still settles every
payment exactly once after a restart."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import aiohttp
import asyncpg
import pytest
import redis.asyncio as aioredis

from paystream.events import Event
from paystream_devstack.testing import ServiceProcess, eventually

AUTH = {"X-Api-Key": "key_test_abc123", "X-Api-Secret": "secret_test_xyz789"}
UPI = {
    "order_id": "order_test_async",
    "amount": 50000,
    "currency": "INR",
    "method": "upi",
    "vpa": "user@okhdfc",
}

Spawn = Callable[..., ServiceProcess]


@pytest.fixture
async def session() -> Any:
    async with aiohttp.ClientSession(headers=AUTH) as client:
        yield client


async def stream_events(redis: aioredis.Redis) -> list[Event]:
    return [Event.from_fields(fields) for _, fields in await redis.xrange("payment:events")]


def object_id(event: Event) -> str:
    body = event.data.get("payment") or event.data.get("refund") or {}
    return str(body.get("id"))


async def jobs_status(session: aiohttp.ClientSession, base: str) -> dict[str, Any]:
    async with session.get(f"{base}/api/v1/test/jobs/status") as response:
        assert response.status == 200
        status: dict[str, Any] = await response.json()
        return status


async def test_payment_life_and_event_order(
    service_env: dict[str, str],
    spawn_service: Spawn,
    redis: aioredis.Redis,
    session: aiohttp.ClientSession,
) -> None:
    spawn_service("paystream_api", service_env)
    base = f"http://127.0.0.1:{service_env['API_PORT']}"
    # No processor yet: its group does not exist, so its worker counts as stopped.
    assert (await jobs_status(session, base))["worker_status"] == "stopped"
    spawn_service("payment_processor", service_env, TEST_PROCESSING_DELAY="200")

    async with session.post(f"{base}/api/v1/payments", json=UPI) as response:
        assert response.status == 201
        payment = await response.json()
    assert payment["status"] == "pending"

    async def settled() -> dict[str, Any] | None:
        async with session.get(f"{base}/api/v1/payments/{payment['id']}") as response:
            body: dict[str, Any] = await response.json()
            return body if body["status"] != "pending" else None

    final = await eventually(settled, timeout=10)
    assert final["status"] == "success" and final["error_code"] is None

    async with session.post(f"{base}/api/v1/payments/{payment['id']}/capture") as response:
        assert response.status == 200
        assert (await response.json())["captured"] is True
    async with session.post(
        f"{base}/api/v1/payments/{payment['id']}/refunds", json={"amount": 1500}
    ) as response:
        assert response.status == 201
        refund = await response.json()

    async def refund_processed() -> dict[str, Any] | None:
        async with session.get(f"{base}/api/v1/refunds/{refund['id']}") as response:
            body: dict[str, Any] = await response.json()
            return body if body["status"] == "processed" else None

    processed = await eventually(refund_processed, timeout=10)
    assert processed["processed_at"] is not None

    async def all_published() -> list[Event] | None:
        events = [e for e in await stream_events(redis) if object_id(e) in (payment["id"], refund["id"])]
        return events if len(events) == 6 else None

    events = await eventually(all_published, timeout=10)
    assert [e.type.value for e in events] == [
        "payment.created",
        "payment.pending",
        "payment.success",
        "payment.captured",
        "refund.created",
        "refund.processed",
    ]
    assert events[2].data == {"payment": final}
    assert events[5].data == {"refund": processed}
    assert {e.invoice_id for e in events} == {"order_test_async"}

    status = await jobs_status(session, base)
    assert status["worker_status"] == "running"
    assert status["completed"] == 2 and status["failed"] == 0
    assert set(status) == {"pending", "processing", "completed", "failed", "worker_status"}


async def test_payments_fail_when_test_mode_says_so(
    service_env: dict[str, str], spawn_service: Spawn, session: aiohttp.ClientSession
) -> None:
    spawn_service("paystream_api", service_env)
    spawn_service("payment_processor", service_env, TEST_PAYMENT_SUCCESS="false", TEST_PROCESSING_DELAY="50")
    base = f"http://127.0.0.1:{service_env['API_PORT']}"
    card = {
        "number": "5555555555554444",
        "expiry_month": 1,
        "expiry_year": datetime.now(UTC).year + 2,
        "cvv": "123",
        "holder_name": "A",
    }
    async with session.post(
        f"{base}/api/v1/payments",
        json={**{k: v for k, v in UPI.items() if k != "vpa"}, "method": "card", "card": card},
    ) as response:
        payment = await response.json()

    async def failed() -> dict[str, Any] | None:
        async with session.get(f"{base}/api/v1/payments/{payment['id']}") as response:
            body: dict[str, Any] = await response.json()
            return body if body["status"] == "failed" else None

    final = await eventually(failed, timeout=10)
    assert final["error_code"] == "PAYMENT_DECLINED" and final["error_description"]
    async with session.post(f"{base}/api/v1/payments/{payment['id']}/capture") as response:
        assert response.status == 400
    async with session.post(
        f"{base}/api/v1/payments/{payment['id']}/refunds", json={"amount": 1}
    ) as response:
        assert response.status == 400
    assert (await jobs_status(session, base))["failed"] == 1


@pytest.mark.chaos
async def test_processor_killed_mid_delay_settles_each_payment_exactly_once(
    service_env: dict[str, str],
    spawn_service: Spawn,
    redis: aioredis.Redis,
    db_pool: asyncpg.Pool,
    session: aiohttp.ClientSession,
) -> None:
    spawn_service("paystream_api", service_env)
    processor = spawn_service("payment_processor", service_env, TEST_PROCESSING_DELAY="3000")
    base = f"http://127.0.0.1:{service_env['API_PORT']}"
    ids = []
    for n in range(40):
        async with session.post(f"{base}/api/v1/payments", json={**UPI, "amount": 100 + n}) as response:
            assert response.status == 201
            ids.append((await response.json())["id"])

    async def all_accepted() -> bool:
        waiting = await db_pool.fetchval("SELECT count(*) FROM payments WHERE process_after IS NULL")
        return waiting == 0

    await eventually(all_accepted, timeout=10)
    processor.kill()  # SIGKILL, in the middle of every payment's 3 s delay
    assert await db_pool.fetchval("SELECT count(*) FROM payments WHERE status = 'pending'") == 40
    status = await jobs_status(session, base)
    assert status["processing"] >= 40 and status["completed"] == 0

    processor.start()

    async def all_settled() -> bool:
        return await db_pool.fetchval("SELECT count(*) FROM payments WHERE status = 'success'") == 40

    await eventually(all_settled, timeout=20, interval=0.1)

    async def published() -> Counter[str] | None:
        counts = Counter(
            object_id(e) for e in await stream_events(redis) if e.type.value == "payment.success"
        )
        return counts if sum(counts.values()) >= 40 else None

    in_stream = await eventually(published, timeout=10)
    assert in_stream == Counter(dict.fromkeys(ids, 1))
    in_outbox = await db_pool.fetch(
        """SELECT convert_from(payload, 'UTF8')::jsonb -> 'data' -> 'payment' ->> 'id' AS id, count(*) AS n
           FROM outbox WHERE event_type = 'payment.success' GROUP BY 1"""
    )
    assert {row["id"]: row["n"] for row in in_outbox} == dict.fromkeys(ids, 1)
