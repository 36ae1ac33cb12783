"""Typed settings read once from the environment into frozen dataclasses.

Nothing reads the environment at import time. Each service builds its settings at start-up with
`from_env()`, and a missing or malformed variable raises `SettingsError` naming it.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal
from urllib.parse import urlsplit

from paystream import shards
from paystream.errors import SettingsError
from paystream.netguard import LOOPBACK_NETS, PUBLIC_ONLY, OutboundPolicy
from paystream.proxies import TRUST_NOBODY, TrustedProxies

Environ = Mapping[str, str]

# Services listen on loopback unless told otherwise: exposing one is a deployment's decision (the
# container image sets `*_HOST=0.0.0.0`), never an accident of running it by hand.
DEFAULT_BIND_HOST = "127.0.0.1"

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}


def env_str(environ: Environ, name: str, default: str | None = None) -> str:
    """The variable's value, or `default`; with no default a missing value is an error."""
    value = environ.get(name)
    if value is None or value == "":
        if default is None:
            raise SettingsError(f"{name} is required but not set")
        return default
    return value


def env_int(environ: Environ, name: str, default: int, *, minimum: int = 0, maximum: int = 2**31) -> int:
    raw = environ.get(name)
    if raw is None or raw.strip() == "":
        return default
    try:
        value = int(raw.strip())
    except ValueError:
        raise SettingsError(f"{name} must be an integer, got {raw!r}") from None
    if not minimum <= value <= maximum:
        raise SettingsError(f"{name} must be between {minimum} and {maximum}, got {value}")
    return value


def env_float(environ: Environ, name: str, default: float, *, minimum: float = 0.0) -> float:
    raw = environ.get(name)
    if raw is None or raw.strip() == "":
        return default
    try:
        value = float(raw.strip())
    except ValueError:
        raise SettingsError(f"{name} must be a number, got {raw!r}") from None
    if value < minimum:
        raise SettingsError(f"{name} must be at least {minimum}, got {value}")
    return value


def env_bool(environ: Environ, name: str, default: bool) -> bool:
    raw = environ.get(name)
    if raw is None:
        return default
    lowered = raw.strip().lower()
    if lowered in _TRUE:
        return True
    if lowered in _FALSE:
        return False
    raise SettingsError(f"{name} must be true or false, got {raw!r}")


def env_port(environ: Environ, name: str, default: int) -> int:
    return env_int(environ, name, default, minimum=0, maximum=65535)


def env_bind_host(environ: Environ, name: str) -> str:
    """The address a service listens on: `name`, else loopback (see `DEFAULT_BIND_HOST`)."""
    return env_str(environ, name, DEFAULT_BIND_HOST)


def env_url(environ: Environ, name: str, schemes: tuple[str, ...], default: str | None = None) -> str:
    value = env_str(environ, name, default)
    parts = urlsplit(value)
    if parts.scheme not in schemes:
        raise SettingsError(f"{name} must be a URL with scheme {' or '.join(schemes)}, got {parts.scheme!r}")
    return value


def env_trusted_proxies(environ: Environ, name: str = "TRUSTED_PROXIES") -> TrustedProxies:
    """The reverse proxies whose `X-Forwarded-For` a service believes (`paystream.proxies`):
    comma-separated addresses and CIDR networks; unset or empty trusts nobody."""
    raw = environ.get(name, "")
    try:
        proxies = TrustedProxies.parse(raw)
    except ValueError as exc:
        raise SettingsError(f"{name}: {exc}") from None
    return proxies if proxies.networks else TRUST_NOBODY


@dataclass(frozen=True, slots=True)
class RedisSettings:
    url: str
    # REDIS_CLUSTER: the URL names one node of a Redis Cluster, and the client follows the cluster.
    cluster: bool = False

    def __post_init__(self) -> None:
        if self.cluster and self.url.startswith("unix"):
            raise SettingsError(
                "REDIS_CLUSTER=true needs a redis:// or rediss:// REDIS_URL, not a Unix socket"
            )

    @classmethod
    def from_env(cls, environ: Environ = os.environ) -> RedisSettings:
        return cls(
            url=env_url(environ, "REDIS_URL", ("redis", "rediss", "unix")),
            cluster=env_bool(environ, "REDIS_CLUSTER", False),
        )


