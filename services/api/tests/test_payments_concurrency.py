"""Concurrency against a real API process (`python -m paystream_api`) and real PostgreSQL: one
Idempotency-Key under 50 parallel requests creates one payment; 20 parallel partial refunds never
exceed the payment."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import aiohttp
import asyncpg
import pytest

from paystream_devstack.testing import ServiceProcess

AUTH = {"X-Api-Key": "key_test_abc123", "X-Api-Secret": "secret_test_xyz789"}
PAYMENT = {
    "order_id": "ord_test_001",
    "amount": 10000,
    "currency": "INR",
    "method": "upi",
    "vpa": "user@paytm",
}


@pytest.fixture
def api_url(service_env: dict[str, str], spawn_service: Callable[..., ServiceProcess]) -> str:
    spawn_service("paystream_api", service_env)
    return f"http://127.0.0.1:{service_env['API_PORT']}"


async def test_fifty_concurrent_requests_with_one_key_create_one_payment(
    api_url: str, db_pool: asyncpg.Pool
) -> None:
    headers = {**AUTH, "Idempotency-Key": "checkout-7f3a"}
    connector = aiohttp.TCPConnector(limit=50)
    async with aiohttp.ClientSession(connector=connector) as session:
        start = asyncio.Event()

        async def attempt() -> tuple[int, dict[str, Any]]:
            await start.wait()
            async with session.post(f"{api_url}/api/v1/payments", json=PAYMENT, headers=headers) as response:
                return response.status, await response.json()

        tasks = [asyncio.create_task(attempt()) for _ in range(50)]
        await asyncio.sleep(0)
        start.set()
        results = await asyncio.gather(*tasks)

        created = [body for status, body in results if status == 201]
        in_progress = [body for status, body in results if status == 409]
        assert len(created) + len(in_progress) == 50, [status for status, _ in results]
        assert created, "no request created the payment"
        assert len({body["id"] for body in created}) == 1
        assert all(body["error"]["code"] == "IDEMPOTENCY_KEY_IN_USE" for body in in_progress)

        async with session.post(f"{api_url}/api/v1/payments", json=PAYMENT, headers=headers) as replay:
            assert replay.status == 201
            assert (await replay.json())["id"] == created[0]["id"]

    assert await db_pool.fetchval("SELECT count(*) FROM payments") == 1
    assert await db_pool.fetchval("SELECT count(*) FROM outbox WHERE event_type = 'payment.created'") == 1
    assert await db_pool.fetchval("SELECT count(*) FROM outbox WHERE event_type = 'payment.pending'") == 1


async def test_twenty_concurrent_partial_refunds_never_exceed_the_payment(
    api_url: str, db_pool: asyncpg.Pool
) -> None:
    async with aiohttp.ClientSession() as session:
        async with session.post(f"{api_url}/api/v1/payments", json=PAYMENT, headers=AUTH) as response:
            payment = await response.json()
        await db_pool.execute("UPDATE payments SET status = 'success' WHERE id = $1", payment["id"])
        start = asyncio.Event()

        async def attempt() -> tuple[int, dict[str, Any]]:
            await start.wait()
            async with session.post(
                f"{api_url}/api/v1/payments/{payment['id']}/refunds", json={"amount": 700}, headers=AUTH
            ) as response:
                return response.status, await response.json()

        tasks = [asyncio.create_task(attempt()) for _ in range(20)]
        await asyncio.sleep(0)
        start.set()
        results = await asyncio.gather(*tasks)

    statuses = sorted(status for status, _ in results)
    # 14 x 700 = 9800 fits in 10000; a 15th would not.
    assert statuses == [201] * 14 + [400] * 6
    assert all(
        body["error"]["code"] == "REFUND_AMOUNT_EXCEEDS_REFUNDABLE"
        for status, body in results
        if status == 400
    )
    assert (
        await db_pool.fetchval("SELECT sum(amount) FROM refunds WHERE payment_id = $1", payment["id"]) == 9800
    )
    assert await db_pool.fetchval("SELECT amount_refunded FROM payments WHERE id = $1", payment["id"]) == 9800
    assert await db_pool.fetchval("SELECT count(*) FROM outbox WHERE event_type = 'refund.created'") == 14
