"""Connections to Redis and PostgreSQL, opened on first use, with failures turned into one line."""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import NoReturn

import asyncpg
import redis.asyncio as aioredis
from redis.asyncio.cluster import RedisCluster
from redis.backoff import NoBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisClusterException
from redis.exceptions import TimeoutError as RedisTimeoutError
from redis.retry import Retry

from payctl.errors import StoreUnavailable
from payctl.settings import PayctlSettings, redact_url

CONNECT_TIMEOUT_S = 5.0
# Commands answer at once; BLOCK reads (tail) wait at most a second, well inside this.
COMMAND_TIMEOUT_S = 15.0

REDIS_CONNECTION_ERRORS: tuple[type[BaseException], ...] = (
    RedisConnectionError,
    RedisTimeoutError,
    RedisClusterException,
)
DATABASE_CONNECTION_ERRORS: tuple[type[BaseException], ...] = (
    asyncpg.exceptions.PostgresConnectionError,
    asyncpg.exceptions.CannotConnectNowError,
    asyncpg.exceptions.InterfaceError,
    asyncpg.exceptions.InvalidAuthorizationSpecificationError,
    asyncpg.exceptions.InvalidCatalogNameError,
    TimeoutError,
)
_REDIS_CONNECT_FAILURES: tuple[type[BaseException], ...] = (*REDIS_CONNECTION_ERRORS, OSError)
_DATABASE_CONNECT_FAILURES: tuple[type[BaseException], ...] = (
    *DATABASE_CONNECTION_ERRORS,
    OSError,
    ValueError,
)


def _origin(devrun_file: Path | None) -> str:
    return f" (from {devrun_file})" if devrun_file is not None else ""


def _reason(exc: BaseException) -> str:
    message = " ".join(str(exc).split())
    return message or type(exc).__name__


@dataclass
class Stores:
    """The command's Redis client and PostgreSQL connection; each opened when first asked for."""

    settings: PayctlSettings
    _redis: aioredis.Redis | None = field(default=None, init=False)
    _database: asyncpg.Connection | None = field(default=None, init=False)

    async def redis(self) -> aioredis.Redis:
        if self._redis is None:
            url = self.settings.require_redis_url()
            try:
                client: aioredis.Redis
                if self.settings.redis_cluster:
                    # Typed as the plain client: payctl sends only commands both have, one key each.
                    client = RedisCluster.from_url(  # type: ignore[assignment]
                        url,
                        decode_responses=False,
                        socket_connect_timeout=CONNECT_TIMEOUT_S,
                        socket_timeout=COMMAND_TIMEOUT_S,
                        retry=Retry(NoBackoff(), 1),
                    )
                else:
                    client = aioredis.Redis.from_url(
                        url,
                        decode_responses=False,
                        socket_connect_timeout=CONNECT_TIMEOUT_S,
                        socket_timeout=COMMAND_TIMEOUT_S,
                        retry=Retry(NoBackoff(), 1),
                    )
            except ValueError as exc:
                raise StoreUnavailable(f"REDIS_URL is not a valid Redis URL: {_reason(exc)}") from None
            try:
                await client.ping()
            except _REDIS_CONNECT_FAILURES as exc:
                await client.aclose()
                self.redis_unavailable(exc)
            self._redis = client
        return self._redis

    async def database(self) -> asyncpg.Connection:
        if self._database is None:
            url = self.settings.require_database_url()
            try:
                self._database = await asyncpg.connect(
                    url, timeout=CONNECT_TIMEOUT_S, command_timeout=COMMAND_TIMEOUT_S
                )
            except _DATABASE_CONNECT_FAILURES as exc:
                self.database_unavailable(exc)
        return self._database

    def redis_unavailable(self, exc: BaseException) -> NoReturn:
        url = redact_url(self.settings.redis_url or "")
        origin = _origin(self.settings.redis_url_file)
        raise StoreUnavailable(f"cannot reach Redis at {url}{origin}: {_reason(exc)}") from None

    def database_unavailable(self, exc: BaseException) -> NoReturn:
        url = redact_url(self.settings.database_url or "")
        origin = _origin(self.settings.database_url_file)
        raise StoreUnavailable(f"cannot reach PostgreSQL at {url}{origin}: {_reason(exc)}") from None

    async def close(self) -> None:
        if self._redis is not None:
            with contextlib.suppress(Exception):
                await self._redis.aclose()
        if self._database is not None:
            with contextlib.suppress(Exception):
                await self._database.close(timeout=2)
