"""`make bench BENCH_ARGS="--shards 1,2,3"`: how the bus's throughput grows with its shard streams.

For each shard count N, on a fresh local Redis Cluster (three masters of Debian's `redis-server
--cluster-enabled yes`, no replicas: replication is not what is measured; the shards' slots spread
over the masters) and the run's PostgreSQL:

1. the four services start with REDIS_CLUSTER=true and STREAM_SHARDS=N, the test merchant's
   webhooks off (the dispatcher's intake then looks each event up and records nothing);
2. `--shard-events` payment.success events (one payment each, so they spread over the shards) are
   committed to the outbox in large transactions; the relay publishes them to the N shard streams
   and both groups (payment-processor, which only reads and acknowledges them, and
   webhook-dispatcher) consume every shard;
3. measured from the first commit to the moment both groups have acknowledged every entry of every
   shard: throughput (events per second), each shard's consumer rate (its entries per second until
   each group drained it), each master's Redis CPU (INFO cpu: used_cpu_sys + used_cpu_user over the
   window, in cores), each service's and PostgreSQL's CPU (psutil, in cores) and the machine's load
   average (other work on the machine shares its cores).

On a small machine the Python services, not Redis, are expected to be the limit: compare the
masters' CPU with the services'. Results go to `<results-dir>/shards.json` and a table.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, cast

import aiohttp
import asyncpg
import orjson
import redis.asyncio as aioredis
import uuid_utils

from bench import machine
from bench.params import BenchParams
from bench.payloads import API_KEY, API_SECRET, success_payment
from bench.platform import PORT_VARIABLES, service_env
from bench.processes import Child, Children, wait_healthy
from bench.stores import Stores
from bench.usage import CpuMeter
from paystream import outbox
from paystream.db import create_pool
from paystream.events import ConsumerGroup, EventType, Stream
from paystream.migrations import apply_migrations
from paystream.redis import create_redis
from paystream.resources import PaymentResource, payment_event
from paystream.settings import DatabaseSettings, RedisSettings
from paystream.shards import StreamLayout
from paystream_devstack.cluster import DEBIAN_PACKAGE, EmbeddedRedisCluster, missing_binaries
from paystream_devstack.devrun.config import SERVICE_MODULES

COMMIT_BATCH = 2000
POLL_S = 0.05
MAX_WAIT_S = 300.0
GROUPS = (ConsumerGroup.PAYMENT_PROCESSOR.value, ConsumerGroup.WEBHOOK_DISPATCHER.value)
# Emptied between shard counts, so each count starts from the same tables.
BUS_TABLES = "outbox, outbox_pending, inbox, event_sequences, webhook_deliveries"

Say = Callable[[str], None]


async def run_shards(params: BenchParams, workdir: Path, say: Say) -> int:
    missing = missing_binaries()
    if missing:
        say(f"cannot start: {' and '.join(missing)} not found (install the Debian package {DEBIAN_PACKAGE})")
        return 1
    stores = Stores(workdir, params.redis_db, params.allow_flush)
    (workdir / "logs").mkdir(parents=True, exist_ok=True)
    children = Children(workdir / "logs")
    pool: asyncpg.Pool | None = None
    try:
        await stores.start()
        await apply_migrations(stores.database_url)
        pool = await create_pool(DatabaseSettings(url=stores.database_url, pool_min_size=1, pool_max_size=8))
        runs = []
        for count in params.shards:
            say(f"STREAM_SHARDS={count} ...")
            run = await _measure(params, workdir, stores, children, pool, count)
            runs.append(run)
            say(
                f"STREAM_SHARDS={count}: {run['throughput_eps']} events/s over {run['window_s']} s, "
                f"Redis masters {run['redis_cpu_cores']} cores, services {run['service_cpu_cores']} cores"
            )
        record = {"scenario": "shards", "parameters": params.to_record(), "runs": runs}
        params.results_dir.mkdir(parents=True, exist_ok=True)
        path = params.results_dir / "shards.json"
        path.write_bytes(orjson.dumps(record, option=orjson.OPT_INDENT_2))
        print("\n" + format_table(runs) + "\n", flush=True)
        say(f"wrote {path}")
        return 0
    finally:
        children.stop_all()
        if pool is not None:
            await pool.close()
        await stores.close()


async def _measure(
    params: BenchParams, workdir: Path, stores: Stores, children: Children, pool: asyncpg.Pool, count: int
) -> dict[str, Any]:
    layout = StreamLayout(shards=count)
    keys = list(layout.keys(Stream.PAYMENT_EVENTS))
    cluster = EmbeddedRedisCluster(workdir / f"cluster-{count}", replicas_per_master=0)
    services: dict[str, Child] = {}
    redis: aioredis.Redis | None = None
    try:
        await asyncio.to_thread(cluster.start)
        shard_masters = await asyncio.to_thread(cluster.spread, keys)
        masters = sorted(node.port for node in cluster.nodes() if node.master)
        async with pool.acquire() as conn:
            await conn.execute(f"TRUNCATE {BUS_TABLES}")
        env = {
            **service_env(params, cluster.url, stores.database_url),
            "REDIS_CLUSTER": "true",
            "STREAM_SHARDS": str(count),
        }
        for name, module in SERVICE_MODULES.items():
            services[name] = children.python(f"{name}-shards{count}", ["-m", module], env)
        urls = {name: f"http://127.0.0.1:{env[PORT_VARIABLES[name]]}" for name in services}
        await asyncio.gather(*(wait_healthy(services[name], urls[name]) for name in services))
        await _webhooks_off(urls["api"])
        redis = create_redis(RedisSettings(url=cluster.url, cluster=True))
        await _wait_for_groups(redis, keys)

        pids = {name: child.pid for name, child in services.items()}
        if stores.postgres_server is not None and stores.postgres_server.process is not None:
            pids["postgres"] = stores.postgres_server.process.pid  # with its backends
        meter = CpuMeter(pids)
        load_before = machine.load_average()
        redis_before = {port: _cpu_seconds(cluster, port) for port in masters}
        meter.start()
        started = time.monotonic()
        await _produce(pool, uuid_utils.uuid4().hex[:6], params.shard_events)
        committed_s = time.monotonic() - started
        drained = await _wait_consumed(redis, keys, params.shard_events, started)
        window = max(
            (at for by_group in drained.values() for at in by_group["drained_at"].values()), default=0.0
        )
        window = window or (time.monotonic() - started)
        services_cpu = meter.cores()
        redis_cpu = {
            str(port): round((_cpu_seconds(cluster, port) - redis_before[port]) / window, 2)
            for port in masters
        }
        per_shard = {
            key: {
                "master_port": shard_masters[key],
                "entries": drained[key]["entries"],
                "consumer_eps": {
                    group: round(drained[key]["entries"] / at, 1) if at else None
                    for group, at in drained[key]["drained_at"].items()
                },
            }
            for key in keys
        }
        delivered = sum(item["entries"] for item in drained.values())
        return {
            "shards": count,
            "events": params.shard_events,
            "published": delivered,
            "lost": max(0, params.shard_events - delivered),
            "commit_s": round(committed_s, 2),
            "window_s": round(window, 2),
            "throughput_eps": round(params.shard_events / window, 1),
            "per_shard": per_shard,
            "redis_cpu_cores": round(sum(redis_cpu.values()), 2),
            "redis_cpu_by_master": redis_cpu,
            "service_cpu_cores": round(
                sum(cpu for name, cpu in services_cpu.items() if name != "postgres"), 2
            ),
            "postgres_cpu_cores": services_cpu.get("postgres"),
            "service_cpu_by_service": services_cpu,
            # Other work on the machine shares its cores: the figures mean little when this is high.
            "load_average_before": load_before,
            "load_average_after": machine.load_average(),
        }
    finally:
        if redis is not None:
            await redis.aclose()
        for child in services.values():
            child.stop()
        cluster.stop()


def _cpu_seconds(cluster: EmbeddedRedisCluster, port: int) -> float:
    figures = cluster.info_cpu(port)
    return figures.get("used_cpu_sys", 0.0) + figures.get("used_cpu_user", 0.0)


async def _webhooks_off(api_url: str) -> None:
    headers = {"X-Api-Key": API_KEY, "X-Api-Secret": API_SECRET, "Content-Type": "application/json"}
    body = orjson.dumps({"url": "http://127.0.0.1:9/hooks", "enabled": False})
    async with (
        aiohttp.ClientSession() as session,
        session.put(f"{api_url}/api/v1/webhooks/config", data=body, headers=headers) as answer,
    ):
        if answer.status != 200:
            raise RuntimeError(f"PUT /api/v1/webhooks/config answered {answer.status}: {await answer.text()}")


async def _wait_for_groups(redis: aioredis.Redis, keys: list[str]) -> None:
    """Until both groups exist on every shard (their consumers create them at start-up)."""
    deadline = time.monotonic() + 30
    while True:
        found = [await _groups(redis, key) for key in keys]
        if all(set(GROUPS) <= set(groups) for groups in found):
            return
        if time.monotonic() > deadline:
            raise TimeoutError(f"consumer groups missing: {dict(zip(keys, found, strict=True))}")
        await asyncio.sleep(0.1)


async def _groups(redis: aioredis.Redis, key: str) -> dict[str, Mapping[str, Any]]:
    if not await redis.exists(key):
        return {}
    return {group["name"].decode(): group for group in await redis.xinfo_groups(key)}


async def _produce(pool: asyncpg.Pool, namespace: str, count: int) -> None:
    for start in range(0, count, COMMIT_BATCH):
        events = [
            payment_event(
                EventType.PAYMENT_SUCCESS,
                cast(PaymentResource, success_payment(f"pay_{namespace}_{n}", f"order_{namespace}_{n}")),
            )
            for n in range(start, min(count, start + COMMIT_BATCH))
        ]
        async with pool.acquire() as conn, conn.transaction():
            await outbox.enqueue(conn, Stream.PAYMENT_EVENTS, events)


async def _wait_consumed(
    redis: aioredis.Redis, keys: list[str], count: int, started: float
) -> dict[str, dict[str, Any]]:
    """Poll every shard until both groups have read and acknowledged all `count` events; per shard:
    its entries and, per group, the seconds from `started` until that group had drained it."""
    state: dict[str, dict[str, Any]] = {key: {"entries": 0, "drained_at": {}} for key in keys}
    deadline = started + MAX_WAIT_S
    while True:
        total = 0
        for key in keys:
            length = int(await redis.xlen(key)) if await redis.exists(key) else 0
            total += length
            state[key]["entries"] = length
            for name, group in (await _groups(redis, key)).items():
                done = int(group.get("entries-read") or 0) >= length and not int(group["pending"])
                if name in GROUPS and done and length:
                    state[key]["drained_at"].setdefault(name, round(time.monotonic() - started, 3))
                elif name in GROUPS:
                    state[key]["drained_at"].pop(name, None)
        complete = total >= count and all(len(state[key]["drained_at"]) == len(GROUPS) for key in keys)
        if complete or time.monotonic() > deadline:
            return state
        await asyncio.sleep(POLL_S)


def format_table(runs: list[dict[str, Any]]) -> str:
    base = runs[0]["throughput_eps"] if runs else None
    lines = [
        f"{'shards':>6} {'events/s':>9} {'x':>5} {'Redis cores':>11} {'services cores':>14} {'PG cores':>8} "
        f"{'load':>5}  per-shard consumer rate (min of groups)"
    ]
    for run in runs:
        rates = [
            min((rate for rate in shard["consumer_eps"].values() if rate is not None), default=0.0)
            for shard in run["per_shard"].values()
        ]
        growth = f"{run['throughput_eps'] / base:.2f}" if base else "-"
        lines.append(
            f"{run['shards']:>6} {run['throughput_eps']:>9} {growth:>5} {run['redis_cpu_cores']:>11} "
            f"{run['service_cpu_cores']:>14} {run['postgres_cpu_cores'] or 0:>8} {(run['load_average_after'] or [0.0])[0]:>5}  "
            f"{', '.join(f'{rate:.0f}/s' for rate in rates)}"
        )
    return "\n".join(lines)
