"""Real dispatcher processes: killed mid-schedule or mid-attempt it still delivers; two replicas never
send one attempt twice and keep each payment's order; SIGTERM lets in-flight attempts finish."""

from __future__ import annotations

import asyncio
import time
from collections import Counter, defaultdict
from collections.abc import Callable

import aiohttp
import asyncpg
import pytest
import redis.asyncio as aioredis
from aiohttp import web
from dispatcher_testkit import (
    MakeMerchant,
    MakeReceiver,
    ReceivedRequest,
    all_final,
    attempted,
    deliveries,
    numbered,
    payment_created,
    payment_lifecycle,
    publish,
)

from paystream_devstack.embedded import free_port
from paystream_devstack.testing import ServiceProcess, eventually

pytestmark = pytest.mark.chaos

DISPATCHER = "webhook_dispatcher"


async def test_killed_mid_schedule_the_retry_still_goes_out_on_time(
    make_receiver: MakeReceiver,
    make_merchant: MakeMerchant,
    dispatcher_env: dict[str, str],
    spawn_service: Callable[..., ServiceProcess],
    redis: aioredis.Redis,
    db_pool: asyncpg.Pool,
) -> None:
    async def fail_first(_request: ReceivedRequest, count: int) -> web.StreamResponse:
        return web.Response(status=503 if count == 1 else 200)

    receiver = await make_receiver(["whsec_test_abc123"], fail_first)
    merchant = await make_merchant(receiver.url)
    dispatcher = spawn_service(DISPATCHER, dispatcher_env)
    await publish(redis, payment_created(merchant.id, "pay_KILLED00000001"))

    row = await eventually(lambda: attempted(db_pool, merchant.id), timeout=15)
    assert row["status"] == "pending"
    dispatcher.kill()
    dispatcher.start()  # a fresh process, new consumer name, same database

    await eventually(lambda: all_final(db_pool, merchant.id, 1), timeout=15)
    first, second = receiver.requests
    assert first.webhook_id == second.webhook_id == row["id"]
    assert 4.5 <= second.received_at - first.received_at <= 9
    assert second.standard_valid_for == ["whsec_test_abc123"]
    final = (await deliveries(db_pool, merchant.id))[0]
    assert (final["status"], final["attempts"]) == ("success", 2)


async def test_killed_mid_attempt_the_lease_runs_out_and_the_attempt_is_made_again(
    make_receiver: MakeReceiver,
    make_merchant: MakeMerchant,
    dispatcher_env: dict[str, str],
    spawn_service: Callable[..., ServiceProcess],
    redis: aioredis.Redis,
    db_pool: asyncpg.Pool,
) -> None:
    async def hang_first(_request: ReceivedRequest, count: int) -> web.StreamResponse:
        if count == 1:
            await receiver.release.wait()
        return web.Response(text="ok")

    receiver = await make_receiver([], hang_first)
    merchant = await make_merchant(receiver.url)
    env = {**dispatcher_env, "WEBHOOK_HTTP_TIMEOUT_S": "2", "WEBHOOK_LEASE_S": "7"}
    dispatcher = spawn_service(DISPATCHER, env)
    await publish(redis, payment_created(merchant.id, "pay_INFLIGHT000001"))

    await eventually(lambda: receiver.requests, timeout=15)
    dispatcher.kill()  # the attempt dies with the process; its row stays leased
    killed_at = time.time()
    dispatcher.start()

    await eventually(lambda: all_final(db_pool, merchant.id, 1), timeout=20)
    assert len(receiver.requests) == 2
    assert receiver.requests[0].webhook_id == receiver.requests[1].webhook_id
    assert receiver.requests[1].received_at - killed_at >= 4  # not before the lease ran out


