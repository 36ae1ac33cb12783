"""The whole platform on three shard streams, as real processes under steady load (API payments and
signed Razorpay webhooks; the processor settles them, the dispatcher delivers the merchant's webhooks,
a Socket.IO frontend watches them complete):

- on the plain test Redis with STREAM_SHARDS=3;
- on a real local Redis Cluster (three masters, three replicas) with REDIS_CLUSTER=true, the three
  shards on three masters;
- on that cluster while a master is SIGKILLed and its replica promoted: nothing accepted is lost,
  nothing takes effect twice.

Each ends with the fault suite's checks (every accepted request took effect once, was published,
delivered in order and shown to the frontend; nothing left pending or unread on any shard), then
checks the shards themselves: every payment's events on one shard in their order, every shard used
and read by both groups, and payctl listing each shard and their sum.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest
import redis.asyncio as aioredis
from sharded_stack import (
    SHARD_KEYS,
    SHARDS,
    ClusterFactory,
    ScenarioOpener,
    cluster_client,
    cluster_env,
    groups_on,
    payments_by_shard,
    run_payctl,
)

from paystream.events import ConsumerGroup

pytestmark = [pytest.mark.cluster, pytest.mark.slow]

GROUPS = {ConsumerGroup.PAYMENT_PROCESSOR.value, ConsumerGroup.WEBHOOK_DISPATCHER.value}


async def check_shards(redis: aioredis.Redis, payctl_env: dict[str, str]) -> None:
    """Each payment on one shard in order, every shard holding payments and read by both groups,
    and payctl showing the three shards and their sums."""
    by_shard = await payments_by_shard(redis)
    assert set(by_shard) == set(SHARD_KEYS), f"payments reached only {sorted(by_shard)}"
    for key in SHARD_KEYS:
        assert await groups_on(redis, key) == GROUPS, key

    streams: Any = await run_payctl("streams", env=payctl_env)
    assert [item["stream"] for item in streams["streams"]] == SHARD_KEYS
    [total] = streams["totals"]
    assert total["stream"] == "payment:events" and total["shards"] == SHARDS.shards
    assert total["length"] == sum(item["length"] for item in streams["streams"]) > 0
    groups: Any = await run_payctl("groups", env=payctl_env)
    assert {(item["stream"], item["group"]) for item in groups["groups"]} == {
        (key, group) for key in SHARD_KEYS for group in GROUPS
    }
    assert {(item["group"], item["shards"], item["pending"], item["lag"]) for item in groups["totals"]} == {
        (group, SHARDS.shards, 0, 0) for group in GROUPS
    }, [(item["stream"], item["group"], item["pending"], item["lag"]) for item in groups["groups"]]
    # The notifier's one reader name, one heartbeat per shard.
    readers = {(item["name"], item["stream"]) for item in groups["readers"]}
    assert {stream for _, stream in readers} == set(SHARD_KEYS) and len({name for name, _ in readers}) == 1


async def test_three_shards_on_a_plain_redis(
    open_sharded_scenario: ScenarioOpener, redis: aioredis.Redis, redis_url: str
) -> None:
    scenario = await open_sharded_scenario(redis, tag="shards", STREAM_SHARDS=str(SHARDS.shards))
    load = await scenario.load.start()
    await load.until_accepted(40)
    await load.run_for(1.0)
    await scenario.settle_and_verify()

    assert not await redis.exists("payment:events"), "sharded: nothing on the unsharded stream"
    await check_shards(redis, {"REDIS_URL": redis_url, "STREAM_SHARDS": str(SHARDS.shards)})


async def test_three_shards_on_a_redis_cluster(
    open_sharded_scenario: ScenarioOpener, start_cluster: ClusterFactory
) -> None:
    cluster = await start_cluster()
    masters = {key: cluster.master_of(cluster.slot_of(key)).port for key in SHARD_KEYS}
    assert len(set(masters.values())) == 3, f"the shards share masters: {masters}"
    redis = await cluster_client(cluster)
    try:
        scenario = await open_sharded_scenario(redis, tag="cluster", **cluster_env(cluster))
        load = await scenario.load.start()
        await load.until_accepted(40)
        await load.run_for(1.0)
        await scenario.settle_and_verify()
        await check_shards(redis, cluster_env(cluster))
    finally:
        await redis.aclose()


async def test_a_master_killed_under_load_its_replica_promoted_nothing_accepted_is_lost(
    open_sharded_scenario: ScenarioOpener, start_cluster: ClusterFactory
) -> None:
    cluster = await start_cluster()
    redis = await cluster_client(cluster)
    try:
        scenario = await open_sharded_scenario(redis, tag="failover", **cluster_env(cluster))
        load = await scenario.load.start()
        await load.until_accepted(30)

        slot = cluster.slot_of(SHARD_KEYS[0])
        victim = cluster.master_of(slot)
        killed_at = time.monotonic()
        await asyncio.to_thread(cluster.kill, victim.port)
        promoted = await asyncio.to_thread(cluster.wait_promoted, slot, victim.node_id)
        failover_s = time.monotonic() - killed_at
        assert promoted.master_id is None and promoted.port != victim.port
        await load.until_accepted(20)  # accepted while the promoted master has no replica
        # The killed node comes back as the promoted master's replica: with OUTBOX_WAIT_REPLICAS=1
        # publishing on that master waits for one, and goes on from here.
        await asyncio.to_thread(cluster.restart, victim.port)
        replica = next(node for node in cluster.nodes() if node.port == victim.port)
        assert not replica.master and replica.master_id == promoted.node_id, replica
        await load.until_accepted(20)
        await load.run_for(1.0)

        drained_in = await scenario.settle_and_verify(drain_timeout=60)
        await check_shards(redis, cluster_env(cluster))
        print(f"failover {failover_s:.1f} s, drained {drained_in:.1f} s after the load; {load.summary()}")
    finally:
        await redis.aclose()
