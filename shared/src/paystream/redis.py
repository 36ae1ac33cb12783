"""The Redis client every service uses: bytes in, bytes out, keep-alive, no read timeout (BLOCK reads)."""

from __future__ import annotations

import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from paystream.settings import RedisSettings

# Errors that mean "Redis is not reachable right now" (retry with backoff), not a bad command.
REDIS_UNAVAILABLE_ERRORS: tuple[type[BaseException], ...] = (
    RedisConnectionError,
    RedisTimeoutError,
    ConnectionError,
    OSError,
)


def reconnecting_retry() -> Retry:
    """Retry a command a few times on a dropped connection (a Redis restart), with short backoff;
    past that the caller's own backoff loop takes over."""
    return Retry(ExponentialBackoff(cap=0.5, base=0.02), retries=3)


def create_redis(settings: RedisSettings) -> aioredis.Redis:
    return aioredis.Redis.from_url(
        settings.url,
        retry=reconnecting_retry(),
        retry_on_error=[RedisConnectionError, RedisTimeoutError, ConnectionError],
        decode_responses=False,
        socket_connect_timeout=5,
        socket_keepalive=True,
        health_check_interval=15,
    )
