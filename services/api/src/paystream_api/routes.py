"""Every route of the API, registered in one place."""

from __future__ import annotations

from aiohttp import web

from paystream.web import add_ops_routes
from paystream_api import (
    frontend,
    merchant_api,
    merchants,
    openapi,
    provider_webhooks,
    public_api,
    webhook_api,
)


def setup_routes(app: web.Application) -> None:
    add_ops_routes(app)
    merchants.setup_routes(app)
    merchant_api.setup_routes(app)
    webhook_api.setup_routes(app)
    provider_webhooks.setup_routes(app)
    public_api.setup_routes(app)
    frontend.setup_routes(app)
    openapi.setup_routes(app)
