"""Fixtures of the merchant API's tests: the real app in-process, on the session's real stores."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import pytest
from aiohttp.test_utils import TestClient, TestServer

from paystream_api.app import create_app
from paystream_api.auth import hash_secret
from paystream_api.seed import seed_test_merchant
from paystream_api.settings import ApiSettings

OTHER_AUTH = {"X-Api-Key": "key_other_merchant", "X-Api-Secret": "secret_other_merchant"}


@pytest.fixture
async def api(service_env: dict[str, str]) -> AsyncIterator[TestClient[Any, Any]]:
    app = create_app(ApiSettings.from_env(service_env))
    async with TestClient(TestServer(app)) as client:
        yield client


@pytest.fixture(scope="module")
async def shared_client(redis_url: str, database_url: str) -> AsyncIterator[TestClient[Any, Any]]:
    """One app for the tests that only send bad input (nothing to clean between them)."""
    env = {
        "REDIS_URL": redis_url,
        "DATABASE_URL": database_url,
        "JWT_SECRET": "test-jwt-secret",
        "TEST_MODE": "true",
    }
    app = create_app(ApiSettings.from_env(env))
    async with TestClient(TestServer(app)) as client:
        yield client


@pytest.fixture
async def validating_api(shared_client: TestClient[Any, Any], db_pool: asyncpg.Pool) -> TestClient[Any, Any]:
    async with db_pool.acquire() as conn, conn.transaction():
        await seed_test_merchant(conn)  # another test may have emptied the database
    return shared_client


@pytest.fixture
async def other_merchant(api: TestClient[Any, Any], db_pool: asyncpg.Pool) -> dict[str, str]:
    await db_pool.execute(
        """INSERT INTO merchants (id, name, email, api_key, api_secret_hash, webhook_secret)
           VALUES ('mer_other000000001', 'Other', 'other@example.com', $1, $2, 'whsec_other')""",
        OTHER_AUTH["X-Api-Key"],
        hash_secret(OTHER_AUTH["X-Api-Secret"]),
    )
    return OTHER_AUTH
