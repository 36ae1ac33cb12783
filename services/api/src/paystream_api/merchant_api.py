"""Orders, payments, captures, refunds, idempotency keys and the test jobs status (issue 3).

Registers the routes of each feature module, and the background task that deletes expired
idempotency keys.
"""

from __future__ import annotations

from aiohttp import web

from paystream.retention import purging
from paystream.web import POOL
from paystream_api import idempotency, jobs_status, orders, payments, refunds

PURGE_INTERVAL_S = 600.0


async def purge_idempotency_keys(app: web.Application) -> int:
    """Delete keys past their 24 hours (expired keys are never answered from)."""
    return await idempotency.purge_expired(app[POOL])


def setup_routes(app: web.Application) -> None:
    orders.setup_routes(app)
    payments.setup_routes(app)
    refunds.setup_routes(app)
    jobs_status.setup_routes(app)
    app.cleanup_ctx.append(purging("idempotency-purge", purge_idempotency_keys, every_s=PURGE_INTERVAL_S))