def stream_layout_from_env(environ: Environ = os.environ) -> shards.StreamLayout:
    """`STREAM_SHARDS`: how many shard streams each logical stream has (see `paystream.shards`)."""
    count = env_int(environ, shards.SHARDS_VARIABLE, 1, minimum=1, maximum=shards.MAX_SHARDS)
    return shards.StreamLayout(shards=count)


@dataclass(frozen=True, slots=True)
class DatabaseSettings:
    url: str
    pool_min_size: int = 2
    # Four services at 20 (plus their few LISTEN sessions) fit a default PostgreSQL's
    # max_connections of 100; more connections than that buy nothing on a few cores.
    pool_max_size: int = 20

    @classmethod
    def from_env(cls, environ: Environ = os.environ) -> DatabaseSettings:
        return cls(
            url=env_url(environ, "DATABASE_URL", ("postgres", "postgresql")),
            pool_min_size=env_int(environ, "DATABASE_POOL_MIN", 2, minimum=1, maximum=100),
            pool_max_size=env_int(environ, "DATABASE_POOL_MAX", 20, minimum=1, maximum=500),
        )


LogFormat = Literal["json", "console"]


@dataclass(frozen=True, slots=True)
class LogSettings:
    format: LogFormat = "json"
    level: str = "INFO"

    @classmethod
    def from_env(cls, environ: Environ = os.environ) -> LogSettings:
        fmt = env_str(environ, "LOG_FORMAT", "json").lower()
        if fmt not in ("json", "console"):
            raise SettingsError(f"LOG_FORMAT must be json or console, got {fmt!r}")
        level = env_str(environ, "LOG_LEVEL", "INFO").upper()
        if level not in ("DEBUG", "INFO", "WARNING", "ERROR"):
            raise SettingsError(f"LOG_LEVEL must be DEBUG, INFO, WARNING or ERROR, got {level!r}")
        return cls(format="json" if fmt == "json" else "console", level=level)


@dataclass(frozen=True, slots=True)
class OutboxSettings:
    batch_size: int = 500
    retention_days: int = 7
    stream_maxlen: int = 1_000_000
    # A relay leader whose process hangs (it keeps its connection, so its lock) is cut off by
    # PostgreSQL after this long without a statement, and a standby takes over.
    leader_idle_timeout_s: int = 10
    # Handled-event records are kept well past the outbox's retention, so that re-publishing
    # anything the outbox still holds (`payctl replay`) finds every consumer's inbox entry.
    inbox_retention_days: int = 14
    # Replicas that must hold a batch's XADDs (WAIT) before its rows count as published: with 1, a
    # master killed right after the XADDs (its replica promoted) loses none of them. 0: no wait.
    wait_replicas: int = 0

    def __post_init__(self) -> None:
        if self.inbox_retention_days <= self.retention_days:
            raise SettingsError(
                "INBOX_RETENTION_DAYS must exceed OUTBOX_RETENTION_DAYS, or a replay could take effect twice"
            )

    @classmethod
    def from_env(cls, environ: Environ = os.environ) -> OutboxSettings:
        return cls(
            batch_size=env_int(environ, "OUTBOX_BATCH_SIZE", 500, minimum=1, maximum=10_000),
            retention_days=env_int(environ, "OUTBOX_RETENTION_DAYS", 7, minimum=1, maximum=365),
            stream_maxlen=env_int(environ, "STREAM_MAXLEN", 1_000_000, minimum=1000, maximum=2**31),
            leader_idle_timeout_s=env_int(
                environ, "OUTBOX_LEADER_IDLE_TIMEOUT_S", 10, minimum=3, maximum=3600
            ),
            inbox_retention_days=env_int(environ, "INBOX_RETENTION_DAYS", 14, minimum=2, maximum=3650),
            wait_replicas=env_int(environ, "OUTBOX_WAIT_REPLICAS", 0, minimum=0, maximum=5),
        )


