"""The API's app factory: stores, migrations and seed data, the outbox relay, routes."""

from __future__ import annotations

from collections.abc import AsyncIterator

from aiohttp import web

from paystream.logging import get_logger
from paystream.migrations import apply_migrations
from paystream.ratelimit import RateLimiter
from paystream.service import outbox_relay
from paystream.web import COMMON_SETTINGS, POOL, SERVICE_NAME, error_middleware, stores
from paystream_api.auth import AUTH_THROTTLE, THROTTLE_WINDOW_S, AuthThrottle
from paystream_api.keys import SETTINGS, SIGNIN_THROTTLE
from paystream_api.provider_webhooks import seed_test_provider_accounts
from paystream_api.routes import setup_routes
from paystream_api.seed import seed_test_merchant
from paystream_api.settings import ApiSettings

log = get_logger(__name__)

# The API's outbox relay is the relay of last resort: it leads only after seeing no other service's
# relay lead for this long. Publishing costs ~20 µs of event loop per event (measured under webhook
# ingest: 8% of the API's CPU), on the process whose answers providers and merchants wait for; the
# payment processor's and the dispatcher's relays do it instead while either is alive.
RELAY_TAKEOVER_DELAY_S = 3.0

# Bodies past this are refused with 413 before they are read (provider webhooks allow 1 MB).
MAX_BODY_BYTES = 1024 * 1024


async def migrate_and_seed(app: web.Application) -> AsyncIterator[None]:
    settings = app[SETTINGS]
    applied = await apply_migrations(settings.common.database.url)
    if applied:
        log.info("migrations.applied", migrations=applied)
    if settings.seed_test_data:
        async with app[POOL].acquire() as conn, conn.transaction():
            await seed_test_merchant(conn)
            await seed_test_provider_accounts(conn, settings)
    yield


def create_app(settings: ApiSettings) -> web.Application:
    app = web.Application(middlewares=[error_middleware], client_max_size=MAX_BODY_BYTES)
    app[SERVICE_NAME] = "api"
    app[SETTINGS] = settings
    app[COMMON_SETTINGS] = settings.common
    app[AUTH_THROTTLE] = AuthThrottle.per_minute(
        per_address=settings.auth_failures_per_address, per_key=settings.auth_failures_per_key
    )
    app[SIGNIN_THROTTLE] = RateLimiter(settings.dashboard_signin_failures_per_address, THROTTLE_WINDOW_S)
    app.cleanup_ctx.append(stores)
    app.cleanup_ctx.append(migrate_and_seed)
    app.cleanup_ctx.append(outbox_relay(takeover_delay_s=RELAY_TAKEOVER_DELAY_S))
    setup_routes(app)
    return app
