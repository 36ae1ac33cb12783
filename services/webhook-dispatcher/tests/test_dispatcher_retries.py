"""Retries and failure handling against real receivers: the test schedule, 410, Retry-After,
redirects, timeouts, truncated bodies, private addresses, and rotated secrets."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import asyncpg
import redis.asyncio as aioredis
from aiohttp import web
from dispatcher_testkit import (
    MakeMerchant,
    MakeReceiver,
    ReceivedRequest,
    StartDispatcher,
    attempted,
    attempts_reached,
    deliveries,
    payment_created,
    publish,
    stream_handled,
)

from paystream.webhooks import DUE_CHANNEL
from paystream_devstack.testing import eventually


async def fail_always(_request: ReceivedRequest, _count: int) -> web.StreamResponse:
    return web.Response(status=500, text="nope")


async def wake_dispatchers(pool: asyncpg.Pool) -> None:
    await pool.execute("SELECT pg_notify($1, '')", DUE_CHANNEL)


async def test_failing_receiver_sees_the_test_schedule_then_failed(
    make_receiver: MakeReceiver,
    make_merchant: MakeMerchant,
    start_dispatcher: StartDispatcher,
    redis: aioredis.Redis,
    db_pool: asyncpg.Pool,
) -> None:
    receiver = await make_receiver(["whsec_test_abc123"], fail_always)
    merchant = await make_merchant(receiver.url)
    await start_dispatcher()
    await publish(redis, payment_created(merchant.id, "pay_SCHEDULE00000001"))

    first = await eventually(lambda: attempted(db_pool, merchant.id), timeout=20)
    delivery_id = first["id"]
    assert first["status"] == "pending" and first["error"] == "HTTP 500" and first["response_code"] == 500
    assert abs((first["next_retry_at"] - first["last_attempt_at"]).total_seconds() - 5) < 0.5
    assert first["due_at"] == first["next_retry_at"]

    # The second attempt waits for its time, in real time.
    second = await eventually(lambda: attempts_reached(db_pool, delivery_id, 2), timeout=10)
    gap = receiver.requests[1].received_at - receiver.requests[0].received_at
    assert 4.8 <= gap <= 7.0, gap
    assert abs((second["next_retry_at"] - second["last_attempt_at"]).total_seconds() - 10) < 0.5

    # Later waits are read from the log, then skipped (the row made due now) to keep the test short.
    expected_waits = {3: 15, 4: 20}
    for attempt in (3, 4, 5):
        await db_pool.execute("UPDATE webhook_deliveries SET due_at = now() WHERE id = $1", delivery_id)
        await wake_dispatchers(db_pool)
        row = await eventually(lambda n=attempt: attempts_reached(db_pool, delivery_id, n), timeout=10)
        if attempt in expected_waits:
            assert row["status"] == "pending"
            wait = (row["next_retry_at"] - row["last_attempt_at"]).total_seconds()
            assert abs(wait - expected_waits[attempt]) < 0.5, (attempt, wait)
    assert row["status"] == "failed"
    assert row["attempts"] == 5
    assert row["next_retry_at"] is None and row["due_at"] is None
    assert len(receiver.requests) == 5
    assert len({r.webhook_id for r in receiver.requests}) == 1
    assert len({r.body for r in receiver.requests}) == 1
    assert all(r.standard_valid_for == ["whsec_test_abc123"] for r in receiver.requests)


async def test_410_disables_the_endpoint_and_fails_its_waiting_deliveries(
    make_receiver: MakeReceiver,
    make_merchant: MakeMerchant,
    start_dispatcher: StartDispatcher,
    redis: aioredis.Redis,
    db_pool: asyncpg.Pool,
) -> None:
    async def gone(_request: ReceivedRequest, _count: int) -> web.StreamResponse:
        return web.Response(status=410, text="gone")

    receiver = await make_receiver([], gone)
    merchant = await make_merchant(receiver.url)
    await db_pool.execute(
        """INSERT INTO webhook_deliveries (id, merchant_id, endpoint_id, event_id, event_type, payload,
                                           event_at, attempts, due_at, next_retry_at)
           VALUES ('msg_waiting', $1, $2, gen_random_uuid(), 'payment.failed', '\\x7b7d', now(), 1,
                   now() + interval '1 hour', now() + interval '1 hour')""",
        merchant.id,
        merchant.endpoint_id,
    )
    await start_dispatcher()

    await publish(redis, payment_created(merchant.id, "pay_GONE000000000001"))

    async def disabled() -> asyncpg.Record | None:
        row = await db_pool.fetchrow("SELECT * FROM webhook_endpoints WHERE id = $1", merchant.endpoint_id)
        return row if row is not None and not row["enabled"] else None

    endpoint = await eventually(disabled, timeout=10)
    assert "410" in endpoint["disabled_reason"]
    rows = {row["id"]: row for row in await deliveries(db_pool, merchant.id)}
    [answered] = [row for row in rows.values() if row["id"] != "msg_waiting"]
    assert (answered["status"], answered["response_code"], answered["attempts"]) == ("failed", 410, 1)
    assert "410" in answered["error"]
    assert rows["msg_waiting"]["status"] == "failed" and rows["msg_waiting"]["due_at"] is None

    await publish(redis, payment_created(merchant.id, "pay_GONE000000000002"))
    # A negative, judged once the dispatcher has handled the event (acknowledged its entry: its
    # effects are committed), not after a guessed wait.
    await eventually(lambda: stream_handled(redis), timeout=10)
    assert len(await deliveries(db_pool, merchant.id)) == 2  # no new row: nothing will ever be sent
    assert len(receiver.requests) == 1


async def test_retry_after_is_honoured_within_the_schedule_range(
    make_receiver: MakeReceiver,
    make_merchant: MakeMerchant,
    start_dispatcher: StartDispatcher,
    redis: aioredis.Redis,
    db_pool: asyncpg.Pool,
) -> None:
    cases = [(429, "12", 12), (503, "3600", 20), (429, "1", 5), (500, "12", 5)]
    merchants = []
    for status, retry_after, _ in cases:

        async def answer(
            _r: ReceivedRequest, _n: int, s: int = status, ra: str = retry_after
        ) -> web.StreamResponse:
            return web.Response(status=s, headers={"Retry-After": ra})

        receiver = await make_receiver([], answer)
        merchants.append(await make_merchant(receiver.url))
    await start_dispatcher()

    for index, merchant in enumerate(merchants):
        await publish(redis, payment_created(merchant.id, f"pay_RETRYAFTER{index:05d}"))

    for merchant, (status, _, expected_wait) in zip(merchants, cases, strict=True):
        row = await eventually(lambda m=merchant: attempted(db_pool, m.id), timeout=20)
        assert row["response_code"] == status
        wait = (row["next_retry_at"] - row["last_attempt_at"]).total_seconds()
        assert abs(wait - expected_wait) < 0.5, (status, wait)


async def test_redirects_are_not_followed_and_bodies_are_cut_at_4kb(
    make_receiver: MakeReceiver,
    make_merchant: MakeMerchant,
    start_dispatcher: StartDispatcher,
    redis: aioredis.Redis,
    db_pool: asyncpg.Pool,
) -> None:
    async def redirect(request: ReceivedRequest, _count: int) -> web.StreamResponse:
        return web.Response(status=302, headers={"Location": "/hooks?followed=1"}, text="moved")

    async def chatty(_request: ReceivedRequest, _count: int) -> web.StreamResponse:
        return web.Response(status=500, text="a" + "é" * 6000)

    redirecting = await make_receiver([], redirect)
    verbose = await make_receiver([], chatty)
    moved = await make_merchant(redirecting.url)
    talker = await make_merchant(verbose.url)
    await start_dispatcher()

    await publish(redis, payment_created(moved.id, "pay_REDIRECT00000001"))
    await publish(redis, payment_created(talker.id, "pay_VERBOSE000000001"))

    row = await eventually(lambda: attempted(db_pool, moved.id), timeout=20)
    assert (row["status"], row["response_code"]) == ("pending", 302)
    assert "redirect" in row["error"]
    assert len(redirecting.requests) == 1  # the Location was not requested

    row = await eventually(lambda: attempted(db_pool, talker.id), timeout=20)
    # The first 4096 bytes, less the first half of a character cut in two.
    assert row["response_body"] == "a" + "é" * 2047


async def test_a_slow_receiver_times_out_and_is_retried(
    make_receiver: MakeReceiver,
    make_merchant: MakeMerchant,
    start_dispatcher: StartDispatcher,
    redis: aioredis.Redis,
    db_pool: asyncpg.Pool,
) -> None:
    async def slow_then_fast(_request: ReceivedRequest, count: int) -> web.StreamResponse:
        if count == 1:
            await asyncio.sleep(3)
        return web.Response(text="ok")

    receiver = await make_receiver([], slow_then_fast)
    merchant = await make_merchant(receiver.url)
    await start_dispatcher(WEBHOOK_HTTP_TIMEOUT_S="1", WEBHOOK_LEASE_S="6")

    await publish(redis, payment_created(merchant.id, "pay_SLOW000000000001"))

    row = await eventually(lambda: attempted(db_pool, merchant.id), timeout=20)
    assert row["status"] == "pending" and row["response_code"] is None
    assert "timeout" in row["error"]
    assert 900 <= row["duration_ms"] <= 2500


async def test_private_addresses_are_refused_at_connect_time(
    make_receiver: MakeReceiver,
    make_merchant: MakeMerchant,
    start_dispatcher: StartDispatcher,
    redis: aioredis.Redis,
    db_pool: asyncpg.Pool,
) -> None:
    """The URLs were stored while private ones were allowed; a dispatcher that refuses them never calls."""
    receiver = await make_receiver([])
    by_address = await make_merchant(receiver.url)
    by_name = await make_merchant(receiver.url.replace("127.0.0.1", "localhost"))
    await start_dispatcher(WEBHOOK_ALLOWED_PRIVATE_NETS="")

    await publish(redis, payment_created(by_address.id, "pay_PRIVATE00000001"))
    await publish(redis, payment_created(by_name.id, "pay_PRIVATE00000002"))

    for merchant in (by_address, by_name):
        row = await eventually(lambda m=merchant: attempted(db_pool, m.id), timeout=20)
        assert row["status"] == "pending" and row["response_code"] is None
        assert row["error"].startswith("refused: ") and "not a public address" in row["error"], row["error"]
    assert receiver.requests == []


async def test_a_live_previous_secret_adds_its_signatures(
    make_receiver: MakeReceiver,
    make_merchant: MakeMerchant,
    start_dispatcher: StartDispatcher,
    redis: aioredis.Redis,
    db_pool: asyncpg.Pool,
) -> None:
    new, old = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", "whsec_test_abc123"
    receiver = await make_receiver([new, old])
    rotated = await make_merchant(receiver.url, secret=new)
    expired = await make_merchant(receiver.url, secret=new)
    for merchant, expires in ((rotated, timedelta(hours=23)), (expired, timedelta(seconds=-1))):
        await db_pool.execute(
            "INSERT INTO webhook_previous_secrets (merchant_id, secret, expires_at) VALUES ($1, $2, $3)",
            merchant.id,
            old,
            datetime.now(UTC) + expires,
        )
    await start_dispatcher()

    await publish(redis, payment_created(rotated.id, "pay_ROTATED00000001"))
    [both] = await eventually(lambda: receiver.requests, timeout=10)
    assert both.standard_valid_for == [new, old]
    assert len(both.headers["webhook-signature"].split(" ")) == 2
    assert both.legacy_valid_for == [new]

    await publish(redis, payment_created(expired.id, "pay_EXPIRED00000001"))
    await eventually(lambda: len(receiver.requests) == 2, timeout=10)
    only_new = receiver.requests[1]
    assert only_new.standard_valid_for == [new]
    assert " " not in only_new.headers["webhook-signature"]
    assert "X-Webhook-Signature-Previous" not in only_new.headers
