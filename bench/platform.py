"""Boot the platform for a run: fresh stores, migrations, the four services as real processes, the
bare baseline server and the merchant receiver; and stop all of it, whatever happened.

The services get the environment `make run` gives them (`paystream_devstack.devrun.config`), on free
loopback ports, with JSON logs at WARNING (logging off the hot path) and test-mode settlement.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import asyncpg
import redis.asyncio as aioredis

from bench.params import BenchParams
from bench.processes import Child, Children, wait_healthy
from bench.stores import Stores
from paystream.db import create_pool
from paystream.migrations import apply_migrations
from paystream.netguard import LOOPBACK_NETS
from paystream.redis import create_redis
from paystream.settings import DatabaseSettings, RedisSettings
from paystream_devstack.devrun.config import SERVICE_MODULES, service_environment
from paystream_devstack.embedded import free_port

RAZORPAY_SECRET = "rzp_bench_webhook_secret"
# HS256 wants 32 bytes or more; the notifier checks the length outside test mode.
JWT_SECRET = "bench-jwt-secret-0123456789abcdef0123456789"
PORT_VARIABLES: Mapping[str, str] = {
    "api": "API_PORT",
    "processor": "PROCESSOR_PORT",
    "dispatcher": "DISPATCHER_PORT",
    "notifier": "NOTIFIER_PORT",
}
HOST_VARIABLES = ("API_HOST", "PROCESSOR_HOST", "DISPATCHER_HOST", "NOTIFIER_HOST")


def service_env(params: BenchParams, redis_url: str, database_url: str) -> dict[str, str]:
    """What every service process gets: `make run`'s environment, adjusted for measuring."""
    env = service_environment(os.environ, redis_url, database_url)
    for variable in PORT_VARIABLES.values():
        env[variable] = str(free_port())
    for variable in HOST_VARIABLES:
        env[variable] = "127.0.0.1"
    env.update(
        {
            "LOG_FORMAT": "json",
            "LOG_LEVEL": "WARNING",
            "TEST_MODE": "true",
            "TEST_PROCESSING_DELAY": str(params.processing_delay_ms),
            "TEST_PAYMENT_SUCCESS": "true",
            "WEBHOOK_RETRY_INTERVALS_TEST": "true",
            "WEBHOOK_ALLOWED_PRIVATE_NETS": LOOPBACK_NETS,
            "RAZORPAY_WEBHOOK_SECRET": RAZORPAY_SECRET,
            "JWT_SECRET": JWT_SECRET,
            "SEED_TEST_DATA": "true",
            # The ingest rounds keep the consumers stopped (SIGSTOP) for about a minute: a relay
            # leader among them keeps its lock meanwhile rather than being cut off as hung
            # (default 10 s) and replaced by the API's relay halfway through the rounds.
            "OUTBOX_LEADER_IDLE_TIMEOUT_S": "300",
        }
    )
    return env


@dataclass
class Platform:
    """Everything one run starts. `close()` stops it all and is safe to call twice."""

    params: BenchParams
    workdir: Path
    children: Children = field(init=False)
    stores: Stores = field(init=False)
    services: dict[str, Child] = field(default_factory=dict, init=False)
    env: dict[str, str] = field(default_factory=dict, init=False)
    bare: Child | None = field(default=None, init=False)
    receiver: Child | None = field(default=None, init=False)
    bare_port: int = field(default=0, init=False)
    receiver_port: int = field(default=0, init=False)
    pool: asyncpg.Pool | None = field(default=None, init=False)
    redis: aioredis.Redis | None = field(default=None, init=False)
    boot_s: float = field(default=0.0, init=False)

    def __post_init__(self) -> None:
        (self.workdir / "logs").mkdir(parents=True, exist_ok=True)
        self.children = Children(self.workdir / "logs")
        self.stores = Stores(self.workdir, self.params.redis_db, self.params.allow_flush)

    # -- addresses ------------------------------------------------------------------------------

    def service_url(self, service: str) -> str:
        return f"http://127.0.0.1:{self.env[PORT_VARIABLES[service]]}"

    @property
    def api_url(self) -> str:
        return self.service_url("api")

    @property
    def notifier_url(self) -> str:
        return self.service_url("notifier")

    @property
    def bare_url(self) -> str:
        return f"http://127.0.0.1:{self.bare_port}"

    @property
    def receiver_url(self) -> str:
        return f"http://127.0.0.1:{self.receiver_port}"

    def db(self) -> asyncpg.Pool:
        assert self.pool is not None, "the platform is not started"
        return self.pool

    def bus(self) -> aioredis.Redis:
        assert self.redis is not None, "the platform is not started"
        return self.redis

    # -- life cycle -----------------------------------------------------------------------------

    async def start(self) -> None:
        started = time.monotonic()
        await self.stores.start()
        await apply_migrations(self.stores.database_url)
        self.env = service_env(self.params, self.stores.redis_url, self.stores.database_url)
        for name, module in SERVICE_MODULES.items():
            self.services[name] = self.children.python(name, ["-m", module], self.env)
        self.bare_port, self.receiver_port = free_port(), free_port()
        self.bare = self.children.python("bare_server", ["-m", "bench.bare_server", str(self.bare_port)])
        self.receiver = self.children.python("receiver", ["-m", "bench.receiver", str(self.receiver_port)])
        checks = [wait_healthy(child, self.service_url(name)) for name, child in self.services.items()]
        checks.append(wait_healthy(self.bare, self.bare_url))
        checks.append(wait_healthy(self.receiver, self.receiver_url))
        await asyncio.gather(*checks)
        self.pool = await create_pool(
            DatabaseSettings(url=self.stores.database_url, pool_min_size=1, pool_max_size=8)
        )
        self.redis = create_redis(RedisSettings(url=self.stores.redis_url))
        self.boot_s = time.monotonic() - started

    @contextlib.contextmanager
    def consumers_paused(self) -> Iterator[None]:
        """The stream consumers (processor, dispatcher, notifier) stopped with SIGSTOP meanwhile, so
        that a figure measures the API alone; they are resumed (SIGCONT) whatever happens."""
        consumers = [child for name, child in self.services.items() if name != "api"]
        for child in consumers:
            child.pause()
        try:
            yield
        finally:
            for child in consumers:
                child.resume()

    def check_alive(self) -> None:
        """Raise when a service died during the run: its figures would mean nothing."""
        for name, child in self.services.items():
            if not child.running():
                raise RuntimeError(f"{name} exited during the run:\n{child.tail()}")

    async def close(self) -> None:
        """Stop the children, give the stores back, delete the work directory (unless kept)."""
        if self.redis is not None:
            await self.redis.aclose()
            self.redis = None
        if self.pool is not None:
            await self.pool.close()
            self.pool = None
        self.children.stop_all()
        await self.stores.close()
        if not self.params.keep_workdir:
            shutil.rmtree(self.workdir, ignore_errors=True)

    def log_tails(self) -> str:
        return "\n".join(f"--- {child.name} ---\n{child.tail()}" for child in self.children.started)
