"""Network faults between every service and Redis, through an in-test TCP proxy (toxiproxy.py),
under steady load: added latency, connection resets, and a blackhole (connections stay open but
everything sent is dropped, as in a partition). Afterwards everything drains, and nothing accepted
is lost or takes effect twice."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from chaos_scenario import ScenarioFactory
from toxiproxy import TcpProxy

from paystream_devstack.embedded import EmbeddedRedis
from paystream_devstack.testing import eventually


@pytest.fixture
def redis_url(redis_server: EmbeddedRedis) -> str:
    """This module stops, restarts or cuts off Redis: its services and checks use the private server,
    even when the suite runs on another one (TEST_REDIS_URL)."""
    return redis_server.url


pytestmark = pytest.mark.chaos

LATENCY_S = 0.1
BLACKHOLE_S = 3.0


@pytest.fixture
def redis_proxy(redis_server: EmbeddedRedis) -> Iterator[TcpProxy]:
    """A proxy in front of the test Redis (requested before the services, so it outlives them)."""
    proxy = TcpProxy(redis_server.host, redis_server.port).start()
    yield proxy
    proxy.close()


async def test_latency_resets_and_a_blackhole_towards_redis_lose_and_repeat_nothing(
    redis_proxy: TcpProxy, open_scenario: ScenarioFactory
) -> None:
    scenario = await open_scenario(tag="network", REDIS_URL=redis_proxy.redis_url)
    load = await scenario.load.start()
    await load.until_accepted(20)
    assert redis_proxy.open_connections > 0, "the services reach Redis through the proxy"

    redis_proxy.set_latency(LATENCY_S)
    await load.run_for(3.0)
    redis_proxy.set_latency(0.0)

    for _ in range(3):
        assert redis_proxy.reset_all() > 0
        await load.run_for(0.7)

    redis_proxy.blackhole()
    await load.run_for(BLACKHOLE_S)
    redis_proxy.heal()
    await eventually(
        lambda: redis_proxy.bytes_dropped > 0, timeout=1, message="the blackhole dropped traffic"
    )
    await load.run_for(1.0)

    await scenario.settle_and_verify(drain_timeout=45)
