"""`payctl health`: one screen, and an exit code cron can act on."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable

import asyncpg
import pytest
import redis.asyncio as aioredis
from aiohttp import web
from payctl_testkit import PAYMENTS, PROCESSOR, BusState, Payctl, payment_event, publish

from paystream.db import connect
from paystream.events import EventType
from paystream_devstack.embedded import free_port

SERVICES = ("API", "PROCESSOR", "DISPATCHER", "NOTIFIER")


StartStub = Callable[[int], Awaitable[str]]


@pytest.fixture
async def service_stub() -> AsyncIterator[StartStub]:
    """Factory: a real local HTTP server whose /health answers with the given status; returns its URL."""
    runners: list[web.AppRunner] = []

    async def start(status: int) -> str:
        async def health(_request: web.Request) -> web.Response:
            body = (
                {"status": "ok", "database": "ok", "redis": "ok"} if status == 200 else {"database": "down"}
            )
            return web.json_response(body, status=status)

        app = web.Application()
        app.router.add_get("/health", health)
        runner = web.AppRunner(app)
        await runner.setup()
        port = free_port()
        await web.TCPSite(runner, "127.0.0.1", port).start()
        runners.append(runner)
        return f"http://127.0.0.1:{port}"

    yield start
    for runner in runners:
        await runner.cleanup()


def all_services_at(url: str) -> dict[str, str]:
    return {f"PAYCTL_{name}_URL": url for name in SERVICES}


@pytest.fixture
async def quiet_bus(redis: aioredis.Redis) -> None:
    """Everything published has been handled and acknowledged by a consumer seen just now."""
    for index in range(3):
        await publish(
            redis, PAYMENTS, payment_event(EventType.PAYMENT_SUCCESS, "mer_a", f"pay_{index}", "success")
        )
    await redis.xgroup_create(PAYMENTS, PROCESSOR, id="0")
    reply = await redis.xreadgroup(PROCESSOR, "live-consumer", {PAYMENTS: ">"})
    await redis.xack(PAYMENTS, PROCESSOR, *[entry_id for entry_id, _ in reply[0][1]])


async def test_all_well_exits_0(
    payctl: Payctl, quiet_bus: None, clean_db: str, service_stub: StartStub
) -> None:
    url = await service_stub(200)

    result = await payctl("health", "--json", env={"DATABASE_URL": clean_db, **all_services_at(url)})

    assert result.returncode == 0, result.stdout + result.stderr
    body = result.json()
    assert body["status"] == "ok"
    assert body["problems"] == []
    assert {service["name"]: service["state"] for service in body["services"]} == {
        "api": "up",
        "processor": "up",
        "dispatcher": "up",
        "notifier": "up",
    }
    [group] = body["groups"]
    assert (group["group"], group["lag"], group["pending"], group["live_consumers"]) == (PROCESSOR, 0, 0, 1)
    assert body["dead_letters"][PAYMENTS] == 0


async def test_dead_letters_and_old_pending_entries_need_attention(
    payctl: Payctl, bus: BusState, service_stub: StartStub
) -> None:
    env = all_services_at(await service_stub(200))

    result = await payctl("health", "--max-pending-age", "1m", "--json", env=env)

    assert result.returncode == 1
    problems = result.json()["problems"]
    assert f"{PAYMENTS}: 1 dead letter(s) > 0" in problems
    assert any(
        problem.startswith(f"{PROCESSOR} on {PAYMENTS}: oldest pending entry is 2m") for problem in problems
    )
    assert len(problems) == 2

    relaxed = await payctl("health", "--max-dead-letters", "1", "--max-pending-age", "5m", env=env)
    assert relaxed.returncode == 0, relaxed.stdout
    assert relaxed.stdout.startswith("OK")


async def test_lag_and_missing_consumers_need_attention(
    payctl: Payctl, quiet_bus: None, redis: aioredis.Redis
) -> None:
    await redis.xgroup_create(PAYMENTS, "notifier", id="0")  # nobody reads it: lag 3

    result = await payctl("health", "--services", "", "--max-lag", "2", "--json")

    assert result.returncode == 1
    assert result.json()["problems"] == [
        f"notifier on {PAYMENTS}: lag 3 > 2",
        f"notifier on {PAYMENTS}: no consumer seen within 2m",
    ]


async def test_a_service_down_or_degraded_needs_attention(
    payctl: Payctl, quiet_bus: None, service_stub: StartStub
) -> None:
    up, degraded = await service_stub(200), await service_stub(503)
    env = {
        "PAYCTL_API_URL": up,
        "PAYCTL_PROCESSOR_URL": degraded,
        "PAYCTL_DISPATCHER_URL": f"http://127.0.0.1:{free_port()}",
        "PAYCTL_NOTIFIER_URL": up,
    }

    result = await payctl("health", "--json", env=env)

    assert result.returncode == 1
    problems = result.json()["problems"]
    assert "service processor is degraded: HTTP 503 (database down)" in problems
    assert any(problem.startswith("service dispatcher is down: ") for problem in problems)
    assert len(problems) == 2
    human = await payctl("health", env=env)
    assert human.stdout.startswith("ATTENTION: 2 problem(s)")


@pytest.fixture
async def scratch_deliveries(clean_db: str) -> AsyncIterator[asyncpg.Connection]:
    conn = await connect(clean_db)
    await conn.execute("CREATE SCHEMA payctl_scratch")
    await conn.execute(
        "CREATE TABLE payctl_scratch.deliveries (status text NOT NULL, last_attempt_at timestamptz NOT NULL)"
    )
    try:
        yield conn
    finally:
        await conn.execute("DROP SCHEMA payctl_scratch CASCADE")
        await conn.close()


async def test_failed_deliveries_in_the_last_hour_are_counted(
    payctl: Payctl, quiet_bus: None, clean_db: str, scratch_deliveries: asyncpg.Connection
) -> None:
    await scratch_deliveries.execute(
        """INSERT INTO payctl_scratch.deliveries VALUES
             ('failed', now() - interval '5 minutes'), ('failed', now() - interval '50 minutes'),
             ('failed', now() - interval '59 minutes'), ('failed', now() - interval '2 hours'),
             ('success', now()), ('pending', now())"""
    )
    env = {"DATABASE_URL": clean_db, "PAYCTL_DELIVERIES_TABLE": "payctl_scratch.deliveries"}

    within = await payctl("health", "--services", "", "--max-failed-deliveries", "3", "--json", env=env)
    beyond = await payctl("health", "--services", "", "--max-failed-deliveries", "2", "--json", env=env)

    assert within.returncode == 0, within.stdout
    assert within.json()["failed_deliveries"]["count"] == 3
    assert within.json()["failed_deliveries"]["table"] == "payctl_scratch.deliveries"
    assert beyond.returncode == 1
    assert beyond.json()["problems"] == ["3 webhook deliveries failed in the last hour > 2"]


async def test_failed_deliveries_found_at_run_time_or_reported_na(
    payctl: Payctl, quiet_bus: None, clean_db: str
) -> None:
    conn = await connect(clean_db)
    try:
        log_table = await conn.fetchval("SELECT to_regclass('webhook_deliveries')::text")
    finally:
        await conn.close()

    result = await payctl("health", "--services", "", "--json", env={"DATABASE_URL": clean_db})
    missing = await payctl(
        "health",
        "--services",
        "",
        "--json",
        env={"DATABASE_URL": clean_db, "PAYCTL_DELIVERIES_TABLE": "no_such_table"},
    )

    deliveries = result.json()["failed_deliveries"]
    if log_table is None:  # the dispatcher's migration is not in this tree yet
        assert (deliveries["count"], deliveries["note"]) == (None, "no delivery-log table found")
    else:
        assert (deliveries["count"], deliveries["table"]) == (0, log_table)
    assert missing.returncode == 0
    assert missing.json()["failed_deliveries"] == {
        "count": None,
        "window_s": 3600.0,
        "table": None,
        "note": "table 'no_such_table' not found",
    }
