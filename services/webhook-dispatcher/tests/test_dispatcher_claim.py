"""The scheduler's claim (CLAIM_DUE) on PostgreSQL: what it takes, and what it reads to take it.

The claim must cost the endpoints it visits plus the rows it takes, not the backlog: an endpoint with
thousands of due deliveries at its in-flight limit must neither hide another endpoint's due row nor
make every claim read its backlog."""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import asyncpg
import pytest
from dispatcher_testkit import SeededMerchant

from webhook_dispatcher.scheduler import CLAIM_DUE

CAP = 32
LEASE_S = 30.0
UNUSED_URL = "http://127.0.0.1:9/unused"


async def add_due(pool: asyncpg.Pool, merchant: SeededMerchant, count: int, *, age_s: float = 0.0) -> None:
    """`count` pending deliveries of the merchant's endpoint, due since `age_s` seconds ago."""
    await pool.execute(
        """INSERT INTO webhook_deliveries (id, merchant_id, endpoint_id, event_id, event_type, payload,
                                           event_at, due_at, next_retry_at)
           SELECT 'whd_' || md5(random()::text), $1, $2, gen_random_uuid(), 'payment.success', '\\x7b7d',
                  now(), now() - make_interval(secs => $3 + n * 0.001), now()
           FROM generate_series(1, $4) AS n""",
        merchant.id,
        merchant.endpoint_id,
        age_s,
        count,
    )
    await pool.execute("ANALYZE webhook_deliveries")


async def explain_claim(
    pool: asyncpg.Pool, *, wanted: int, busy: Sequence[tuple[str, int]], cursor: str = ""
) -> tuple[list[str], int]:
    """Run the claim inside a transaction that is rolled back: (endpoint ids taken, buffers read)."""
    args: list[Any] = [
        wanted,
        LEASE_S,
        CAP,
        [endpoint for endpoint, _ in busy],
        [load for _, load in busy],
        cursor,
        wanted + len(busy) + 32,
        uuid.uuid4(),
    ]
    async with pool.acquire() as conn:
        transaction = conn.transaction()
        await transaction.start()
        try:
            taken = [row["endpoint_id"] for row in await conn.fetch(CLAIM_DUE, *args)]
        finally:
            await transaction.rollback()
        transaction = conn.transaction()
        await transaction.start()
        try:
            # The pool decodes json itself.
            plan = await conn.fetchval(f"EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) {CLAIM_DUE}", *args)
        finally:
            await transaction.rollback()
    top = plan[0]["Plan"]
    return taken, int(top["Shared Hit Blocks"]) + int(top["Shared Read Blocks"])


@pytest.fixture
async def two_endpoints(
    make_merchant: Callable[..., Awaitable[SeededMerchant]],
) -> tuple[SeededMerchant, SeededMerchant]:
    return await make_merchant(UNUSED_URL), await make_merchant(UNUSED_URL)


async def test_a_saturated_backlog_neither_hides_another_endpoint_nor_grows_the_claims_reads(
    db_pool: asyncpg.Pool, two_endpoints: tuple[SeededMerchant, SeededMerchant]
) -> None:
    backlogged, other = two_endpoints
    await add_due(db_pool, other, 1)
    reads: list[int] = []
    for backlog in (200, 4_000):
        await add_due(db_pool, backlogged, backlog - (200 if backlog > 200 else 0), age_s=60)
        taken, buffers = await explain_claim(db_pool, wanted=64, busy=[(backlogged.endpoint_id, CAP)])
        assert taken == [other.endpoint_id], f"backlog {backlog}: took {taken}"
        reads.append(buffers)
    # Twenty times the backlog: the same reads, give or take an index page or two.
    assert reads[1] <= reads[0] + 10, f"buffers read with a backlog of 200 and of 4,000: {reads}"


async def test_each_endpoint_gets_at_most_its_free_slots_oldest_first(
    db_pool: asyncpg.Pool, two_endpoints: tuple[SeededMerchant, SeededMerchant]
) -> None:
    first, second = two_endpoints
    await add_due(db_pool, first, 100, age_s=10)
    await add_due(db_pool, second, 100)
    taken, _ = await explain_claim(db_pool, wanted=256, busy=[(first.endpoint_id, CAP - 5)])
    assert taken.count(first.endpoint_id) == 5
    assert taken.count(second.endpoint_id) == CAP
    # The batch is the oldest of what the endpoints may take: the first endpoint's five lead.
    taken, _ = await explain_claim(db_pool, wanted=3, busy=[(first.endpoint_id, CAP - 5)])
    assert taken == [first.endpoint_id] * 3


async def test_the_cursor_serves_endpoints_in_turn(
    db_pool: asyncpg.Pool, make_merchant: Callable[..., Awaitable[SeededMerchant]]
) -> None:
    merchants = [await make_merchant(UNUSED_URL) for _ in range(3)]
    for merchant in merchants:
        await add_due(db_pool, merchant, 3)
    ordered = sorted(merchant.endpoint_id for merchant in merchants)
    # After the cursor only the endpoints that follow it are visited.
    taken, _ = await explain_claim(db_pool, wanted=256, busy=[], cursor=ordered[0])
    assert sorted(set(taken)) == ordered[1:]
    taken, _ = await explain_claim(db_pool, wanted=256, busy=[], cursor=ordered[-1])
    assert taken == []
