"""payctl's settings: store URLs and service health URLs, from flags first, then the environment,
then (for the stores and the JWT secret) the file a running `make run` writes (`.data/devrun.json`)."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

from payctl.errors import EXIT_UNAVAILABLE, PayctlError
from paystream.devrun_state import DevRunState
from paystream.settings import OutboxSettings, env_bool, stream_layout_from_env
from paystream.shards import SINGLE_SHARD, StreamLayout

# Service -> (variable naming its port, default port); PAYCTL_<SERVICE>_URL overrides the base URL.
SERVICE_PORTS: Mapping[str, tuple[str, int]] = {
    "api": ("API_PORT", 8000),
    "processor": ("PROCESSOR_PORT", 8081),
    "dispatcher": ("DISPATCHER_PORT", 8082),
    "notifier": ("NOTIFIER_PORT", 8080),
}


@dataclass(frozen=True, slots=True)
class PayctlSettings:
    redis_url: str | None
    database_url: str | None
    service_urls: Mapping[str, str]
    # The approximate cap replays XADD with, the same the outbox relay uses.
    stream_maxlen: int = 1_000_000
    # The dispatcher's delivery-log table, when run-time discovery would not find it.
    deliveries_table: str | None = None
    # HS256 key of the notifier's tokens (`payctl token`).
    jwt_secret: str | None = None
    # The devrun file each store URL came from, when it did (named in error messages).
    redis_url_file: Path | None = None
    database_url_file: Path | None = None
    # The shard streams of every logical stream (STREAM_SHARDS, as the services have it).
    layout: StreamLayout = SINGLE_SHARD
    # REDIS_CLUSTER: REDIS_URL names a node of a Redis Cluster.
    redis_cluster: bool = False
    # OUTBOX_WAIT_REPLICAS, as the services have it: a replayed dead letter is removed only once
    # that many replicas hold the entry it became (WAIT), so a failover cannot lose both.
    wait_replicas: int = 0

    @classmethod
    def from_env(
        cls,
        environ: Mapping[str, str] = os.environ,
        *,
        redis_url: str | None = None,
        database_url: str | None = None,
        devrun: DevRunState | None = None,
    ) -> PayctlSettings:
        """Raises `paystream.errors.SettingsError` naming a malformed variable. `devrun` (a running
        `make run`'s state) fills in what neither the flags nor the environment give."""
        urls = {}
        for service, (port_variable, default_port) in SERVICE_PORTS.items():
            override = environ.get(f"PAYCTL_{service.upper()}_URL")
            if override:
                urls[service] = override.rstrip("/")
            else:
                port = environ.get(port_variable) or str(default_port)
                urls[service] = f"http://127.0.0.1:{port}"
        redis_url = redis_url or environ.get("REDIS_URL") or None
        database_url = database_url or environ.get("DATABASE_URL") or None
        jwt_secret = environ.get("JWT_SECRET") or None
        redis_url_file = database_url_file = None
        if devrun is not None:
            if not redis_url:
                redis_url, redis_url_file = devrun.redis_url, devrun.path
            if not database_url:
                database_url, database_url_file = devrun.database_url, devrun.path
            jwt_secret = jwt_secret or devrun.jwt_secret
        outbox = OutboxSettings.from_env(environ)
        return cls(
            redis_url=redis_url,
            database_url=database_url,
            service_urls=urls,
            wait_replicas=outbox.wait_replicas,
            stream_maxlen=outbox.stream_maxlen,
            deliveries_table=environ.get("PAYCTL_DELIVERIES_TABLE") or None,
            jwt_secret=jwt_secret,
            redis_url_file=redis_url_file,
            database_url_file=database_url_file,
            layout=stream_layout_from_env(environ),
            redis_cluster=env_bool(environ, "REDIS_CLUSTER", False),
        )

    def require_redis_url(self) -> str:
        if not self.redis_url:
            raise PayctlError("REDIS_URL is not set (or pass --redis-url)", exit_code=EXIT_UNAVAILABLE)
        return self.redis_url

    def require_database_url(self) -> str:
        if not self.database_url:
            raise PayctlError("DATABASE_URL is not set (or pass --database-url)", exit_code=EXIT_UNAVAILABLE)
        return self.database_url

    def require_jwt_secret(self) -> str:
        if not self.jwt_secret:
            raise PayctlError(
                "JWT_SECRET is not set, and no running `make run` was found to take it from",
                exit_code=EXIT_UNAVAILABLE,
            )
        return self.jwt_secret


def redact_url(url: str) -> str:
    """The URL without its password, for messages."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.rsplit("@", 1)[1]
    user = parts.username or ""
    return urlunsplit((parts.scheme, f"{user}:***@{netloc}", parts.path, parts.query, parts.fragment))
