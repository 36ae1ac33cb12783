"""The consumer runtime in real processes: SIGKILL mid-handler and SIGTERM drain."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import asyncpg
import pytest
import redis.asyncio as aioredis

from paystream.events import STREAM_FIELD, Event, EventType
from paystream_devstack.testing import eventually

STREAM = "sample:events"
GROUP = "sample-group"


class Workers:
    def __init__(self, env: dict[str, str], log_dir: Path) -> None:
        self.env = env
        self.log_dir = log_dir
        self.processes: list[subprocess.Popen[bytes]] = []

    def start(self, name: str, **overrides: str) -> subprocess.Popen[bytes]:
        log = open(self.log_dir / f"{name}.log", "ab")  # noqa: SIM115 - handed to the child
        process = subprocess.Popen(
            [sys.executable, "-m", "paystream_devstack.testing.sample_worker"],
            env={**os.environ, **self.env, "SAMPLE_CONSUMER": name, **overrides},
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        log.close()
        self.processes.append(process)
        return process

    def log(self, name: str) -> str:
        return (self.log_dir / f"{name}.log").read_text(errors="replace")

    def stop_all(self) -> None:
        for process in self.processes:
            if process.poll() is None:
                process.kill()
                process.wait(10)


@pytest.fixture
def workers(redis_url: str, clean_db: str, tmp_path: Path) -> Iterator[Workers]:
    pool = Workers(
        {
            "REDIS_URL": redis_url,
            "DATABASE_URL": clean_db,
            "SAMPLE_RECLAIM_IDLE_MS": "1500",
            "SAMPLE_HANDLER_TIMEOUT_MS": "1000",
            "SAMPLE_RECLAIM_INTERVAL_MS": "100",
            "LOG_FORMAT": "json",
        },
        tmp_path,
    )
    yield pool
    pool.stop_all()


async def publish(redis: aioredis.Redis, **data: int) -> Event:
    event = Event(type=EventType.PAYMENT_CREATED, merchant_id="mer_1", data=data)
    await redis.xadd(STREAM, {STREAM_FIELD: event.encode()})
    return event


async def effects_of(pool: asyncpg.Pool, event: Event) -> int:
    count: int = await pool.fetchval("SELECT count(*) FROM sample_effects WHERE event_id = $1", event.id)
    return count


async def group_ready(redis: aioredis.Redis) -> bool:
    try:
        return any(group["name"] == GROUP.encode() for group in await redis.xinfo_groups(STREAM))
    except Exception:
        return False


async def pending(redis: aioredis.Redis) -> int:
    return int((await redis.xpending(STREAM, GROUP))["pending"])


@pytest.mark.slow
async def test_sigkill_mid_handler_is_reclaimed_and_takes_effect_exactly_once(
    redis: aioredis.Redis, db_pool: asyncpg.Pool, workers: Workers
) -> None:
    first = workers.start("worker-a")
    await eventually(lambda: group_ready(redis), timeout=20, message="worker-a ready")
    await eventually(lambda: _table_exists(db_pool), timeout=10)
    before_commit = await publish(redis, pause_before_commit_ms=30_000)
    after_commit = await publish(redis, pause_after_commit_ms=30_000)
    await eventually(lambda: redis.exists(f"sample:started:{before_commit.id}"), timeout=10)
    await eventually(lambda: redis.exists(f"sample:committed:{after_commit.id}"), timeout=10)
    first.send_signal(signal.SIGKILL)
    first.wait(10)
    assert await pending(redis) == 2, "the killed consumer's entries stay pending"
    assert await effects_of(db_pool, before_commit) == 0
    assert await effects_of(db_pool, after_commit) == 1

    workers.start("worker-b")
    await eventually(lambda: _is(pending(redis), 0), timeout=30, message="worker-b reclaims and acks")
    assert await effects_of(db_pool, before_commit) == 1
    assert await effects_of(db_pool, after_commit) == 1, "a redelivered event must not take effect twice"
    consumers = {row[0] for row in await db_pool.fetch("SELECT consumer FROM sample_effects")}
    assert consumers == {"worker-a", "worker-b"}
    assert "consumer.reclaimed" in workers.log("worker-b")


@pytest.mark.slow
async def test_sigterm_drains_in_flight_work_before_exiting(
    redis: aioredis.Redis, db_pool: asyncpg.Pool, workers: Workers
) -> None:
    worker = workers.start("worker-drain")
    await eventually(lambda: group_ready(redis), timeout=20, message="worker ready")
    await eventually(lambda: _table_exists(db_pool), timeout=10)
    event = await publish(redis, pause_before_commit_ms=800)
    await eventually(lambda: redis.exists(f"sample:started:{event.id}"), timeout=10)
    worker.send_signal(signal.SIGTERM)
    try:
        exit_code = await asyncio.to_thread(worker.wait, 15)
    except subprocess.TimeoutExpired:
        pytest.fail("worker did not exit on SIGTERM:\n" + workers.log("worker-drain")[-3000:])
    assert exit_code == 0
    assert await effects_of(db_pool, event) == 1, "in-flight handler finished before exit"
    assert await pending(redis) == 0, "and its entry was acknowledged"
    assert "consumer.draining" in workers.log("worker-drain")


async def _table_exists(pool: asyncpg.Pool) -> bool:
    return bool(await pool.fetchval("SELECT to_regclass('sample_effects') IS NOT NULL"))


async def _is(value: object, expected: int) -> bool:
    return await value == expected  # type: ignore[misc]
