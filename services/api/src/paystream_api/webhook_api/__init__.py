"""Merchant webhooks: the default endpoint's configuration, every endpoint (issue 16), delivery
logs, manual retry and recovery, and the catalogue of the events a webhook can carry.

The dispatcher (`services/webhook-dispatcher`) sends the webhooks; these endpoints configure them and
read (and nudge) its delivery log, which lives in PostgreSQL.
"""

from __future__ import annotations

from aiohttp import web

from paystream_api.webhook_api import catalogue, config, deliveries, endpoints


def setup_routes(app: web.Application) -> None:
    app.router.add_get("/api/v1/webhooks/config", config.get_config)
    app.router.add_put("/api/v1/webhooks/config", config.put_config)
    app.router.add_post("/api/v1/webhooks/config/rotate-secret", config.rotate_secret)
    app.router.add_post("/api/v1/webhooks/test", deliveries.send_test)
    app.router.add_get("/api/v1/webhooks", deliveries.list_deliveries)
    app.router.add_post("/api/v1/webhooks/{id}/retry", deliveries.retry_delivery)
    endpoints.setup_routes(app)
    app.router.add_get("/api/v1/event-types", catalogue.list_event_types)
