"""Many endpoints per merchant in one real dispatcher (consumer, scheduler, HTTP client in the test
process; real Redis, PostgreSQL and receivers): each endpoint gets what its filter matches, signed
with its own secret and with its own headers; a rate-limited or slow endpoint delays nobody else;
an endpoint that fails for the configured time is disabled and the merchant's other endpoints told."""

from __future__ import annotations

import asyncio
import contextlib
import time
from typing import Any

import asyncpg
import redis.asyncio as aioredis
import uuid_utils
from aiohttp import web
from dispatcher_testkit import (
    MakeMerchant,
    MakeReceiver,
    ReceivedRequest,
    SeededMerchant,
    StartDispatcher,
    payment_created,
    payment_lifecycle,
    publish,
)

from paystream.events import Event, EventType
from paystream_devstack.testing import eventually


async def add_endpoint(
    db_pool: asyncpg.Pool,
    merchant: SeededMerchant,
    url: str,
    *,
    secret: str,
    events: list[str] | None = None,
    headers: dict[str, str] | None = None,
    rate_limit_per_s: int | None = None,
) -> str:
    endpoint_id = f"we_{uuid_utils.uuid4().hex}"
    await db_pool.execute(
        """INSERT INTO webhook_endpoints (id, merchant_id, url, events, secret, headers, rate_limit_per_s)
           VALUES ($1, $2, $3, $4, $5, $6, $7)""",
        endpoint_id,
        merchant.id,
        url,
        events,
        secret,
        headers or {},
        rate_limit_per_s,
    )
    return endpoint_id


def refund_created(merchant_id: str, payment_id: str) -> Event:
    refund = {"id": f"rfnd_{payment_id[4:]}", "payment_id": payment_id, "amount": 100, "status": "created"}
    return Event(type=EventType.REFUND_CREATED, merchant_id=merchant_id, data={"refund": refund})


async def test_each_endpoint_gets_what_its_filter_matches_with_its_own_secret_and_headers(
    make_receiver: MakeReceiver,
    make_merchant: MakeMerchant,
    start_dispatcher: StartDispatcher,
    redis: aioredis.Redis,
    db_pool: asyncpg.Pool,
) -> None:
    everything = await make_receiver(["whsec_test_abc123"])
    payments = await make_receiver(["whsec_payments_only"])
    refunds = await make_receiver(["whsec_refunds_only"])
    merchant = await make_merchant(everything.url)  # the default endpoint: every event
    await add_endpoint(
        db_pool,
        merchant,
        payments.url,
        secret="whsec_payments_only",
        events=["payment.*"],
        headers={"X-Tenant": "salon-7", "Authorization": "Bearer merchant-token"},
    )
    await add_endpoint(db_pool, merchant, refunds.url, secret="whsec_refunds_only", events=["refund.created"])
    await start_dispatcher()

    await publish(
        redis,
        *payment_lifecycle(merchant.id, "pay_FILTER0000001"),
        refund_created(merchant.id, "pay_FILTER0000001"),
    )
    await eventually(
        lambda: len(everything.requests) == 4, timeout=10, message="the default endpoint got all 4"
    )
    await eventually(lambda: len(payments.requests) == 3 and len(refunds.requests) == 1, timeout=10)

    assert sorted(r.event for r in payments.requests) == [
        "payment.created",
        "payment.pending",
        "payment.success",
    ]
    assert [r.event for r in refunds.requests] == ["refund.created"]
    for receiver, secret in (
        (everything, "whsec_test_abc123"),
        (payments, "whsec_payments_only"),
        (refunds, "whsec_refunds_only"),
    ):
        for request in receiver.requests:
            assert request.standard_valid_for == [secret] and request.legacy_valid_for == [secret]
    assert all(r.headers["X-Tenant"] == "salon-7" for r in payments.requests)
    assert all(r.headers["Authorization"] == "Bearer merchant-token" for r in payments.requests)
    assert all("X-Tenant" not in r.headers for r in everything.requests + refunds.requests)
    # One event, one delivery id per endpoint: the ids are the endpoints' own.
    created_ids = {
        r.webhook_id for r in everything.requests + payments.requests if r.event == "payment.created"
    }
    assert len(created_ids) == 2


async def test_a_rate_limited_endpoint_waits_its_turn_and_delays_no_other_endpoint(
    make_receiver: MakeReceiver,
    make_merchant: MakeMerchant,
    start_dispatcher: StartDispatcher,
    redis: aioredis.Redis,
    db_pool: asyncpg.Pool,
) -> None:
    free = await make_receiver([])
    limited = await make_receiver([])
    merchant = await make_merchant(free.url)
    limited_id = await add_endpoint(
        db_pool, merchant, limited.url, secret="whsec_limited_five", rate_limit_per_s=5
    )
    await start_dispatcher()

    started = time.time()
    await publish(redis, *[payment_created(merchant.id, f"pay_RATE{n:012d}") for n in range(20)])
    await eventually(
        lambda: len(free.requests) == 20, timeout=10, message="the unlimited endpoint was held back"
    )
    assert max(r.received_at for r in free.requests) - started < 3.0
    await eventually(
        lambda: len(limited.requests) == 20, timeout=15, message="the limited endpoint's deliveries"
    )

    arrivals = sorted(r.received_at for r in limited.requests)
    # At most one second's worth at once, then five a second: 20 take at least three seconds ...
    assert arrivals[-1] - arrivals[0] >= 2.8, arrivals
    # ... and no second holds more than the burst and the second's rate.
    for first in arrivals:
        assert sum(first <= t < first + 1.0 for t in arrivals) <= 10, arrivals

    async def all_succeeded_at_first_attempt() -> bool:  # they waited; none failed
        rows = await db_pool.fetch(
            "SELECT status, attempts FROM webhook_deliveries WHERE endpoint_id = $1", limited_id
        )
        return [(r["status"], r["attempts"]) for r in rows] == [("success", 1)] * 20

    await eventually(all_succeeded_at_first_attempt, timeout=5, message="a limited delivery failed")