async def test_two_replicas_never_send_an_attempt_twice_and_keep_payment_order(
    make_receiver: MakeReceiver,
    make_merchant: MakeMerchant,
    dispatcher_env: dict[str, str],
    spawn_service: Callable[..., ServiceProcess],
    redis: aioredis.Redis,
    db_pool: asyncpg.Pool,
) -> None:
    in_flight: Counter[str] = Counter()
    overlaps: list[str] = []
    first_attempts: dict[str, list[str]] = defaultdict(list)

    async def fail_each_first_attempt(request: ReceivedRequest, _count: int) -> web.StreamResponse:
        webhook_id = request.webhook_id
        attempts = sum(1 for r in receivers[0].requests if r.webhook_id == webhook_id)
        if attempts == 1:
            first_attempts[request.json()["data"]["payment"]["id"]].append(request.event)
        in_flight[webhook_id] += 1
        if in_flight[webhook_id] > 1:
            overlaps.append(webhook_id)
        await asyncio.sleep(0.01)
        in_flight[webhook_id] -= 1
        return web.Response(status=500 if attempts == 1 else 200)

    receivers = [await make_receiver(["whsec_test_abc123"], fail_each_first_attempt)]
    merchants = [await make_merchant(receivers[0].url) for _ in range(2)]
    ports = [dispatcher_env["DISPATCHER_PORT"], str(free_port())]
    for port in ports:
        spawn_service(DISPATCHER, dispatcher_env, DISPATCHER_PORT=port)

    payments = {
        merchant.id: [f"pay_REPLICA{i}{n:09d}" for n in range(30)] for i, merchant in enumerate(merchants)
    }
    lifecycles = [numbered(*payment_lifecycle(m, p)) for m, ids in payments.items() for p in ids]
    # As the API commits them: created and pending together, payments interleaved; success later.
    await publish(redis, *[event for lifecycle in lifecycles for event in lifecycle[:2]])
    await publish(redis, *[lifecycle[2] for lifecycle in lifecycles])

    for merchant in merchants:
        await eventually(lambda m=merchant: all_final(db_pool, m.id, 90), timeout=40, interval=0.2)
    per_id = Counter(r.webhook_id for r in receivers[0].requests)
    assert len(per_id) == 180
    assert set(per_id.values()) == {2}, [i for i, n in per_id.items() if n != 2][:5]
    assert overlaps == []
    expected = ["payment.created", "payment.pending", "payment.success"]
    assert all(order == expected for order in first_attempts.values()), {
        p: o for p, o in first_attempts.items() if o != expected
    }
    assert all(r.standard_valid_for == ["whsec_test_abc123"] for r in receivers[0].requests)
    # Both replicas took part (read events or made attempts).
    async with aiohttp.ClientSession() as session:
        for port in ports:
            async with session.get(f"http://127.0.0.1:{port}/metrics") as response:
                text = await response.text()
            work = sum(
                float(line.split()[-1])
                for line in text.splitlines()
                if line.startswith(
                    ("paystream_webhook_delivery_attempts_total{", "paystream_events_handled_total{")
                )
            )
            assert work > 0, f"replica on {port} did nothing"


async def test_sigterm_lets_in_flight_attempts_finish_and_record(
    make_receiver: MakeReceiver,
    make_merchant: MakeMerchant,
    dispatcher_env: dict[str, str],
    spawn_service: Callable[..., ServiceProcess],
    redis: aioredis.Redis,
    db_pool: asyncpg.Pool,
) -> None:
    async def slow(_request: ReceivedRequest, _count: int) -> web.StreamResponse:
        await asyncio.sleep(1.5)
        return web.Response(text="ok")

    receiver = await make_receiver([], slow)
    merchant = await make_merchant(receiver.url)
    dispatcher = spawn_service(DISPATCHER, dispatcher_env)
    await publish(
        redis,
        *[payment_created(merchant.id, f"pay_DRAIN{n:011d}") for n in range(5)],
    )
    await eventually(lambda: len(receiver.requests) == 5, timeout=15)

    assert await asyncio.to_thread(dispatcher.terminate) == 0

    rows = await deliveries(db_pool, merchant.id)
    assert [(row["status"], row["attempts"]) for row in rows] == [("success", 1)] * 5
    assert "Traceback" not in dispatcher.log_text()
