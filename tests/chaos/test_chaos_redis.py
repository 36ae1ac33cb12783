"""Redis faults under steady load, with every service running:

- Redis restarted (AOF on) mid-load: every service recovers on its own, nothing accepted is lost;
- Redis unreachable for a while: the API keeps accepting payments and provider webhooks (the outbox
  holds their events), and everything is published, processed and delivered once Redis is back.
  (tests/test_outbox_crash_recovery.py covers the API alone, killed while Redis is down; this runs
  the whole platform under load through the outage.)
"""

from __future__ import annotations

import asyncio
import time

import pytest
from chaos_scenario import ScenarioFactory

from paystream_devstack.embedded import EmbeddedRedis
from paystream_devstack.testing import eventually


@pytest.fixture
def redis_url(redis_server: EmbeddedRedis) -> str:
    """This module stops, restarts or cuts off Redis: its services and checks use the private server,
    even when the suite runs on another one (TEST_REDIS_URL)."""
    return redis_server.url


pytestmark = pytest.mark.chaos

OUTAGE_S = 4.0


async def test_redis_restarted_mid_load_every_service_recovers_and_nothing_is_lost(
    open_scenario: ScenarioFactory, redis_server: EmbeddedRedis
) -> None:
    scenario = await open_scenario(tag="redis-restart")
    load = await scenario.load.start()
    await load.until_accepted(30)
    try:
        await asyncio.to_thread(redis_server.stop)
    finally:
        await asyncio.to_thread(redis_server.start)
    await load.until_accepted(30)  # accepted after the restart, so published through new connections
    await load.run_for(1.0)

    await scenario.settle_and_verify()


async def test_redis_unreachable_writes_succeed_and_are_published_once_it_is_back(
    open_scenario: ScenarioFactory, redis_server: EmbeddedRedis
) -> None:
    scenario = await open_scenario(tag="redis-down")
    load = await scenario.load.start()
    await load.until_accepted(20)
    await asyncio.to_thread(redis_server.stop)
    try:
        down_from = time.monotonic()
        await load.until_accepted(20)  # accepted while Redis is down

        async def held_in_outbox() -> int:
            count: int = await scenario.pool.fetchval("SELECT count(*) FROM outbox_pending")
            return count if count >= 20 else 0

        await eventually(held_in_outbox, timeout=10, message="the outbox holds the events meanwhile")
        await load.run_for(max(0.0, OUTAGE_S - (time.monotonic() - down_from)))
        down_until = time.monotonic()
    finally:
        await asyncio.to_thread(redis_server.start)

    during = load.answers_between(down_from, down_until)
    assert during, "the load kept sending while Redis was down"
    refused = [answer for answer in during if not 200 <= answer.status < 300]
    assert not refused, f"writes failed while only Redis was down: {refused[:5]}"

    await scenario.settle_and_verify()
