"""Signed Razorpay webhooks accepted per second, beside a bare aiohttp handler, same client and run.

    .venv/bin/python services/api/tests/provider_ingest_bench.py [--seconds 5] [--concurrency 64]

Starts an embedded PostgreSQL and Redis (or uses DATABASE_URL / REDIS_URL), a bare aiohttp server that
reads the body and answers 200, and the real API process (`python -m paystream_api`), then drives
each with the same aiohttp client (one process, `--concurrency` connections) and prints requests per
second and p50/p99 answer times. Every ingest request carries a unique, correctly signed event; at the
end the stored rows and outbox entries are counted against the 200s answered.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import hmac
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import asyncpg
import orjson
import uvloop

from paystream.embedded import EmbeddedPostgres, EmbeddedRedis, free_port, wait_for_port

SECRET = "rzp_bench_webhook_secret"
BARE_SERVER = """
import sys, uvloop
from aiohttp import web
async def ok(request):
    await request.read()
    return web.Response(text="ok")
app = web.Application()
app.router.add_post("/", ok)
web.run_app(app, host="127.0.0.1", port=int(sys.argv[1]), access_log=None, print=None, loop=uvloop.new_event_loop())
"""


@dataclass
class Result:
    name: str
    requests: int
    errors: int
    seconds: float
    latencies_ms: list[float]

    @property
    def rps(self) -> float:
        return self.requests / self.seconds

    def percentile(self, q: float) -> float:
        ordered = sorted(self.latencies_ms)
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else float("nan")

    def line(self) -> str:
        return (
            f"{self.name:<10} {self.rps:>9.0f} req/s  p50 {self.percentile(0.5):6.2f} ms  "
            f"p99 {self.percentile(0.99):6.2f} ms  ok {self.requests}  errors {self.errors}"
        )


def razorpay_event(n: int) -> bytes:
    return orjson.dumps(
        {
            "entity": "event",
            "account_id": "acc_BenchAccount01",
            "event": "payment.captured",
            "contains": ["payment"],
            "payload": {
                "payment": {
                    "entity": {
                        "id": f"pay_bench{n:010d}",
                        "entity": "payment",
                        "amount": 50000,
                        "currency": "INR",
                        "status": "captured",
                        "order_id": f"order_bench{n:08d}",
                        "method": "upi",
                        "vpa": "gaurav.kumar@exampleupi",
                        "captured": True,
                        "email": "gaurav.kumar@example.com",
                        "contact": "+919000090000",
                        "notes": {"salon_id": "42"},
                        "created_at": 1700000000,
                    }
                }
            },
            "created_at": 1700000001,
        }
    )


def signed_requests(count: int, id_prefix: str) -> list[tuple[bytes, dict[str, str]]]:
    """Built before the clock starts, so the client spends its time sending, not signing."""
    requests = []
    for n in range(count):
        body = razorpay_event(n)
        headers = {
            "Content-Type": "application/json",
            "X-Razorpay-Signature": hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest(),
            "x-razorpay-event-id": f"{id_prefix}{n:012d}",
        }
        requests.append((body, headers))
    return requests


async def drive(
    name: str, url: str, seconds: float, concurrency: int, signed: bool, id_prefix: str
) -> Result:
    requests = signed_requests(int(seconds * 15_000) + 1000, id_prefix)
    if not signed:
        requests = [(body, {"Content-Type": "application/json"}) for body, _headers in requests]
    counter = iter(range(len(requests)))
    latencies: list[float] = []
    errors = 0
    deadline = time.perf_counter() + seconds

    async def worker(session: aiohttp.ClientSession) -> None:
        nonlocal errors
        while time.perf_counter() < deadline:
            body, headers = requests[next(counter)]
            started = time.perf_counter()
            async with session.post(url, data=body, headers=headers) as response:
                await response.read()
                if response.status == 200:
                    latencies.append((time.perf_counter() - started) * 1000)
                else:
                    errors += 1

    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=connector) as session:
        started = time.perf_counter()
        await asyncio.gather(*(worker(session) for _ in range(concurrency)))
        elapsed = time.perf_counter() - started
    return Result(name, len(latencies), errors, elapsed, latencies)


def cpu_seconds(pid: int, servers: list[EmbeddedPostgres | EmbeddedRedis]) -> dict[str, float]:
    """CPU seconds used so far by the server process, this client, and each store with its children."""
    import psutil

    def total(process: psutil.Process, children: bool) -> float:
        times = process.cpu_times()
        value = times.user + times.system
        if children:
            for child in process.children(recursive=True):
                try:
                    child_times = child.cpu_times()
                    value += child_times.user + child_times.system
                except psutil.NoSuchProcess:
                    pass
        return value

    usage = {"api": total(psutil.Process(pid), False), "client": total(psutil.Process(), False)}
    for server in servers:
        if server.process is not None:
            name = "postgres" if isinstance(server, EmbeddedPostgres) else "redis"
            usage[name] = total(psutil.Process(server.process.pid), True)
    return usage


async def count_stored(database_url: str, prefix: str) -> tuple[int, int]:
    conn = await asyncpg.connect(database_url)
    try:
        rows = await conn.fetchval(
            "SELECT count(*) FROM provider_events WHERE event_id LIKE $1", prefix + "%"
        )
        entries = await conn.fetchval(
            "SELECT count(*) FROM outbox WHERE event_type = 'provider_event.received' "
            "AND convert_from(payload, 'UTF8')::jsonb -> 'data' ->> 'event_id' LIKE $1",
            prefix + "%",
        )
    finally:
        await conn.close()
    return int(rows), int(entries)


@dataclass
class Platform:
    database_url: str
    api_port: int
    bare_port: int
    api: subprocess.Popen[bytes]
    bare: subprocess.Popen[bytes]
    servers: list[EmbeddedPostgres | EmbeddedRedis]

    def stop(self) -> None:
        for process in (self.api, self.bare):
            process.terminate()
            process.wait(20)
        for server in reversed(self.servers):
            server.stop()


def start_platform(args: argparse.Namespace) -> Platform:
    data = Path(tempfile.mkdtemp(prefix="provider-bench-"))
    servers: list[EmbeddedPostgres | EmbeddedRedis] = []
    database_url = os.environ.get("DATABASE_URL")
    redis_url = os.environ.get("REDIS_URL")
    if not database_url:
        postgres = EmbeddedPostgres(data / "pg", database="paystream")
        database_url = postgres.start()
        servers.append(postgres)
    if not redis_url:
        redis_server = EmbeddedRedis(data / "redis")
        redis_url = redis_server.start()
        servers.append(redis_server)
    bare_port, api_port = free_port(), free_port()
    bare = subprocess.Popen([sys.executable, "-c", BARE_SERVER, str(bare_port)])
    env = {
        **os.environ,
        "DATABASE_URL": database_url,
        "REDIS_URL": redis_url,
        "API_PORT": str(api_port),
        "JWT_SECRET": "bench",
        "RAZORPAY_WEBHOOK_SECRET": SECRET,
        "LOG_LEVEL": "WARNING",
    }
    profile = ["-m", "cProfile", "-o", args.profile] if args.profile else []
    api = subprocess.Popen([sys.executable, *profile, "-m", "paystream_api"], env=env)
    wait_for_port("127.0.0.1", bare_port, 30, bare)
    wait_for_port("127.0.0.1", api_port, 60, api)
    return Platform(database_url, api_port, bare_port, api, bare, servers)


async def group_commit_figures(api_port: int) -> str:
    async with (
        aiohttp.ClientSession() as session,
        session.get(f"http://127.0.0.1:{api_port}/metrics") as response,
    ):
        metrics = await response.text()
    values = {
        line.split(" ")[0]: float(line.split(" ")[1])
        for line in metrics.splitlines()
        if line.startswith(
            ("paystream_provider_ingest_batch_size_", "paystream_provider_ingest_store_seconds_")
        )
        and "bucket" not in line
    }
    batches = values.get("paystream_provider_ingest_batch_size_count", 0.0)
    if not batches:
        return "group commit: no batches"
    return (
        f"group commit: {batches:.0f} batches, mean size "
        f"{values['paystream_provider_ingest_batch_size_sum'] / batches:.1f}, mean store "
        f"{values['paystream_provider_ingest_store_seconds_sum'] / batches * 1000:.2f} ms"
    )


async def measure(args: argparse.Namespace, platform: Platform) -> None:
    ingest_url = f"http://127.0.0.1:{platform.api_port}/api/v1/providers/razorpay/webhook"
    bare_url = f"http://127.0.0.1:{platform.bare_port}/"
    prefix = f"evt_bench_{int(time.time())}_"
    warm = await drive("warmup", ingest_url, 1.0, args.concurrency, True, prefix + "w")
    print(f"warmup {warm.rps:.0f} req/s; concurrency {args.concurrency}, {args.seconds:.0f} s per run")
    answered = 0
    for round_number in range(args.rounds):
        before = cpu_seconds(platform.bare.pid, [])
        bare = await drive("bare", bare_url, args.seconds, args.concurrency, False, "")
        after = cpu_seconds(platform.bare.pid, [])
        bare_cpu = {k: (after[k] - before[k]) / bare.seconds for k in after}
        before = cpu_seconds(platform.api.pid, platform.servers)
        ingest = await drive(
            "ingest", ingest_url, args.seconds, args.concurrency, True, f"{prefix}{round_number}"
        )
        after = cpu_seconds(platform.api.pid, platform.servers)
        ingest_cpu = {k: (after[k] - before[k]) / ingest.seconds for k in after}
        answered += ingest.requests
        print(f"round {round_number + 1}: ingest_ratio {ingest.rps / bare.rps:.2f}")
        print("  " + bare.line())
        print("    cores: server {api:.2f}, client {client:.2f}".format(**bare_cpu))
        print("  " + ingest.line())
        print("    cores: " + ", ".join(f"{k} {v:.2f}" for k, v in ingest_cpu.items()))
    print(await group_commit_figures(platform.api_port))
    rows, entries = await count_stored(platform.database_url, prefix)
    rows -= warm.requests
    entries -= warm.requests
    print(f"answered 200: {answered}; stored rows: {rows}; outbox entries: {entries}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--profile", default="", help="write the API's cProfile stats to this file")
    args = parser.parse_args()
    platform = start_platform(args)
    try:
        uvloop.run(measure(args, platform))
    finally:
        platform.stop()


if __name__ == "__main__":
    main()
