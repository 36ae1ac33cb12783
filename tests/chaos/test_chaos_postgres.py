"""PostgreSQL crashes and restarts under steady load: while it is down the API answers 503 with a
JSON error (never a 500 or a stack trace); nothing half-written remains (no payment without its
events, no idempotency key left claimed, no provider event unprocessed); and every service resumes
by itself, without being restarted.

The platform runs on a PostgreSQL of this test's own (the shared test server must not be restarted).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import asyncpg
import pytest
from chaos_scenario import ScenarioFactory

from paystream.db import create_pool
from paystream.migrations import apply_migrations
from paystream.settings import DatabaseSettings
from paystream_devstack.embedded import EmbeddedPostgres

pytestmark = pytest.mark.chaos

OUTAGE_S = 3.0


@pytest.fixture
async def own_postgres(tmp_path: Path) -> AsyncIterator[EmbeddedPostgres]:
    server = EmbeddedPostgres(tmp_path / "postgres", database="paystream_chaos")
    await asyncio.to_thread(server.start)
    try:
        await apply_migrations(server.url)
        yield server
    finally:
        await asyncio.to_thread(server.stop)


@pytest.fixture
async def own_pool(own_postgres: EmbeddedPostgres) -> AsyncIterator[asyncpg.Pool]:
    pool = await create_pool(DatabaseSettings(url=own_postgres.url, pool_min_size=1, pool_max_size=5))
    yield pool
    await pool.close()


async def test_postgres_crash_and_restart_mid_load_answers_503_and_resumes_by_itself(
    open_scenario: ScenarioFactory, own_postgres: EmbeddedPostgres, own_pool: asyncpg.Pool
) -> None:
    scenario = await open_scenario(tag="pg-restart", pool=own_pool, DATABASE_URL=own_postgres.url)
    pids = {name: process.pid for name, process in scenario.stack.processes.items()}
    load = await scenario.load.start()
    await load.until_accepted(30)

    await asyncio.to_thread(own_postgres.kill)  # SIGKILL: in-flight transactions die with it
    down_from = time.monotonic()
    try:
        await load.run_for(OUTAGE_S)
        health = await _api_health(scenario.stack.api_url)
        restart_at = time.monotonic()
    finally:
        await asyncio.to_thread(own_postgres.start)  # crash recovery, same port and data
    assert health == (503, "down"), health

    # Requests that were under way at the crash may end either way; judge those sent after it.
    during = load.answers_between(down_from + 0.5, restart_at)
    assert during, "the load kept sending while PostgreSQL was down"
    others = [(round(a.at - down_from, 3), a) for a in during if a.status != 503]
    assert not others, f"answers other than 503 while PostgreSQL was down: {others[:5]}"
    assert all(a.content_type == "application/json" for a in during), during[:3]
    assert {a.error_code for a in during} == {"SERVICE_UNAVAILABLE"}, during[:3]

    await load.until_accepted(30, timeout=30)  # the API took writes again, without a restart
    await load.run_for(1.0)
    await scenario.settle_and_verify()

    for name, process in scenario.stack.processes.items():
        assert process.pid == pids[name] and process.process is not None, f"{name} was restarted"
        assert process.process.poll() is None, f"{name} exited:\n{process.tail()}"


async def _api_health(api_url: str) -> tuple[int, str]:
    async with aiohttp.ClientSession() as http, http.get(f"{api_url}/health") as response:
        body = await response.json()
        return response.status, str(body.get("database"))
