"""What every pooled PostgreSQL session is set up with, and what a release does (and does not) reset."""

from __future__ import annotations

import contextlib

from aiohttp import web

from paystream.db import create_pool
from paystream.settings import CommonSettings, DatabaseSettings
from paystream.web import COMMON_SETTINGS, POOL, SERVICE_NAME, stores


async def test_pooled_sessions_plan_each_statement_and_end_idle_transactions(database_url: str) -> None:
    pool = await create_pool(DatabaseSettings(url=database_url, pool_min_size=1, pool_max_size=1))
    try:
        async with pool.acquire() as conn:
            assert await conn.fetchval("SHOW plan_cache_mode") == "force_custom_plan"
            assert await conn.fetchval("SHOW idle_in_transaction_session_timeout") == "1min"
    finally:
        await pool.close()


async def test_a_release_skips_the_session_reset_but_ends_an_open_transaction(database_url: str) -> None:
    pool = await create_pool(DatabaseSettings(url=database_url, pool_min_size=1, pool_max_size=1))
    try:
        async with pool.acquire() as conn:
            backend = await conn.fetchval("SELECT pg_backend_pid()")
            await conn.execute("SET application_name = 'kept across releases'")
            transaction = conn.transaction()
            await transaction.start()
            await conn.execute("CREATE TEMP TABLE left_open (n int)")
        async with pool.acquire() as conn:
            assert await conn.fetchval("SELECT pg_backend_pid()") == backend  # the same session
            # No RESET ALL (one round trip per release saved)...
            assert await conn.fetchval("SHOW application_name") == "kept across releases"
            # ...but the transaction left open was rolled back.
            assert not conn.is_in_transaction()
            assert await conn.fetchval("SELECT to_regclass('left_open')") is None
    finally:
        await pool.close()


async def test_a_service_names_its_sessions(database_url: str, redis_url: str) -> None:
    app = web.Application()
    app[SERVICE_NAME] = "payment-processor"
    app[COMMON_SETTINGS] = CommonSettings.from_env({"DATABASE_URL": database_url, "REDIS_URL": redis_url})
    lifetime = stores(app)
    await anext(lifetime)
    try:
        names = await app[POOL].fetch(
            "SELECT application_name FROM pg_stat_activity WHERE datname = current_database()"
        )
        assert "payment-processor" in {row["application_name"] for row in names}
    finally:
        with contextlib.suppress(StopAsyncIteration):
            await anext(lifetime)
