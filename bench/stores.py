"""Fresh Redis and PostgreSQL for one bench run, and nothing else touched.

- Neither REDIS_URL nor DATABASE_URL set: an embedded redis-server and PostgreSQL 16 in the run's
  temporary directory, fresh by construction, stopped and deleted at the end.
- DATABASE_URL set: a new database `paystream_bench_<hex>` on that server, dropped at the end.
- REDIS_URL set: the bench takes one database number (`--redis-db`, default 15) and refuses to
  start when it holds keys unless `--allow-flush` is given; it empties only that database (FLUSHDB),
  never the whole server, and only a server the user pointed it at with that flag or an empty one.
"""

from __future__ import annotations

import os
import signal
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import asyncpg
import redis.asyncio as aioredis
import uuid_utils

from paystream_devstack.devrun.supervisor import parent_death_signal
from paystream_devstack.embedded import EmbeddedPostgres, EmbeddedRedis


class BenchSetupError(RuntimeError):
    """The bench cannot start safely; the message says what to change."""


def with_database(url: str, database: str) -> str:
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, f"/{database}", parts.query, parts.fragment))


def with_redis_db(url: str, db: int) -> str:
    """The same Redis server, database `db` (a path for redis://, a query for unix://)."""
    parts = urlsplit(url)
    if parts.scheme == "unix":
        query = [(key, value) for key, value in parse_qsl(parts.query) if key != "db"]
        query.append(("db", str(db)))
        return urlunsplit((parts.scheme, parts.netloc, parts.path, urlencode(query), parts.fragment))
    return urlunsplit((parts.scheme, parts.netloc, f"/{db}", parts.query, parts.fragment))


@dataclass
class Stores:
    """Where the run's Redis and PostgreSQL are, and how to give them back."""

    workdir: Path
    redis_db: int
    allow_flush: bool
    redis_url: str = ""
    database_url: str = ""
    redis_server: EmbeddedRedis | None = field(default=None, init=False)
    postgres_server: EmbeddedPostgres | None = field(default=None, init=False)
    _admin_url: str | None = field(default=None, init=False)
    _database_name: str | None = field(default=None, init=False)
    _flush_redis_on_close: bool = field(default=False, init=False)

    @property
    def redis_origin(self) -> str:
        return "embedded" if self.redis_server is not None else f"REDIS_URL db {self.redis_db}"

    @property
    def postgres_origin(self) -> str:
        return "embedded" if self.postgres_server is not None else "DATABASE_URL (fresh database)"

    async def start(self) -> None:
        # Redis first: refusing a user's non-empty database should not cost a database creation.
        await self._start_redis(os.environ.get("REDIS_URL") or None)
        await self._start_postgres(os.environ.get("DATABASE_URL") or None)

    async def _start_postgres(self, configured: str | None) -> None:
        name = f"paystream_bench_{uuid_utils.uuid4().hex[:12]}"
        if configured is None:
            self.postgres_server = EmbeddedPostgres(
                self.workdir / "postgres", database=name, preexec_fn=parent_death_signal(signal.SIGINT)
            )
            self.database_url = self.postgres_server.start(timeout=60)
            return
        self._admin_url = with_database(configured, "postgres")
        admin = await asyncpg.connect(self._admin_url)
        try:
            await admin.execute(f'CREATE DATABASE "{name}"')
        finally:
            await admin.close()
        self._database_name = name
        self.database_url = with_database(configured, name)

    async def _start_redis(self, configured: str | None) -> None:
        if configured is None:
            self.redis_server = EmbeddedRedis(
                self.workdir / "redis", appendonly=True, preexec_fn=parent_death_signal(signal.SIGTERM)
            )
            self.redis_url = self.redis_server.start()
            return
        url = with_redis_db(configured, self.redis_db)
        client = aioredis.Redis.from_url(url)
        try:
            keys = int(await client.dbsize())
            if keys and not self.allow_flush:
                raise BenchSetupError(
                    f"REDIS_URL database {self.redis_db} holds {keys} keys: pass --redis-db with an empty "
                    "database, or --allow-flush to empty that one database (FLUSHDB)"
                )
            if keys:
                await client.flushdb()
        finally:
            await client.aclose()
        self._flush_redis_on_close = True
        self.redis_url = url

    async def close(self) -> None:
        """Give everything back; safe to call twice, and after a failed start."""
        if self.redis_server is not None:
            self.redis_server.stop()
            self.redis_server = None
        elif self._flush_redis_on_close:
            self._flush_redis_on_close = False
            client = aioredis.Redis.from_url(self.redis_url)
            try:
                await client.flushdb()
            finally:
                await client.aclose()
        if self.postgres_server is not None:
            self.postgres_server.stop()
            self.postgres_server = None
        elif self._admin_url is not None and self._database_name is not None:
            name, self._database_name = self._database_name, None
            admin = await asyncpg.connect(self._admin_url)
            try:
                await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            finally:
                await admin.close()
