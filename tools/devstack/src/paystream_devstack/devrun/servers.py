"""The stores `make run` needs: embedded Redis and PostgreSQL, unless REDIS_URL / DATABASE_URL name others."""

from __future__ import annotations

import signal
from dataclasses import dataclass, field

from paystream_devstack.devrun.config import DevRunSettings
from paystream_devstack.devrun.supervisor import PrefixedOutput, parent_death_signal
from paystream_devstack.embedded import EmbeddedPostgres, EmbeddedRedis, free_port


@dataclass(frozen=True, slots=True)
class StoreUrls:
    redis_url: str
    database_url: str
    redis_embedded: bool
    postgres_embedded: bool


@dataclass
class DevStores:
    """Starts the embedded servers that are needed; `stop()` is safe to call twice."""

    settings: DevRunSettings
    redis: EmbeddedRedis | None = field(default=None, init=False)
    postgres: EmbeddedPostgres | None = field(default=None, init=False)

    def start(self, output: PrefixedOutput) -> StoreUrls:
        """Start what is missing, in the calling (main) thread so that the parent-death signal holds."""
        redis_url = self.settings.redis_url
        if redis_url is None:
            self.redis = EmbeddedRedis(
                self.settings.data_dir / "redis",
                port=free_port(self.settings.redis_port),
                appendonly=True,
                # SIGTERM makes Redis flush its append-only file before it exits.
                preexec_fn=parent_death_signal(signal.SIGTERM),
            )
            output.note(f"starting Redis on port {self.redis.port} (data in {self.redis.data_dir})")
            redis_url = self.redis.start()
        database_url = self.settings.database_url
        if database_url is None:
            self.postgres = EmbeddedPostgres(
                self.settings.data_dir / "postgres",
                port=free_port(self.settings.postgres_port),
                # SIGINT is PostgreSQL's fast shutdown.
                preexec_fn=parent_death_signal(signal.SIGINT),
            )
            output.note(
                f"starting PostgreSQL on port {self.postgres.port} (data in {self.postgres.data_dir})"
            )
            database_url = self.postgres.start()
        return StoreUrls(
            redis_url=redis_url,
            database_url=database_url,
            redis_embedded=self.redis is not None,
            postgres_embedded=self.postgres is not None,
        )

    def stop(self) -> None:
        if self.postgres is not None:
            self.postgres.stop()
            self.postgres = None
        if self.redis is not None:
            self.redis.stop()
            self.redis = None
