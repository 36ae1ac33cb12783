"""Flow control in one dispatcher: a hanging endpoint does not slow other merchants, and a payment's
first attempts reach an endpoint in the order its events happened."""

from __future__ import annotations

import asyncio
import random
import time

import asyncpg
import redis.asyncio as aioredis
from aiohttp import web
from dispatcher_testkit import (
    MakeMerchant,
    MakeReceiver,
    ReceivedRequest,
    StartDispatcher,
    deliveries,
    numbered,
    payment_created,
    payment_lifecycle,
    publish,
)

from paystream_devstack.testing import eventually


async def test_a_hanging_endpoint_does_not_delay_other_merchants(
    make_receiver: MakeReceiver,
    make_merchant: MakeMerchant,
    start_dispatcher: StartDispatcher,
    redis: aioredis.Redis,
    db_pool: asyncpg.Pool,
) -> None:
    hung_up: list[float] = []

    async def hang(_request: ReceivedRequest, _count: int) -> web.StreamResponse:
        hung_up.append(time.monotonic())
        await receivers[0].release.wait()  # never answers within the test
        return web.Response(text="late")

    receivers = [await make_receiver([], hang)]
    healthy = await make_receiver([])
    stuck = await make_merchant(receivers[0].url)
    others = [await make_merchant(healthy.url) for _ in range(3)]
    # A small global bound, so that the hanging endpoint could starve everyone without its own cap.
    await start_dispatcher(WEBHOOK_MAX_IN_FLIGHT="24", WEBHOOK_ENDPOINT_MAX_IN_FLIGHT="8")

    await publish(
        redis,
        *[payment_created(stuck.id, f"pay_STUCK{n:011d}") for n in range(60)],
    )
    await eventually(lambda: len(hung_up) >= 8, timeout=10, message="the stuck endpoint was not called")

    started = time.monotonic()
    await publish(
        redis,
        *[
            payment_created(merchant.id, f"pay_OTHER{index}{n:010d}")
            for index, merchant in enumerate(others)
            for n in range(20)
        ],
    )
    await eventually(lambda: len(healthy.requests) == 60, timeout=10, message="other merchants were delayed")
    elapsed = time.monotonic() - started
    assert elapsed < 3.0, elapsed
    # The stuck endpoint never had more than its cap in flight, and the rest of its deliveries wait in the log.
    assert len(hung_up) == 8
    waiting = [row for row in await deliveries(db_pool, stuck.id) if row["lease_token"] is None]
    assert len(waiting) == 52 and all(row["attempts"] == 0 for row in waiting)
    receivers[0].release.set()  # let the dispatcher stop without waiting out its HTTP timeout


async def test_first_attempts_follow_event_order_per_payment(
    make_receiver: MakeReceiver,
    make_merchant: MakeMerchant,
    start_dispatcher: StartDispatcher,
    redis: aioredis.Redis,
    db_pool: asyncpg.Pool,
) -> None:
    seen_first: dict[str, list[str]] = {}

    async def jittery_and_sometimes_failing(request: ReceivedRequest, count: int) -> web.StreamResponse:
        await asyncio.sleep(random.uniform(0, 0.02))
        first_attempts = seen_first.setdefault(request.json()["data"]["payment"]["id"], [])
        if request.webhook_id not in {r.webhook_id for r in receiver.requests[: count - 1]}:
            first_attempts.append(request.event)
        # A failed first attempt still lets the next event go: the order is about first attempts.
        return web.Response(status=500 if count % 7 == 0 else 200)

    receiver = await make_receiver([], jittery_and_sometimes_failing)
    merchant = await make_merchant(receiver.url)
    await start_dispatcher()
    payments = [f"pay_ORDER{n:011d}" for n in range(40)]

    # Interleave payments on the stream, each payment's events in their order, numbered as the
    # outbox numbers them.
    lifecycles = [numbered(*payment_lifecycle(merchant.id, payment_id)) for payment_id in payments]
    for step in range(3):
        await publish(redis, *[lifecycle[step] for lifecycle in lifecycles])

    expected = ["payment.created", "payment.pending", "payment.success"]
    await eventually(
        lambda: len(seen_first) == 40 and all(len(v) == 3 for v in seen_first.values()),
        timeout=20,
        message="not every first attempt arrived",
    )
    assert all(order == expected for order in seen_first.values()), {
        payment: order for payment, order in seen_first.items() if order != expected
    }
    rows = await deliveries(db_pool, merchant.id)
    assert len(rows) == 120


async def test_a_late_earlier_event_still_goes_first(
    make_receiver: MakeReceiver,
    make_merchant: MakeMerchant,
    start_dispatcher: StartDispatcher,
    redis: aioredis.Redis,
    db_pool: asyncpg.Pool,
) -> None:
    """`payment.pending` reaches the dispatcher before `payment.created` (as when `created` sat in a
    dead consumer's pending list, or another replica held it a moment longer): its number says an
    earlier event exists, so it waits, however long `created` takes; `created` arrives and goes first."""
    receiver = await make_receiver([])
    merchant = await make_merchant(receiver.url)
    await start_dispatcher()
    created, pending, success = numbered(*payment_lifecycle(merchant.id, "pay_LATEFIRST0000001"))

    await publish(redis, pending)
    [held] = await eventually(lambda: deliveries(db_pool, merchant.id), timeout=10)
    assert held["event_type"] == "payment.pending" and held["due_at"] is None  # held, not merely delayed
    await publish(redis, success, created)

    await eventually(lambda: len(receiver.requests) == 3, timeout=10)
    assert [r.event for r in receiver.requests] == ["payment.created", "payment.pending", "payment.success"]
