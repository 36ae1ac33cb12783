"""The dashboard's pages and the files its Docs page shows.

Each page is a static HTML file (`static/dashboard/`) whose script fetches its data from the API.
Without a live session every page answers the sign-in page instead, at the same address, so that
signing in lands where the merchant was going.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from pathlib import Path

from aiohttp import web

from paystream.errors import NotFoundError
from paystream.web import POOL
from paystream_api import sessions
from paystream_api.frontend.assets import page
from paystream_api.frontend.security import PageKind, asset_headers
from paystream_api.keys import SETTINGS

SIGN_IN_PAGE = "dashboard/signin.html"
PAGES = {
    "/dashboard": "dashboard/payments.html",
    "/dashboard/payments/{payment_id}": "dashboard/payment.html",
    "/dashboard/webhooks": "dashboard/webhooks.html",
    "/dashboard/webhooks/{endpoint_id}": "dashboard/webhook-endpoint.html",
    "/dashboard/streams": "dashboard/streams.html",
    "/dashboard/docs": "dashboard/docs.html",
}
# The README's webhook verification snippets, verbatim (a test keeps the two equal).
SNIPPETS_DIR = Path(__file__).resolve().parent / "snippets"
SNIPPETS = {"verify_webhook.py", "verify_webhook.js"}


async def signed_in(request: web.Request) -> bool:
    token = sessions.session_token(request)
    if token is None:
        return False
    idle_s = request.app[SETTINGS].dashboard_session_idle_s
    return await sessions.live_session(request.app[POOL], token, idle_s=idle_s) is not None


def page_handler(relative: str) -> Callable[[web.Request], Awaitable[web.Response]]:
    async def handler(request: web.Request) -> web.Response:
        shown = relative if await signed_in(request) else SIGN_IN_PAGE
        return page(request, shown, PageKind.PRIVATE)

    return handler


async def snippet(request: web.Request) -> web.Response:
    name = request.match_info["name"]
    if name not in SNIPPETS:
        raise NotFoundError("no such snippet", field="name")
    return web.Response(
        body=(SNIPPETS_DIR / name).read_bytes(),
        content_type="text/plain",
        charset="utf-8",
        headers=asset_headers(),
    )


def setup_routes(app: web.Application) -> None:
    for path, relative in PAGES.items():
        app.router.add_get(path, page_handler(relative))
    app.router.add_get("/dashboard/", page_handler(PAGES["/dashboard"]))
    app.router.add_get("/dashboard/snippets/{name}", snippet)