@dataclass(frozen=True, slots=True)
class TestModeSettings:
    """Knobs that make the platform deterministic for tests and local runs."""

    enabled: bool = False
    processing_delay_ms: int = 1000
    payment_success: bool = True
    webhook_retry_intervals_test: bool = False

    @classmethod
    def from_env(cls, environ: Environ = os.environ) -> TestModeSettings:
        return cls(
            enabled=env_bool(environ, "TEST_MODE", False),
            processing_delay_ms=env_int(environ, "TEST_PROCESSING_DELAY", 1000, maximum=600_000),
            payment_success=env_bool(environ, "TEST_PAYMENT_SUCCESS", True),
            webhook_retry_intervals_test=env_bool(environ, "WEBHOOK_RETRY_INTERVALS_TEST", False),
        )


ALLOWED_PRIVATE_NETS_VARIABLE = "WEBHOOK_ALLOWED_PRIVATE_NETS"
DEPRECATED_ALLOW_PRIVATE_VARIABLE = "WEBHOOK_ALLOW_PRIVATE_URLS"


@dataclass(frozen=True, slots=True)
class OutboundSettings:
    """Which private networks merchant webhook URLs may reach (`paystream.netguard` enforces it)."""

    policy: OutboundPolicy = PUBLIC_ONLY
    # Start-up warnings about how the policy was configured (a deprecated variable, say).
    notices: tuple[str, ...] = ()

    @classmethod
    def from_env(cls, environ: Environ = os.environ) -> OutboundSettings:
        raw = environ.get(ALLOWED_PRIVATE_NETS_VARIABLE)
        notices: list[str] = []
        legacy = environ.get(DEPRECATED_ALLOW_PRIVATE_VARIABLE)
        if legacy is not None:
            # Kept so that an old environment keeps starting; it never opens more than loopback.
            legacy_on = env_bool(environ, DEPRECATED_ALLOW_PRIVATE_VARIABLE, False)
            if raw is not None:
                notices.append(
                    f"{DEPRECATED_ALLOW_PRIVATE_VARIABLE} is deprecated and ignored: "
                    f"{ALLOWED_PRIVATE_NETS_VARIABLE} is set"
                )
            elif legacy_on:
                raw = LOOPBACK_NETS
                notices.append(
                    f"{DEPRECATED_ALLOW_PRIVATE_VARIABLE}=true is deprecated and now allows "
                    f"loopback only: set {ALLOWED_PRIVATE_NETS_VARIABLE}={LOOPBACK_NETS} instead"
                )
            else:
                notices.append(
                    f"{DEPRECATED_ALLOW_PRIVATE_VARIABLE} is deprecated: remove it "
                    f"(public addresses only is the default)"
                )
        try:
            policy = OutboundPolicy.from_cidr_list(raw or "")
        except ValueError as exc:
            raise SettingsError(f"{ALLOWED_PRIVATE_NETS_VARIABLE}: {exc}") from None
        return cls(policy=policy, notices=tuple(notices))


@dataclass(frozen=True, slots=True)
class CommonSettings:
    """What every service needs: its stores, its logs, its outbound policy and the test-mode knobs."""

    redis: RedisSettings
    database: DatabaseSettings
    log: LogSettings
    outbox: OutboxSettings
    test_mode: TestModeSettings
    outbound: OutboundSettings
    # The shard streams of every logical stream (STREAM_SHARDS).
    streams: shards.StreamLayout = shards.SINGLE_SHARD

    @property
    def notices(self) -> tuple[str, ...]:
        """Warnings for the service to log once logging is set up."""
        return self.outbound.notices

    @classmethod
    def from_env(cls, environ: Environ = os.environ) -> CommonSettings:
        return cls(
            redis=RedisSettings.from_env(environ),
            database=DatabaseSettings.from_env(environ),
            log=LogSettings.from_env(environ),
            outbox=OutboxSettings.from_env(environ),
            test_mode=TestModeSettings.from_env(environ),
            outbound=OutboundSettings.from_env(environ),
            streams=stream_layout_from_env(environ),
        )
