"""The dashboard's pages and the files its Docs page shows.

Each page is a static HTML file (`static/dashboard/`) whose script fetches its data from the API.
The sidebar is written once (`sidebar.part.html`) and put in each page where it says
`<!-- dashboard sidebar -->`, its section's link marked current. Without a live session every page
answers the sign-in page instead, at the same address, so that signing in lands where the merchant
was going.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from aiohttp import web

from paystream.errors import NotFoundError
from paystream.web import POOL
from paystream_api import sessions
from paystream_api.frontend.assets import page, read_asset
from paystream_api.frontend.security import PageKind, asset_headers
from paystream_api.keys import SETTINGS

SIGN_IN_PAGE = "dashboard/signin.html"
SIDEBAR = "dashboard/sidebar.part.html"
SIDEBAR_MARK = b"      <!-- dashboard sidebar -->\n"


@dataclass(frozen=True, slots=True)
class Page:
    file: str  # in static/
    section: str  # the sidebar link marked current: its data-test-id is nav-<section>


PAGES = {
    "/dashboard": Page("dashboard/payments.html", "payments"),
    "/dashboard/payments/{payment_id}": Page("dashboard/payment.html", "payments"),
    "/dashboard/webhooks": Page("dashboard/webhooks.html", "webhooks"),
    "/dashboard/webhooks/{endpoint_id}": Page("dashboard/webhook-endpoint.html", "webhooks"),
    "/dashboard/streams": Page("dashboard/streams.html", "streams"),
    "/dashboard/docs": Page("dashboard/docs.html", "docs"),
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


@cache
def page_body(shown: Page) -> bytes:
    """The page's HTML with the sidebar in place (built once: the files do not change)."""
    link = f'data-test-id="nav-{shown.section}"'.encode()
    sidebar = read_asset(SIDEBAR)
    if link not in sidebar:
        raise ValueError(f"{SIDEBAR} has no link for the section {shown.section!r}")
    sidebar = sidebar.replace(link, link + b' aria-current="page"')
    body = read_asset(shown.file)
    if SIDEBAR_MARK not in body:
        raise ValueError(f"{shown.file} has no place for the sidebar")
    return body.replace(SIDEBAR_MARK, sidebar)


def page_handler(shown: Page) -> Callable[[web.Request], Awaitable[web.Response]]:
    async def handler(request: web.Request) -> web.Response:
        if not await signed_in(request):
            return page(request, SIGN_IN_PAGE, PageKind.PRIVATE)
        return page(request, shown.file, PageKind.PRIVATE, page_body(shown))

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
    for path, shown in PAGES.items():
        page_body(shown)  # a page without its sidebar's place fails start-up, not a request
        app.router.add_get(path, page_handler(shown))
    app.router.add_get("/dashboard/", page_handler(PAGES["/dashboard"]))
    app.router.add_get("/dashboard/snippets/{name}", snippet)
