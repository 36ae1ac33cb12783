"""Fixtures for the fault suite: a whole platform of real processes under steady load, with the
merchant's receiver and a frontend on the notifier, torn down after each test."""

from __future__ import annotations

import sys
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import Any

import asyncpg
import pytest
import redis.asyncio as aioredis

# The suite runs with --import-mode=importlib, which puts no test directory on sys.path.
sys.path.insert(0, str(Path(__file__).parent))

from chaos_scenario import INVOICES, EndpointFactory, Scenario, ScenarioFactory
from load import SteadyLoad
from merchant_receiver import MerchantReceiver, ReceivingEndpoint
from platform_stack import MERCHANT_ID, SERVICES, WEBHOOK_SECRET, PaymentWatcher, Spawn, start_stack

from paystream.invoices import record_invoice_owner
from paystream_devstack.embedded import free_port


@pytest.fixture
async def open_scenario(
    spawn_service: Spawn, service_env: dict[str, str], redis: aioredis.Redis, db_pool: asyncpg.Pool
) -> AsyncIterator[ScenarioFactory]:
    """Factory: `await open_scenario(tag=..., **env)` starts the services (all four unless told
    otherwise) with `env` overriding the test environment, points the merchant's webhooks at a
    receiver, connects a frontend watching the load's invoices, and prepares (does not start) the
    load. `pool` is needed when `DATABASE_URL` is overridden (a pool on that database)."""
    opened: list[Scenario] = []

    async def open_(
        *,
        tag: str,
        services: Sequence[str] = SERVICES,
        pool: asyncpg.Pool | None = None,
        load_options: dict[str, Any] | None = None,
        **env: str,
    ) -> Scenario:
        pool = pool or db_pool
        async with pool.acquire() as conn, conn.transaction():
            for invoice_id in INVOICES:
                await record_invoice_owner(conn, MERCHANT_ID, invoice_id)
        stack = await start_stack(spawn_service, service_env, services, **env)
        receiver = watcher = None
        if "webhook_dispatcher" in services:
            receiver = await MerchantReceiver(WEBHOOK_SECRET).start()
            config = await stack.configure_webhook(receiver.url)
            assert config["secret"] == WEBHOOK_SECRET, config
        if "notifier" in services:
            watcher = PaymentWatcher(stack.notifier_url, INVOICES)
            await watcher.connect()
        load = SteadyLoad(
            stack.api_url, stack.env["RAZORPAY_WEBHOOK_SECRET"], INVOICES, tag=tag, **(load_options or {})
        )
        scenario = Scenario(stack, pool, redis, load, receiver, watcher)
        opened.append(scenario)
        return scenario

    yield open_
    for scenario in opened:
        await scenario.close()


@pytest.fixture
async def add_endpoint() -> AsyncIterator[EndpointFactory]:
    """Factory: `await add_endpoint(scenario, events=[...], **fields)` registers one more webhook
    endpoint of the merchant through the API (`POST /api/v1/webhook-endpoints`; `events` omitted:
    every event) and starts a receiver behind it that verifies the endpoint's own secret, as the
    API answered it. The receivers are stopped at the end."""
    receivers: list[MerchantReceiver] = []

    async def add(
        scenario: Scenario, events: Sequence[str] | None = None, **fields: object
    ) -> ReceivingEndpoint:
        port = free_port()
        if events is not None:
            fields["events"] = list(events)
        created = await scenario.stack.create_endpoint(MerchantReceiver.url_on(port), **fields)
        assert created["events"] == (["*"] if events is None else list(events)), created
        receiver = MerchantReceiver(created["secret"], port=port)
        receivers.append(receiver)
        await receiver.start()
        return ReceivingEndpoint(created["id"], receiver, None if events is None else frozenset(events))

    yield add
    for receiver in receivers:
        await receiver.stop()
