"""`GET /api/v1/merchants/me`."""

from __future__ import annotations

from aiohttp import web

from paystream.web import json_response
from paystream_api.auth import authenticate


async def get_me(request: web.Request) -> web.Response:
    merchant = await authenticate(request)
    return json_response(merchant.to_resource())


def setup_routes(app: web.Application) -> None:
    app.router.add_get("/api/v1/merchants/me", get_me)
