"""What every pooled PostgreSQL session is set up with, and what a release does (and does not) reset."""

from __future__ import annotations

import contextlib

from aiohttp import web

from paystream.db import create_pool
from paystream.settings import CommonSettings, DatabaseSettings
from paystream.web import COMMON_SETTINGS, POOL, SERVICE_NAME, stores
from paystream_devstack.testing import eventually


async def test_pooled_sessions_plan_each_statement_and_end_idle_transactions(database_url: str) -> None:
    pool = await create_pool(DatabaseSettings(url=database_url, pool_min_size=1, pool_max_size=1))
    try:
        async with pool.acquire() as conn:
            assert await conn.fetchval("SHOW plan_cache_mode") == "force_custom_plan"
            assert await conn.fetchval("SHOW idle_in_transaction_session_timeout") == "1min"
            assert await conn.fetchval("SHOW client_connection_check_interval") == "1s"
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


CHILD_HOLDS_A_ROW_LOCK = """
import asyncio, sys
from paystream.db import create_pool
from paystream.settings import DatabaseSettings

async def main() -> None:
    pool = await create_pool(DatabaseSettings(url=sys.argv[1], pool_min_size=1, pool_max_size=1))
    async with pool.acquire() as conn, conn.transaction():
        await conn.execute("SELECT * FROM orphan_locks WHERE id = 1 FOR UPDATE")
        print("locked", flush=True)
        await conn.execute("SELECT pg_sleep(120)")  # killed in here

asyncio.run(main())
"""


async def test_a_killed_client_mid_statement_frees_its_locks_within_seconds(database_url: str) -> None:
    """A SIGKILLed process's backend stops running its statement and ends its transaction once its
    client is gone, instead of holding its row locks until the statement would have finished."""
    import asyncio
    import signal
    import sys

    import asyncpg

    admin = await asyncpg.connect(database_url)
    try:
        await admin.execute("CREATE TABLE IF NOT EXISTS orphan_locks (id int PRIMARY KEY)")
        await admin.execute("INSERT INTO orphan_locks VALUES (1) ON CONFLICT DO NOTHING")
        child = await asyncio.create_subprocess_exec(
            sys.executable, "-c", CHILD_HOLDS_A_ROW_LOCK, database_url, stdout=asyncio.subprocess.PIPE
        )
        assert child.stdout is not None
        assert (await asyncio.wait_for(child.stdout.readline(), timeout=20)).strip() == b"locked"

        async def sleeping() -> bool:  # killed while its backend runs the statement, not between two
            return bool(
                await admin.fetchval(
                    "SELECT count(*) FROM pg_stat_activity WHERE wait_event = 'PgSleep' AND datname = current_database()"
                )
            )

        await eventually(sleeping, timeout=10)
        child.send_signal(signal.SIGKILL)
        await child.wait()
        async with admin.transaction():
            await admin.execute("SET LOCAL lock_timeout = '10s'")  # the sleep would hold it 120 s
            assert await admin.fetchval("SELECT id FROM orphan_locks WHERE id = 1 FOR UPDATE") == 1
    finally:
        # When the test fails, the orphan still holds its lock: end it, so the clean-up can run.
        await admin.execute(
            """SELECT pg_terminate_backend(pid) FROM pg_stat_activity
               WHERE wait_event = 'PgSleep' AND datname = current_database()"""
        )
        await admin.execute("DROP TABLE IF EXISTS orphan_locks")
        await admin.close()
