"""Delivery-log upkeep against the real table: retention, and the safety net for held deliveries."""

from __future__ import annotations

import asyncpg
from dispatcher_testkit import MakeMerchant, SeededMerchant

from webhook_dispatcher.upkeep import purge_finished, release_orphaned_holds


async def insert(
    pool: asyncpg.Pool,
    merchant: SeededMerchant,
    delivery_id: str,
    *,
    status: str = "pending",
    age_days: int = 0,
    attempts: int = 0,
    held: bool = False,
    order: int = 0,
    held_for_s: int = 0,
    seq: int | None = None,
) -> None:
    await pool.execute(
        """INSERT INTO webhook_deliveries (id, merchant_id, endpoint_id, event_id, event_type, payload,
                                           order_key, ordering_seq, event_at, status, attempts, due_at,
                                           created_at, updated_at)
           VALUES ($1, $2, $3, gen_random_uuid(), 'payment.created', '\\x7b7d', 'pay_1', $10,
                   now() + make_interval(secs => $7), $4, $5, CASE WHEN $6 THEN NULL ELSE now() END,
                   now() - make_interval(days => $8), now() - make_interval(secs => $9))""",
        delivery_id,
        merchant.id,
        merchant.endpoint_id,
        status,
        attempts,
        held,
        order,
        age_days,
        held_for_s,
        seq,
    )


async def test_only_finished_deliveries_past_retention_are_purged(
    make_merchant: MakeMerchant, db_pool: asyncpg.Pool
) -> None:
    merchant = await make_merchant("http://127.0.0.1:9/hooks")
    await insert(db_pool, merchant, "msg_old_success", status="success", age_days=40, attempts=1)
    await insert(db_pool, merchant, "msg_old_failed", status="failed", age_days=31, attempts=5, order=1)
    await insert(db_pool, merchant, "msg_old_pending", status="pending", age_days=40, attempts=2, order=2)
    await insert(db_pool, merchant, "msg_recent_success", status="success", age_days=29, attempts=1, order=3)

    assert await purge_finished(db_pool, retention_days=30) == 2

    left = {row["id"] for row in await db_pool.fetch("SELECT id FROM webhook_deliveries")}
    assert left == {"msg_old_pending", "msg_recent_success"}


async def test_a_hold_with_nothing_left_before_it_is_released(
    make_merchant: MakeMerchant, db_pool: asyncpg.Pool
) -> None:
    merchant = await make_merchant("http://127.0.0.1:9/hooks")
    # Every event of the payment has been taken in (numbers 1 to 3): nothing is missing.
    await db_pool.execute(
        "INSERT INTO webhook_order_keys (merchant_id, order_key, taken_through) VALUES ($1, 'pay_1', 3)",
        merchant.id,
    )
    # Held behind a delivery that is still waiting for its first attempt: stays held, however old.
    await insert(db_pool, merchant, "msg_waiting", order=0, seq=1)
    await insert(db_pool, merchant, "msg_rightly_held", held=True, order=1, held_for_s=600, seq=2)
    assert await release_orphaned_holds(db_pool, grace_s=60) == []

    # Its predecessor has gone (removed by hand, say): released; the hold behind it stays.
    await db_pool.execute("DELETE FROM webhook_deliveries WHERE id = 'msg_waiting'")
    await insert(db_pool, merchant, "msg_just_held", held=True, order=2, held_for_s=0, seq=3)
    assert await release_orphaned_holds(db_pool, grace_s=60) == ["msg_rightly_held"]
    row = await db_pool.fetchrow(
        "SELECT due_at, next_retry_at FROM webhook_deliveries WHERE id = 'msg_rightly_held'"
    )
    assert row is not None and row["due_at"] is not None and row["next_retry_at"] is not None
    assert await release_orphaned_holds(db_pool, grace_s=60) == []
