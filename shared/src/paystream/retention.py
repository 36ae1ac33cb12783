"""Retention: deleting rows past their keep-by date, a bounded batch at a time.

One DELETE of everything past its date would, on a busy platform, remove millions of rows in one
transaction: minutes of locks on what it deletes, one long snapshot that holds back every vacuum,
and a burst of WAL that replicas must replay at once. A purge here is a statement that deletes at
most one batch (`$1` rows); `delete_in_batches` runs it again, each time in a transaction of its
own, until a run finds less than a full batch. Replicas may purge at the same time: the batches
select their rows `FOR UPDATE SKIP LOCKED`, so two purges share the work instead of waiting.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import asyncpg
from aiohttp import web

from paystream.db import DATABASE_UNAVAILABLE_ERRORS
from paystream.logging import get_logger
from paystream.loops import Backoff, run_until_stopped
from paystream.web import CleanupContext, background

log = get_logger(__name__)

PURGE_BATCH = 5000


async def delete_in_batches(
    pool: asyncpg.Pool, statement: str, *args: Any, batch_size: int = PURGE_BATCH
) -> int:
    """Run `statement` (a DELETE of at most `$1` rows, its other parameters `$2`... being `args`)
    until one run deletes fewer than `batch_size`; returns how many rows were deleted in all."""
    total = 0
    while True:
        status: str = await pool.execute(statement, batch_size, *args)
        deleted = int(status.split()[-1])
        total += deleted
        if deleted < batch_size:
            return total


def purging(
    name: str, purge: Callable[[web.Application], Awaitable[int]], *, every_s: float
) -> CleanupContext:
    """cleanup_ctx: `purge(app)` every `every_s` seconds (the first one `every_s` after start-up),
    for the app's life under its supervisor; a database outage waits with backoff, never kills it."""

    async def run(app: web.Application, stop: asyncio.Event) -> None:
        async def step() -> None:
            deleted = await purge(app)
            if deleted:
                log.info("retention.purged", job=name, deleted=deleted)

        await run_until_stopped(
            name,
            step,
            stop,
            interval_s=every_s,
            first_wait_s=every_s,
            retry_on=DATABASE_UNAVAILABLE_ERRORS,
            backoff=Backoff(cap_s=every_s),
        )

    return background(name, run, grace_s=5)
