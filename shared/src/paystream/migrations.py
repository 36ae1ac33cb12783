"""Ordered SQL migrations from `infra/migrations/`, recorded in `schema_migrations`.

Files are applied in name order (`0001_foundation.sql`, `0002_...`), each in its own transaction,
under an advisory lock so that several processes starting at once apply each file exactly once.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import sys
from pathlib import Path

import asyncpg

from paystream.db import connect

MIGRATIONS_LOCK_KEY = 7_301_000_001


def migrations_dir() -> Path:
    configured = os.environ.get("MIGRATIONS_DIR")
    if configured:
        return Path(configured)
    # shared/src/paystream/migrations.py -> repo root/infra/migrations; in the image, /app/infra/migrations.
    for parent in Path(__file__).resolve().parents:
        candidate = parent / "infra" / "migrations"
        if candidate.is_dir():
            return candidate
    raise FileNotFoundError("infra/migrations not found; set MIGRATIONS_DIR")


async def apply_migrations(database_url: str, directory: Path | None = None) -> list[str]:
    """Apply the migrations not yet recorded; return the names applied now."""
    folder = directory or migrations_dir()
    files = sorted(p for p in folder.glob("*.sql"))
    conn = await connect(database_url)
    applied_now: list[str] = []
    try:
        await conn.execute("SELECT pg_advisory_lock($1)", MIGRATIONS_LOCK_KEY)
        await conn.execute(
            """CREATE TABLE IF NOT EXISTS schema_migrations (
                   name text PRIMARY KEY,
                   checksum text NOT NULL,
                   applied_at timestamptz NOT NULL DEFAULT now())"""
        )
        done = {row["name"] for row in await conn.fetch("SELECT name FROM schema_migrations")}
        for path in files:
            if path.name in done:
                continue
            sql = path.read_text()
            async with conn.transaction():
                await conn.execute(sql)
                await conn.execute(
                    "INSERT INTO schema_migrations (name, checksum) VALUES ($1, $2)",
                    path.name,
                    hashlib.sha256(sql.encode()).hexdigest(),
                )
            applied_now.append(path.name)
    finally:
        try:
            await conn.execute("SELECT pg_advisory_unlock($1)", MIGRATIONS_LOCK_KEY)
        finally:
            await conn.close()
    return applied_now


def main() -> None:
    url = os.environ.get("DATABASE_URL")
    if not url:
        print("DATABASE_URL is required but not set", file=sys.stderr)
        raise SystemExit(2)
    try:
        applied = asyncio.run(apply_migrations(url))
    except (OSError, asyncpg.PostgresError) as exc:
        print(f"migrations failed: {exc}", file=sys.stderr)
        raise SystemExit(1) from None
    print(f"applied {len(applied)} migration(s): {', '.join(applied) or 'none pending'}")


if __name__ == "__main__":
    main()