async def test_a_slow_endpoint_delays_neither_the_merchants_other_endpoint_nor_other_merchants(
    make_receiver: MakeReceiver,
    make_merchant: MakeMerchant,
    start_dispatcher: StartDispatcher,
    redis: aioredis.Redis,
    db_pool: asyncpg.Pool,
) -> None:
    async def answer_after_nine_seconds(_request: ReceivedRequest, _count: int) -> web.StreamResponse:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(slow.release.wait(), timeout=9.0)
        return web.Response(text="slow but fine")

    slow = await make_receiver([], answer_after_nine_seconds)
    fast = await make_receiver([])
    neighbour = await make_receiver([])
    merchant = await make_merchant(fast.url)
    slow_id = await add_endpoint(db_pool, merchant, slow.url, secret="whsec_slow_endpoint")
    other = await make_merchant(neighbour.url)
    await start_dispatcher(WEBHOOK_HTTP_TIMEOUT_S="12", WEBHOOK_LEASE_S="30")

    started = time.time()
    await publish(redis, *[payment_created(merchant.id, f"pay_SLOW{n:012d}") for n in range(10)])
    await eventually(lambda: len(slow.requests) == 10, timeout=10, message="the slow endpoint was called")
    await publish(redis, *[payment_created(other.id, f"pay_NEXT{n:012d}") for n in range(10)])
    await eventually(lambda: len(fast.requests) == 10 and len(neighbour.requests) == 10, timeout=10)
    assert max(r.received_at for r in fast.requests + neighbour.requests) - started < 4.0

    async def slow_ones_succeeded() -> bool:
        done: int = await db_pool.fetchval(
            "SELECT count(*) FROM webhook_deliveries WHERE endpoint_id = $1 AND status = 'success'", slow_id
        )
        return done == 10

    await eventually(slow_ones_succeeded, timeout=20, message="the slow endpoint's answers after 9 s")
    assert time.time() - started >= 9.0


async def test_an_endpoint_failing_for_the_configured_time_is_disabled_and_the_merchant_told(
    make_receiver: MakeReceiver,
    make_merchant: MakeMerchant,
    start_dispatcher: StartDispatcher,
    redis: aioredis.Redis,
    db_pool: asyncpg.Pool,
) -> None:
    async def fail(_request: ReceivedRequest, _count: int) -> web.StreamResponse:
        return web.Response(status=500, text="down")

    healthy = await make_receiver([])
    failing = await make_receiver([], fail)
    merchant = await make_merchant(healthy.url)
    failing_id = await add_endpoint(db_pool, merchant, failing.url, secret="whsec_failing_one")
    await start_dispatcher(WEBHOOK_AUTO_DISABLE_AFTER_S="2")

    await publish(redis, payment_created(merchant.id, "pay_DISABLE00000001"))
    await eventually(lambda: len(failing.requests) == 1, timeout=10)

    async def failing_since() -> Any:
        return await db_pool.fetchval("SELECT failing_since FROM webhook_endpoints WHERE id = $1", failing_id)

    await eventually(failing_since, timeout=10, message="the failure run was not recorded")
    await eventually(lambda: time.time() - failing.requests[0].received_at > 2.2, timeout=5, interval=0.1)
    await publish(redis, payment_created(merchant.id, "pay_DISABLE00000002"))

    await eventually(
        lambda: healthy.for_event("endpoint.disabled"), timeout=10, message="no endpoint.disabled"
    )
    told = healthy.for_event("endpoint.disabled")
    assert len(told) == 1
    endpoint = told[0].json()["data"]["endpoint"]
    assert endpoint["id"] == failing_id and endpoint["url"] == failing.url
    assert endpoint["reason"] == "every attempt failed for 2 seconds" and endpoint["disabled_at"]
    row = await db_pool.fetchrow(
        "SELECT enabled, disabled_reason, disabled_at FROM webhook_endpoints WHERE id = $1", failing_id
    )
    assert row is not None and not row["enabled"] and row["disabled_at"] is not None
    waiting = await db_pool.fetch(
        "SELECT status, error FROM webhook_deliveries WHERE endpoint_id = $1 AND status = 'pending'",
        failing_id,
    )
    assert waiting == []  # its retries were failed with the endpoint, not left to run
    assert not failing.for_event("endpoint.disabled")  # the disabled endpoint is not sent its own news


async def test_a_success_ends_the_failure_run(
    make_receiver: MakeReceiver,
    make_merchant: MakeMerchant,
    start_dispatcher: StartDispatcher,
    redis: aioredis.Redis,
    db_pool: asyncpg.Pool,
) -> None:
    async def fail_first(_request: ReceivedRequest, count: int) -> web.StreamResponse:
        return web.Response(status=500 if count == 1 else 200)

    flaky = await make_receiver([], fail_first)
    merchant = await make_merchant(flaky.url)
    await start_dispatcher()
    await publish(redis, payment_created(merchant.id, "pay_FLAKY000000001"))

    async def run_of(expected_set: bool) -> bool:
        value = await db_pool.fetchval(
            "SELECT failing_since FROM webhook_endpoints WHERE id = $1", merchant.endpoint_id
        )
        return (value is not None) == expected_set

    await eventually(lambda: run_of(True), timeout=10, message="the failure was not recorded")
    await publish(redis, payment_created(merchant.id, "pay_FLAKY000000002"))
    await eventually(lambda: len(flaky.requests) >= 2, timeout=10)
    await eventually(lambda: run_of(False), timeout=10, message="the success did not end the run")
