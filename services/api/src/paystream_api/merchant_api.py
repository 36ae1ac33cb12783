"""Orders, payments, captures, refunds, idempotency keys and the test jobs status (issue 3).

Registers the routes of each feature module, and the background task that deletes expired
idempotency keys.
"""

from __future__ import annotations

import asyncio

from aiohttp import web

from paystream.db import DATABASE_UNAVAILABLE_ERRORS
from paystream.logging import get_logger
from paystream.loops import Backoff, run_until_stopped
from paystream.web import POOL, background
from paystream_api import idempotency, jobs_status, orders, payments, refunds

log = get_logger(__name__)

PURGE_INTERVAL_S = 600.0


async def purge_idempotency_keys(app: web.Application, stop: asyncio.Event) -> None:
    """Every ten minutes, delete keys past their 24 hours (expired keys are never answered from)."""

    async def purge() -> None:
        deleted = await idempotency.purge_expired(app[POOL])
        if deleted:
            log.info("idempotency.purged", deleted=deleted)

    await run_until_stopped(
        "idempotency.purge",
        purge,
        stop,
        interval_s=PURGE_INTERVAL_S,
        first_wait_s=PURGE_INTERVAL_S,
        retry_on=DATABASE_UNAVAILABLE_ERRORS,
        backoff=Backoff(cap_s=PURGE_INTERVAL_S),
    )


def setup_routes(app: web.Application) -> None:
    orders.setup_routes(app)
    payments.setup_routes(app)
    refunds.setup_routes(app)
    jobs_status.setup_routes(app)
    app.cleanup_ctx.append(background("idempotency-purge", purge_idempotency_keys, grace_s=5))
