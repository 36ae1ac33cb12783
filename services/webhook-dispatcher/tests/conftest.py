"""Fixtures for the dispatcher's tests: receivers, merchants with endpoints, and the dispatcher itself
(inside the test process; the chaos tests spawn real processes)."""

from __future__ import annotations

import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import asyncpg
import pytest
import redis.asyncio as aioredis
import uuid_utils
from aiohttp import web
from aiohttp.test_utils import TestServer

from webhook_dispatcher.settings import DispatcherSettings
from webhook_dispatcher.worker import create_app

# The suite runs with --import-mode=importlib, which puts no test directory on sys.path.
sys.path.insert(0, str(Path(__file__).parent))

from dispatcher_testkit import Behaviour, Receiver, SeededMerchant, always_ok


@pytest.fixture
async def make_receiver() -> AsyncIterator[Callable[..., Awaitable[Receiver]]]:
    receivers: list[Receiver] = []

    async def make(secrets: list[str] | None = None, behaviour: Behaviour = always_ok) -> Receiver:
        receiver = Receiver(secrets or [], behaviour)
        await receiver.start()
        receivers.append(receiver)
        return receiver

    yield make
    for receiver in receivers:
        await receiver.close()


# --- merchants, endpoints and events -------------------------------------------------------------


@pytest.fixture
async def make_merchant(db_pool: asyncpg.Pool, clean_db: str) -> Callable[..., Awaitable[SeededMerchant]]:
    async def make(
        url: str,
        *,
        secret: str = "whsec_test_abc123",
        events: list[str] | None = None,
        enabled: bool = True,
    ) -> SeededMerchant:
        suffix = uuid_utils.uuid4().hex[:12]
        merchant_id = f"mer_{suffix}"
        await db_pool.execute(
            """INSERT INTO merchants (id, name, email, api_key, api_secret_hash, webhook_secret)
               VALUES ($1, 'Merchant', $2, $3, 'unused', $4)""",
            merchant_id,
            f"{suffix}@example.com",
            f"key_{suffix}",
            secret,
        )
        endpoint_id = f"we_{suffix}"
        await db_pool.execute(
            "INSERT INTO webhook_endpoints (id, merchant_id, url, events, enabled) VALUES ($1, $2, $3, $4, $5)",
            endpoint_id,
            merchant_id,
            url,
            events,
            enabled,
        )
        return SeededMerchant(merchant_id, secret, endpoint_id)

    return make


# --- the dispatcher -------------------------------------------------------------------------------


@pytest.fixture
def dispatcher_env(service_env: dict[str, str]) -> dict[str, str]:
    return {**service_env, "LOG_LEVEL": "WARNING"}


@pytest.fixture
async def start_dispatcher(
    dispatcher_env: dict[str, str], redis: aioredis.Redis
) -> AsyncIterator[Callable[..., Awaitable[web.Application]]]:
    """Runs the real dispatcher app (consumer, scheduler, HTTP client) inside the test process."""
    servers: list[TestServer] = []

    async def start(**overrides: str) -> web.Application:
        settings = DispatcherSettings.from_env({**dispatcher_env, **overrides})
        app = create_app(settings)
        server = TestServer(app, host="127.0.0.1")
        await server.start_server()
        servers.append(server)
        return app

    yield start
    for server in reversed(servers):
        await server.close()
