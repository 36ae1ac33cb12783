"""What the sharded-stream tests share: the layout, the cluster's client and environment, payctl,
and the check that every payment's events stayed on one shard, in order."""

from __future__ import annotations

import asyncio
import os
import sys
from collections import defaultdict
from collections.abc import Awaitable, Callable
from typing import Any

import orjson
import redis.asyncio as aioredis
from chaos_scenario import Scenario

from paystream.events import SEQUENCE_FIELD, STREAM_FIELD, Event, Stream
from paystream.ordering import ordering_key
from paystream.redis import create_redis
from paystream.settings import RedisSettings
from paystream.shards import StreamLayout
from paystream_devstack.cluster import EmbeddedRedisCluster

ClusterFactory = Callable[[], Awaitable[EmbeddedRedisCluster]]
ScenarioOpener = Callable[..., Awaitable[Scenario]]

SHARDS = StreamLayout(shards=3)
SHARD_KEYS = list(SHARDS.keys(Stream.PAYMENT_EVENTS))


async def cluster_client(cluster: EmbeddedRedisCluster) -> aioredis.Redis:
    client = create_redis(RedisSettings(url=cluster.url, cluster=True))
    await client.ping()
    return client


def cluster_env(cluster: EmbeddedRedisCluster) -> dict[str, str]:
    """What the services are started with on the cluster."""
    return {
        "REDIS_URL": cluster.url,
        "REDIS_CLUSTER": "true",
        "STREAM_SHARDS": str(SHARDS.shards),
        # A master killed right after the relay's XADDs must not take them along (see the README).
        "OUTBOX_WAIT_REPLICAS": "1",
    }


async def run_payctl(*args: str, env: dict[str, str]) -> Any:
    """`payctl --json ...` as an operator runs it, on the platform's Redis; its JSON answer."""
    scrubbed = {key: value for key, value in os.environ.items() if key not in ("REDIS_URL", "DATABASE_URL")}
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "payctl",
        "--json",
        *args,
        env={**scrubbed, "PAYSTREAM_DATA_DIR": "/nonexistent", **env},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(process.communicate(), 60)
    assert process.returncode in (0, 1), f"payctl {' '.join(args)}: {process.returncode} {err.decode()}"
    return orjson.loads(out)


async def payments_by_shard(redis: aioredis.Redis) -> dict[str, set[str]]:
    """Shard key -> the payments whose events it holds; fails if a payment's events are on two
    shards, or out of their order (`seq` 1, 2, 3... in stream order, re-published copies aside)."""
    shards_of: dict[tuple[str, str], set[str]] = defaultdict(set)
    numbers: dict[tuple[str, str], list[int]] = defaultdict(list)
    for key in SHARD_KEYS:
        for _entry_id, fields in await redis.xrange(key):
            event = Event.decode(fields[STREAM_FIELD])
            payment = ordering_key(event)
            if payment is None:
                continue
            shards_of[(event.merchant_id, payment)].add(key)
            numbers[(event.merchant_id, payment)].append(int(fields[SEQUENCE_FIELD]))
    problems = [f"{payment} on {sorted(keys)}" for payment, keys in shards_of.items() if len(keys) > 1]
    for payment, seen in numbers.items():
        # A batch published again (its replica wait failed) repeats its entries after the first
        # copies: the first copy of each number comes in order, with none missing.
        first_copies = list(dict.fromkeys(seen))
        if first_copies != list(range(1, len(first_copies) + 1)):
            problems.append(f"{payment} numbered {seen} in stream order")
    assert not problems, "\n".join(problems[:20])
    found: dict[str, set[str]] = defaultdict(set)
    for (_, payment), keys in shards_of.items():
        found[next(iter(keys))].add(payment)
    return dict(found)


async def groups_on(redis: aioredis.Redis, key: str) -> set[str]:
    return {group["name"].decode() for group in await redis.xinfo_groups(key)}
