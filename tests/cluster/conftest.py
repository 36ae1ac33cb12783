"""Fixtures for the sharded-stream suite: a real local Redis Cluster (three masters, three replicas,
`redis-server --cluster-enabled yes` on loopback ports), a client on it, and the whole platform
under steady load on it (or, with STREAM_SHARDS alone, on the plain test Redis), with the merchant's
receiver and a frontend on the notifier: the fault suite's scenario, on shards."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import asyncpg
import pytest
import redis.asyncio as aioredis

# The suite runs with --import-mode=importlib: its helpers and the fault suite's are put on the path.
sys.path.insert(0, str(Path(__file__).parent))
sys.path.insert(0, str(Path(__file__).parents[1] / "chaos"))

from chaos_scenario import INVOICES, Scenario
from load import SteadyLoad
from merchant_receiver import MerchantReceiver
from platform_stack import MERCHANT_ID, SERVICES, WEBHOOK_SECRET, PaymentWatcher, Spawn, start_stack
from sharded_stack import SHARD_KEYS, ClusterFactory, ScenarioOpener

from paystream.invoices import record_invoice_owner
from paystream_devstack.cluster import DEBIAN_PACKAGE, EmbeddedRedisCluster, missing_binaries


def _require_binaries() -> None:
    missing = missing_binaries()
    if missing:
        pytest.skip(
            f"{' and '.join(missing)} not found: install the Debian package {DEBIAN_PACKAGE} "
            "(listed in .ci/apt-packages)"
        )


@pytest.fixture
def start_cluster(tmp_path: Path) -> Iterator[ClusterFactory]:
    """Factory: a fresh cluster whose three shard slots are spread over the three masters (their
    hash tags put {1} and {2} on one master of redis-cli's even split: see the README); stopped at
    the end of the test."""
    _require_binaries()
    started: list[EmbeddedRedisCluster] = []

    async def start() -> EmbeddedRedisCluster:
        cluster = EmbeddedRedisCluster(tmp_path / f"redis-cluster-{len(started)}")
        started.append(cluster)
        await asyncio.to_thread(cluster.start)
        await asyncio.to_thread(cluster.spread, SHARD_KEYS)
        return cluster

    yield start
    for cluster in started:
        cluster.stop()


@pytest.fixture
async def open_sharded_scenario(
    spawn_service: Spawn, service_env: dict[str, str], db_pool: asyncpg.Pool
) -> AsyncIterator[ScenarioOpener]:
    """Factory: `await open_sharded_scenario(redis, tag=..., **env)` starts all four services with
    `env` over the test environment, points the merchant's webhooks at a receiver, connects a
    frontend watching the load's invoices, and prepares (does not start) the load; `redis` is the
    client the final checks read the bus with."""
    opened: list[Scenario] = []

    async def open_(redis: aioredis.Redis, *, tag: str, **env: str) -> Scenario:
        async with db_pool.acquire() as conn, conn.transaction():
            for invoice_id in INVOICES:
                await record_invoice_owner(conn, MERCHANT_ID, invoice_id)
        stack = await start_stack(spawn_service, service_env, SERVICES, **env)
        receiver = await MerchantReceiver(WEBHOOK_SECRET).start()
        config = await stack.configure_webhook(receiver.url)
        assert config["secret"] == WEBHOOK_SECRET, config
        watcher = PaymentWatcher(stack.notifier_url, INVOICES)
        await watcher.connect()
        load = SteadyLoad(stack.api_url, stack.env["RAZORPAY_WEBHOOK_SECRET"], INVOICES, tag=tag)
        scenario = Scenario(stack, db_pool, redis, load, receiver, watcher)
        opened.append(scenario)
        return scenario

    yield open_
    for scenario in opened:
        await scenario.close()
