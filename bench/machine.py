"""The machine the figures come from: cores, memory, Python, Redis and PostgreSQL versions, load."""

from __future__ import annotations

import hashlib
import os
import platform
import sys
import time
from importlib import metadata
from typing import Any

import asyncpg
import psutil  # type: ignore[import-untyped]
import redis.asyncio as aioredis

from bench.stats import percentile, rounded


def _cpu_model() -> str | None:
    try:
        with open("/proc/cpuinfo") as cpuinfo:
            for line in cpuinfo:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or None


def load_average() -> list[float] | None:
    try:
        return [round(value, 2) for value in os.getloadavg()]
    except OSError:
        return None


async def commit_latency_ms(pool: asyncpg.Pool, commits: int = 100) -> float | None:
    """Median time of a one-row INSERT committed on its own: the database's bare limit (a WAL flush
    per commit), next to which the API's per-request transactions read."""
    timings: list[float] = []
    async with pool.acquire() as conn:
        await conn.execute("CREATE TABLE bench_commit_probe (id integer)")
        try:
            for n in range(commits):
                started = time.perf_counter()
                await conn.execute("INSERT INTO bench_commit_probe VALUES ($1)", n)
                timings.append((time.perf_counter() - started) * 1000)
        finally:
            await conn.execute("DROP TABLE bench_commit_probe")
    return rounded(percentile(sorted(timings), 0.5), 3)


def cpu_times() -> list[int] | None:
    """The machine's CPU time counters (/proc/stat, in ticks): user, nice, system, idle, iowait, irq,
    softirq, steal; None where there is no /proc."""
    try:
        with open("/proc/stat") as stat:
            fields = stat.readline().split()
    except OSError:
        return None
    return [int(value) for value in fields[1:9]]


def steal_share(before: list[int] | None, after: list[int] | None) -> float | None:
    """The share of the CPU time between two `cpu_times()` that the hypervisor gave to other
    machines (steal): time this run's processes were ready to run and could not."""
    if before is None or after is None:
        return None
    spent = [b - a for a, b in zip(before, after, strict=True)]
    total = sum(spent)
    return round(spent[7] / total, 3) if total > 0 else None


def single_core_probe_ms(rounds: int = 100_000) -> float:
    """Milliseconds one core takes to hash 100-byte strings `rounds` times: the machine's speed at
    that moment. On a shared virtual machine it drifts (seen here: 107 ms, and 171 ms an hour later
    with nothing else running), and every figure of the run moves with it; ratios much less so."""
    started = time.perf_counter()
    digest = hashlib.sha256
    data = b"x" * 100
    for _ in range(rounds):
        digest(data).digest()
    return round((time.perf_counter() - started) * 1000, 1)


async def describe(pool: asyncpg.Pool, redis: aioredis.Redis) -> dict[str, Any]:
    info = await redis.info("server")
    return {
        "cores": os.cpu_count(),
        "cores_usable": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
        "physical_cores": psutil.cpu_count(logical=False),
        "cpu_model": _cpu_model(),
        "memory_gb": round(psutil.virtual_memory().total / 2**30, 1),
        "os": platform.platform(),
        "python": f"{platform.python_implementation()} {sys.version.split()[0]}",
        "redis": str(info.get("redis_version")),
        "postgresql": str(await pool.fetchval("SHOW server_version")),
        "libraries": {
            name: metadata.version(name)
            for name in ("aiohttp", "uvloop", "asyncpg", "redis", "python-socketio")
        },
        "postgresql_commit_p50_ms": await commit_latency_ms(pool),
        "load_average_at_start": load_average(),
        "single_core_probe_ms_at_start": single_core_probe_ms(),
    }
