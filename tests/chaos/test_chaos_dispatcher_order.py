"""The webhook dispatcher SIGKILLed while it holds stream entries it has read but not taken in: a
payment's later events, read by the restarted dispatcher long before the dead one's entries are
reclaimed, still reach the merchant after the earlier ones (first attempts created -> pending ->
success, per payment), and nothing is lost or repeated.

Made deterministic rather than raced:
- the test holds an EXCLUSIVE lock on `webhook_deliveries`, so the dispatcher reads each payment's
  `created` and `pending` (they sit in its pending entries list) but cannot commit their rows;
- the payment processor is not running yet, so no `success` exists before the kill;
- after the kill the lock goes, the dispatcher restarts (a new consumer name) and the processor
  starts: the restarted dispatcher reads every `success` while `created` and `pending` are still in
  the dead consumer's list (the reclaim idle time is three minutes);
- once every `success` has been taken in (held, or already attempted), the test ages the dead
  consumer's entries past the reclaim idle time (XCLAIM ... IDLE, instead of waiting for it), and
  the restarted dispatcher's sweep reclaims them.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import asyncpg
import pytest
import redis.asyncio as aioredis
from chaos_scenario import ScenarioFactory
from invariants import DELIVERY_ORDER_ROWS, PAYMENT_LIFECYCLE, first_attempt_orders
from platform_stack import API, DISPATCHER, PROCESSOR

from paystream.events import ConsumerGroup, Stream
from paystream_devstack.testing import ServiceProcess, eventually

pytestmark = pytest.mark.chaos

GROUP = ConsumerGroup.WEBHOOK_DISPATCHER
# Far longer than the test takes: nothing is reclaimed before the test ages the entries itself.
RECLAIM_IDLE_MS = 180_000


async def test_a_dispatcher_killed_with_entries_in_hand_keeps_each_payments_first_attempt_order(
    open_scenario: ScenarioFactory,
    spawn_service: Callable[..., ServiceProcess],
    db_pool: asyncpg.Pool,
    redis: aioredis.Redis,
) -> None:
    scenario = await open_scenario(
        tag="order",
        services=(API, DISPATCHER),
        # Nothing is reclaimed unless the test says so, and a handler waiting for the lock does not
        # time out (a timeout would count a delivery of its entry).
        DISPATCHER_RECLAIM_IDLE_MS=str(RECLAIM_IDLE_MS),
        DISPATCHER_HANDLER_TIMEOUT_S="60",
    )
    stack, receiver = scenario.stack, scenario.receiver
    assert receiver is not None

    blocker = await asyncpg.connect(stack.env["DATABASE_URL"])
    blocking = blocker.transaction()
    await blocking.start()
    await blocker.execute("LOCK TABLE webhook_deliveries IN EXCLUSIVE MODE")
    try:
        load = await scenario.load.start()
        await load.until_accepted(30)
        await load.settle(timeout=load.give_up_after_s + 15)
        payments = sorted(load.accepted_payments().values())
        assert payments

        # Sentinel: the dispatcher has read every `created` and `pending` and acknowledged none.
        async def read_and_stuck() -> str | None:
            summary = await redis.xpending(Stream.PAYMENT_EVENTS, GROUP)
            if int(summary["pending"]) != 2 * len(payments):
                return None
            [consumer] = summary["consumers"]
            name = consumer["name"]
            return name.decode() if isinstance(name, bytes) else str(name)

        dead_consumer = await eventually(read_and_stuck, timeout=20, message="entries read, none committed")
        stack.processes[DISPATCHER].kill()
    finally:
        await blocking.rollback()
        await blocker.close()

    await asyncio.to_thread(stack.processes[DISPATCHER].start)
    stack.processes[PROCESSOR] = await asyncio.to_thread(spawn_service, PROCESSOR, stack.env)

    # Sentinel: every payment's `success` has been taken in by the restarted dispatcher (held behind
    # its missing predecessors, or, if they were not waited for, already sent).
    async def successes_taken_in() -> bool:
        count = await db_pool.fetchval(
            """SELECT count(*) FROM webhook_deliveries
               WHERE event_type = 'payment.success' AND order_key = ANY($1::text[])
                 AND (attempts > 0 OR (status = 'pending' AND due_at IS NULL))""",
            payments,
        )
        return bool(count == len(payments))

    await eventually(successes_taken_in, timeout=30, message="every success taken in")
    # ...while every `created` and `pending` is still in the dead consumer's pending list.
    early = await db_pool.fetchval(
        "SELECT count(*) FROM webhook_deliveries WHERE event_type IN ('payment.created', 'payment.pending')"
    )
    assert early == 0
    stuck = await redis.xpending_range(
        Stream.PAYMENT_EVENTS, GROUP, min="-", max="+", count=10_000, consumername=dead_consumer
    )
    assert len(stuck) == 2 * len(payments)

    # As if the reclaim idle time had passed: the restarted dispatcher's next sweep takes them over.
    await redis.xclaim(
        Stream.PAYMENT_EVENTS,
        GROUP,
        dead_consumer,
        min_idle_time=0,
        message_ids=[entry["message_id"] for entry in stuck],
        idle=10 * RECLAIM_IDLE_MS,
        justid=True,
    )

    await scenario.settle_and_verify(drain_timeout=60)
    # The shared invariants checked the order; here, that it was checked for every event.
    orders = first_attempt_orders(await db_pool.fetch(DELIVERY_ORDER_ROWS), receiver)
    assert {payment: orders.get(payment) for payment in payments} == {
        payment: list(PAYMENT_LIFECYCLE) for payment in payments
    }
