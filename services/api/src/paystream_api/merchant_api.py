"""Orders, payments, captures, refunds, idempotency keys and the test jobs status (issue 3).

Registers the routes of each feature module, and the background task that deletes expired
idempotency keys.
"""

from __future__ import annotations

import asyncio

from aiohttp import web

from paystream.aio import wait_or_stop
from paystream.db import DATABASE_UNAVAILABLE_ERRORS
from paystream.logging import get_logger
from paystream.web import POOL, background
from paystream_api import idempotency, jobs_status, orders, payments, refunds

log = get_logger(__name__)

PURGE_INTERVAL_S = 600.0


async def purge_idempotency_keys(app: web.Application, stop: asyncio.Event) -> None:
    """Every ten minutes, delete keys past their 24 hours (expired keys are never answered from)."""
    while not await wait_or_stop(stop, PURGE_INTERVAL_S):
        try:
            deleted = await idempotency.purge_expired(app[POOL])
        except DATABASE_UNAVAILABLE_ERRORS as exc:
            log.warning("idempotency.purge_failed", error=str(exc))
            continue
        if deleted:
            log.info("idempotency.purged", deleted=deleted)


def setup_routes(app: web.Application) -> None:
    orders.setup_routes(app)
    payments.setup_routes(app)
    refunds.setup_routes(app)
    jobs_status.setup_routes(app)
    app.cleanup_ctx.append(background("idempotency-purge", purge_idempotency_keys, grace_s=5))
