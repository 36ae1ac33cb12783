"""Inbound provider webhooks (Razorpay, PAYable IPG): verified, de-duplicated, durable before 2xx.

`setup_routes(app)` registers the routes and the feature's background parts: the in-memory provider
account directory (loaded at start, refreshed periodically) and the group-commit ingest writer.
Processing happens in the payment processor, which claims the stored rows (`provider_events`) itself.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

from aiohttp import web

from paystream.web import POOL, background
from paystream_api.provider_webhooks.accounts import AccountDirectory, seed_test_provider_accounts
from paystream_api.provider_webhooks.ingest import IngestWriter
from paystream_api.provider_webhooks.keys import ACCOUNTS, INGEST_WRITER
from paystream_api.provider_webhooks.payable import payable_webhook
from paystream_api.provider_webhooks.razorpay import razorpay_webhook

__all__ = ["seed_test_provider_accounts", "setup_routes"]


async def ingest_context(app: web.Application) -> AsyncIterator[None]:
    """Load the accounts before the first request, and run the writer for the app's life."""
    directory = AccountDirectory(app[POOL])
    await directory.load()
    app[ACCOUNTS] = directory
    writer = IngestWriter(app[POOL])
    writer.start()
    app[INGEST_WRITER] = writer
    try:
        yield
    finally:
        await writer.stop()


async def refresh_accounts(app: web.Application, stop: asyncio.Event) -> None:
    await app[ACCOUNTS].run(stop)


def setup_routes(app: web.Application) -> None:
    # Appended after the app's own contexts (stores, migrations and seed), so the pool and the
    # seeded accounts exist when these start.
    app.cleanup_ctx.append(ingest_context)
    app.cleanup_ctx.append(background("provider-accounts-refresh", refresh_accounts, grace_s=2.0))
    app.router.add_post("/api/v1/providers/razorpay/webhook", razorpay_webhook)
    app.router.add_post("/api/v1/providers/payable/webhook", payable_webhook)
    app.router.add_post("/api/payments/webhook", payable_webhook)
