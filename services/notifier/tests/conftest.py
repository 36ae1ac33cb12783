"""Fixtures for the notifier's tests: in-process notifiers (the real app) on real Redis and
PostgreSQL, recording Socket.IO clients that are closed after each test, and invoice owners."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import pytest
import redis.asyncio as aioredis
from aiohttp.test_utils import TestServer

from notifier.app import create_app
from paystream.invoices import record_invoice_owner
from paystream_devstack.testing.notifier_client import (
    Client,
    ClientFactory,
    OwnerRecorder,
    ServerFactory,
    notifier_settings,
    open_client,
)


@pytest.fixture
async def connect_client() -> AsyncIterator[ClientFactory]:
    """Factory: `await connect_client(url, token=..., ...)` (see `open_client`); every client it
    made is disconnected at the end of the test."""
    clients: list[Client] = []

    async def connect(url: str, **options: Any) -> Client:
        client = await open_client(url, **options)
        clients.append(client)
        return client

    yield connect
    for client in clients:
        await client.close()


@pytest.fixture
async def start_notifier(
    redis: aioredis.Redis, redis_url: str, clean_db: str
) -> AsyncIterator[ServerFactory]:
    """Factory: start an in-process notifier on a free port and return its base URL."""
    servers: list[TestServer] = []

    async def start(**overrides: str) -> str:
        server = TestServer(create_app(notifier_settings(redis_url, clean_db, **overrides)))
        await server.start_server()
        servers.append(server)
        return str(server.make_url("")).rstrip("/")

    yield start
    for server in reversed(servers):
        await server.close()


@pytest.fixture
async def notifier_url(start_notifier: ServerFactory) -> str:
    return await start_notifier()


@pytest.fixture
def owners(db_pool: asyncpg.Pool, clean_db: str) -> OwnerRecorder:
    """`await owners(merchant_id, invoice_id, salon_id=None)`: record who an invoice belongs to."""

    async def record(merchant_id: str, invoice_id: str, salon_id: str | None = None) -> None:
        async with db_pool.acquire() as conn, conn.transaction():
            await record_invoice_owner(conn, merchant_id, invoice_id, salon_id)

    return record
