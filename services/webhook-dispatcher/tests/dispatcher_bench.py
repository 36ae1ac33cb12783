"""Deliveries per second of one real dispatcher process against a local receiver.

    .venv/bin/python services/webhook-dispatcher/tests/dispatcher_bench.py [--events 20000] [--merchants 20]

Embedded Redis and PostgreSQL (or REDIS_URL / DATABASE_URL), a fresh database, a receiver process
(aiohttp, answers 200 after checking nothing), and the dispatcher as `python -m webhook_dispatcher`.
Two figures: "stream", from events already on `payment:events` to every delivery recorded as
success (intake, claim, sign, send, record), and "scheduled", from rows already due in the log.
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import os
import tempfile
import time
from pathlib import Path

import asyncpg
import redis.asyncio as aioredis
import uuid_utils
from aiohttp import web

from paystream.embedded import EmbeddedPostgres, EmbeddedRedis, free_port
from paystream.events import STREAM_FIELD, Event, EventType, Stream
from paystream.migrations import apply_migrations
from paystream.netguard import LOOPBACK_NETS
from paystream.testing import ServiceProcess


def run_receiver(port: int) -> None:
    import uvloop

    async def receive(request: web.Request) -> web.Response:
        await request.read()
        return web.Response(text="ok")

    app = web.Application()
    app.router.add_post("/hooks", receive)
    web.run_app(app, host="127.0.0.1", port=port, print=None, access_log=None, loop=uvloop.new_event_loop())


async def prepare(database_url: str, merchants: int, receiver_url: str) -> list[str]:
    conn = await asyncpg.connect(database_url)
    ids = []
    for n in range(merchants):
        merchant_id = f"mer_bench{n:08d}"
        await conn.execute(
            """INSERT INTO merchants (id, name, email, api_key, api_secret_hash, webhook_secret)
               VALUES ($1, 'Bench', $2, $3, 'x', 'whsec_test_abc123')""",
            merchant_id,
            f"bench{n}@example.com",
            f"key_bench{n}",
        )
        await conn.execute(
            "INSERT INTO webhook_endpoints (id, merchant_id, url) VALUES ($1, $2, $3)",
            f"we_bench{n:08d}",
            merchant_id,
            receiver_url,
        )
        ids.append(merchant_id)
    await conn.close()
    return ids


async def wait_all_success(database_url: str, expected: int, started: float) -> float:
    conn = await asyncpg.connect(database_url)
    try:
        while True:
            done = await conn.fetchval("SELECT count(*) FROM webhook_deliveries WHERE status = 'success'")
            if done >= expected:
                return time.perf_counter() - started
            await asyncio.sleep(0.1)
    finally:
        await conn.close()


async def bench(args: argparse.Namespace, redis_url: str, database_url: str, log_dir: Path) -> None:
    await apply_migrations(database_url)
    receiver_port = free_port()
    receiver = multiprocessing.get_context("spawn").Process(target=run_receiver, args=(receiver_port,))
    receiver.start()
    merchant_ids = await prepare(database_url, args.merchants, f"http://127.0.0.1:{receiver_port}/hooks")
    redis = aioredis.Redis.from_url(redis_url)
    events = [
        Event(
            type=EventType.PAYMENT_CREATED,
            merchant_id=merchant_ids[n % len(merchant_ids)],
            data={
                "payment": {"id": f"pay_{uuid_utils.uuid4().hex[:16]}", "amount": 50000, "status": "created"}
            },
        )
        for n in range(args.events)
    ]
    for start in range(0, len(events), 1000):
        async with redis.pipeline(transaction=False) as pipe:
            for event in events[start : start + 1000]:
                pipe.xadd(Stream.PAYMENT_EVENTS, {STREAM_FIELD: event.encode()})
            await pipe.execute()
    env = {
        "REDIS_URL": redis_url,
        "DATABASE_URL": database_url,
        "DISPATCHER_PORT": str(free_port()),
        "WEBHOOK_ALLOWED_PRIVATE_NETS": LOOPBACK_NETS,
        "LOG_LEVEL": "WARNING",
    }
    dispatcher = ServiceProcess(
        module="webhook_dispatcher",
        env=env,
        log_path=log_dir / "dispatcher.log",
        health_url=f"http://127.0.0.1:{env['DISPATCHER_PORT']}/health",
    )
    try:
        started = time.perf_counter()
        dispatcher.start()
        elapsed = await wait_all_success(database_url, args.events, started)
        print(f"stream:    {args.events} deliveries in {elapsed:.2f}s = {args.events / elapsed:,.0f}/s")
        dispatcher.stop()

        conn = await asyncpg.connect(database_url)
        await conn.execute(
            "UPDATE webhook_deliveries SET status = 'pending', attempts = 0, due_at = now(), next_retry_at = now()"
        )
        await conn.close()
        started = time.perf_counter()
        dispatcher.start()
        elapsed = await wait_all_success(database_url, args.events, started)
        print(f"scheduled: {args.events} deliveries in {elapsed:.2f}s = {args.events / elapsed:,.0f}/s")
    finally:
        dispatcher.stop()
        receiver.terminate()
        receiver.join(5)
        await redis.aclose()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--events", type=int, default=20_000)
    parser.add_argument("--merchants", type=int, default=20)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="dispatcher-bench-") as tmp:
        path = Path(tmp)
        redis_server = postgres = None
        redis_url = os.environ.get("REDIS_URL")
        database_url = os.environ.get("DATABASE_URL")
        if not redis_url:
            redis_server = EmbeddedRedis(path / "redis")
            redis_url = redis_server.start()
        if not database_url:
            postgres = EmbeddedPostgres(path / "postgres", database="bench")
            database_url = postgres.start()
        try:
            asyncio.run(bench(args, redis_url, database_url, path))
        finally:
            if redis_server is not None:
                redis_server.stop()
            if postgres is not None:
                postgres.stop()


if __name__ == "__main__":
    main()
